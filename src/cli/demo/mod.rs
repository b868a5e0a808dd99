//! `hive demo`: the whole job on a simulated fleet started in this process.
//!
//! Two stories, one runner. By default a fleet that exists today ([`modern`]): Windows Server
//! 2016/2019/2022 hosts scanned with a real MSRC CVRF month and patched with that month's
//! cumulative update per version (.msu through DISM, one reboot). With `--legacy` the seed era's
//! job ([`legacy`]) on the oldest hosts WinRM ran on: Windows Server 2003 SP2 and XP SP3 with
//! WinRM 1.1, an mssecure.xml-schema catalog, Update.exe packages chained with one reboot, cmd.exe
//! only. Either way the demo writes a
//! temporary HIVE repository, approves the story's installers, scans the fleet (what nobody
//! approved lands in TBE), then rolls out: canaries first, then 10 % → 50 % → 100 %, with
//! progress bars, a journal and a final summary. A few hosts are faulty in both stories (an
//! installer that hangs, a host that never returns from its reboot, a host whose connection
//! resets).
//!
//! The simulated hosts speak real WinRM (NTLM with message encryption) to hive; only their C:
//! drives are local folders the demo writes installers into directly, since no Samba runs inside
//! the process (the tests use a real Samba for the same path).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hive::deploy::DeployOptions;
use hive::inventory::{Inventory, Secret};
use hive::pipeline::{DeployJob, Job};
use hive::remote::Timeouts;
use hive::repo::Repository;
use hive::report::{Format, render};
use hive::rollout::{Rollout, RolloutOptions, plan_waves};
use hive::scan::run::{FileSource, PreparedProbe, ScanOptions, scan_fleet_with};

use local_drive::LocalDriveConnector;
use story::Story;

pub mod legacy;
pub mod local_drive;
pub mod modern;
mod story;

/// The demo's knobs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub canaries: usize,
    pub hosts: usize,
    /// Inject the faulty hosts.
    pub faults: bool,
    /// Hosts in flight at once.
    pub parallel: usize,
    /// Keep the temporary repository (journal, logs) instead of deleting it.
    pub keep: bool,
    /// How long a simulated host stays down when it reboots (the rollout benchmark uses 20 s).
    pub reboot_ms: u64,
    /// The seed-era story (Server 2003 SP2 and XP SP3, WinRM 1.1, Update.exe) instead of today's
    /// fleet.
    pub legacy: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            canaries: 3,
            hosts: 60,
            faults: true,
            parallel: 24,
            keep: false,
            reboot_ms: 1500,
            legacy: false,
        }
    }
}

/// The simulated hosts' password: `HIVE_DEMO_PASSWORD` when set (so a test can look for it in
/// everything the demo leaves behind), else a random one. Never printed, never written to disk.
fn demo_password() -> String {
    if let Ok(p) = std::env::var("HIVE_DEMO_PASSWORD")
        && !p.is_empty()
    {
        return p;
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
    format!("Demo-{:016x}!", h.finish())
}

/// The loopback addresses of this process's hosts (so two demos or tests never collide): 250
/// hosts per third octet, from a start picked by the process id; room for 12,500 hosts.
fn address(i: usize) -> String {
    let pid = std::process::id() as usize;
    let (second, third) = (60 + pid % 40, (pid / 40) % 150 + 20);
    format!("127.{second}.{}.{}", third + i / 250, i % 250 + 1)
}

fn host_name(i: usize, canaries: usize) -> String {
    if i < canaries {
        format!("CANARY{:02}", i + 1)
    } else {
        format!("WEB{:03}", i - canaries + 1)
    }
}

/// The fleet file (kept with `--keep` for a look). It holds no password: the hosts get theirs
/// in memory, so a kept work folder holds no secret.
fn fleet_toml(opts: &DemoOptions, story: &Story) -> String {
    let mut t = format!(
        "[defaults]\nuser = \"Administrator\"\nreboot = {{ downtime_ms = {} }}\n\n{}",
        opts.reboot_ms, story.templates
    );
    for i in 0..opts.canaries + opts.hosts {
        let name = host_name(i, opts.canaries);
        let addr = address(i);
        let template = (story.template_of)(i, opts);
        t.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"{addr}\"\ntemplate = \"{template}\"\n"
        ));
        if opts.faults
            && i >= opts.canaries
            && let Some(fault) = story::fault_of(i - opts.canaries)
        {
            t.push_str(fault);
        }
        if opts.faults
            && i == 0
            && let Some(gate) = &story.health
        {
            t.push_str(gate.canary_fault);
        }
        t.push('\n');
    }
    t
}

