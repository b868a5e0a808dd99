//! Maintenance windows and hooks on the real thing: `hive rollout` (the binary) against a
//! simulated fleet (WinRM commands to winsim hosts in this process, installers copied through
//! the harness's real Samba), with windows sized in seconds on the real clock:
//! - a window closing mid-run pauses the run (exit 5, reason journaled); `hive resume` before the
//!   next window pauses again without touching a host; in the next window it finishes, and the
//!   simulator's install log has every (host, KB) exactly once;
//! - drain/undrain hooks on this machine run around every host, also for a host whose hive was
//!   killed with SIGKILL between its install and its post hook (resume undrains it, without
//!   draining it again);
//! - `hive deploy --dry-run` lists which host falls in which window and which would not fit.
//!
//! Needs the harness (`integration/test.sh`, samba).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{HivePaths, Lab, LabPatch, SimFleet};
use hive::catalog::model::InstallerRecipe;
use hive::journal::{self, RunLog, RunState};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use winsim::installer::Package;

const PRODUCT: &str = "Windows Server 2019 Datacenter";
const KB: &str = "KB5000201";

fn fleet_toml(hosts: usize, tag: &str) -> String {
    format!(
        "[[group]]\ncount = {hosts}\nname = \"{tag}{{n:02}}\"\naddress = \"127.0.0.2\"\nproduct = \"{PRODUCT}\"\n\
         edition = \"ServerDatacenter\"\nversion = \"10.0.17763\"\nubr = 5206\n"
    )
}

/// One hotfix that takes `run_ms` to install and needs no reboot.
fn lab(run_ms: u64) -> Lab {
    let mut lab = Lab::new();
    let mut recipe = InstallerRecipe::legacy_hotfix();
    recipe.needs_qchain = false;
    lab.add(LabPatch {
        id: KB,
        bulletin: "MS-W-201",
        product: PRODUCT,
        file_name: &format!("{KB}.exe"),
        package: Package::hotfix(KB)
            .file(
                r"C:\Windows\System32\window1.dll",
                "10.0.17763.6201".parse().unwrap(),
            )
            .hotfix_key()
            .duration(Duration::from_millis(run_ms)),
        recipe,
        subtype: "Security Update",
        detection: None,
    });
    lab
}

type Paths = HivePaths;

/// The inventory (every host in group `web`, the first also in `first`, plus `extra` TOML) and
/// the catalog.
fn write(fleet: &SimFleet, lab: &Lab, extra: &str) -> Paths {
    let groups = |n: usize| {
        if n == 0 {
            "\"web\", \"first\"".to_string()
        } else {
            "\"web\"".to_string()
        }
    };
    HivePaths::write(fleet, lab, groups, extra)
}

