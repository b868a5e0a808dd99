//! End to end: every way an install or a reboot goes wrong gets its own per-host verdict, on
//! hosts deployed at the same time as a healthy one that is not affected. Needs the harness
//! (`integration/test.sh samba`).

mod common;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use common::{Lab, LabPatch, SimFleet, deploy_all, fast_options};
use hive::catalog::model::InstallerRecipe;
use hive::deploy::{DeployOutcome, DeployVerdict, PatchOutcome};
use hive::events::{Event, EventSink, RebootPhase, Recorder, Step, StepState};
use winsim::installer::{Package, PackageKind};

/// (host, its reboot settings, the package its one patch installs)
fn scenarios() -> Vec<(&'static str, &'static str, Package)> {
    let ms = Duration::from_millis(20);
    let dll = |n: u32| {
        (
            format!(r"C:\Windows\System32\hive{n}.dll"),
            format!("10.0.17763.{n}").parse().unwrap(),
        )
    };
    let hotfix = |id: &str, n: u32| {
        let (path, version) = dll(n);
        Package::hotfix(id).file(&path, version).duration(ms)
    };
    vec![
        ("OK", "{ downtime_ms = 200 }", hotfix("KB5100001", 1)),
        (
            "E3010",
            "{ downtime_ms = 200 }",
            hotfix("KB5100002", 2).reboot_required(true).exit_code(3010),
        ),
        (
            "E1641",
            "{ downtime_ms = 200 }",
            hotfix("KB5100003", 3).exit_code(1641),
        ),
        (
            "E240006",
            "{ downtime_ms = 200 }",
            hotfix("KB5100004", 4).exit_code(0x240006),
        ),
        (
            "E80240017",
            "{ downtime_ms = 200 }",
            hotfix("KB5100005", 5).exit_code(0x8024_0017),
        ),
        (
            "E1618",
            "{ downtime_ms = 200 }",
            hotfix("KB5100006", 6).exit_codes(&[1618, 0]),
        ),
        (
            "E1603",
            "{ downtime_ms = 200 }",
            hotfix("KB5100007", 7).exit_code(1603),
        ),
        (
            "HUNG",
            "{ downtime_ms = 200 }",
            hotfix("KB5100008", 8).hangs(),
        ),
        ("TAMPER", "{ downtime_ms = 200 }", hotfix("KB5100009", 9)),
        (
            "GONE",
            "{ downtime_ms = 200, never_returns = true }",
            hotfix("KB5100010", 10)
                .reboot_required(true)
                .exit_code(3010),
        ),
        (
            "FAST",
            "{ downtime_ms = 0 }",
            hotfix("KB5100011", 11)
                .reboot_required(true)
                .exit_code(3010),
        ),
        (
            "CONFIG",
            "{ downtime_ms = 200, configuring_ms = 60000 }",
            Package::msu("KB5100012").cab(
                "Windows10.0-KB5100012-x64.cab",
                Package::cab_file("KB5100012")
                    .reboot_required(true)
                    .duration(ms),
            ),
        ),
        (
            "MSIFAIL",
            "{ downtime_ms = 200 }",
            Package::msi("KB5100013").exit_code(1603).duration(ms),
        ),
        (
            // Back from the reboot, WinRM accepts connections but answers the first Command
            // only after 20 s (longer than the 8 s login phase).
            "SLOWBOOT",
            "{ downtime_ms = 200 }\nfaults = { winrm_stalls_after_boot_ms = 20000 }",
            hotfix("KB5100014", 14)
                .reboot_required(true)
                .exit_code(3010),
        ),
    ]
}

/// Stands for whatever changes a staged file between the copy and its use (an AV engine, a
/// concurrent writer): when hive announces the on-target hash check for TAMPER's installer, the
/// file on the host's disk is overwritten.
struct Tamper {
    inner: Recorder,
    path: Mutex<Option<PathBuf>>,
}

