//! Issue #9's fault matrix (and issue #16's rows: pre-flight 16-17, health 18-19, a patch the
//! boot undoes 20-21): things real fleets do to a patch run, each injected into a
//! real 30-host rollout (WinRM to simulated Windows hosts, C$ through the harness's real Samba,
//! catalogs through its real tinyproxy). Every row asserts three things:
//!
//! 1. the faulty host (or, for the catalog rows, the fetch) gets a verdict that says which host
//!    and what went wrong, and the fault provably happened (the simulator counts it);
//! 2. the other 29 hosts end patched and verified, each installer run exactly once, each host
//!    rebooted once;
//! 3. the run's journal loads, has no torn line, agrees with the summary and closes every step.
//!
//! Each row is its own test, so CI names the row that fails. Every row writes its line of the
//! results table; with `HIVE_WRITE_RELIABILITY=1` the table goes to `docs/reliability.md` (the
//! committed copy is what the last full run said), otherwise to the target directory.
//! `reliability_md_lists_every_row` keeps the committed table in step with the rows below (it
//! reads the file as the run found it: after regenerating a changed row, run it once more).
//!
//! Needs the harness's samba and proxy services (see the command in `docs/reliability.md`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Lab, LabPatch, SimFleet};
use hive::catalog::fetch::{self, FetchOptions, FetchOutcome, ProxyConfig, Verification};
use hive::catalog::model::{Catalog, InstallerRecipe};
use hive::catalog::store;
use hive::deploy::{DeployOptions, load_approved};
use hive::events::{RebootPhase, Step};
use hive::host_preflight::HostPreflight;
use hive::inventory::Inventory;
use hive::journal::{RunLog, RunState};
use hive::pipeline::{DeployJob, Job};
use hive::remote::{NetworkConnector, Timeouts};
use hive::rollout::preflight::PreflightSettings;
use hive::rollout::{HostLine, HostVerdict, Rollout, RolloutOptions, Summary, plan_waves};
use hive::scan::run::{FileSource, PreparedProbe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use winsim::installer::Package;
use winsim::smbfront::SmbFront;

/// Hosts per rollout.
const HOSTS: usize = 30;
/// Where the faulty host sits in the inventory (hosts 1 and 2 are the canaries).
const FAULTY_AT: usize = 17;
const PLAN: &str = "canary(group=canary) -> 100%";
const PATCH: &str = "KB5200001";
const PRODUCT: &str = "Windows Server 2019 Datacenter";
/// The patch's installer for the SMB rows: big enough that a copy has a middle to break in.
const BIG_INSTALLER: usize = 1 << 20;
/// Row 6's installer: several of the SMB layer's 1 MiB writes, so a cut leaves a prefix to keep.
const BIGGER_INSTALLER: usize = 3 << 20;

/// One row of the matrix, as `docs/reliability.md` lists it.
struct Row {
    id: u8,
    fault: &'static str,
    injected: &'static str,
    expected: &'static str,
}

const ROWS: [Row; 21] = [
    Row {
        id: 1,
        fault: "connection reset mid-Receive",
        injected: "winsim wire fault `reset` on the 4th Receive (the installer's): the installer runs, the TCP connection closes unanswered",
        expected: "patched: the Receive (which starts nothing) is resent on a new connection and gets the exit code; the installer ran once",
    },
    Row {
        id: 2,
        fault: "HTTP 500 fault",
        injected: "winsim wire fault `soap-fault` (HTTP 500, WS-Man code 5 \"Access is denied.\") on the installer's Command",
        expected: "failed (install_failed, not unreachable: the host answered); names the WS-Man fault, no installer ran",
    },
    Row {
        id: 3,
        fault: "401 mid-session",
        injected: "winsim wire fault `unauthorized` (HTTP 401, NTLM context dropped) on the installer's Command, once",
        expected: "patched: the client logs on again and resends; the installer runs once",
    },
    Row {
        id: 4,
        fault: "413",
        injected: "winsim wire fault `too-big` (HTTP 413) on every Command from the installer's on",
        expected: "failed (install_failed); names HTTP 413 and MaxEnvelopeSizekb, no installer ran",
    },
    Row {
        id: 5,
        fault: "host down during copy",
        injected: "C$ through winsim's SMB front (`smb_power_off_after_bytes` = 256 KiB of a 1 MiB installer): the host powers off mid-copy and stays off",
        expected: "failed (stage_failed); names the lost connection and the failed retry of the copy, no installer ran",
    },
    Row {
        id: 6,
        fault: "SMB disconnect mid-write",
        injected: "C$ through winsim's SMB front (`smb_disconnect_after_bytes` = 2.5 MiB of a 3 MiB installer sent in 1 MiB writes), once; the connection is reset",
        expected: "patched: the copy is retried once on a new connection, resuming after the prefix the host verifiably kept (how much Samba kept of the cut writes varies); the hash is checked on the host; the installer runs once",
    },
    Row {
        id: 7,
        fault: "disk full",
        injected: "the host's C$ on the harness's 16 MiB tmpfs share, filled to 64 KiB free: Samba's real ENOSPC (and winsim `disk_full`)",
        expected: "failed at the copy; names the full disk, no installer ran",
    },
    Row {
        id: 8,
        fault: "installer hangs",
        injected: "winsim `installers_hang`: the installer never exits",
        expected: "failed (install_timed_out) after the 3 s install timeout; the installer was killed",
    },
    Row {
        id: 9,
        fault: "installer fails",
        injected: "winsim `installers_fail_with` = 1603: the installer exits 1603 and changes nothing",
        expected: "failed (install_failed) with exit 1603; no reboot",
    },
    Row {
        id: 10,
        fault: "reboot never returns",
        injected: "winsim `reboot.never_returns`: the host goes down at shutdown and stays down",
        expected: "unreachable (never_returned); names the reboot phase that timed out",
    },
    Row {
        id: 11,
        fault: "reboot too fast",
        injected: "winsim `reboot.downtime_ms` = 0: never seen down, only the boot time changes",
        expected: "patched; the reboot is proven by the changed boot time (rebooted_between_polls)",
    },
    Row {
        id: 12,
        fault: "reboot loop: host back with the same reboot still pending",
        injected: "winsim `pending_after_reboot` = windows-update: the host comes back from every reboot still asking for one",
        expected: "reboot_loop after two reboots (the second one is allowed, a third is not sent); names the pending marker; the patch is withheld from that host only",
    },
    Row {
        id: 13,
        fault: "empty catalog month",
        injected: "`hive catalog fetch` through tinyproxy of a CVRF month with no vulnerabilities",
        expected: "fetch warns of the empty month and deletes nothing; the 30-host rollout runs on the kept catalog",
    },
    Row {
        id: 14,
        fault: "malformed catalog",
        injected: "`hive catalog fetch` through tinyproxy of a CVRF document cut off mid-element",
        expected: "fetch fails naming the document; the cached catalog is byte-for-byte unchanged and the rollout runs on it",
    },
    Row {
        id: 15,
        fault: "proxy refuses",
        injected: "`hive catalog fetch` through the harness's refusing tinyproxy (CONNECT allowed to 443 only)",
        expected: "fetch fails naming the proxy and its 403; the cached catalog is unchanged and the rollout runs on it",
    },
    Row {
        id: 16,
        fault: "pending reboot before start",
        injected: "winsim `pending_reboot` = windows-update at start; pre-flight on (default settings: skip)",
        expected: "skipped by pre-flight before its wave, naming the pending marker; nothing installed, no reboot, outside the budgets",
    },
    Row {
        id: 17,
        fault: "skewed clock",
        injected: "winsim `clock_skew_s` = 900: the host's clock (the probe's `utc_now`) runs 15 minutes ahead; pre-flight bound 300 s",
        expected: "skipped by pre-flight before its wave, naming the skew and the bound; nothing installed, no reboot",
    },
    Row {
        id: 18,
        fault: "service broken by patch",
        injected: "winsim fault `breaks_service`: after the patch and its reboot, W3SVC does not start (SCM event 7000); the host's group checks `service = \"W3SVC\"`",
        expected: "unhealthy: the health check after the reboot names W3SVC and its STOPPED state; the patch is installed, the host rebooted once",
    },
    Row {
        id: 19,
        fault: "health endpoint down",
        injected: "winsim fault `health_endpoint_fails_after = 1`: the host's HTTP health page answers pre-flight's check, then 503; every host checks `http = \"http://.../{name}/health\"`",
        expected: "unhealthy: the http check names the URL and the 503; the other hosts' checks pass",
    },
    Row {
        id: 20,
        fault: "reboot loop: the same patch missing after its reboot, twice",
        injected: "winsim fault `reverts_at_boot` = KB5200001: the installer exits 3010, then every boot undoes the package (a servicing transaction rolled back at boot)",
        expected: "reboot_loop after two installs, each followed by a reboot (a third install is not run); names both re-scans' findings; the patch is withheld from that host only (journal, summary)",
    },
    Row {
        id: 21,
        fault: "patch undone by its first boot only",
        injected: "winsim fault `reverts_at_boot` = KB5200001, `boots = 1`: the first boot undoes the package, the second install stays",
        expected: "patched (not a loop): installed a second time after the first re-scan found it missing, rebooted twice; nothing withheld",
    },
];

fn row(id: u8) -> &'static Row {
    ROWS.iter().find(|r| r.id == id).expect("row id")
}

