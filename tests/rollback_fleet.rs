//! `hive rollback` end to end: the `hive` binary against simulated Windows hosts (WinRM commands
//! to winsim hosts in this process, files through the harness's real Samba). A rollout installs a
//! legacy hotfix (a DLL in use, put back at the reboot), an .msu (a cumulative update that moves
//! the build) and an .msi; `hive rollback` of that run must leave every host as the first scan
//! found it — the same verdicts from a re-scan, the old DLL, the old build, no MSI product key —
//! with each uninstaller run exactly once, through spuninst.exe, DISM and msiexec (never wusa).
//! A permanent package and a deleted `$NtUninstall$` folder get their own per-host verdicts, and
//! bad input (an unknown run, a patch the run did not install, a run that installed nothing) a
//! clear error. Needs the harness (`integration/test.sh samba`).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{FAST_REBOOTS, HivePaths, Lab, LabPatch, SimFleet};
use hive::catalog::model::{DetectionRule, InstallerRecipe, VersionOp, WhenMissing};
use hive::journal::RunLog;
use hive::remote::Connector as _;
use hive::rollout::HostVerdict;
use hive::scan::evaluate::Status;
use winsim::installer::Package;
use winsim::registry::RegValue;

const PRODUCT: &str = "Windows Server 2019 Datacenter";
const HOTFIX: &str = "KB5000301";
const MSU: &str = "KB5000302";
const MSI: &str = "KB5000303";
const DLL: &str = r"C:\Windows\System32\rollback1.dll";
const OLD: &str = "10.0.17763.5000";
const NEW: &str = "10.0.17763.5301";
const PRODUCT_CODE: &str = "{6A1D0C4E-3D2B-4F5A-9C11-000005000303}";
const APP_KEY: &str = r"HKLM\SOFTWARE\Contoso\RollbackApp";

fn fleet_toml(hosts: usize, extra: &str) -> String {
    format!(
        "[[group]]\ncount = {hosts}\nname = \"RB{{n:02}}\"\naddress = \"127.0.0.2\"\nproduct = \"{PRODUCT}\"\n\
         edition = \"ServerDatacenter\"\nversion = \"10.0.17763\"\nubr = 5206\n\
         files = [{{ path = '{DLL}', version = \"{OLD}\" }}]\n\
         reboot = {{ downtime_ms = 300 }}\n{extra}"
    )
}

/// The legacy hotfix of the lab, installed with `recipe` (without qchain: Server 2019).
fn hotfix(mut recipe: InstallerRecipe, package: Package) -> LabPatch<'static> {
    recipe.needs_qchain = false;
    LabPatch {
        id: HOTFIX,
        bulletin: "MS-R-0301",
        product: PRODUCT,
        file_name: "KB5000301.exe",
        package,
        recipe,
        subtype: "Security Update",
        detection: None,
    }
}

/// One legacy hotfix (a DLL in use: its new file waits for the reboot, and so does the old one
/// coming back), one .msu (a cumulative update that sets a new build at the reboot), one .msi
/// (a registry key of its own, removed by product code).
fn lab() -> Lab {
    let mut lab = Lab::new();
    lab.add(LabPatch {
        detection: Some(DetectionRule::FileVersion {
            path: DLL.into(),
            op: VersionOp::AtLeast,
            version: NEW.parse().unwrap(),
            date: None,
            size: None,
            checksum: None,
            when_missing: WhenMissing::NotInstalled,
        }),
        ..hotfix(
            InstallerRecipe::legacy_hotfix(),
            Package::hotfix(HOTFIX)
                .file_in_use(DLL, NEW.parse().unwrap())
                .hotfix_key()
                .reboot_required(true)
                .exit_code(3010),
        )
    });
    lab.add(LabPatch {
        id: MSU,
        bulletin: "MS-R-0302",
        product: PRODUCT,
        file_name: "windows10.0-kb5000302-x64.msu",
        package: Package::msu(MSU).cab(
            "Windows10.0-KB5000302-x64.cab",
            Package::cab_file(MSU)
                .reboot_required(true)
                .sets_build(17763, 5302),
        ),
        recipe: InstallerRecipe::msu(),
        subtype: "Security Update",
        detection: None,
    });
    let mut msi = InstallerRecipe::msi();
    msi.product_code = Some(PRODUCT_CODE.into());
    lab.add(LabPatch {
        id: MSI,
        bulletin: "MS-R-0303",
        product: PRODUCT,
        file_name: "contoso-app-kb5000303.msi",
        package: Package::msi(MSI).product_code(PRODUCT_CODE).registry(
            APP_KEY,
            "Version",
            RegValue::Sz("2.0".into()),
        ),
        recipe: msi,
        subtype: "Security Update",
        detection: None,
    });
    lab
}