impl EventSink for Tamper {
    fn emit(&self, e: &Event) -> Result<(), String> {
        if e.host == "TAMPER"
            && matches!(e.step, Step::VerifyHash { .. })
            && e.state == StepState::Started
            && let Some(p) = self.path.lock().unwrap().as_ref()
        {
            std::fs::write(p, b"MZ not the approved installer").unwrap();
        }
        self.inner.emit(e)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_gets_its_own_verdict_and_other_hosts_are_unaffected() {
    let mut toml = String::new();
    let mut lab = Lab::new();
    for (i, (name, reboot, package)) in scenarios().into_iter().enumerate() {
        let product = format!("Windows Server 2019 Test {name}");
        toml.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"127.0.0.{}\"\nproduct = \"{product}\"\n\
             version = \"10.0.17763\"\nreboot = {reboot}\n",
            i + 2
        ));
        let id = package.manifest.id.clone();
        let (file_name, recipe) = match package.manifest.kind {
            PackageKind::Msu => (format!("{id}.msu"), InstallerRecipe::msu()),
            PackageKind::Msi => (format!("{id}.msi"), InstallerRecipe::msi()),
            _ => (format!("{id}.exe"), InstallerRecipe::legacy_hotfix()),
        };
        lab.add(LabPatch {
            id: &id,
            bulletin: &format!("MS-F-{name}"),
            product: &product,
            file_name: &file_name,
            package,
            recipe,
            subtype: "Security Update",
            detection: None,
        });
    }
    let fleet = SimFleet::start("deployfaults", &toml).await;
    let run = "rf";
    let sink = Tamper {
        inner: Recorder::default(),
        path: Mutex::new(Some(
            fleet
                .host("TAMPER")
                .host_path(&format!(r"C:\Windows\Temp\hive\{run}\KB5100009.exe")),
        )),
    };
    let started = std::time::Instant::now();
    let results = deploy_all(&fleet, &lab, run, &fast_options(), &sink).await;
    eprintln!("{} hosts in {:?}", results.len(), started.elapsed());
    let outcome = |name: &str| -> &DeployOutcome {
        &results
            .iter()
            .find(|(_, o)| o.host == name)
            .unwrap_or_else(|| panic!("{name}"))
            .1
    };
    let reboots = |name: &str| fleet.host(name).reboot_count();
    let ran = |name: &str, needle: &str| {
        fleet
            .host(name)
            .command_log()
            .iter()
            .any(|c| c.command_line.contains(needle))
    };
    for (_, o) in &results {
        eprintln!("{:<10} {:<20} {:?}", o.host, o.verdict.word(), o.evidence);
    }

