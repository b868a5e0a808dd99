//! End to end: deploy to simulated Windows hosts over NTLM-encrypted WinRM, installers copied
//! through real Samba, one reboot per host proven by the boot-time change, verified by re-scan.
//! Needs the harness (`integration/test.sh samba`).

mod common;

use common::{Lab, LabPatch, SimFleet, deploy_all, fast_options};
use hive::catalog::model::InstallerRecipe;
use hive::deploy::{DeployVerdict, PatchOutcome};
use hive::events::Recorder;
use hive::remote::Connector as _;
use winsim::installer::Package;

const PRODUCT: &str = "Windows Server 2019 Datacenter";

fn twenty_hosts() -> String {
    format!(
        "[[group]]\ncount = 20\nname = \"WEB{{n:02}}\"\naddress = \"127.0.0.2\"\nproduct = \"{PRODUCT}\"\n\
         edition = \"ServerDatacenter\"\nversion = \"10.0.17763\"\nubr = 5206\nreboot = {{ downtime_ms = 300 }}\n"
    )
}

/// A servicing stack .msu, a cumulative .msu that requires it (so the order matters), and a
/// legacy hotfix .exe.
fn three_patches(lab: &mut Lab) {
    lab.add(LabPatch {
        id: "KB5000009",
        bulletin: "MS-T-0009",
        product: PRODUCT,
        file_name: "windows10.0-kb5000009-x64.msu",
        package: Package::msu("KB5000009").cab(
            "SSU-17763.5000-x64.cab",
            Package::cab_file("KB5000009").duration(std::time::Duration::from_millis(20)),
        ),
        recipe: InstallerRecipe::msu(),
        subtype: "Servicing Stack Update",
        detection: None,
    });
    lab.add(LabPatch {
        id: "KB5000002",
        bulletin: "MS-T-0002",
        product: PRODUCT,
        file_name: "windows10.0-kb5000002-x64.msu",
        package: Package::msu("KB5000002").cab(
            "Windows10.0-KB5000002-x64.cab",
            Package::cab_file("KB5000002")
                .requires("KB5000009")
                .reboot_required(true)
                .sets_build(17763, 5300)
                .duration(std::time::Duration::from_millis(20)),
        ),
        recipe: InstallerRecipe::msu(),
        subtype: "Security Update",
        detection: None,
    });
    lab.add(LabPatch {
        id: "KB5000003",
        bulletin: "MS-T-0003",
        product: PRODUCT,
        file_name: "KB5000003.exe",
        package: Package::hotfix("KB5000003")
            .file(
                r"C:\Windows\System32\hivetest.dll",
                "10.0.17763.5300".parse().unwrap(),
            )
            .duration(std::time::Duration::from_millis(20)),
        recipe: InstallerRecipe::legacy_hotfix(),
        subtype: "Security Update",
        detection: None,
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_hosts_three_patches_each_one_reboot_verified_by_rescan() {
    let fleet = SimFleet::start("deploy20", &twenty_hosts()).await;
    let mut lab = Lab::new();
    three_patches(&mut lab);
    let events = Recorder::default();
    let run = "r20";
    let started = std::time::Instant::now();
    let results = deploy_all(&fleet, &lab, run, &fast_options(), &events).await;
    let took = started.elapsed();
    assert_eq!(results.len(), 20);

    // The dry-run rendering of the same plans.
    let plan = hive::deploy::Plan {
        run: run.into(),
        hosts: results.iter().map(|(p, _)| p.clone()).collect(),
    };
    let text = hive::deploy::render(&plan);
    assert!(text.contains("WEB01"), "{text}");
    assert!(
        text.contains("total: 20 host(s), 60 installer run(s)"),
        "{text}"
    );

    for (plan, outcome) in &results {
        let name = &outcome.host;
        let sim = fleet.host(name);
        common::assert_patched_once(plan, outcome, sim, &["KB5000009", "KB5000002", "KB5000003"]);
        assert_eq!(outcome.reboots[0].by, "hive");

        // The command lines the host recorded: exactly the recipe's switches, DISM for the .msu
        // files (never wusa), and no scheduled task or service.
        let log = sim.command_log();
        let lines: Vec<&str> = log.iter().map(|c| &*c.command_line).collect();
        let dir = format!(r"C:\Windows\Temp\hive\{run}");
        assert!(
            lines.contains(&format!(r"{dir}\KB5000003.exe -z -q -m").as_str()),
            "{name}: {lines:#?}"
        );
        assert!(
            lines.contains(
                &format!(r"expand -F:* {dir}\windows10.0-kb5000009-x64.msu {dir}\windows10.0-kb5000009-x64")
                    .as_str()
            ),
            "{name}: {lines:#?}"
        );
        let dism: Vec<&&str> = lines.iter().filter(|l| l.starts_with("dism ")).collect();
        assert_eq!(dism.len(), 2, "{name}: {lines:#?}");
        assert!(
            dism[0].contains("SSU-17763.5000-x64.cab") && dism[0].ends_with("/quiet /norestart")
        );
        assert!(dism[1].contains("KB5000002") && dism[1].ends_with("/quiet /norestart"));
        for l in &lines {
            let first = l
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            assert!(
                ![
                    "schtasks",
                    "schtasks.exe",
                    "sc",
                    "sc.exe",
                    "wusa",
                    "wusa.exe"
                ]
                .contains(&first.as_str()),
                "{name} ran {l}"
            );
        }
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("shutdown /r"))
                .count(),
            1,
            "{name}"
        );
        // Staged files were cleaned up.
        assert!(
            !sim.host_path(&format!(r"{dir}\KB5000003.exe")).exists(),
            "{name}: staged installer left behind"
        );
    }

    // Every step was announced before it ran and finished after.
    let ev = events.0.lock().unwrap();
    let started_n = ev
        .iter()
        .filter(|e| e.state == hive::events::StepState::Started)
        .count();
    let finished_n = ev
        .iter()
        .filter(|e| matches!(e.state, hive::events::StepState::Finished { .. }))
        .count();
    assert_eq!(started_n, finished_n);
    eprintln!("20 hosts × 3 patches deployed in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_does_not_run_an_installer_twice() {
    let toml = format!(
        "[[host]]\nname = \"RESUME01\"\naddress = \"127.0.0.2\"\nproduct = \"{PRODUCT}\"\nversion = \"10.0.17763\"\nreboot = {{ downtime_ms = 200 }}\n"
    );
    let fleet = SimFleet::start("deployresume", &toml).await;
    let mut lab = Lab::new();
    three_patches(&mut lab);
    // The journal says KB5000009 (the servicing stack) already finished ok in this run.
    let sim = fleet.host("RESUME01");
    let mut resume = hive::deploy::PriorWork::default();
    resume.installed.insert("KB5000009".into());
    let events = Recorder::default();
    let options = fast_options();
    let host = fleet.inventory_host("RESUME01");
    let mut target = hive::remote::NetworkConnector::default()
        .open(host, &fleet.secret)
        .unwrap();
    let probe = hive::scan::run::PreparedProbe::new(&lab.catalog);
    let scan = hive::deploy::ScanInputs {
        catalog: &lab.catalog,
        probe: &probe,
        files: hive::scan::run::FileSource::Probe,
    };
    let before = hive::scan::run::scan_target(
        &mut *target,
        &lab.catalog,
        &probe,
        std::time::Duration::from_secs(20),
        hive::scan::run::FileSource::Probe,
    )
    .await
    .unwrap();
    let approved = hive::deploy::load_approved(&lab.repo).unwrap();
    let plan = hive::deploy::plan_host("RESUME01", &before.verdicts, &lab.catalog, &approved);
    let mut ctx = hive::deploy::HostContext::new(
        "rres",
        host,
        &mut *target,
        &events,
        Some(&lab.repo),
        &options,
    );
    let outcome = hive::deploy::deploy_host(&mut ctx, &plan, &scan, &resume).await;
    assert_eq!(outcome.patches[0].outcome, PatchOutcome::DoneEarlier);
    let log = sim.command_log();
    assert!(
        !log.iter()
            .any(|c| c.command_line.contains("kb5000009-x64.msu")),
        "the installer that already succeeded ran again: {log:#?}"
    );
    // Without the servicing stack really present, the cumulative update's DISM run fails: the
    // resume state is trusted, and the failure says why.
    assert_eq!(outcome.verdict, DeployVerdict::InstallFailed, "{outcome:?}");
}

/// A journal that cannot record the start of an install.
struct FullJournal(Recorder);

impl hive::events::EventSink for FullJournal {
    fn emit(&self, e: &hive::events::Event) -> Result<(), String> {
        if matches!(e.step, hive::events::Step::Install { .. })
            && e.state == hive::events::StepState::Started
        {
            return Err("No space left on device (os error 28)".into());
        }
        self.0.emit(e)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_the_journal_cannot_record_is_not_done() {
    let toml = format!(
        "[[host]]\nname = \"JOURNAL01\"\naddress = \"127.0.0.2\"\nproduct = \"{PRODUCT}\"\nversion = \"10.0.17763\"\n"
    );
    let fleet = SimFleet::start("deployjournal", &toml).await;
    let mut lab = Lab::new();
    three_patches(&mut lab);
    let sink = FullJournal(Recorder::default());
    let results = deploy_all(&fleet, &lab, "rj", &fast_options(), &sink).await;
    let o = &results[0].1;
    assert_eq!(o.verdict, DeployVerdict::JournalFailed, "{o:?}");
    assert!(
        o.evidence.iter().any(|e| e.contains("os error 28")),
        "{o:?}"
    );
    let log = fleet.host("JOURNAL01").command_log();
    assert!(
        !log.iter().any(|c| c.command_line.starts_with("expand")
            || c.command_line.starts_with("dism")
            || c.command_line.contains(".exe -z")),
        "no installer ran: {log:#?}"
    );
    assert_eq!(fleet.host("JOURNAL01").reboot_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_resumed_after_the_reboot_only_verifies() {
    let toml = format!(
        "[[host]]\nname = \"RESUME02\"\naddress = \"127.0.0.2\"\nproduct = \"{PRODUCT}\"\nversion = \"10.0.17763\"\nreboot = {{ downtime_ms = 200 }}\n"
    );
    let fleet = SimFleet::start("deployresume2", &toml).await;
    let mut lab = Lab::new();
    three_patches(&mut lab);
    let events = Recorder::default();
    let options = fast_options();
    let results = deploy_all(&fleet, &lab, "rr2", &options, &events).await;
    let (plan, first) = &results[0];
    assert_eq!(first.verdict, DeployVerdict::Patched, "{first:?}");
    let sim = fleet.host("RESUME02");
    let commands_before = sim.command_log().len();

    // The orchestrator crashed after the reboot: the journal knows every install and the reboot.
    let resume = hive::deploy::PriorWork {
        installed: plan.installs.iter().map(|i| i.patch.clone()).collect(),
        rebooted: true,
        ..Default::default()
    };
    let host = fleet.inventory_host("RESUME02");
    let mut target = hive::remote::NetworkConnector::default()
        .open(host, &fleet.secret)
        .unwrap();
    let probe = hive::scan::run::PreparedProbe::new(&lab.catalog);
    let scan = hive::deploy::ScanInputs {
        catalog: &lab.catalog,
        probe: &probe,
        files: hive::scan::run::FileSource::Probe,
    };
    let mut ctx = hive::deploy::HostContext::new(
        "rr2",
        host,
        &mut *target,
        &events,
        Some(&lab.repo),
        &options,
    );
    let again = hive::deploy::deploy_host(&mut ctx, plan, &scan, &resume).await;
    assert_eq!(again.verdict, DeployVerdict::Patched, "{again:?}");
    assert!(again.reboots.is_empty());
    assert_eq!(sim.reboot_count(), 1, "no second reboot");
    let new: Vec<String> = sim.command_log()[commands_before..]
        .iter()
        .map(|c| c.command_line.to_string())
        .collect();
    assert!(
        !new.iter().any(|l| l.starts_with("dism")
            || l.starts_with("expand")
            || l.starts_with("shutdown")
            || l.contains(".exe -z")),
        "only the re-scan ran: {new:#?}"
    );
}