/// The inventory hive works from. `[group.canary]` is where the canaries' own settings go (a
/// health check before the waves start, say).
fn inventory(
    opts: &DemoOptions,
    story: &Story,
    port: u16,
) -> Result<Inventory, Box<dyn std::error::Error>> {
    let mut t =
        String::from("[defaults]\ncredential = \"env:HIVE_DEMO_PASSWORD\"\n\n[group.canary]\n\n");
    if let Some(gate) = &story.health {
        t.push_str(&format!("[group_defaults]\n{}\n", gate.inventory));
    }
    for i in 0..opts.canaries + opts.hosts {
        let name = host_name(i, opts.canaries);
        let role = if i < opts.canaries { "canary" } else { "web" };
        let groups: Vec<String> = std::iter::once(role)
            .chain((story.groups_of)(i, opts))
            .map(|g| format!("\"{g}\""))
            .collect();
        t.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"{}\"\nport = {port}\ngroups = [{}]\n",
            address(i),
            groups.join(", ")
        ));
    }
    Ok(Inventory::parse(&t, Path::new("demo-inventory.toml"))?)
}

/// Run the demo; returns whether the rollout reached its end.
pub async fn run(opts: DemoOptions) -> Result<bool, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let story = if opts.legacy {
        legacy::story()?
    } else {
        modern::story(&modern::cvrf_path())?
    };
    let dir = tempfile::Builder::new().prefix("hive-demo.").tempdir()?;
    let work = dir.path().to_path_buf();
    println!(
        "hive demo{}: {} canaries + {} hosts, work folder {}",
        if opts.legacy { " --legacy" } else { "" },
        opts.canaries,
        opts.hosts,
        work.display()
    );
    println!("  {}", story.intro);

    // 1. The simulated fleet, each host on its own 127.x.y.z with a WinRM listener.
    let password = demo_password();
    let fleet_file = work.join("fleet.toml");
    let fleet_text = fleet_toml(&opts, &story);
    std::fs::write(&fleet_file, &fleet_text)?;
    let mut configs = winsim::fleet::parse(&fleet_text, &fleet_file)?;
    for c in &mut configs {
        c.password = winsim::fleet::Password::new(password.as_str());
    }
    let drives = work.join("drives");
    let model = winsim::Fleet::start(&configs, &drives)?;
    let servers = winsim::server::WinrmFleet::start(model.sim_hosts(), Default::default()).await?;
    let port: u16 = servers
        .endpoints()
        .first()
        .and_then(|e| e.http_port())
        .unwrap_or(5985);
    println!("  fleet up: {} WinRM listeners", servers.endpoints().len());

    // 2. The repository, with the story's installers approved.
    let repo = Repository::init(&work.join("repo"))?;
    let installers = work.join("installers");
    for a in &story.approvals {
        let file = installers.join(&a.file_name);
        a.package.write_to(&file)?;
        repo.approve(&a.id, &file, &a.recipe)?;
    }
    println!("  repository {}: approved", repo.root().display());
    for a in &story.approvals {
        println!("    {}", a.describe);
    }

    // 3. Scan: what each host lacks.
    let inv = inventory(&opts, &story, port)?;
    let catalog = Arc::new(story.catalog);
    let secret = Secret::new(password);
    let hosts: Arc<[_]> = inv
        .hosts
        .iter()
        .map(|h| (h.clone(), Ok::<_, String>(secret.clone())))
        .collect();
    let scan_opts = ScanOptions {
        parallel: opts.parallel,
        host_timeout: Duration::from_secs(30),
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            operation: Duration::from_secs(10),
        },
        files: FileSource::Probe,
    };
    let connector = Arc::new(LocalDriveConnector::new(&drives, scan_opts.timeouts));
    let scans = scan_fleet_with(
        hosts.clone(),
        catalog.clone(),
        scan_opts,
        Arc::new(()),
        connector.clone(),
    )
    .await;
    let table = render(Format::Table, &catalog, &scans);
    println!(
        "\n== scan ==\n{}",
        table.lines().rev().take(1).collect::<Vec<_>>().join("")
    );
    let triage = hive::triage::record_scan(&repo, &catalog, &scans)?;
    print_triage(&triage);

    // 4. Roll the approved installers out: canaries, then waves.
    let approved = hive::deploy::plan::load_approved(&repo)?;
    let options = DeployOptions {
        shutdown_delay_s: 0,
        poll_interval: Duration::from_millis(250),
        down_timeout: Duration::from_secs(10),
        port_timeout: Duration::from_millis(opts.reboot_ms) + Duration::from_secs(10),
        login_timeout: Duration::from_millis(opts.reboot_ms) + Duration::from_secs(10),
        settle_timeout: Duration::from_secs(10),
        install_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(10),
        verify_timeout: Duration::from_secs(20),
        busy_backoff: Duration::from_millis(500),
        ..DeployOptions::default()
    };
    let job = DeployJob {
        hosts: hosts
            .iter()
            .map(|(h, s)| (h.name.clone(), (h.clone(), s.clone())))
            .collect::<BTreeMap<_, _>>(),
        catalog: catalog.clone(),
        probe: Arc::new(PreparedProbe::new(&catalog)),
        approved: Arc::new(approved),
        repo: repo.clone(),
        options,
        files: FileSource::Probe,
        connector: connector.clone(),
        health: hive::rollout::InventoryHealth::new(
            &inv.policy,
            &hosts,
            connector as Arc<dyn hive::remote::Connector>,
        )
        .map(Arc::new),
    };
    // With a health gate, a patch that leaves a canary unhealthy is withheld from the waves.
    let plan_text = if story.health.is_some() && opts.faults {
        "canary(group=canary, quarantine_after=1) -> 10% -> 50% -> 100%"
    } else {
        "canary(group=canary) -> 10% -> 50% -> 100%"
    };
    if let Some(gate) = story.health.as_ref().filter(|_| opts.faults) {
        println!("  {}", gate.describe);
    }
    let rollout_opts = RolloutOptions {
        parallel: opts.parallel,
        max_failed_total: Some(hive::rollout::Limit::Count(5)),
        ..RolloutOptions::default()
    };
    let waves = plan_waves(plan_text, &inv, None, &rollout_opts)?;
    println!("\n== rollout: {plan_text} ==");
    let progress = Arc::new(hive::progress::Progress::stdout());
    let job_health = job.health.clone();
    let mut rollout = Rollout::new(repo.root(), Arc::new(Job(Arc::new(job))));
    rollout.watcher = progress.clone();
    rollout.health = job_health.map(|h| {
        Arc::new(hive::rollout::InventoryHealthCheck(h)) as Arc<dyn hive::rollout::HealthCheck>
    });
    rollout.groups = crate::cli::rollout::group_members(&inv.hosts);
    // The progress watcher prints the summary when the run ends.
    let summary = rollout.start(plan_text, waves, rollout_opts).await?;
    println!(
        "journal: {}",
        repo.root()
            .join("runs")
            .join(&summary.run)
            .join("journal.ndjson")
            .display()
    );
    println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());

    servers.shutdown().await;
    if opts.keep {
        write_command_log(&model, &work.join("commands.log"))?;
        // `hive report RUN --catalog catalog.json -o html` then shows the bulletins' titles.
        hive::catalog::store::save(&work.join("catalog.json"), &catalog)?;
    }
    drop(model);
    if opts.keep {
        let kept = dir.keep();
        println!("kept {}", kept.display());
    }
    Ok(summary.stop.is_none())
}