// ------------------------------------------------------------------------------------------------
// The results table
// ------------------------------------------------------------------------------------------------

/// One row's findings: what was seen and every check that did not hold.
struct Findings {
    row: &'static Row,
    observed: String,
    others: String,
    journal: String,
    failures: Vec<String>,
}

impl Findings {
    fn new(id: u8) -> Findings {
        Findings {
            row: row(id),
            observed: String::new(),
            others: String::new(),
            journal: String::new(),
            failures: Vec::new(),
        }
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(what());
        }
    }

    /// Write the row into the table, then fail the test if any check failed.
    fn finish(self, elapsed: Duration) {
        eprintln!(
            "row {} ({}) in {:.1} s: {}\n  others: {}\n  journal: {}",
            self.row.id,
            self.row.fault,
            elapsed.as_secs_f64(),
            self.observed,
            self.others,
            self.journal
        );
        record(&self);
        assert!(
            self.failures.is_empty(),
            "row {} ({}):\n  {}",
            self.row.id,
            self.row.fault,
            self.failures.join("\n  ")
        );
    }
}

const TABLE_HEAD: &str = "| # | fault | how it is injected | expected verdict | observed verdict | the other hosts | journal | pass |\n|---|---|---|---|---|---|---|---|\n";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn table_line(f: &Findings) -> String {
    let pass = if f.failures.is_empty() {
        "pass".to_string()
    } else {
        format!("**FAIL**: {}", f.failures.join("; "))
    };
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} |",
        f.row.id,
        cell(f.row.fault),
        cell(f.row.injected),
        cell(f.row.expected),
        cell(&f.observed),
        cell(&f.others),
        cell(&f.journal),
        cell(&pass)
    )
}

fn pending_line(r: &Row) -> String {
    format!(
        "| {} | {} | {} | {} | (not run) | | | |",
        r.id,
        cell(r.fault),
        cell(r.injected),
        cell(r.expected)
    )
}

fn document(lines: &BTreeMap<u8, String>) -> String {
    let mut s = String::from(
        "# Reliability: the fault matrix\n\n\
         Generated by `integration/fault_matrix.rs` (issue #9); do not edit by hand. Each row injects \
         one fault into a real 30-host rollout (`canary(group=canary) -> 100%`, one approved patch \
         that needs a reboot): WinRM to simulated Windows hosts (winsim), their C$ through the \
         harness's real Samba, catalog fetches through its real tinyproxy. A row passes when the \
         faulty host's verdict is the expected one and names the host and the fault, the fault \
         provably happened, the other 29 hosts end patched and verified (one install, one reboot \
         each), and the journal loads, agrees with the summary and closes every step.\n\n\
         Regenerate (bash, from the workspace root): `source integration/lib.sh; trap - EXIT; setup_venv; start_services samba proxy; HIVE_WRITE_RELIABILITY=1 cargo test -p hive --test fault_matrix; stop_services`\n\n",
    );
    s.push_str(TABLE_HEAD);
    for r in &ROWS {
        s.push_str(lines.get(&r.id).map_or(&pending_line(r), |l| l));
        s.push('\n');
    }
    s
}

/// The table's rows as a file has them (by row number).
fn parse_lines(text: &str) -> BTreeMap<u8, String> {
    text.lines()
        .filter_map(|l| {
            let id: u8 = l.strip_prefix("| ")?.split(' ').next()?.parse().ok()?;
            Some((id, l.to_string()))
        })
        .collect()
}

static TABLE: Mutex<()> = Mutex::new(());

/// Put this row's line into the table (rows run in parallel: one writer at a time).
fn record(f: &Findings) {
    let _guard = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    let path = if std::env::var("HIVE_WRITE_RELIABILITY").is_ok_and(|v| v == "1") {
        workspace_root().join("docs").join("reliability.md")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("reliability.md")
    };
    let mut lines = std::fs::read_to_string(&path)
        .map(|t| parse_lines(&t))
        .unwrap_or_default();
    lines.insert(f.row.id, table_line(f));
    std::fs::write(&path, document(&lines)).unwrap();
    eprintln!("row {} written to {}", f.row.id, path.display());
}

#[test]
fn reliability_md_lists_every_row() {
    let path = workspace_root().join("docs").join("reliability.md");
    let text = std::fs::read_to_string(&path).expect("docs/reliability.md is committed");
    let lines = parse_lines(&text);
    for r in &ROWS {
        let line = lines
            .get(&r.id)
            .unwrap_or_else(|| panic!("docs/reliability.md has no row {}", r.id));
        let head = format!(
            "| {} | {} | {} | {} |",
            r.id,
            cell(r.fault),
            cell(r.injected),
            cell(r.expected)
        );
        assert!(
            line.starts_with(&head),
            "row {} of docs/reliability.md is out of date: regenerate it (HIVE_WRITE_RELIABILITY=1)\n{line}",
            r.id
        );
        assert!(
            line.ends_with("| pass |"),
            "row {} did not pass in the run that wrote docs/reliability.md:\n{line}",
            r.id
        );
    }
}

