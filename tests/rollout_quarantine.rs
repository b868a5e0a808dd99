//! Promote only what passed, end to end: 44 simulated Windows hosts over WinRM and the harness's
//! real Samba, two approved patches of which one fails its installer on the canaries. The run
//! quarantines the bad patch after the canaries, installs the good one on the whole fleet, and
//! the simulator's install log shows the bad one was never run beyond the canaries. The same run
//! has a host in a reboot loop and one host for each pre-flight reason; the summary names each.
//! Needs the harness (`integration/test.sh samba`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Lab, LabPatch, SimFleet};
use hive::catalog::model::InstallerRecipe;
use hive::deploy::{DeployOptions, load_approved};
use hive::host_preflight::HostPreflight;
use hive::inventory::{Inventory, Secret};
use hive::journal::RunLog;
use hive::pipeline::{DeployJob, Job};
use hive::remote::{NetworkConnector, Timeouts};
use hive::rollout::preflight::PreflightSettings;
use hive::rollout::{HostVerdict, Rollout, RolloutOptions, Summary, plan_waves};
use hive::scan::run::{FileSource, PreparedProbe};
use winsim::installer::Package;

const PRODUCT: &str = "Windows Server 2019 Datacenter";
const GOOD: &str = "KB5300001";
const BAD: &str = "KB5300002";
const PLAN: &str = "canary(group=canary, quarantine_after=1) -> 100%";
/// Hosts that should end patched: the 44 less the 5 faulty ones.
const FLEET: usize = 44;

/// Faulty hosts: (name, extra fleet-file keys).
const FAULTY: [(&str, &str); 4] = [
    (
        "LOOPING",
        "faults = { pending_after_reboot = [\"windows-update\"] }\n",
    ),
    ("PENDING", "pending_reboot = [\"windows-update\"]\n"),
    ("SMALLDISK", "free_disk_mb = 3\n"),
    ("SKEWED", "faults = { clock_skew_s = 900 }\n"),
];
/// A host whose logon hive gets wrong.
const REFUSED: &str = "REFUSED";

fn fleet_toml() -> String {
    let mut t = String::new();
    let mut add = |name: &str, extra: &str, n: usize| {
        t.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"127.0.0.{}\"\nproduct = \"{PRODUCT}\"\n\
             version = \"10.0.17763\"\nreboot = {{ downtime_ms = 300 }}\n{extra}\n",
            n + 1
        ));
    };
    let plain = FLEET - FAULTY.len() - 1;
    for n in 1..=plain {
        add(&format!("Q{n:02}"), "", n);
    }
    for (i, (name, extra)) in FAULTY.iter().enumerate() {
        add(name, extra, plain + 1 + i);
    }
    add(REFUSED, "", FLEET);
    t
}

fn lab() -> Lab {
    let mut lab = Lab::new();
    lab.add(LabPatch {
        id: GOOD,
        bulletin: "MS-Q-01",
        product: PRODUCT,
        file_name: "KB5300001.exe",
        package: Package::hotfix(GOOD)
            .file(
                r"C:\Windows\System32\hiveq.dll",
                "10.0.17763.9100".parse().unwrap(),
            )
            .reboot_required(true)
            .exit_code(3010)
            .duration(Duration::from_millis(20))
            .size(2 << 20),
        recipe: InstallerRecipe::legacy_hotfix(),
        subtype: "Security Update",
        detection: None,
    });
    lab.add(LabPatch {
        id: BAD,
        bulletin: "MS-Q-02",
        product: PRODUCT,
        file_name: "KB5300002.exe",
        package: Package::hotfix(BAD)
            .exit_code(1603)
            .duration(Duration::from_millis(20)),
        recipe: InstallerRecipe::legacy_hotfix(),
        subtype: "Security Update",
        detection: None,
    });
    lab
}

fn options() -> DeployOptions {
    DeployOptions {
        shutdown_delay_s: 0,
        install_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(15),
        busy_attempts: 3,
        busy_backoff: Duration::from_millis(100),
        poll_interval: Duration::from_millis(100),
        down_timeout: Duration::from_secs(8),
        port_timeout: Duration::from_secs(5),
        login_timeout: Duration::from_secs(8),
        settle_timeout: Duration::from_millis(1500),
        verify_timeout: Duration::from_secs(30),
        ..DeployOptions::default()
    }
}

/// How often `host` ran the installer of `patch` (the simulator's own command log).
fn runs(fleet: &SimFleet, host: &str, patch: &str) -> usize {
    fleet
        .host(host)
        .command_log()
        .iter()
        .filter(|c| c.command_line.contains(&format!("{patch}.exe -z")))
        .count()
}