    let o = outcome("OK");
    assert_eq!(o.verdict, DeployVerdict::Patched, "{o:?}");
    assert_eq!(o.reboots.len(), 0, "nothing asked for a reboot: {o:?}");
    // The host hashed the installer as it arrived, and nothing hashed it again.
    let hash_details = |name: &str| -> Vec<String> {
        sink.inner
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.host == name && matches!(e.step, Step::VerifyHash { .. }))
            .filter_map(|e| match &e.state {
                StepState::Finished { detail, .. } => Some(detail.clone()),
                _ => None,
            })
            .collect()
    };
    let ok_hashes = hash_details("OK");
    assert!(
        ok_hashes.len() == 1 && ok_hashes[0].contains("hashed it as it arrived"),
        "{ok_hashes:?}"
    );
    assert!(!ran("OK", "certutil"), "no second hash");

    let o = outcome("E3010");
    assert_eq!(o.verdict, DeployVerdict::Patched, "{o:?}");
    assert_eq!(o.patches[0].outcome, PatchOutcome::RebootRequired);
    assert_eq!(reboots("E3010"), 1);

    let o = outcome("E1641");
    assert_eq!(o.verdict, DeployVerdict::Patched, "{o:?}");
    assert_eq!(o.patches[0].outcome, PatchOutcome::RebootInitiated);
    assert_eq!(o.reboots.len(), 1);
    assert_eq!(o.reboots[0].by, "installer");
    assert_eq!(reboots("E1641"), 1, "hive did not reboot it a second time");
    assert!(!ran("E1641", "shutdown /r"));

    for (name, word) in [
        ("E240006", PatchOutcome::AlreadyInstalled),
        ("E80240017", PatchOutcome::NotApplicable),
    ] {
        let o = outcome(name);
        assert_eq!(o.patches[0].outcome, word, "{o:?}");
        assert_eq!(o.verdict, DeployVerdict::NeedsReview, "{o:?}");
        assert_eq!(reboots(name), 0);
    }

    let o = outcome("E1618");
    assert_eq!(o.verdict, DeployVerdict::Patched, "{o:?}");
    assert_eq!(o.patches[0].attempts, 2);

    let o = outcome("E1603");
    assert_eq!(o.verdict, DeployVerdict::InstallFailed, "{o:?}");
    assert_eq!(o.patches[0].exit_code, Some(1603));
    assert_eq!(reboots("E1603"), 0);
    let log = std::fs::read_to_string(lab.repo.root().join("logs").join("E1603.log")).unwrap();
    assert!(log.contains("KB5100007") && log.contains("1603"), "{log}");

    let o = outcome("HUNG");
    assert_eq!(o.verdict, DeployVerdict::InstallTimedOut, "{o:?}");
    assert_eq!(o.patches[0].outcome, PatchOutcome::TimedOut);
    assert!(
        fleet
            .host("HUNG")
            .command_log()
            .iter()
            .any(|c| c.command_line.contains("KB5100008.exe") && c.killed),
        "the hung installer was killed"
    );

    let o = outcome("TAMPER");
    assert_eq!(o.verdict, DeployVerdict::HashMismatch, "{o:?}");
    assert!(o.evidence.iter().any(|e| e.contains("SHA-256")), "{o:?}");
    // Hashed on arrival, then written: the check before the install sees the new write time and
    // hashes the file again, which finds the change.
    assert!(
        hash_details("TAMPER")
            .iter()
            .any(|d| d.contains("written since the host hashed it on arrival")),
        "{:?}",
        hash_details("TAMPER")
    );
    assert!(ran("TAMPER", "certutil -hashfile"));
    assert!(
        !ran("TAMPER", "KB5100009.exe -z"),
        "nothing ran after a mismatch"
    );

    let o = outcome("GONE");
    assert_eq!(o.verdict, DeployVerdict::NeverReturned, "{o:?}");

    let o = outcome("FAST");
    assert_eq!(o.verdict, DeployVerdict::Patched, "{o:?}");
    assert_eq!(o.reboots.len(), 1);
    assert_eq!(reboots("FAST"), 1);

    // An .msi failure: msiexec with the recipe's switches and a verbose log, whose tail lands in
    // the host's log.
    let o = outcome("MSIFAIL");
    assert_eq!(o.verdict, DeployVerdict::InstallFailed, "{o:?}");
    let dir = format!(r"C:\Windows\Temp\hive\{run}");
    assert!(
        ran(
            "MSIFAIL",
            &format!(r"msiexec /i {dir}\KB5100013.msi /qn /norestart /L*V {dir}\KB5100013.msi.log")
        ),
        "{:#?}",
        fleet.host("MSIFAIL").command_log()
    );
    let log = std::fs::read_to_string(lab.repo.root().join("logs").join("MSIFAIL.log")).unwrap();
    assert!(log.contains("MainEngineThread is returning 1603"), "{log}");

    let o = outcome("CONFIG");
    assert_eq!(o.verdict, DeployVerdict::StillConfiguring, "{o:?}");

    // The logon attempt that hung was cut short and another, on a new connection, got the new
    // boot time well within the login phase's 8 s (it hung for the HTTP timeout, 50 s, before).
    let o = outcome("SLOWBOOT");
    assert_eq!(o.verdict, DeployVerdict::Patched, "{o:?}");
    assert_eq!(reboots("SLOWBOOT"), 1);
    assert_eq!(
        fleet.host("SLOWBOOT").wire_faults_fired(),
        1,
        "the stall happened"
    );
    let ev = sink.inner.0.lock().unwrap();
    let login = Step::Reboot {
        phase: RebootPhase::Login,
    };
    let login_events: Vec<_> = ev
        .iter()
        .filter(|e| e.host == "SLOWBOOT" && e.step == login)
        .collect();
    let started = login_events
        .iter()
        .find(|e| e.state == StepState::Started)
        .expect("SLOWBOOT: the login phase started");
    let finished = login_events
        .iter()
        .find(|e| matches!(&e.state, StepState::Finished { ok: true, .. }))
        .unwrap_or_else(|| panic!("SLOWBOOT: the login phase did not end ok: {login_events:?}"));
    let took = finished.at_ms - started.at_ms;
    assert!(took < 8_000, "the login phase took {took} ms");

    // The reboot phases were announced for the reboots that happened.
    for phase in [
        RebootPhase::Shutdown,
        RebootPhase::Down,
        RebootPhase::Port,
        RebootPhase::Login,
        RebootPhase::Settled,
        RebootPhase::Pending,
    ] {
        assert!(
            ev.iter()
                .any(|e| e.host == "E3010" && e.step == Step::Reboot { phase }),
            "phase {phase}"
        );
    }
}
