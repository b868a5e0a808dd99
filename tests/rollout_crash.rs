//! Crash test of the real thing: `hive rollout` (the binary) against a simulated Windows fleet —
//! WinRM commands to winsim hosts in this process, installers copied through the harness's real
//! Samba — SIGKILLed at many distinct points (during a copy, right after an install started, with
//! an installer still running on the host, right after an install finished, while a reboot was
//! sent, while waiting for a host to come back, between waves, ...), then `hive resume` until the
//! run ends. Afterwards:
//! - every host is verified at the patched versions by a fresh scan;
//! - the simulator's install log has each (host, KB) exactly once: no installer ran twice, even
//!   where the kill left it running on the host or left its files waiting for the reboot;
//! - the journal parses, every started step has an end, and each host is done exactly once.
//!
//! The kill points are hit by watching the journal (records are fsynced before the step they
//! announce goes on), not by sleeping. Needs the harness (`integration/test.sh samba`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{FAST_REBOOTS, HivePaths, Lab, LabPatch, SimFleet};
use hive::catalog::model::{DetectionRule, InstallerRecipe, VersionOp, WhenMissing};
use hive::journal::{self, Record, RunLog};
use hive::remote::Connector as _;
use serde_json::Value;
use winsim::installer::Package;

const PRODUCT: &str = "Windows Server 2019 Datacenter";
const HOSTS: usize = 16;
const PATCHES: [&str; 3] = ["KB5000101", "KB5000102", "KB5000103"];
const DLL1: &str = r"C:\Windows\System32\crash1.dll";
const DLL2: &str = r"C:\Windows\System32\crash2.dll";
const DLL3: &str = r"C:\Windows\System32\crash3.dll";
const V1: &str = "10.0.17763.6101";
const V2: &str = "10.0.17763.6102";
const V3: &str = "10.0.17763.6103";
const OLD: &str = "10.0.17763.5000";
const PLAN: &str = "canary(group=canary) -> 50% -> 100%";

fn fleet_toml() -> String {
    format!(
        "[[group]]\ncount = {HOSTS}\nname = \"CRASH{{n:02}}\"\naddress = \"127.0.0.2\"\nproduct = \"{PRODUCT}\"\n\
         edition = \"ServerDatacenter\"\nversion = \"10.0.17763\"\nubr = 5206\n\
         files = [{{ path = '{DLL1}', version = \"{OLD}\" }}, {{ path = '{DLL3}', version = \"{OLD}\" }}]\n\
         reboot = {{ downtime_ms = 1500 }}\n"
    )
}

fn file_rule(path: &str, version: &str) -> DetectionRule {
    DetectionRule::FileVersion {
        path: path.into(),
        op: VersionOp::AtLeast,
        version: version.parse().unwrap(),
        date: None,
        size: None,
        checksum: None,
        when_missing: WhenMissing::NotInstalled,
    }
}

/// Three legacy hotfixes. Two replace DLLs in use (their new files wait in
/// `PendingFileRenameOperations` until the reboot, and the scan looks at the file version, so
/// before the reboot the scan still says missing: the duplicate-install trap); one replaces a
/// file not in use and is detected by its KB (installed at once: the forgotten-reboot trap).
fn lab() -> Lab {
    let mut lab = Lab::new();
    let run_ms = Duration::from_millis(700);
    let patches = [
        (
            PATCHES[0],
            Package::hotfix(PATCHES[0])
                .file_in_use(DLL1, V1.parse().unwrap())
                .hotfix_key()
                .reboot_required(true)
                .exit_code(3010),
            Some(file_rule(DLL1, V1)),
        ),
        (
            PATCHES[1],
            Package::hotfix(PATCHES[1]).file(DLL2, V2.parse().unwrap()),
            None,
        ),
        (
            PATCHES[2],
            Package::hotfix(PATCHES[2])
                .file_in_use(DLL3, V3.parse().unwrap())
                .reboot_required(true)
                .exit_code(3010),
            Some(file_rule(DLL3, V3)),
        ),
    ];
    // Server 2019 needs no qchain: each package orders its own file replacements.
    let mut recipe = InstallerRecipe::legacy_hotfix();
    recipe.needs_qchain = false;
    for (id, package, detection) in patches {
        lab.add(LabPatch {
            id,
            bulletin: &format!("MS-C-{}", &id[6..]),
            product: PRODUCT,
            file_name: &format!("{id}.exe"),
            package: package.duration(run_ms),
            recipe: recipe.clone(),
            subtype: "Security Update",
            detection,
        });
    }
    lab
}