fn line<'a>(s: &'a Summary, host: &str) -> &'a hive::rollout::HostLine {
    s.hosts
        .iter()
        .find(|h| h.host == host)
        .unwrap_or_else(|| panic!("no line for {host}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bad_patch_stops_at_the_canaries_and_the_good_one_reaches_the_fleet() {
    let lab = lab();
    let mut fleet = SimFleet::start("quarantine", &fleet_toml()).await;
    for h in fleet.hosts.iter_mut().take(2) {
        h.groups.insert("canary".into());
    }
    let catalog = Arc::new(lab.catalog.clone());
    let job = Arc::new(DeployJob {
        hosts: fleet
            .hosts
            .iter()
            .map(|h| {
                let secret = if h.name == REFUSED {
                    Secret::new("not-the-password".to_string())
                } else {
                    fleet.secret.clone()
                };
                (h.name.clone(), (h.clone(), Ok(secret)))
            })
            .collect(),
        probe: Arc::new(PreparedProbe::new(&catalog)),
        catalog,
        approved: Arc::new(load_approved(&lab.repo).unwrap()),
        repo: lab.repo.clone(),
        options: options(),
        files: FileSource::Probe,
        connector: Arc::new(NetworkConnector::new(Timeouts {
            connect: Duration::from_secs(2),
            operation: Duration::from_secs(20),
        })),
        health: None,
    });
    let inventory = Inventory::new(fleet.hosts.clone());
    let opts = RolloutOptions {
        parallel: 16,
        ..RolloutOptions::default()
    };
    let waves = plan_waves(PLAN, &inventory, None, &opts).unwrap();
    assert_eq!(waves[0].hosts.len(), 2);
    let mut rollout = Rollout::new(lab.repo.root(), Arc::new(Job(job.clone())));
    rollout.preflight = Some(Arc::new(HostPreflight {
        job,
        settings: PreflightSettings::default(),
    }));
    let summary = rollout.start(PLAN, waves, opts).await.unwrap();
    let table = hive::progress::render_summary(&summary);
    eprintln!("{table}");

    // The run went on past the canaries, with the bad patch withheld.
    assert!(summary.stop.is_none(), "{}", summary.recap());
    let canaries = ["Q01", "Q02"];
    for c in canaries {
        let l = line(&summary, c);
        assert_eq!(l.verdict, Some(HostVerdict::Failed), "{c}: {}", l.detail);
        assert!(l.withheld, "{c} is outside the budgets");
        assert_eq!(runs(&fleet, c, BAD), 1, "{c}");
    }
    let fleet_withheld: Vec<_> = summary
        .withheld
        .iter()
        .filter(|w| w.host.is_none())
        .collect();
    assert_eq!(fleet_withheld.len(), 1, "{:?}", summary.withheld);
    assert_eq!(fleet_withheld[0].patch, BAD);
    assert!(
        table.contains(&format!("{BAD} withheld from the fleet")),
        "{table}"
    );

    // The install log: the bad patch ran on the canaries only; the good one everywhere fit.
    let faulty: Vec<&str> = FAULTY.iter().map(|(n, _)| *n).chain([REFUSED]).collect();
    let mut patched = 0;
    for h in &fleet.hosts {
        let name = h.name.as_str();
        if !canaries.contains(&name) {
            assert_eq!(
                runs(&fleet, name, BAD),
                0,
                "{name} ran the quarantined patch"
            );
        }
        if canaries.contains(&name) || faulty.contains(&name) {
            continue;
        }
        let l = line(&summary, name);
        assert_eq!(
            l.verdict,
            Some(HostVerdict::Patched),
            "{name}: {}",
            l.detail
        );
        assert_eq!(runs(&fleet, name, GOOD), 1, "{name}");
        assert!(
            fleet.host(name).installed_kbs().iter().any(|k| k == GOOD),
            "{name}"
        );
        patched += 1;
    }
    assert_eq!(patched, FLEET - 2 - faulty.len());
    assert!(patched >= 37);

    // The reboot-loop host: rebooted twice, then left alone; its patch withheld from it only.
    let l = line(&summary, "LOOPING");
    assert_eq!(l.verdict, Some(HostVerdict::RebootLoop), "{}", l.detail);
    assert!(l.detail.contains("same reboot"), "{}", l.detail);
    assert_eq!(fleet.host("LOOPING").reboot_count(), 2);
    assert!(
        summary
            .withheld
            .iter()
            .any(|w| w.host.as_deref() == Some("LOOPING") && w.patch == GOOD)
    );

    // Each pre-flight reason, as the summary says it; none of them ran an installer.
    for (host, phrase) in [
        ("PENDING", "a reboot is already pending"),
        ("SMALLDISK", "less than twice its installers"),
        ("SKEWED", "s ahead of the orchestrator"),
        (REFUSED, "the logon was refused"),
    ] {
        let l = line(&summary, host);
        assert_eq!(
            l.verdict,
            Some(HostVerdict::Skipped),
            "{host}: {}",
            l.detail
        );
        assert!(l.detail.contains("pre-flight: "), "{host}: {}", l.detail);
        assert!(l.detail.contains(phrase), "{host}: {}", l.detail);
        assert_eq!(
            runs(&fleet, host, GOOD) + runs(&fleet, host, BAD),
            0,
            "{host}"
        );
        assert!(
            table
                .lines()
                .any(|t| t.contains(host) && t.contains("skipped")),
            "{table}"
        );
    }

    // The journal holds the quarantine with its evidence; `hive report` reads it back.
    let log = RunLog::load(lab.repo.root(), &summary.run).unwrap();
    let q = log
        .withheld
        .iter()
        .find(|w| w.patch == BAD && w.host.is_none())
        .expect("quarantine record");
    assert!(canaries.contains(&q.evidence[0].host.as_str()), "{q:?}");
    let report = hive::rollout::report::withheld_lines(&log);
    assert!(report.iter().any(|l| l.starts_with(BAD)), "{report:?}");
}
