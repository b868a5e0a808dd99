//! A patch the boot undoes, and hive killed between its two installs: `hive rollout` (the binary)
//! against two simulated hosts, one of which undoes the patch at every boot (winsim
//! `reverts_at_boot`), SIGKILLed at a journal record, then `hive resume` to the end. Whether the
//! kill came after the first re-scan found the patch missing or after the second install, the
//! resumed run installs it once more at most: the simulator's install log has it exactly twice on
//! that host, the host ends `reboot_loop` with the patch withheld from it, and the other host is
//! patched once. Needs the harness (`integration/test.sh samba`).

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{HivePaths, Lab, LabPatch, SimFleet};
use hive::catalog::model::InstallerRecipe;
use hive::journal::{self, RunLog};
use hive::rollout::HostVerdict;
use serde_json::Value;
use winsim::installer::Package;

const PRODUCT: &str = "Windows Server 2019 Datacenter";
const PATCH: &str = "KB5400001";
const UNDONE: &str = "UNDONE";
const PLAIN: &str = "PLAIN";

fn fleet_toml() -> String {
    let host = |name: &str, n: u8, extra: &str| {
        format!(
            "[[host]]\nname = \"{name}\"\naddress = \"127.0.0.{n}\"\nproduct = \"{PRODUCT}\"\n\
             version = \"10.0.17763\"\nreboot = {{ downtime_ms = 300 }}\n{extra}\n"
        )
    };
    host(
        UNDONE,
        2,
        &format!("faults = {{ reverts_at_boot = [{{ package = \"{PATCH}\" }}] }}"),
    ) + &host(PLAIN, 3, "")
}

fn lab() -> Lab {
    let mut lab = Lab::new();
    lab.add(LabPatch {
        id: PATCH,
        bulletin: "MS-L-01",
        product: PRODUCT,
        file_name: "KB5400001.exe",
        package: Package::hotfix(PATCH)
            .file(
                r"C:\Windows\System32\hiveloop.dll",
                "10.0.17763.9400".parse().unwrap(),
            )
            .reboot_required(true)
            .exit_code(3010)
            .duration(Duration::from_millis(200)),
        recipe: InstallerRecipe::legacy_hotfix(),
        subtype: "Security Update",
        detection: None,
    });
    lab
}

/// `hive rollout` (no run yet) or `hive resume RUN`, output to files.
fn hive(p: &HivePaths, run: Option<&str>, n: usize) -> Child {
    let args: &[&str] = match run {
        None => &["rollout", "--plan", "100%"],
        Some(r) => &["resume", r],
    };
    p.hive(args)
        .args([
            "--parallel",
            "2",
            "--shutdown-delay",
            "0",
            "--reboot-timeout",
            "20",
            "--poll-ms",
            "100",
            "--install-timeout",
            "30",
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(p.logs.join(format!("hive-{n}.out"))).unwrap())
        .stderr(std::fs::File::create(p.logs.join(format!("hive-{n}.err"))).unwrap())
        .spawn()
        .expect("hive runs")
}

/// Reads the journal as it grows and SIGKILLs `child` right after the first record `hit`
/// accepts (records are fsynced before the step they announce goes on). Returns the run id.
fn kill_at(child: &mut Child, repo: &Path, hit: &mut dyn FnMut(&Value) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut looked_at = 0;
    loop {
        let run = journal::list_runs(repo)
            .ok()
            .and_then(|r| r.first().map(|l| l.run.clone()));
        if let Some(run) = run {
            let path = journal::runs_dir(repo)
                .join(&run)
                .join(journal::JOURNAL_FILE);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
            let lines: Vec<&str> = complete.lines().collect();
            let new = lines.get(looked_at..).unwrap_or_default();
            looked_at = lines.len();
            if new
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|r| hit(&r))
            {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                return run;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "hive ended before the kill point"
        );
        assert!(Instant::now() < deadline, "kill point not reached in 90 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn is_undone_step(r: &Value, step: &str, outcome: Option<&str>) -> bool {
    r["record"] == "step"
        && r["host"] == UNDONE
        && r["step"] == step
        && r["state"] == "finished"
        && outcome.is_none_or(|o| r["outcome"] == o)
}

/// Runs the rollout, kills it where `hit` says, resumes it to its end, and checks the ends.
async fn kill_then_resume(tag: &str, mut hit: impl FnMut(&Value) -> bool) {
    let lab = lab();
    let fleet = SimFleet::start(tag, &fleet_toml()).await;
    let p = HivePaths::write(&fleet, &lab, |_| String::new(), "");
    let mut first = hive(&p, None, 0);
    let run = kill_at(&mut first, &p.repo, &mut hit);
    let installs_at_kill = fleet.host(UNDONE).install_log().len();

    let resumed = tokio::task::spawn_blocking({
        let mut child = hive(&p, Some(&run), 1);
        move || child.wait().unwrap()
    })
    .await
    .unwrap();
    let out = std::fs::read_to_string(p.logs.join("hive-1.err")).unwrap_or_default();
    eprintln!("resume exit {resumed:?}; stderr:\n{out}");

    let undone = fleet.host(UNDONE);
    let installs = undone
        .install_log()
        .iter()
        .filter(|i| i.package == PATCH)
        .count();
    assert_eq!(
        installs, 2,
        "{tag}: the installer ran {installs} times on {UNDONE} ({installs_at_kill} at the kill)"
    );
    assert_eq!(undone.reboot_count(), 2, "{tag}");
    assert!(!undone.installed_kbs().iter().any(|k| k == PATCH), "{tag}");
    let plain = fleet.host(PLAIN);
    assert_eq!(plain.install_log().len(), 1, "{tag}");
    assert!(plain.installed_kbs().iter().any(|k| k == PATCH), "{tag}");

    let log = RunLog::load(&p.repo, &run).unwrap();
    let verdicts = log.verdicts();
    let (verdict, detail) = verdicts.get(UNDONE).cloned().expect("a verdict");
    assert_eq!(verdict, HostVerdict::RebootLoop, "{tag}: {detail}");
    assert!(
        detail.contains(&format!("{PATCH} still missing after 2 installs")),
        "{tag}: {detail}"
    );
    assert_eq!(
        verdicts.get(PLAIN).map(|v| v.0),
        Some(HostVerdict::Patched),
        "{tag}"
    );
    assert!(
        log.withheld
            .iter()
            .any(|w| w.patch == PATCH && w.host.as_deref() == Some(UNDONE)),
        "{tag}: {:?}",
        log.withheld
    );
    let open: usize = log
        .hosts
        .values()
        .map(|h| h.steps.iter().filter(|s| s.finished.is_none()).count())
        .sum();
    assert_eq!(open, 0, "{tag}: steps left open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_first_re_scan_found_it_missing() {
    kill_then_resume("loop-after-verify", |r| {
        is_undone_step(r, "verify", Some("verify_failed"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_second_install() {
    let mut installs = 0;
    kill_then_resume("loop-after-install", move |r| {
        if is_undone_step(r, "install", None) {
            installs += 1;
        }
        installs >= 2
    })
    .await;
}