/// The inventory hive reads (every host on 127.0.0.1 with its own WinRM port, its C: drive a
/// folder of the Samba share; two canaries) and the catalog of `lab`.
fn write_paths(fleet: &SimFleet, lab: &Lab) -> HivePaths {
    let canary = |n: usize| if n < 2 { "\"canary\"" } else { "" }.to_string();
    HivePaths::write(fleet, lab, canary, "")
}

/// `hive rollout ...` (no run yet) or `hive resume RUN ...`, output to files (NDJSON on stdout).
fn hive(p: &HivePaths, run: Option<&str>, n: usize) -> Child {
    let mut c = match run {
        None => p.hive(&["rollout", "--plan", PLAN]),
        Some(r) => p.hive(&["resume", r]),
    };
    c.args(["--parallel", "8"])
        .args(FAST_REBOOTS)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(p.logs.join(format!("hive-{n}.out"))).unwrap())
        .stderr(std::fs::File::create(p.logs.join(format!("hive-{n}.err"))).unwrap());
    c.spawn().expect("hive runs")
}

/// One place to kill hive: a journal record to wait for, then a delay.
struct KillPoint {
    name: &'static str,
    hit: fn(&Value, &JournalSoFar) -> bool,
    after_ms: u64,
    /// A point between waves: only reachable while this wave has not started.
    before_wave: Option<u64>,
}

/// What the journal said before the record being looked at (for "between waves").
#[derive(Default)]
struct JournalSoFar {
    waves_started: BTreeSet<u64>,
}

impl JournalSoFar {
    fn note(&mut self, rec: &Value) {
        if rec["record"] == "wave"
            && rec["state"] == "started"
            && let Some(w) = rec["wave"].as_u64()
        {
            self.waves_started.insert(w);
        }
    }
}

fn is_step(r: &Value, step: &str, state: &str) -> bool {
    r["record"] == "step" && r["step"] == step && r["state"] == state
}

fn is_phase(r: &Value, phase: &str, state: &str) -> bool {
    is_step(r, "reboot", state) && r["phase"] == phase
}

fn kill_points() -> Vec<KillPoint> {
    vec![
        KillPoint {
            name: "copy: an installer's Stage started",
            hit: |r, _| is_step(r, "stage", "started"),
            after_ms: 0,
            before_wave: None,
        },
        KillPoint {
            name: "install: right after its Started record",
            hit: |r, _| is_step(r, "install", "started"),
            after_ms: 0,
            before_wave: None,
        },
        KillPoint {
            name: "install: mid-run (the installer keeps running on the host)",
            hit: |r, _| is_step(r, "install", "started"),
            after_ms: 300,
            before_wave: None,
        },
        KillPoint {
            name: "resume: right after an interrupted install was settled",
            hit: |r, _| {
                is_step(r, "install", "finished")
                    && matches!(
                        r["outcome"].as_str(),
                        Some("landed_before_crash" | "did_not_complete")
                    )
            },
            after_ms: 0,
            before_wave: None,
        },
        KillPoint {
            name: "install: right after its Finished record (files pending the reboot)",
            hit: |r, _| {
                is_step(r, "install", "finished")
                    && matches!(r["outcome"].as_str(), Some("ok" | "reboot_required"))
            },
            after_ms: 0,
            before_wave: None,
        },
        KillPoint {
            name: "reboot: shutdown phase started",
            hit: |r, _| is_phase(r, "shutdown", "started"),
            after_ms: 0,
            before_wave: None,
        },
        KillPoint {
            name: "reboot wait: host down, waiting for its port",
            hit: |r, _| is_phase(r, "port", "started"),
            after_ms: 0,
            before_wave: None,
        },
        KillPoint {
            name: "resumed reboot wait: settling a reboot found in flight",
            hit: |r, _| is_phase(r, "resume", "started"),
            after_ms: 0,
            before_wave: None,
        },
        KillPoint {
            name: "between waves: canaries passed, fleet wave not started",
            hit: |r, j| {
                r["record"] == "wave"
                    && r["wave"] == 0
                    && r["state"] == "passed"
                    && !j.waves_started.contains(&1)
            },
            after_ms: 0,
            before_wave: Some(1),
        },
        KillPoint {
            name: "reboot wait: host back (login ok), not settled",
            hit: |r, _| is_phase(r, "login", "finished"),
            after_ms: 0,
            before_wave: None,
        },
        KillPoint {
            name: "verify: re-scan started",
            hit: |r, _| is_step(r, "verify", "started"),
            after_ms: 0,
            before_wave: None,
        },
        KillPoint {
            name: "a host's verdict just journaled",
            hit: |r, _| r["record"] == "host",
            after_ms: 0,
            before_wave: None,
        },
        KillPoint {
            name: "between waves: 50% wave passed, 100% wave not started",
            hit: |r, j| {
                r["record"] == "wave"
                    && r["wave"] == 1
                    && r["state"] == "passed"
                    && !j.waves_started.contains(&2)
            },
            after_ms: 0,
            before_wave: Some(2),
        },
        KillPoint {
            name: "install in the last wave: mid-run",
            hit: |r, _| is_step(r, "install", "started"),
            after_ms: 250,
            before_wave: None,
        },
    ]
}