// ------------------------------------------------------------------------------------------------
// The rollout every row runs
// ------------------------------------------------------------------------------------------------

/// Where the faulty host's C$ is.
enum Smb {
    /// Straight to the harness's Samba `fleet` share, like every other host.
    Direct,
    /// Through winsim's SMB front, which acts out the host's SMB fault plan; the fleet's
    /// installer is this big.
    Front { installer: usize },
    /// On the harness's small `full` share, filled up first.
    FullDisk,
}

/// The faulty host of a row.
struct Faulty {
    name: &'static str,
    /// Extra keys for its `[[host]]` table (inline TOML).
    toml: &'static str,
    smb: Smb,
    /// Check hosts before their wave (pre-flight, default settings).
    preflight: bool,
}

/// What a rollout left behind for the checks.
struct Ran {
    fleet: SimFleet,
    lab: Lab,
    summary: Summary,
    fronts: Vec<SmbFront>,
}

fn host_name(row: u8, n: usize) -> String {
    format!("R{row:02}H{n:02}")
}

fn fleet_toml(row: u8, faulty: Option<&Faulty>) -> String {
    let mut t = String::new();
    for n in 1..=HOSTS {
        let (name, extra) = match faulty {
            Some(f) if n == FAULTY_AT => (f.name.to_string(), f.toml),
            _ => (host_name(row, n), ""),
        };
        let reboot = if extra.contains("reboot =") {
            ""
        } else {
            "reboot = { downtime_ms = 300 }\n"
        };
        t.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"127.0.0.{}\"\nproduct = \"{PRODUCT}\"\n\
             version = \"10.0.17763\"\n{reboot}{extra}\n",
            n + 1
        ));
    }
    t
}

/// One approved patch for the whole fleet: a hotfix that replaces a DLL and asks for a reboot.
fn lab(installer_bytes: usize) -> Lab {
    let mut lab = Lab::new();
    lab.add(LabPatch {
        id: PATCH,
        bulletin: "MS-FM-01",
        product: PRODUCT,
        file_name: "KB5200001.exe",
        package: Package::hotfix(PATCH)
            .file(
                r"C:\Windows\System32\hivefm.dll",
                "10.0.17763.9001".parse().unwrap(),
            )
            .reboot_required(true)
            .exit_code(3010)
            .duration(Duration::from_millis(20))
            .size(installer_bytes),
        recipe: InstallerRecipe::legacy_hotfix(),
        subtype: "Security Update",
        detection: None,
    });
    lab
}

/// Timeouts short enough for simulated hosts whose reboots take 300 ms.
fn options() -> DeployOptions {
    DeployOptions {
        shutdown_delay_s: 0,
        install_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(15),
        busy_attempts: 3,
        busy_backoff: Duration::from_millis(100),
        poll_interval: Duration::from_millis(100),
        down_timeout: Duration::from_secs(8),
        port_timeout: Duration::from_secs(3),
        login_timeout: Duration::from_secs(8),
        settle_timeout: Duration::from_millis(1500),
        verify_timeout: Duration::from_secs(20),
        ..DeployOptions::default()
    }
}

/// The file that fills the `full` share; removed when dropped, even when the row panics, so the
/// SMB transport tests that share the filesystem find their room.
struct Filler(PathBuf);

impl Drop for Filler {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Fill the `full` share's filesystem so that only `leave` bytes stay free.
fn fill_full_share(root: &Path, leave: u64) -> Filler {
    use std::io::Write;
    let filler = root.join(format!("fault-matrix-filler-{}", std::process::id()));
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0x5Au8; 64 * 1024];
    let mut written: u64 = 0;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", filler.display()),
        }
    }
    let _ = f.flush();
    f.set_len(written.saturating_sub(leave)).unwrap();
    f.sync_all().unwrap();
    Filler(filler)
}

/// Health checks for a row: the `[group...]` settings (TOML, given the fleet's health page URL
/// template) and who gets them.
struct HealthRow {
    settings: fn(&str) -> String,
    /// Every host (`[group_defaults]`), or only the faulty one.
    everyone: bool,
}

/// Start the row's fleet, wire the faulty host's C$ as asked, and run the rollout.
async fn rollout(
    row: u8,
    faulty: Option<&Faulty>,
    catalog: Option<Catalog>,
    preflight: bool,
) -> Ran {
    rollout_checked(row, faulty, catalog, preflight, None).await
}

/// [`rollout`] with the inventory's health checks.
async fn rollout_checked(
    row: u8,
    faulty: Option<&Faulty>,
    catalog: Option<Catalog>,
    preflight: bool,
    health: Option<HealthRow>,
) -> Ran {
    let lab = lab(match faulty.map(|f| &f.smb) {
        Some(Smb::Front { installer }) => *installer,
        Some(Smb::FullDisk) => BIG_INSTALLER,
        _ => 0,
    });
    let mut fleet = SimFleet::start(&format!("fm{row:02}"), &fleet_toml(row, faulty)).await;
    for h in fleet.hosts.iter_mut().take(2) {
        h.groups.insert("canary".into());
    }
    let mut fronts = Vec::new();
    if let Some(f) = faulty {
        let model = Arc::clone(fleet.host(f.name));
        let i = fleet.hosts.iter().position(|h| h.name == f.name).unwrap();
        match f.smb {
            Smb::Direct => {}
            Smb::Front { .. } => {
                let samba: std::net::SocketAddr = format!(
                    "{}:{}",
                    common::env("HIVE_TEST_SMB_HOST"),
                    common::env("HIVE_TEST_SMB_PORT")
                )
                .parse()
                .unwrap();
                let front = SmbFront::start(model, samba).await.unwrap();
                fleet.hosts[i].smb_port = front.addr().port();
                fronts.push(front);
            }
            Smb::FullDisk => {
                fleet.hosts[i].smb_share = common::env("HIVE_TEST_SMB_FULL_SHARE");
                fleet.hosts[i].smb_root = format!("fm{row:02}-{}", std::process::id());
            }
        }
    }
    let catalog = Arc::new(catalog.unwrap_or_else(|| lab.catalog.clone()));
    let connector: Arc<dyn hive::remote::Connector> = Arc::new(NetworkConnector::new(Timeouts {
        connect: Duration::from_secs(2),
        operation: Duration::from_secs(20),
    }));
    let mut web = None;
    let mut policy = hive::inventory::GroupPolicy::default();
    if let Some(h) = &health {
        let server = winsim::health_http::HealthServer::start(
            fleet.model.hosts().to_vec(),
            [127, 0, 0, 1].into(),
        )
        .await
        .unwrap();
        let settings: hive::inventory::GroupSettings =
            toml::from_str(&(h.settings)(&server.url_template())).unwrap();
        if h.everyone {
            policy.defaults = settings;
        } else if let Some(f) = faulty {
            policy.groups.insert("web".into(), settings);
            let i = fleet.hosts.iter().position(|x| x.name == f.name).unwrap();
            fleet.hosts[i].groups.insert("web".into());
        }
        web = Some(server);
    }
    let secrets: Vec<_> = fleet
        .hosts
        .iter()
        .map(|h| (h.clone(), Ok(fleet.secret.clone())))
        .collect();
    let inventory_health =
        hive::rollout::InventoryHealth::new(&policy, &secrets, connector.clone()).map(Arc::new);
    let job = DeployJob {
        hosts: fleet
            .hosts
            .iter()
            .map(|h| (h.name.clone(), (h.clone(), Ok(fleet.secret.clone()))))
            .collect(),
        probe: Arc::new(PreparedProbe::new(&catalog)),
        catalog,
        approved: Arc::new(load_approved(&lab.repo).unwrap()),
        repo: lab.repo.clone(),
        options: options(),
        files: FileSource::Probe,
        connector,
        health: inventory_health.clone(),
    };
    let inventory = Inventory::new(fleet.hosts.clone());
    let opts = RolloutOptions {
        parallel: HOSTS,
        ..RolloutOptions::default()
    };
    let waves = plan_waves(PLAN, &inventory, None, &opts).unwrap();
    let job = Arc::new(job);
    let mut rollout = Rollout::new(lab.repo.root(), Arc::new(Job(job.clone())));
    if preflight {
        rollout.preflight = Some(Arc::new(HostPreflight {
            job,
            settings: PreflightSettings::default(),
        }));
    }
    rollout.health = inventory_health.map(|h| {
        Arc::new(hive::rollout::InventoryHealthCheck(h)) as Arc<dyn hive::rollout::HealthCheck>
    });
    let summary = rollout.start(PLAN, waves, opts).await.unwrap();
    drop(web);
    Ran {
        fleet,
        lab,
        summary,
        fronts,
    }
}