/// What the scan means for triage: the approved installers the fleet misses, and what nobody
/// has decided on yet (a CVRF month's CVEs run to dozens: the first few and a count).
fn print_triage(triage: &hive::triage::TriageSummary) {
    for (b, h) in &triage.approved {
        println!("  Hotfixes  {b}: missing on {} hosts", h.len());
    }
    const SHOWN: usize = 3;
    for (b, h) in triage.tbe.iter().take(SHOWN) {
        println!(
            "  TBE       {b}: missing on {} hosts (tbe/{b}/ written for an engineer)",
            h.len()
        );
    }
    if triage.tbe.len() > SHOWN {
        println!(
            "  TBE       ... and {} more (tbe/ holds one folder each)",
            triage.tbe.len() - SHOWN
        );
    }
}

/// Every command line (and decoded PowerShell script) the simulated hosts received, one block per
/// host: what a process list on a real fleet would have shown during the run.
fn write_command_log(model: &winsim::Fleet, path: &Path) -> std::io::Result<()> {
    let mut out = String::new();
    for h in model.hosts() {
        out.push_str(&format!("== {}\n", winsim::host::SimHost::name(h.as_ref())));
        for r in h.command_log() {
            out.push_str(&format!("{:?} {}\n", r.exit_code, r.command_line));
            if let Some(script) = &r.script {
                out.push_str(&format!("  script: {script}\n"));
            }
        }
    }
    std::fs::write(path, out)
}