/// The record a kill followed, in a few words.
fn in_flight(rec: &Value) -> String {
    let word = |k: &str| rec[k].as_str().unwrap_or("").to_string();
    match rec["record"].as_str() {
        Some("wave") => format!("wave {} {}", rec["wave"], word("state")),
        Some("host") => format!("{} verdict {}", word("host"), word("verdict")),
        _ => {
            let what = rec["phase"]
                .as_str()
                .or(rec["patch"].as_str())
                .unwrap_or("");
            format!(
                "{} {} {what} {} {}",
                word("host"),
                word("step"),
                word("state"),
                word("outcome")
            )
        }
    }
}

fn journal_path(repo: &Path, run: &str) -> PathBuf {
    journal::runs_dir(repo)
        .join(run)
        .join(journal::JOURNAL_FILE)
}

/// Follow the journal from `offset`; kill the child once `point` is hit. Returns what was in
/// flight (the matching record) or `None` when the child ended first.
fn watch_and_kill(
    child: &mut Child,
    repo: &Path,
    run: &mut Option<String>,
    point: &KillPoint,
    offset: &mut u64,
    so_far: &mut JournalSoFar,
) -> Option<String> {
    let mut pending = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if run.is_none() {
            *run = journal::list_runs(repo)
                .ok()
                .and_then(|r| r.first().map(|l| l.run.clone()));
        }
        if let Some(r) = run.as_deref()
            && let Ok(mut f) = std::fs::File::open(journal_path(repo, r))
        {
            use std::io::Seek as _;
            f.seek(std::io::SeekFrom::Start(*offset)).unwrap();
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).unwrap();
            *offset += buf.len() as u64;
            pending.extend_from_slice(&buf);
            while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                let Ok(rec) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                if (point.hit)(&rec, so_far) {
                    if point.after_ms > 0 {
                        std::thread::sleep(Duration::from_millis(point.after_ms));
                    }
                    if child.try_wait().unwrap().is_some() {
                        return None;
                    }
                    child.kill().unwrap(); // SIGKILL
                    child.wait().unwrap();
                    // Catch up on what the child wrote after the record, so the next child's
                    // records are the next ones looked at.
                    let rest = std::fs::read(journal_path(repo, r)).unwrap();
                    pending.extend_from_slice(rest.get(*offset as usize..).unwrap_or(&[]));
                    *offset = rest.len() as u64;
                    for line in pending.split(|b| *b == b'\n') {
                        if let Ok(rec) = serde_json::from_slice::<Value>(line) {
                            so_far.note(&rec);
                        }
                    }
                    return Some(in_flight(&rec));
                }
                so_far.note(&rec);
            }
        }
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        assert!(
            Instant::now() < deadline,
            "kill point `{}` not reached in 60 s",
            point.name
        );
        std::thread::sleep(Duration::from_millis(3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_at_many_points_then_resume_every_host_right_no_installer_twice() {
    let started = Instant::now();
    let fleet = SimFleet::start("rollcrash", &fleet_toml()).await;
    let lab = lab();
    let p = write_paths(&fleet, &lab);

    // The orchestrator runs as child processes; the fleet keeps serving from this process's
    // runtime meanwhile (the watcher blocks a worker thread, the others serve).
    let repo = p.repo.clone();
    let (run, kills, children) = tokio::task::spawn_blocking(move || {
        let mut run: Option<String> = None;
        let mut offset = 0u64;
        let mut so_far = JournalSoFar::default();
        let mut kills: Vec<(String, String)> = Vec::new();
        let mut children = 0;
        for point in kill_points() {
            if let Some(next) = point.before_wave
                && so_far.waves_started.contains(&next)
            {
                eprintln!("kill point passed by already: {}", point.name);
                continue;
            }
            children += 1;
            let mut child = hive(&p, run.as_deref(), children);
            match watch_and_kill(
                &mut child,
                &repo,
                &mut run,
                &point,
                &mut offset,
                &mut so_far,
            ) {
                Some(what) => kills.push((point.name.to_string(), what)),
                None => {
                    eprintln!("kill point missed (hive ended first): {}", point.name);
                    let ended = run
                        .as_deref()
                        .and_then(|r| RunLog::load(&repo, r).ok())
                        .and_then(|l| l.state)
                        .is_some_and(|s| s.0 == journal::RunState::Finished);
                    if ended {
                        break;
                    }
                }
            }
            // After every kill the journal loads.
            if let Some(r) = run.as_deref() {
                RunLog::load(&repo, r).unwrap_or_else(|e| panic!("after `{}`: {e}", point.name));
            }
        }
        // The last resume runs to the end.
        let run = run.expect("a run was created");
        children += 1;
        let mut child = hive(&p, Some(&run), children);
        let status = child.wait().unwrap();
        let err = std::fs::read_to_string(p.logs.join(format!("hive-{children}.err"))).unwrap();
        let out = std::fs::read_to_string(p.logs.join(format!("hive-{children}.out"))).unwrap();
        assert!(
            status.success(),
            "the final resume failed ({status}):\n{err}\n{}",
            out.lines().rev().take(30).collect::<Vec<_>>().join("\n")
        );
        (run, kills, children)
    })
    .await
    .unwrap();

    eprintln!(
        "{} kills landed over {children} hive processes:",
        kills.len()
    );
    for (name, what) in &kills {
        eprintln!("  {name:<70} in flight: {what}");
    }
    let distinct: BTreeSet<&str> = kills.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        distinct.len() >= 10,
        "only {} distinct kill points landed: {distinct:#?}",
        distinct.len()
    );

    // Zero duplicate installs, on the simulator's own install log.
    for host in &fleet.hosts {
        let h = fleet.host(&host.name);
        let log = h.install_log();
        let mut per_kb: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &log {
            *per_kb.entry(r.package.as_str()).or_default() += 1;
        }
        for kb in PATCHES {
            assert_eq!(
                per_kb.get(kb).copied().unwrap_or(0),
                1,
                "{}: {kb} installed {} times: {log:#?}",
                host.name,
                per_kb.get(kb).copied().unwrap_or(0)
            );
        }
        assert_eq!(log.len(), PATCHES.len(), "{}: {log:#?}", host.name);
        assert!(h.reboot_count() >= 1, "{}: never rebooted", host.name);
    }

    // Every host verified at the right versions, by a fresh scan of its own.
    let probe = hive::scan::run::PreparedProbe::new(&lab.catalog);
    for host in &fleet.hosts {
        let mut target = hive::remote::NetworkConnector::default()
            .open(host, &fleet.secret)
            .unwrap();
        let scan = hive::scan::run::scan_target(
            &mut *target,
            &lab.catalog,
            &probe,
            Duration::from_secs(20),
            hive::scan::run::FileSource::Probe,
        )
        .await
        .unwrap_or_else(|e| panic!("{}: re-scan: {e}", host.name));
        for kb in PATCHES {
            let v = scan.verdicts.iter().find(|v| &*v.patch == kb).unwrap();
            assert_eq!(
                v.status,
                hive::scan::evaluate::Status::Installed,
                "{}: {kb}: {}",
                host.name,
                v.evidence
            );
        }
        assert!(
            scan.facts.pending_reboot.is_empty(),
            "{}: {:?}",
            host.name,
            scan.facts.pending_reboot
        );
        let sim = fleet.host(&host.name);
        for (dll, v) in [(DLL1, V1), (DLL2, V2), (DLL3, V3)] {
            assert_eq!(
                sim.file_version(dll).map(|x| x.to_string()),
                Some(v.to_string()),
                "{} {dll}",
                host.name
            );
        }
    }

    // The journal: parses, the run finished, every step that started has an end, each host has
    // exactly one verdict (patched), and one successful install per patch.
    let repo = lab.repo.root();
    let log = RunLog::load(repo, &run).unwrap();
    assert_eq!(
        log.state.as_ref().map(|s| s.0),
        Some(journal::RunState::Finished),
        "{:?}",
        log.state
    );
    let bytes = std::fs::read(journal_path(repo, &run)).unwrap();
    let (records, torn) = journal::parse_records(&bytes, Path::new("journal")).unwrap();
    assert_eq!(torn, None);
    let mut verdicts: BTreeMap<String, Vec<hive::rollout::HostVerdict>> = BTreeMap::new();
    for r in &records {
        if let Record::Host { host, verdict, .. } = r {
            verdicts.entry(host.clone()).or_default().push(*verdict);
        }
    }
    assert_eq!(log.hosts.len(), HOSTS);
    for (name, h) in &log.hosts {
        assert_eq!(
            verdicts.get(name).map(Vec::as_slice),
            Some(&[hive::rollout::HostVerdict::Patched][..]),
            "{name}: verdict records"
        );
        let open: Vec<_> = h.steps.iter().filter(|s| s.finished.is_none()).collect();
        assert!(open.is_empty(), "{name}: steps never finished: {open:#?}");
        for kb in PATCHES {
            let ok = h
                .steps
                .iter()
                .filter(
                    |s| matches!(&s.step, hive::events::Step::Install { patch, .. } if patch == kb),
                )
                .filter(|s| s.finished.as_ref().is_some_and(|e| e.ok))
                .count();
            assert_eq!(ok, 1, "{name}: {kb}: {:#?}", h.steps);
        }
    }
    // The resume paths this is about were taken: installs settled from the host's evidence
    // (an installer still running waited for), reboots found in flight.
    let mut settled: BTreeMap<String, usize> = BTreeMap::new();
    for h in log.hosts.values() {
        for s in &h.steps {
            let Some(end) = &s.finished else { continue };
            let key = match &s.step {
                hive::events::Step::Install { .. }
                    if matches!(
                        end.outcome.as_str(),
                        "landed_before_crash" | "did_not_complete"
                    ) =>
                {
                    let waited = if end.detail.contains("waited for the installer") {
                        " (after waiting for it)"
                    } else {
                        ""
                    };
                    format!("install {}{waited}", end.outcome)
                }
                hive::events::Step::Reboot {
                    phase: hive::events::RebootPhase::Resume,
                } => {
                    format!("reboot in flight: {}", end.outcome)
                }
                _ => continue,
            };
            *settled.entry(key).or_default() += 1;
        }
    }
    eprintln!("settled on resume: {settled:#?}");
    assert!(
        settled
            .keys()
            .any(|k| k.starts_with("install landed_before_crash")),
        "{settled:?}"
    );
    assert!(
        settled.keys().any(|k| k.starts_with("reboot in flight")),
        "{settled:?}"
    );
    let took = started.elapsed();
    eprintln!(
        "{HOSTS} hosts x {} patches, {} kills, {children} hive runs: {took:?}",
        PATCHES.len(),
        kills.len()
    );
}

/// The journal's records so far, parsed (a torn last line is left out).
fn journal_records(repo: &Path, run: &str) -> Vec<Value> {
    let bytes = std::fs::read(journal_path(repo, run)).unwrap_or_default();
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect()
}

/// What names one step of one host in the journal: its host, kind, patch and reboot phase.
fn step_key(r: &Value) -> String {
    format!("{} {} {} {}", r["host"], r["step"], r["patch"], r["phase"])
}

/// Ctrl-C (SIGINT) to a running `hive rollout` during the canary wave: the hosts in flight end
/// the step they are in and journal it, no host starts after it, and hive exits 130 as the
/// README's exit-code table says; `hive resume` then finishes the run (exit 0) with every
/// installer run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ctrl_c_starts_no_new_host_and_resume_finishes_the_run() {
    let fleet = SimFleet::start("rollint", &fleet_toml()).await;
    let lab = lab();
    let p = write_paths(&fleet, &lab);

    let (run, signalled_ms) = tokio::task::spawn_blocking(move || {
        let mut child = hive(&p, None, 1);
        let deadline = Instant::now() + Duration::from_secs(60);
        // Wait for a canary's first install to start: the canaries are in flight, the rest of
        // the fleet waits for the next wave.
        let run = loop {
            let run = journal::list_runs(&p.repo)
                .ok()
                .and_then(|r| r.first().map(|l| l.run.clone()));
            if let Some(run) = run
                && journal_records(&p.repo, &run)
                    .iter()
                    .any(|r| is_step(r, "install", "started"))
            {
                break run;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "hive ended before any install started"
            );
            assert!(Instant::now() < deadline, "no install started in 60 s");
            std::thread::sleep(Duration::from_millis(3));
        };
        let signalled_ms = hive::time::now_ms();
        // SAFETY: kill(2) on our own child's pid, which it keeps until we wait for it.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
        let status = child.wait().unwrap();
        let err = std::fs::read_to_string(p.logs.join("hive-1.err")).unwrap();
        assert_eq!(status.code(), Some(130), "after Ctrl-C ({status}):\n{err}");
        assert!(err.contains("no new host starts"), "{err}");

        // The journal loads; every step that started has its end; nothing started after the
        // signal but the steps of hosts already in flight.
        RunLog::load(&p.repo, &run).unwrap();
        let records = journal_records(&p.repo, &run);
        let mut open: BTreeMap<String, u64> = BTreeMap::new();
        let mut hosts_seen: BTreeMap<String, u64> = BTreeMap::new();
        for r in records.iter().filter(|r| r["record"] == "step") {
            let at = r["at_ms"].as_u64().unwrap();
            let host = r["host"].as_str().unwrap().to_string();
            hosts_seen.entry(host).or_insert(at);
            match r["state"].as_str() {
                Some("started") => {
                    open.insert(step_key(r), at);
                }
                Some("finished") => {
                    open.remove(&step_key(r));
                }
                _ => {}
            }
        }
        assert!(open.is_empty(), "steps left without an end: {open:#?}");
        let late: Vec<_> = hosts_seen
            .iter()
            .filter(|(_, first)| **first > signalled_ms + 250)
            .collect();
        assert!(late.is_empty(), "hosts started after Ctrl-C: {late:?}");
        assert!(
            hosts_seen.len() < HOSTS,
            "every host started: {hosts_seen:?}"
        );
        let last_run = records.iter().rev().find(|r| r["record"] == "run").unwrap();
        assert_eq!(last_run["state"], "stopped", "{last_run}");
        eprintln!(
            "Ctrl-C with {} of {HOSTS} hosts started; their steps ended and were journaled",
            hosts_seen.len()
        );

        // `hive resume` finishes the run.
        let mut child = hive(&p, Some(&run), 2);
        let status = child.wait().unwrap();
        let err = std::fs::read_to_string(p.logs.join("hive-2.err")).unwrap();
        assert_eq!(status.code(), Some(0), "resume ({status}):\n{err}");
        (run, signalled_ms)
    })
    .await
    .unwrap();

    let log = RunLog::load(lab.repo.root(), &run).unwrap();
    assert_eq!(
        log.state.as_ref().map(|s| s.0),
        Some(journal::RunState::Finished)
    );
    assert_eq!(log.hosts.len(), HOSTS);
    for host in &fleet.hosts {
        let installs = fleet.host(&host.name).install_log();
        let mut per_kb: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &installs {
            *per_kb.entry(r.package.as_str()).or_default() += 1;
        }
        for kb in PATCHES {
            assert_eq!(
                per_kb.get(kb).copied(),
                Some(1),
                "{}: {kb} (Ctrl-C at {signalled_ms}): {installs:#?}",
                host.name
            );
        }
    }
}