/// `hive <args> --inventory ... --repo ... --catalog ...`, output to files.
fn hive(p: &Paths, args: &[&str], n: usize) -> Child {
    p.hive(args)
        .args([
            "--reboot",
            "never",
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

fn finish(p: &Paths, mut child: Child, n: usize) -> (Option<i32>, String) {
    let status = child.wait().unwrap();
    let out = std::fs::read_to_string(p.logs.join(format!("hive-{n}.out"))).unwrap_or_default();
    let err = std::fs::read_to_string(p.logs.join(format!("hive-{n}.err"))).unwrap_or_default();
    (status.code(), format!("{out}\n--- stderr:\n{err}"))
}

/// A dated window from `a` to `b` seconds from now, in UTC.
fn window_in(now: Timestamp, a: i64, b: i64) -> String {
    let z = |s: i64| {
        (now + SignedDuration::from_secs(s))
            .to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    format!("{} - {}", z(a), z(b))
}

fn installs_per_host(fleet: &SimFleet) -> BTreeMap<String, usize> {
    fleet
        .hosts
        .iter()
        .map(|h| {
            let n = fleet
                .host(&h.name)
                .install_log()
                .iter()
                .filter(|r| r.package == KB)
                .count();
            (h.name.clone(), n)
        })
        .collect()
}

fn only_run(repo: &Path) -> String {
    let runs = journal::list_runs(repo).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].run.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_window_closing_mid_run_pauses_and_the_next_window_finishes_with_nothing_twice() {
    let fleet = SimFleet::start("windows", &fleet_toml(4, "WIN")).await;
    let lab = lab(1500);
    let now = Timestamp::now();
    let extra = format!(
        "[group.web]\nwindow = [\"{}\", \"{}\"]\nwindow_zone = \"UTC\"\n",
        window_in(now, -1, 4),
        window_in(now, 20, 120)
    );
    let p = write(&fleet, &lab, &extra);
    let installs = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        let child = hive(
            &p,
            &[
                "rollout",
                "--plan",
                "100%",
                "--parallel",
                "1",
                "--install-estimate",
                "1",
            ],
            1,
        );
        let (code, out) = finish(&p, child, 1);
        assert_eq!(code, Some(5), "the window closed: paused\n{out}");
        assert!(
            t0.elapsed() < Duration::from_secs(19),
            "the pause came too late for this test's second window ({:?})",
            t0.elapsed()
        );
        let run = only_run(&p.repo);
        let log = RunLog::load(&p.repo, &run).unwrap();
        let (state, reason) = log.state.clone().unwrap();
        assert_eq!(state, RunState::Paused);
        assert!(
            reason.contains("outside the maintenance window") && reason.contains("hive resume"),
            "{reason}"
        );
        let done_first = log.verdicts().len();
        assert!(
            (1..4).contains(&done_first),
            "{done_first} hosts done in the first window\n{out}"
        );

        // Between the windows: resume pauses again and starts no host.
        let child = hive(&p, &["resume", &run, "--install-estimate", "1"], 2);
        let (code, out) = finish(&p, child, 2);
        assert_eq!(code, Some(5), "{out}");
        assert_eq!(
            RunLog::load(&p.repo, &run).unwrap().verdicts().len(),
            done_first
        );

        // In the next window, resume finishes the run.
        while t0.elapsed() < Duration::from_secs(21) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let child = hive(&p, &["resume", &run, "--install-estimate", "1"], 3);
        let (code, out) = finish(&p, child, 3);
        assert_eq!(code, Some(0), "{out}");
        let log = RunLog::load(&p.repo, &run).unwrap();
        assert_eq!(log.state.unwrap().0, RunState::Finished);
        eprintln!("{done_first} of 4 hosts patched in the first window, the rest in the second");
    })
    .await;
    installs.unwrap();
    for (host, n) in installs_per_host(&fleet) {
        assert_eq!(n, 1, "{host}: {KB} installed {n} times");
    }
}

fn journal_records(repo: &Path, run: &str) -> Vec<Value> {
    let path = journal::run_dir(repo, run)
        .unwrap()
        .join(journal::JOURNAL_FILE);
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drain_and_undrain_run_around_every_host_even_after_kill_9_between_install_and_post_hook() {
    let fleet = SimFleet::start("hooks", &fleet_toml(4, "HOOK")).await;
    let lab = lab(800);
    let lb = lab.dir.path().join("lb.log");
    let extra = format!(
        "[group.web.hooks]\npre_host_local = \"echo drain $HIVE_HOST_NAME >> {lb}\"\n\
         post_host_local = \"echo undrain $HIVE_HOST_NAME >> {lb}\"\ntimeout = \"20s\"\n",
        lb = lb.display()
    );
    let p = write(&fleet, &lab, &extra);
    let lb2 = lb.clone();
    let killed = tokio::task::spawn_blocking(move || {
        let mut child = hive(
            &p,
            &[
                "rollout",
                "--plan",
                "100%",
                "--parallel",
                "2",
                "--install-estimate",
                "1",
            ],
            1,
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        // Kill at the first install that finished: its host is drained, its post hook not run.
        let (run, host) = loop {
            if let Some(run) = journal::list_runs(&p.repo)
                .ok()
                .and_then(|r| r.first().map(|l| l.run.clone()))
                && let Some(r) = journal_records(&p.repo, &run).iter().find(|r| {
                    r["record"] == "step" && r["step"] == "install" && r["state"] == "finished"
                })
            {
                break (run, r["host"].as_str().unwrap().to_string());
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "hive ended before an install finished"
            );
            assert!(Instant::now() < deadline, "no install finished in 60 s");
            std::thread::sleep(Duration::from_millis(2));
        };
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let at_kill = std::fs::read_to_string(&lb2).unwrap_or_default();
        assert!(at_kill.contains(&format!("drain {host}\n")), "{at_kill}");
        assert!(
            !at_kill.contains(&format!("undrain {host}\n")),
            "the post hook ran before the kill; the test proves nothing:\n{at_kill}"
        );
        let child = hive(&p, &["resume", &run, "--install-estimate", "1"], 2);
        let (code, out) = finish(&p, child, 2);
        assert_eq!(code, Some(0), "{out}");
        host
    })
    .await
    .unwrap();
    let text = std::fs::read_to_string(&lb).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for h in &fleet.hosts {
        let drain = format!("drain {}", h.name);
        let undrain = format!("undrain {}", h.name);
        let d: Vec<usize> = (0..lines.len()).filter(|i| lines[*i] == drain).collect();
        let u: Vec<usize> = (0..lines.len()).filter(|i| lines[*i] == undrain).collect();
        assert_eq!((d.len(), u.len()), (1, 1), "{}: {lines:?}", h.name);
        assert!(
            d[0] < u[0],
            "{}: undrained before drained: {lines:?}",
            h.name
        );
    }
    eprintln!("killed with {killed} drained after its install; resume undrained it");
    for (host, n) in installs_per_host(&fleet) {
        assert_eq!(n, 1, "{host}: {KB} installed {n} times");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dry_run_lists_each_hosts_window_and_which_would_not_fit() {
    let fleet = SimFleet::start("drywin", &fleet_toml(2, "DRY")).await;
    let lab = lab(100);
    let now = Timestamp::now();
    let extra = format!(
        "[group.first]\nwindow = [\"{}\"]\nwindow_zone = \"UTC\"\n\n[group.web]\nwindow = [\"{}\"]\nwindow_zone = \"Europe/Berlin\"\n",
        window_in(now, 3600, 3610),
        window_in(now, -60, 7200)
    );
    let p = write(&fleet, &lab, &extra);
    let (code, out) = tokio::task::spawn_blocking(move || {
        let child = hive(&p, &["deploy", "--dry-run", "--install-estimate", "30"], 1);
        finish(&p, child, 1)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Maintenance windows (now "), "{out}");
    let line = |host: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(host) && l.contains("window"))
            .unwrap_or_else(|| panic!("no window line for {host}:\n{out}"))
            .to_string()
    };
    let first = line("DRY01");
    assert!(
        first.contains("next window") && first.contains("(UTC)") && first.contains("WOULD NOT FIT"),
        "{first}"
    );
    let second = line("DRY02");
    assert!(
        second.contains("in window")
            && second.contains("(Europe/Berlin)")
            && second.contains("fits, starts now"),
        "{second}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_for_window_keeps_the_run_waiting_and_says_for_what_and_until_when() {
    let fleet = SimFleet::start("winwait", &fleet_toml(3, "WAIT")).await;
    let lab = lab(1500);
    let now = Timestamp::now();
    let extra = format!(
        "[group.web]\nwindow = [\"{}\", \"{}\"]\nwindow_zone = \"UTC\"\n",
        window_in(now, -1, 3),
        window_in(now, 10, 120)
    );
    let p = write(&fleet, &lab, &extra);
    let out = tokio::task::spawn_blocking(move || {
        let child = hive(
            &p,
            &[
                "rollout",
                "--plan",
                "100%",
                "--parallel",
                "1",
                "--install-estimate",
                "1",
                "--wait-for-window",
            ],
            1,
        );
        let (code, out) = finish(&p, child, 1);
        assert_eq!(code, Some(0), "one invocation waits and finishes\n{out}");
        let run = only_run(&p.repo);
        assert_eq!(
            RunLog::load(&p.repo, &run).unwrap().state.unwrap().0,
            RunState::Finished
        );
        out
    })
    .await
    .unwrap();
    let waiting: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["record"] == "waiting")
        .collect();
    assert!(!waiting.is_empty(), "no waiting line:\n{out}");
    let what = waiting[0]["what"].as_str().unwrap();
    assert!(
        what.starts_with("for a maintenance window") && what.contains(" opens "),
        "{what}"
    );
    for (host, n) in installs_per_host(&fleet) {
        assert_eq!(n, 1, "{host}: {KB} installed {n} times");
    }
}

/// The same weekly window, in each host's own zone (no `window_zone`: the default): a host whose
/// clock is in it is patched, one in a zone where it is hours away waits, and one whose Windows
/// zone hive does not know is not started, the reason naming host and zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_weekly_window_opens_on_each_hosts_own_clock() {
    let zones = [
        ("ZONE01", "UTC"),
        ("ZONE02", "Tokyo Standard Time"),
        ("ZONE03", "Olympus Mons Standard Time"),
    ];
    let fleet_text: String = zones
        .iter()
        .enumerate()
        .map(|(n, (name, zone))| {
            format!(
                "[[host]]\nname = \"{name}\"\naddress = \"127.0.0.{}\"\nproduct = \"{PRODUCT}\"\n\
                 edition = \"ServerDatacenter\"\nversion = \"10.0.17763\"\nubr = 5206\n\
                 time_zone = \"{zone}\"\n\n",
                n + 2
            )
        })
        .collect();
    let fleet = SimFleet::start("hostzones", &fleet_text).await;
    let lab = lab(100);
    // Open now on a UTC clock for ten minutes; on a Tokyo clock (UTC+9, no DST) that is nine
    // hours away.
    let start = Timestamp::now() - SignedDuration::from_mins(1);
    let at = |t: Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC);
    let window = format!(
        "{} {}-{}",
        at(start).strftime("%a"),
        at(start).strftime("%H:%M"),
        at(start + SignedDuration::from_mins(11)).strftime("%H:%M")
    );
    let extra = format!("[group.web]\nwindow = [\"{window}\"]\n");
    let p = write(&fleet, &lab, &extra);
    let (code, out, log) = tokio::task::spawn_blocking(move || {
        let dry = hive(&p, &["deploy", "--dry-run", "--install-estimate", "1"], 1);
        let (code, dry_out) = finish(&p, dry, 1);
        assert_eq!(code, Some(0), "{dry_out}");
        let child = hive(
            &p,
            &["rollout", "--plan", "100%", "--install-estimate", "1"],
            2,
        );
        let (code, out) = finish(&p, child, 2);
        let log = RunLog::load(&p.repo, &only_run(&p.repo)).unwrap();
        (code, format!("{dry_out}\n--- rollout:\n{out}"), log)
    })
    .await
    .unwrap();
    let line = |host: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("  {host}  ")))
            .unwrap_or_else(|| panic!("no window line for {host}:\n{out}"))
            .to_string()
    };
    assert!(
        line("ZONE01").contains(&format!(
            "in window `{window}` (Etc/UTC (UTC, the host's zone))"
        )),
        "{out}"
    );
    assert!(
        line("ZONE02").contains("next window") && line("ZONE02").contains("Asia/Tokyo"),
        "{out}"
    );
    assert!(
        line("ZONE03").contains("WOULD NOT START")
            && line("ZONE03").contains("`Olympus Mons Standard Time`"),
        "{out}"
    );
    assert_eq!(code, Some(5), "ZONE02 waits for its window: paused\n{out}");
    let verdicts = log.verdicts();
    assert_eq!(
        verdicts.get("ZONE01").map(|v| v.0),
        Some(hive::rollout::HostVerdict::Patched),
        "{verdicts:?}"
    );
    assert!(!verdicts.contains_key("ZONE02"), "{verdicts:?}");
    let (verdict, detail) = &verdicts["ZONE03"];
    assert_eq!(*verdict, hive::rollout::HostVerdict::Skipped);
    assert!(
        detail.contains("ZONE03") && detail.contains("`Olympus Mons Standard Time`"),
        "{detail}"
    );
    let installs = installs_per_host(&fleet);
    assert_eq!(
        (installs["ZONE01"], installs["ZONE02"], installs["ZONE03"]),
        (1, 0, 0)
    );
}