type Paths = HivePaths;

fn write_paths(fleet: &SimFleet, lab: &Lab) -> Paths {
    HivePaths::write(fleet, lab, |_| String::new(), "")
}

const FAST: [&str; 8] = FAST_REBOOTS;

/// `hive <args> --inventory --repo --catalog` with fast reboot settings, run to its end.
fn hive(p: &Paths, args: &[&str]) -> Output {
    p.hive(args)
        .args(["--plan", "100%", "--parallel", "8"])
        .args(FAST)
        .output()
        .expect("hive runs")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every (host, patch) verdict of a fresh scan of the fleet through the real transports.
async fn scan_all(fleet: &SimFleet, lab: &Lab) -> BTreeMap<(String, String), Status> {
    let probe = hive::scan::run::PreparedProbe::new(&lab.catalog);
    let timeouts = hive::remote::Timeouts {
        connect: Duration::from_secs(2),
        operation: Duration::from_secs(20),
    };
    let mut out = BTreeMap::new();
    for host in &fleet.hosts {
        let mut target = hive::remote::NetworkConnector::new(timeouts)
            .open(host, &fleet.secret)
            .unwrap();
        let r = hive::scan::run::scan_target(
            &mut *target,
            &lab.catalog,
            &probe,
            Duration::from_secs(20),
            hive::scan::run::FileSource::Probe,
        )
        .await
        .unwrap_or_else(|e| panic!("{}: scan: {e}", host.name));
        for v in r.verdicts {
            out.insert((host.name.clone(), v.patch.to_string()), v.status);
        }
    }
    out
}

/// The runs of the repository: (the rollout, the rollback of it) once both ran.
fn runs(repo: &Path) -> Vec<RunLog> {
    let mut runs: Vec<RunLog> = hive::journal::list_runs(repo)
        .unwrap()
        .into_iter()
        .map(|r| RunLog::load(repo, &r.run).unwrap())
        .collect();
    runs.sort_by_key(|r| r.header.rollback.is_some());
    runs
}

fn ubr(sim: &winsim::WinHost) -> Option<RegValue> {
    sim.registry_value(r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion", "UBR")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_then_rollback_leaves_every_host_as_the_first_scan_found_it() {
    let fleet = SimFleet::start("rollback", &fleet_toml(3, "")).await;
    let lab = lab();
    let p = write_paths(&fleet, &lab);
    let first = scan_all(&fleet, &lab).await;
    for h in &fleet.hosts {
        for kb in [HOTFIX, MSU, MSI] {
            assert_eq!(
                first.get(&(h.name.clone(), kb.to_string())),
                Some(&Status::Missing),
                "{} {kb}: {first:?}",
                h.name
            );
        }
    }
    let out = hive(&p, &["rollout"]);
    assert!(out.status.success(), "{}", text(&out));
    let patched = scan_all(&fleet, &lab).await;
    assert!(
        patched.values().all(|s| *s == Status::Installed),
        "{patched:?}"
    );
    for h in &fleet.hosts {
        let sim = fleet.host(&h.name);
        assert_eq!(ubr(sim), Some(RegValue::Dword(5302)), "{}", h.name);
        assert!(
            sim.host_path(r"C:\Windows\$NtUninstallKB5000301$\spuninst\spuninst.exe")
                .is_file(),
            "{}: the hotfix left its uninstaller",
            h.name
        );
    }
    let rollout_log = runs(&p.repo).remove(0);
    let rollout_run = rollout_log.header.run.clone();
    let installed = hive::rollback::installed_by(&rollout_log);

    let out = hive(&p, &["rollback", &rollout_run]);
    assert!(out.status.success(), "{}", text(&out));

    // A re-scan shows the same verdicts as the first scan, and the host is back byte for byte
    // where the scan cannot look: the old DLL, the old build, no MSI product, no hotfix key.
    let after = scan_all(&fleet, &lab).await;
    assert_eq!(after, first);
    for h in &fleet.hosts {
        let name = &h.name;
        let sim = fleet.host(name);
        assert_eq!(
            sim.file_version(DLL).map(|v| v.to_string()).as_deref(),
            Some(OLD),
            "{name}"
        );
        assert_eq!(ubr(sim), Some(RegValue::Dword(5206)), "{name}");
        assert_eq!(sim.registry_value(APP_KEY, "Version"), None, "{name}");
        assert_eq!(
            sim.registry_value(
                r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\KB5000301",
                "Installed"
            ),
            None,
            "{name}"
        );
        assert!(sim.dism_package_names().is_empty(), "{name}");
        assert!(
            !sim.host_path(r"C:\Windows\$NtUninstallKB5000301$").exists(),
            "{name}: the uninstall folder goes with the hotfix"
        );
        // Each uninstaller ran once, last installed first off; the rollout's one reboot and the
        // rollback's one.
        let removed: Vec<String> = sim.uninstall_log().into_iter().map(|r| r.package).collect();
        let mut order = installed[name].clone();
        order.reverse();
        assert_eq!(order.len(), 3, "{name}: {installed:?}");
        assert_eq!(removed, order, "{name}");
        assert_eq!(sim.reboot_count(), 2, "{name}");
        let log = sim.command_log();
        let lines: Vec<&str> = log.iter().map(|c| &*c.command_line).collect();
        assert!(
            lines.contains(&r"C:\Windows\$NtUninstallKB5000301$\spuninst\spuninst.exe -u -q -z"),
            "{name}: {lines:#?}"
        );
        assert!(
            lines.contains(
                &"dism /Online /Remove-Package /PackageName:Package_for_KB5000302~31bf3856ad364e35~amd64~~10.0.1.0 /Quiet /NoRestart"
            ),
            "{name}: {lines:#?}"
        );
        assert!(
            lines.contains(&format!("msiexec /x {PRODUCT_CODE} /qn /norestart").as_str()),
            "{name}: {lines:#?}"
        );
        assert!(
            !lines
                .iter()
                .any(|l| l.to_ascii_lowercase().starts_with("wusa")),
            "{name}: {lines:#?}"
        );
    }

    // The rollback is a run of its own whose header names the run it undid.
    let all = runs(&p.repo);
    assert_eq!(all.len(), 2);
    let rb = &all[1];
    let of = rb.header.rollback.as_ref().expect("a rollback header");
    assert_eq!(of.run, rollout_run);
    let mut order = installed["RB01"].clone();
    order.reverse();
    assert_eq!(of.remove["RB01"], order);
    for (host, log) in &rb.hosts {
        assert!(
            matches!(&log.verdict, Some((HostVerdict::Patched, d)) if d.starts_with("rolled_back")),
            "{host}: {:?}",
            log.verdict
        );
    }

    let out = Command::new(env!("CARGO_BIN_EXE_hive"))
        .args(["report", &rb.header.run, "--steps", "--repo"])
        .arg(&p.repo)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&format!("rollback of {rollout_run}")) && report.contains("uninstall "),
        "{report}"
    );

    // Again: everything is already off, so nothing runs and nothing reboots.
    let out = hive(&p, &["rollback", &rollout_run]);
    assert!(out.status.success(), "{}", text(&out));
    for h in &fleet.hosts {
        let sim = fleet.host(&h.name);
        assert_eq!(sim.uninstall_log().len(), 3, "{}", h.name);
        assert_eq!(sim.reboot_count(), 2, "{}", h.name);
    }

    // Bad input: a run that does not exist, a patch the run did not install, a run (the
    // rollback) that installed nothing.
    let out = hive(&p, &["rollback", "20991231-000000"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`20991231-000000` not found under") && err.contains(&rollout_run),
        "{err}"
    );
    let out = hive(&p, &["rollback", &rollout_run, "--patch", "KB9999999"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--patch KB9999999") && err.contains(HOTFIX),
        "{err}"
    );
    let out = hive(&p, &["rollback", &rb.header.run]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("installed nothing") && err.contains("itself a rollback"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_package_and_a_missing_uninstaller_get_their_own_verdicts() {
    let fleet = SimFleet::start(
        "rollback-kept",
        &fleet_toml(2, &format!("permanent_packages = [\"{MSU}\"]\n")),
    )
    .await;
    let lab = lab();
    let p = write_paths(&fleet, &lab);
    let out = hive(&p, &["rollout"]);
    assert!(out.status.success(), "{}", text(&out));
    let run = runs(&p.repo)[0].header.run.clone();
    // RB02 loses its hotfix uninstall folder (an admin "cleaned up" C:\Windows).
    std::fs::remove_dir_all(
        fleet
            .host("RB02")
            .host_path(r"C:\Windows\$NtUninstallKB5000301$"),
    )
    .unwrap();

    let out = hive(
        &p,
        &[
            "rollback",
            &run,
            "--hosts",
            "RB01,RB02",
            "--patch",
            "KB5000302,KB5000301",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let rb = runs(&p.repo).pop().unwrap();
    let verdict = |h: &str| rb.hosts[h].verdict.clone().expect("a verdict");
    // Both hosts: the MSU is permanent (the fleet marks it so), and stays.
    let (v1, d1) = verdict("RB01");
    assert_eq!(v1, HostVerdict::Failed);
    assert!(d1.starts_with("permanent:"), "{d1}");
    assert!(
        d1.contains("KB5000302 permanent") && d1.contains("KB5000301 reboot_required"),
        "{d1}"
    );
    let (v2, d2) = verdict("RB02");
    assert_eq!(v2, HostVerdict::Failed);
    assert!(d2.contains("KB5000301 uninstaller_missing"), "{d2}");
    assert!(d2.contains("$NtUninstallKB5000301$"), "{d2}");
    let now = scan_all(&fleet, &lab).await;
    let status = |h: &str, kb: &str| now[&(h.to_string(), kb.to_string())];
    assert_eq!(status("RB01", HOTFIX), Status::Missing);
    assert_eq!(status("RB02", HOTFIX), Status::Installed);
    for h in ["RB01", "RB02"] {
        assert_eq!(status(h, MSU), Status::Installed, "{h}");
        // Not asked for with --patch: left on.
        assert_eq!(status(h, MSI), Status::Installed, "{h}");
    }
}

/// Journal records of `run`, as JSON values (a torn last line is skipped).
fn journal_records(repo: &Path, run: &str) -> Vec<serde_json::Value> {
    let path = hive::journal::run_dir(repo, run)
        .unwrap()
        .join(hive::journal::JOURNAL_FILE);
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `hive rollback RUN` or `hive resume RUN`, in the background.
fn spawn_hive(p: &Paths, args: &[&str]) -> std::process::Child {
    p.hive(args)
        .args(FAST)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("hive runs")
}

/// Wait for the rollback run (any run but `not`) to journal a record `hit` accepts, then SIGKILL
/// `child`. Returns the rollback run's id.
fn kill_at(
    p: &Paths,
    mut child: std::process::Child,
    not: &str,
    what: &str,
    hit: impl Fn(&serde_json::Value) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let run = hive::journal::list_runs(&p.repo)
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.run)
            .find(|r| r != not);
        if let Some(run) = run
            && journal_records(&p.repo, &run).iter().any(&hit)
        {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return run;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "hive ended before {what}"
        );
        assert!(std::time::Instant::now() < deadline, "{what}: not in 90 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_rollback_then_resume_takes_each_patch_off_once() {
    let fleet = SimFleet::start("rollback-kill", &fleet_toml(2, "")).await;
    let lab = lab();
    let p = write_paths(&fleet, &lab);
    let first = scan_all(&fleet, &lab).await;
    let out = hive(&p, &["rollout"]);
    assert!(out.status.success(), "{}", text(&out));
    let rollout_run = runs(&p.repo)[0].header.run.clone();

    let (p, rb) = tokio::task::spawn_blocking(move || {
        let step = |r: &serde_json::Value, step: &str, state: &str| {
            r["record"] == "step" && r["step"] == step && r["state"] == state
        };
        // Kill right after an uninstall finished (a naive re-run would take the hotfix, whose
        // DLL comes back only at the reboot, off again), then while the reboot is under way.
        let child = spawn_hive(&p, &["rollback", &rollout_run, "--plan", "100%"]);
        let rb = kill_at(&p, child, &rollout_run, "an uninstall finished", |r| {
            step(r, "uninstall", "finished")
        });
        let child = spawn_hive(&p, &["resume", &rb]);
        kill_at(&p, child, &rollout_run, "a reboot started", |r| {
            step(r, "reboot", "started")
        });
        let out = p
            .hive(&["resume", &rb])
            .args(FAST)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the last resume finishes: {:?}\n{}",
            out.status,
            text(&out)
        );
        (p, rb)
    })
    .await
    .unwrap();

    let log = RunLog::load(&p.repo, &rb).unwrap();
    assert!(log.header.rollback.is_some());
    assert_eq!(
        log.state.clone().unwrap().0,
        hive::journal::RunState::Finished
    );
    for (host, h) in &log.hosts {
        assert!(
            matches!(&h.verdict, Some((HostVerdict::Patched, d)) if d.starts_with("rolled_back")),
            "{host}: {:?}",
            h.verdict
        );
        // A kill between journaling an uninstall and running it, with another patch's reboot
        // pending, is settled as "finishing at the reboot"; the reboot shows it never ran.
        let second_round = h
            .steps
            .iter()
            .filter_map(|s| s.finished.as_ref())
            .filter(|end| end.detail.contains("cut off before it ran"))
            .count();
        eprintln!("{host}: verify rounds that ran a cut-off uninstaller: {second_round}");
        for s in &h.steps {
            assert!(s.finished.is_some(), "{host}: {:?} never ended", s.step);
        }
    }
    assert_eq!(scan_all(&fleet, &lab).await, first);
    for h in &fleet.hosts {
        let sim = fleet.host(&h.name);
        let mut removed: Vec<String> = sim.uninstall_log().into_iter().map(|r| r.package).collect();
        removed.sort();
        assert_eq!(
            removed,
            [HOTFIX, MSU, MSI],
            "{}: each comes off once",
            h.name
        );
    }

    // Bad input: resuming a run that does not exist names it.
    let out = Command::new(env!("CARGO_BIN_EXE_hive"))
        .args(["resume", "20991231-000001", "--repo"])
        .arg(&p.repo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`20991231-000001` not found"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hotfix_whose_recipe_says_so_takes_itself_off_with_y_z_q() {
    let fleet = SimFleet::start("rollback-y", &fleet_toml(2, "")).await;
    let mut lab = Lab::new();
    let mut recipe = InstallerRecipe::legacy_hotfix();
    recipe.uninstall = hive::catalog::model::UninstallVia::Package;
    lab.add(hotfix(
        recipe,
        Package::hotfix(HOTFIX)
            .file(DLL, NEW.parse().unwrap())
            .hotfix_key(),
    ));
    let p = write_paths(&fleet, &lab);
    let first = scan_all(&fleet, &lab).await;
    let out = hive(&p, &["rollout"]);
    assert!(out.status.success(), "{}", text(&out));
    let run = runs(&p.repo)[0].header.run.clone();
    let out = hive(&p, &["rollback", &run]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(scan_all(&fleet, &lab).await, first);
    for h in &fleet.hosts {
        let sim = fleet.host(&h.name);
        assert_eq!(
            sim.file_version(DLL).map(|v| v.to_string()).as_deref(),
            Some(OLD),
            "{}",
            h.name
        );
        let log = sim.command_log();
        let lines: Vec<&str> = log.iter().map(|c| &*c.command_line).collect();
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with(r"\KB5000301.exe -y -z -q")),
            "{}: {lines:#?}",
            h.name
        );
        assert!(
            !lines.iter().any(|l| l.contains("spuninst")),
            "{}: {lines:#?}",
            h.name
        );
        assert_eq!(sim.uninstall_log().len(), 1, "{}", h.name);
    }
}