/// How many times the host ran the patch's installer.
fn installer_runs(fleet: &SimFleet, host: &str) -> usize {
    fleet
        .host(host)
        .command_log()
        .iter()
        .filter(|c| c.command_line.contains("KB5200001.exe -z"))
        .count()
}

/// Ports and the run id vary between runs; the table should not.
fn stable(text: &str, run: &str) -> String {
    let text = text.replace(run, "<run>");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("127.0.0.1:") {
        let (head, tail) = rest.split_at(at + "127.0.0.1:".len());
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("<port>");
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out.replace(&format!("-{}", std::process::id()), "")
}

fn line<'a>(summary: &'a Summary, host: &str) -> &'a HostLine {
    summary
        .hosts
        .iter()
        .find(|h| h.host == host)
        .unwrap_or_else(|| panic!("no summary line for {host}"))
}

/// Checks every row shares: the other hosts are patched and undisturbed, the journal is whole
/// and agrees with the summary.
fn common_checks(f: &mut Findings, ran: &Ran, faulty: Option<&str>) {
    let s = &ran.summary;
    let run = s.run.clone();
    f.check(s.hosts.len() == HOSTS, || {
        format!("{} hosts in the summary", s.hosts.len())
    });
    f.check(s.state == RunState::Finished && s.stop.is_none(), || {
        format!("the run did not finish: {:?} {:?}", s.state, s.stop)
    });
    let mut others_ok = 0;
    for h in &s.hosts {
        if Some(h.host.as_str()) == faulty {
            continue;
        }
        let model = ran.fleet.host(&h.host);
        let patched = h.verdict == Some(HostVerdict::Patched);
        let kb = model.installed_kbs().iter().any(|k| k == PATCH);
        let runs = installer_runs(&ran.fleet, &h.host);
        let reboots = model.reboot_count();
        let fine = patched && kb && runs == 1 && reboots == 1;
        f.check(fine, || {
            format!(
                "{}: {:?} ({}), KB installed {kb}, installer runs {runs}, reboots {reboots}",
                h.host,
                h.verdict,
                stable(&h.detail, &run)
            )
        });
        if !fine {
            dump(ran, &h.host);
        }
        others_ok += usize::from(fine);
    }
    let others = HOSTS - usize::from(faulty.is_some());
    f.others = format!(
        "{others_ok} of {others} patched and verified; each installed once and rebooted once"
    );

    // The journal: loads, nothing torn, one verdict per host equal to the summary's, every
    // step of a finished host closed.
    let log = match RunLog::load(ran.lab.repo.root(), &run) {
        Ok(l) => l,
        Err(e) => {
            f.check(false, || format!("the journal does not load: {e}"));
            f.journal = format!("does not load: {e}");
            return;
        }
    };
    let verdicts = log.verdicts();
    f.check(log.torn_line.is_none(), || {
        format!("torn journal line {:?}", log.torn_line)
    });
    f.check(
        log.state
            .as_ref()
            .is_some_and(|(st, _)| *st == RunState::Finished),
        || format!("journal run state {:?}", log.state),
    );
    f.check(verdicts.len() == HOSTS, || {
        format!("{} verdicts in the journal", verdicts.len())
    });
    let mut open = Vec::new();
    for h in &s.hosts {
        match verdicts.get(&h.host) {
            Some((v, detail)) => {
                f.check(Some(*v) == h.verdict && *detail == h.detail, || {
                    format!(
                        "{}: journal says {v:?} {detail:?}, summary {:?} {:?}",
                        h.host, h.verdict, h.detail
                    )
                });
            }
            None => f.check(false, || format!("{}: no verdict in the journal", h.host)),
        }
        if let Some(hl) = log.hosts.get(&h.host) {
            for st in hl.steps.iter().filter(|st| st.finished.is_none()) {
                open.push(format!("{} {:?}", h.host, st.step));
            }
        }
    }
    f.check(open.is_empty(), || {
        format!("steps left open in the journal: {open:?}")
    });
    let reports = hive::rollout::report::host_reports(&log);
    f.check(reports.len() == HOSTS, || {
        format!("{} rows in the journal's report", reports.len())
    });
    f.journal = format!(
        "loads ({} records, no torn line), {} verdicts = summary, {} open steps",
        log.records,
        verdicts.len(),
        open.len()
    );
}

/// The faulty host's checks shared by the host rows: the verdict, the message naming the host
/// and the fault, and the report line an operator reads.
fn faulty_checks(
    f: &mut Findings,
    ran: &Ran,
    host: &str,
    verdicts: &[HostVerdict],
    phrases: &[&str],
) -> String {
    let l = line(&ran.summary, host);
    let detail = stable(&l.detail, &ran.summary.run);
    let word = l.verdict.map_or("none", HostVerdict::word);
    f.observed = format!("{host}: {word}: {detail}");
    f.check(l.verdict.is_some_and(|v| verdicts.contains(&v)), || {
        format!("{host}: verdict {word}, expected one of {verdicts:?}: {detail}")
    });
    let lower = l.detail.to_ascii_lowercase();
    for p in phrases {
        f.check(lower.contains(&p.to_ascii_lowercase()), || {
            format!("{host}: the verdict's message does not say {p:?}: {detail}")
        });
    }
    let table = hive::progress::render_summary(&ran.summary);
    f.check(
        l.verdict.is_some_and(HostVerdict::good)
            || table.lines().any(|t| t.contains(host) && t.contains(word)),
        || format!("the summary does not list {host} as {word}:\n{table}"),
    );
    detail
}

/// A host's journal steps with their start and end (ms since the epoch), for the debug dump.
fn timed_steps(ran: &Ran, host: &str) -> Vec<(u64, Option<u64>, Step)> {
    let log = RunLog::load(ran.lab.repo.root(), &ran.summary.run).unwrap();
    log.hosts
        .get(host)
        .map(|h| {
            h.steps
                .iter()
                .map(|s| {
                    (
                        s.started_ms,
                        s.finished.as_ref().map(|e| e.at_ms),
                        s.step.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The faulty host's journal steps, as `(step, outcome, detail)`.
fn steps_of(ran: &Ran, host: &str) -> Vec<(Step, String, String)> {
    let log = RunLog::load(ran.lab.repo.root(), &ran.summary.run).unwrap();
    log.hosts
        .get(host)
        .map(|h| {
            h.steps
                .iter()
                .map(|s| {
                    let (o, d) = s
                        .finished
                        .as_ref()
                        .map(|e| (e.outcome.to_string(), e.detail.clone()))
                        .unwrap_or_default();
                    (s.step.clone(), o, d)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What the faulty host did, for a failing row's log: its journal steps and its commands.
fn dump(ran: &Ran, host: &str) {
    eprintln!("--- {host}: journal steps");
    for (step, outcome, detail) in steps_of(ran, host) {
        eprintln!("  {step:?} -> {outcome} {detail}");
    }
    if let Some(first) = timed_steps(ran, host).first().map(|s| s.0) {
        for (start, end, step) in timed_steps(ran, host) {
            eprintln!(
                "  +{} ms .. {:?} ms {step:?}",
                start - first,
                end.map(|e| e - first)
            );
        }
    }
    eprintln!("--- {host}: commands the host ran");
    for c in ran.fleet.host(host).command_log() {
        eprintln!(
            "  {} (exit {:?}, killed {})",
            c.command_line.chars().take(120).collect::<String>(),
            c.exit_code,
            c.killed
        );
    }
}

fn is_install(s: &Step) -> bool {
    matches!(s, Step::Install { .. })
}

fn is_stage(s: &Step) -> bool {
    matches!(s, Step::Stage { .. })
}

async fn host_row(id: u8, faulty: Faulty, check: impl FnOnce(&mut Findings, &Ran, &str)) {
    host_row_checked(id, faulty, None, check).await
}

async fn host_row_checked(
    id: u8,
    faulty: Faulty,
    health: Option<HealthRow>,
    check: impl FnOnce(&mut Findings, &Ran, &str),
) {
    let t0 = Instant::now();
    let ran = rollout_checked(id, Some(&faulty), None, faulty.preflight, health).await;
    let mut f = Findings::new(id);
    common_checks(&mut f, &ran, Some(faulty.name));
    check(&mut f, &ran, faulty.name);
    if !f.failures.is_empty() || std::env::var_os("HIVE_FM_DEBUG").is_some() {
        dump(&ran, faulty.name);
    }
    drop(ran);
    f.finish(t0.elapsed());
}

// ------------------------------------------------------------------------------------------------
// Rows 1-12: a fault on one host of the rollout
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_01_connection_reset_mid_receive() {
    let faulty = Faulty {
        name: "RESET-RECV",
        toml: r#"faults = { wire = [ { kind = "reset", op = "Receive", nth = 4, times = 1 } ] }"#,
        smb: Smb::Direct,
        preflight: false,
    };
    host_row(1, faulty, |f, ran, host| {
        faulty_checks(f, ran, host, &[HostVerdict::Patched], &[PATCH]);
        let model = ran.fleet.host(host);
        let fired = model.wire_faults_fired();
        f.check(fired == 1, || {
            format!("{fired} resets injected, expected 1")
        });
        let runs = installer_runs(&ran.fleet, host);
        f.check(runs == 1, || format!("the installer ran {runs} times"));
        f.check(model.reboot_count() == 1, || {
            format!("{} reboots", model.reboot_count())
        });
        f.observed
            .push_str(&format!(" (resets: {fired}; installer ran {runs} time(s))"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_02_http_500_fault() {
    let faulty = Faulty {
        name: "SOAP-500",
        toml: r#"faults = { wire = [ { kind = "soap-fault", op = "Command", nth = 4, times = 1, code = 5, text = "Access is denied." } ] }"#,
        smb: Smb::Direct,
        preflight: false,
    };
    host_row(2, faulty, |f, ran, host| {
        faulty_checks(
            f,
            ran,
            host,
            &[HostVerdict::Failed],
            &[PATCH, "install_failed", "Access is denied"],
        );
        let fired = ran.fleet.host(host).wire_faults_fired();
        f.check(fired == 1, || {
            format!("{fired} faults injected, expected 1")
        });
        let runs = installer_runs(&ran.fleet, host);
        f.check(runs == 0, || format!("the installer ran {runs} times"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_03_401_mid_session() {
    let faulty = Faulty {
        name: "AUTH-401",
        toml: r#"faults = { wire = [ { kind = "unauthorized", op = "Command", nth = 4, times = 1 } ] }"#,
        smb: Smb::Direct,
        preflight: false,
    };
    host_row(3, faulty, |f, ran, host| {
        faulty_checks(f, ran, host, &[HostVerdict::Patched], &[PATCH]);
        let fired = ran.fleet.host(host).wire_faults_fired();
        f.check(fired == 1, || format!("{fired} 401s injected, expected 1"));
        let runs = installer_runs(&ran.fleet, host);
        f.check(runs == 1, || format!("the installer ran {runs} times"));
        f.observed.push_str(&format!(
            " (the 401 was answered {fired} time(s); installer ran {runs} time(s))"
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_04_413_envelope_too_big() {
    let faulty = Faulty {
        name: "TOO-BIG-413",
        toml: r#"faults = { wire = [ { kind = "too-big", op = "Command", nth = 4, times = 0 } ] }"#,
        smb: Smb::Direct,
        preflight: false,
    };
    host_row(4, faulty, |f, ran, host| {
        faulty_checks(
            f,
            ran,
            host,
            &[HostVerdict::Failed],
            &[PATCH, "install_failed", "413", "MaxEnvelopeSizekb"],
        );
        let fired = ran.fleet.host(host).wire_faults_fired();
        f.check(fired >= 1, || "no 413 was injected".into());
        let runs = installer_runs(&ran.fleet, host);
        f.check(runs == 0, || format!("the installer ran {runs} times"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_05_host_down_during_copy() {
    let faulty = Faulty {
        name: "DOWN-IN-COPY",
        toml: "faults = { smb_power_off_after_bytes = 262144 }",
        smb: Smb::Front {
            installer: BIG_INSTALLER,
        },
        preflight: false,
    };
    host_row(5, faulty, |f, ran, host| {
        faulty_checks(
            f,
            ran,
            host,
            &[HostVerdict::Failed],
            &[
                PATCH,
                "stage_failed",
                "connection lost",
                "again on a new connection",
            ],
        );
        let done = ran.fronts[0].faults_done();
        f.check(done == 1, || format!("{done} power cuts, expected 1"));
        let down = !winsim::host::SimHost::accepting(ran.fleet.host(host).as_ref());
        f.check(down, || "the host is still up".into());
        let steps = steps_of(ran, host);
        let stage = steps.iter().find(|(s, _, _)| is_stage(s));
        f.check(stage.is_some_and(|(_, o, _)| o == "failed"), || {
            format!("the copy does not record the failure: {stage:?}")
        });
        f.check(!steps.iter().any(|(s, _, _)| is_install(s)), || {
            "an install step followed a failed copy".into()
        });
        f.check(installer_runs(&ran.fleet, host) == 0, || {
            "the installer ran".into()
        });
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_06_smb_disconnect_mid_write() {
    let faulty = Faulty {
        name: "SMB-CUT",
        toml: "faults = { smb_disconnect_after_bytes = 2621440 }",
        smb: Smb::Front {
            installer: BIGGER_INSTALLER,
        },
        preflight: false,
    };
    host_row(6, faulty, |f, ran, host| {
        faulty_checks(f, ran, host, &[HostVerdict::Patched], &[PATCH]);
        let done = ran.fronts[0].faults_done();
        f.check(done == 1, || format!("{done} disconnects, expected 1"));
        let steps = steps_of(ran, host);
        let copied = steps
            .iter()
            .find(|(s, o, _)| is_stage(s) && o == "copied")
            .map(|(_, _, d)| d.clone())
            .unwrap_or_default();
        let resumed_at = copied
            .split("resumed at byte ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok());
        // How much Samba kept of the writes in flight at the cut varies (0 to 2 MiB): the row
        // asserts the retry and the verified result, and reports where it resumed.
        f.check(resumed_at.is_some(), || {
            format!("the copy does not record its retry: {copied:?}")
        });
        let resumed_at = resumed_at.unwrap_or_default();
        let hashed = steps
            .iter()
            .any(|(s, o, _)| matches!(s, Step::VerifyHash { .. }) && o == "ok");
        let runs = installer_runs(&ran.fleet, host);
        f.check(hashed && runs == 1, || {
            format!("hash checked on the host {hashed}, installer runs {runs}")
        });
        f.observed.push_str(&format!(
            " (copy retried on a new connection from byte {resumed_at}; installer ran {runs} time(s))"
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_07_disk_full() {
    let root = PathBuf::from(common::env("HIVE_TEST_SMB_FULL_ROOT"));
    let _filler = fill_full_share(&root, 64 * 1024);
    let faulty = Faulty {
        name: "DISK-FULL",
        toml: "faults = { disk_full = true }",
        smb: Smb::FullDisk,
        preflight: false,
    };
    host_row(7, faulty, |f, ran, host| {
        faulty_checks(f, ran, host, &[HostVerdict::Failed], &[PATCH, "disk"]);
        let steps = steps_of(ran, host);
        let stage = steps.iter().find(|(s, _, _)| is_stage(s));
        f.check(stage.is_some_and(|(_, o, _)| o == "failed"), || {
            format!("the copy does not record the failure: {stage:?}")
        });
        f.check(installer_runs(&ran.fleet, host) == 0, || {
            "the installer ran".into()
        });
    })
    .await;
    let _ = std::fs::remove_dir_all(root.join(format!("fm07-{}", std::process::id())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_08_installer_hangs() {
    let faulty = Faulty {
        name: "INST-HANG",
        toml: "faults = { installers_hang = true }",
        smb: Smb::Direct,
        preflight: false,
    };
    host_row(8, faulty, |f, ran, host| {
        faulty_checks(
            f,
            ran,
            host,
            &[HostVerdict::Failed],
            &[PATCH, "install_timed_out", "killed"],
        );
        let killed = ran
            .fleet
            .host(host)
            .command_log()
            .iter()
            .any(|c| c.command_line.contains("KB5200001.exe") && c.killed);
        f.check(killed, || "the hung installer was not killed".into());
        f.check(ran.fleet.host(host).reboot_count() == 0, || {
            "a host whose installer hung was rebooted".into()
        });
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_09_installer_fails() {
    let faulty = Faulty {
        name: "INST-1603",
        toml: "faults = { installers_fail_with = 1603 }",
        smb: Smb::Direct,
        preflight: false,
    };
    host_row(9, faulty, |f, ran, host| {
        faulty_checks(
            f,
            ran,
            host,
            &[HostVerdict::Failed],
            &[PATCH, "install_failed", "1603"],
        );
        let model = ran.fleet.host(host);
        f.check(model.reboot_count() == 0, || {
            "a host whose installer failed was rebooted".into()
        });
        f.check(!model.installed_kbs().iter().any(|k| k == PATCH), || {
            "the failed patch shows as installed".into()
        });
        let log =
            std::fs::read_to_string(ran.lab.repo.root().join("logs").join(format!("{host}.log")))
                .unwrap_or_default();
        f.check(log.contains(PATCH) && log.contains("1603"), || {
            format!("the host log does not record the failure: {log:?}")
        });
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_10_reboot_never_returns() {
    let faulty = Faulty {
        name: "NEVER-BACK",
        toml: "reboot = { downtime_ms = 300, never_returns = true }",
        smb: Smb::Direct,
        preflight: false,
    };
    host_row(10, faulty, |f, ran, host| {
        faulty_checks(
            f,
            ran,
            host,
            &[HostVerdict::Unreachable],
            &["never_returned", "after 8s"],
        );
        // The port may still accept TCP (a listener that outlives the host) or refuse: either
        // the `port` or the `login` phase times out, and says so.
        let steps = steps_of(ran, host);
        let timed_out = steps.iter().any(|(s, o, _)| {
            o == "timed_out"
                && [
                    Step::Reboot {
                        phase: RebootPhase::Port,
                    },
                    Step::Reboot {
                        phase: RebootPhase::Login,
                    },
                ]
                .contains(s)
        });
        f.check(timed_out, || {
            format!("no timed-out reboot phase: {steps:?}")
        });
        f.check(ran.fleet.host(host).reboot_count() == 0, || {
            "the host came back".into()
        });
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_11_reboot_too_fast() {
    let faulty = Faulty {
        name: "FAST-BOOT",
        toml: "reboot = { downtime_ms = 0 }",
        smb: Smb::Direct,
        preflight: false,
    };
    host_row(11, faulty, |f, ran, host| {
        faulty_checks(f, ran, host, &[HostVerdict::Patched], &[PATCH]);
        let model = ran.fleet.host(host);
        f.check(model.reboot_count() == 1, || {
            format!("{} reboots", model.reboot_count())
        });
        let steps = steps_of(ran, host);
        let down = steps
            .iter()
            .find(|(s, _, _)| {
                *s == Step::Reboot {
                    phase: RebootPhase::Down,
                }
            })
            .map(|(_, o, _)| o.clone())
            .unwrap_or_default();
        f.check(down == "rebooted_between_polls", || {
            format!("the down phase says {down:?}")
        });
        f.observed.push_str(&format!(" (down phase: {down})"));
    })
    .await;
}

/// A reboot loop's patch is withheld from its host, and nothing from the fleet.
fn withheld_from_host_only(f: &mut Findings, ran: &Ran, host: &str) {
    let own: Vec<&str> = ran
        .summary
        .withheld
        .iter()
        .filter(|w| w.host.as_deref() == Some(host))
        .map(|w| w.patch.as_str())
        .collect();
    f.check(own == [PATCH], || {
        format!("withheld from {host}: {own:?}, expected [{PATCH}]")
    });
    let fleet_wide = ran.summary.withheld.iter().any(|w| w.host.is_none());
    f.check(!fleet_wide, || {
        "a patch was withheld from the whole fleet".into()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_20_same_patch_missing_after_its_reboot_twice() {
    let faulty = Faulty {
        name: "UNDONE-AT-BOOT",
        toml: r#"faults = { reverts_at_boot = [{ package = "KB5200001" }] }"#,
        smb: Smb::Direct,
        preflight: false,
    };
    host_row(20, faulty, |f, ran, host| {
        faulty_checks(
            f,
            ran,
            host,
            &[HostVerdict::RebootLoop],
            &[
                "reboot_loop",
                "KB5200001 still missing after 2 installs",
                "first re-scan: KB5200001 still missing",
                "second re-scan: KB5200001 still missing",
            ],
        );
        let model = ran.fleet.host(host);
        let runs = installer_runs(&ran.fleet, host);
        f.check(runs == 2, || {
            format!("the installer ran {runs} times, not twice")
        });
        let reboots = model.reboot_count();
        f.check(reboots == 2, || format!("{reboots} reboots, not two"));
        let kb = model.installed_kbs().iter().any(|k| k == PATCH);
        f.check(!kb, || "the package stayed installed".into());
        withheld_from_host_only(f, ran, host);
        let journaled = RunLog::load(ran.lab.repo.root(), &ran.summary.run)
            .map(|l| {
                l.withheld
                    .iter()
                    .any(|w| w.patch == PATCH && w.host.as_deref() == Some(host))
            })
            .unwrap_or(false);
        f.check(journaled, || {
            "the journal has no quarantine of the patch for the host".into()
        });
        let table = hive::progress::render_summary(&ran.summary);
        f.check(
            table.contains(&format!("{PATCH} withheld from {host}")),
            || format!("the summary does not say {PATCH} is withheld from {host}:\n{table}"),
        );
        f.observed.push_str(&format!(
            " (installer ran {runs} times, {reboots} reboots; withheld from {host} only)"
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_21_patch_undone_by_its_first_boot_only() {
    let faulty = Faulty {
        name: "UNDONE-ONCE",
        toml: r#"faults = { reverts_at_boot = [{ package = "KB5200001", boots = 1 }] }"#,
        smb: Smb::Direct,
        preflight: false,
    };
    host_row(21, faulty, |f, ran, host| {
        faulty_checks(f, ran, host, &[HostVerdict::Patched], &[PATCH]);
        let model = ran.fleet.host(host);
        let runs = installer_runs(&ran.fleet, host);
        f.check(runs == 2, || {
            format!("the installer ran {runs} times, not twice")
        });
        let reboots = model.reboot_count();
        f.check(reboots == 2, || format!("{reboots} reboots, not two"));
        let kb = model.installed_kbs().iter().any(|k| k == PATCH);
        f.check(kb, || "the package is not installed".into());
        f.check(ran.summary.withheld.is_empty(), || {
            format!("withheld: {:?}", ran.summary.withheld)
        });
        f.observed
            .push_str(&format!(" (installer ran {runs} times, {reboots} reboots)"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_12_back_with_reboot_still_pending() {
    let faulty = Faulty {
        name: "STILL-PENDING",
        toml: r#"faults = { pending_after_reboot = ["windows-update"] }"#,
        smb: Smb::Direct,
        preflight: false,
    };
    host_row(12, faulty, |f, ran, host| {
        faulty_checks(
            f,
            ran,
            host,
            &[HostVerdict::RebootLoop],
            &[
                "reboot_loop",
                "same reboot is still pending",
                "WindowsUpdate RebootRequired",
            ],
        );
        let reboots = ran.fleet.host(host).reboot_count();
        f.check(reboots == 2, || {
            format!("hive rebooted {reboots} times, not twice")
        });
        withheld_from_host_only(f, ran, host);
        f.observed
            .push_str(&format!(" ({reboots} reboots; withheld from {host} only)"));
    })
    .await;
}

// ------------------------------------------------------------------------------------------------
// Rows 16-17: pre-flight sets a host aside before its wave
// ------------------------------------------------------------------------------------------------

/// A host set aside by pre-flight: skipped, with `phrases` in its line, and untouched.
fn set_aside_checks(f: &mut Findings, ran: &Ran, host: &str, phrases: &[&str]) {
    faulty_checks(f, ran, host, &[HostVerdict::Skipped], phrases);
    let runs = installer_runs(&ran.fleet, host);
    let reboots = ran.fleet.host(host).reboot_count();
    f.check(runs == 0 && reboots == 0, || {
        format!("{host}: installer runs {runs}, reboots {reboots}: it was not set aside")
    });
    f.observed
        .push_str(&format!(" (installer runs {runs}, reboots {reboots})"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_16_pending_reboot_before_start() {
    let faulty = Faulty {
        name: "PENDING-AT-START",
        toml: r#"pending_reboot = ["windows-update"]"#,
        smb: Smb::Direct,
        preflight: true,
    };
    host_row(16, faulty, |f, ran, host| {
        set_aside_checks(
            f,
            ran,
            host,
            &[
                "pre-flight",
                "a reboot is already pending",
                "WindowsUpdate RebootRequired",
            ],
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_17_skewed_clock() {
    let faulty = Faulty {
        name: "SKEWED-CLOCK",
        toml: "faults = { clock_skew_s = 900 }",
        smb: Smb::Direct,
        preflight: true,
    };
    host_row(17, faulty, |f, ran, host| {
        set_aside_checks(
            f,
            ran,
            host,
            &["pre-flight", "s ahead of the orchestrator", "bound 300 s"],
        );
    })
    .await;
}

// ------------------------------------------------------------------------------------------------
// Rows 13-15: the catalog fetch before the rollout
// ------------------------------------------------------------------------------------------------

/// A one-document HTTPS origin on 127.0.0.1 with its own CA (what a catalog mirror is).
struct Origin {
    port: u16,
    ca_pem: Vec<u8>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    async fn serve(body: Vec<u8>) -> Origin {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hive fault matrix CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let leaf = params.signed_by(&key, &ca).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = Arc::new(body);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, body) = (acceptor.clone(), Arc::clone(&body));
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let mut reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    reply.extend_from_slice(&body);
                    let _ = tls.write_all(&reply).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Origin {
            port,
            ca_pem: ca.pem().into_bytes(),
            task,
        }
    }
}

fn fixture(rel: &str) -> PathBuf {
    workspace_root().join("../shared/fixtures").join(rel)
}

fn february() -> String {
    std::fs::read_to_string(fixture("catalogs/cvrf/2017-Feb.xml")).unwrap()
}

/// How the catalog rows reach the origin.
enum Via {
    AuthProxy,
    RefusingProxy,
}

/// Save the lab's catalog as the cache, fetch `body` over HTTPS through the harness's proxy,
/// then run the rollout with whatever the cache holds afterwards.
async fn catalog_row(
    id: u8,
    body: Vec<u8>,
    via: Via,
    check: impl FnOnce(&mut Findings, &Result<FetchOutcome, fetch::FetchError>, bool),
) {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("catalog.json");
    let previous = lab(0).catalog;
    store::save(&cache, &previous).unwrap();
    let before = std::fs::read(&cache).unwrap();
    let origin = Origin::serve(body).await;
    let proxy = match via {
        Via::AuthProxy => ProxyConfig {
            url: common::env("HIVE_TEST_PROXY_URL"),
            user: Some(common::env("HIVE_TEST_PROXY_USER")),
            password: Some(common::env("HIVE_TEST_PROXY_PASSWORD")),
        },
        Via::RefusingProxy => ProxyConfig {
            url: common::env("HIVE_TEST_PROXY_REFUSING_URL"),
            user: None,
            password: None,
        },
    };
    let opts = FetchOptions {
        url: format!("https://127.0.0.1:{}/cvrf/2017-Mar.xml", origin.port),
        cache: cache.clone(),
        verification: Verification::TlsOnly,
        proxy: Some(proxy),
        extra_roots_pem: vec![origin.ca_pem.clone()],
        progress: false,
        timeout: Duration::from_secs(20),
    };
    let fetched = fetch::fetch(&opts).await;
    drop(origin);
    let unchanged_bytes = std::fs::read(&cache).unwrap() == before;
    let kept = store::load(&cache).unwrap();
    let mut f = Findings::new(id);
    check(&mut f, &fetched, unchanged_bytes);
    // An empty month may add the products its header lists; nothing known may change or go.
    f.check(
        kept.patches == previous.patches
            && kept.bulletins == previous.bulletins
            && previous
                .products
                .iter()
                .all(|(id, p)| kept.products.get(id) == Some(p)),
        || "the cached catalog's bulletins, patches or products changed".into(),
    );
    let ran = rollout(id, None, Some(kept), false).await;
    common_checks(&mut f, &ran, None);
    drop(ran);
    f.finish(t0.elapsed());
}

fn fetch_error_text(fetched: &Result<FetchOutcome, fetch::FetchError>) -> String {
    match fetched {
        Ok(o) => format!("fetch succeeded: {o:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_13_empty_catalog_month() {
    let feb = february();
    let cut = feb.find("<vuln:Vulnerability").unwrap();
    let empty = format!("{}</cvrf:cvrfdoc>\n", &feb[..cut]).replace(">2017-Feb<", ">2017-Mar<");
    catalog_row(
        13,
        empty.into_bytes(),
        Via::AuthProxy,
        |f, fetched, _| match fetched {
            Ok(FetchOutcome::Updated { import, merge, .. }) => {
                let observed = format!(
                    "fetch: {} bulletins imported ({}); {} new, nothing removed",
                    import.bulletins,
                    import.warnings.join("; "),
                    merge.new_bulletins
                );
                f.observed = stable(&observed, "<no run>");
                f.check(import.bulletins == 0 && merge.new_bulletins == 0, || {
                    format!("an empty month imported something: {import:?} {merge:?}")
                });
                f.check(
                    import
                        .warnings
                        .iter()
                        .any(|w| w.contains("lists no vulnerabilities")),
                    || format!("no warning about the empty month: {:?}", import.warnings),
                );
            }
            other => {
                f.observed = stable(&format!("{other:?}"), "<no run>");
                f.check(false, || {
                    format!("expected an update with nothing in it: {other:?}")
                });
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_14_malformed_catalog() {
    let feb = february();
    let cut = feb.find("<vuln:Vulnerability").unwrap() + 2000;
    let broken = feb[..cut].to_string();
    catalog_row(
        14,
        broken.into_bytes(),
        Via::AuthProxy,
        |f, fetched, unchanged| {
            let text = fetch_error_text(fetched);
            f.observed = format!("fetch refused: {}", stable(&text, "<no run>"));
            f.check(fetched.is_err(), || {
                format!("a malformed catalog was accepted: {text}")
            });
            f.check(text.contains("2017-Mar.xml"), || {
                format!("the error does not name the document: {text}")
            });
            f.check(unchanged, || "the cached catalog file changed".into());
            f.observed.push_str("; cache byte-for-byte unchanged");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_15_proxy_refuses() {
    catalog_row(
        15,
        february().into_bytes(),
        Via::RefusingProxy,
        |f, fetched, unchanged| {
            let text = fetch_error_text(fetched);
            f.observed = format!("fetch refused: {}", stable(&text, "<no run>"));
            let refused = matches!(fetched, Err(fetch::FetchError::ProxyRefused { .. }));
            f.check(refused, || format!("not a proxy refusal: {text}"));
            f.check(text.contains("403"), || {
                format!("the 403 is not named: {text}")
            });
            f.check(unchanged, || "the cached catalog file changed".into());
            f.observed.push_str("; cache byte-for-byte unchanged");
        },
    )
    .await;
}

// ------------------------------------------------------------------------------------------------
// Rows 18-19: the patch lands, the host is not well (issue #16)
// ------------------------------------------------------------------------------------------------

/// The faulty host's own checks: the patch landed and it rebooted once; only its health failed.
fn patched_but_unhealthy(f: &mut Findings, ran: &Ran, host: &str) {
    let model = ran.fleet.host(host);
    f.check(model.installed_kbs().iter().any(|k| k == PATCH), || {
        format!("{PATCH} is not installed on {host}")
    });
    let runs = installer_runs(&ran.fleet, host);
    f.check(runs == 1, || format!("the installer ran {runs} times"));
    f.check(model.reboot_count() == 1, || {
        format!("{} reboots", model.reboot_count())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_18_service_broken_by_patch() {
    let faulty = Faulty {
        name: "W3SVC-BROKEN",
        toml: "services = [{ name = \"W3SVC\", display_name = \"World Wide Web Publishing Service\" }]\n\
               faults = { breaks_service = [{ package = \"KB5200001\", service = \"W3SVC\" }] }",
        smb: Smb::Direct,
        preflight: false,
    };
    let health = HealthRow {
        settings: |_| "health = [{ service = \"W3SVC\", retries = 1, settle = 1 }]".into(),
        everyone: false,
    };
    host_row_checked(18, faulty, Some(health), |f, ran, host| {
        faulty_checks(
            f,
            ran,
            host,
            &[HostVerdict::Unhealthy],
            &["health check", "service W3SVC", "1 STOPPED"],
        );
        patched_but_unhealthy(f, ran, host);
        let model = ran.fleet.host(host);
        f.check(model.service_running("W3SVC") == Some(false), || {
            "W3SVC runs: the fault did not happen".into()
        });
        f.check(
            model
                .event_log()
                .iter()
                .any(|e| e.provider == "Service Control Manager" && e.id == 7000),
            || "no SCM 7000 event on the host".into(),
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_19_health_endpoint_down() {
    let faulty = Faulty {
        name: "HEALTH-503",
        toml: "faults = { health_endpoint_fails_after = 1 }",
        smb: Smb::Direct,
        preflight: false,
    };
    let health = HealthRow {
        settings: |url| format!("health = [{{ http = \"{url}\", retries = 1, settle = 1 }}]"),
        everyone: true,
    };
    host_row_checked(19, faulty, Some(health), |f, ran, host| {
        faulty_checks(
            f,
            ran,
            host,
            &[HostVerdict::Unhealthy],
            &["health check", "/HEALTH-503/health", "HTTP 503"],
        );
        patched_but_unhealthy(f, ran, host);
    })
    .await;
}
