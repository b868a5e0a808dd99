//! The HTML report in a real browser: Debian's Chromium (headless, through the harness's wrapper,
//! which keeps it off the network) loads the report `hive report RUN -o html` made, and the test
//! reads the DOM the report's script drew.
//!
//! - A rollout of the simulated fleet (`hive demo`, with its faulty hosts): the headline counts
//!   match the journal, the failed host's evidence is there, the matrix cell of a patch still
//!   missing holds the scan's evidence, and the group and verdict filters (kept in the address's
//!   #fragment) draw only matching hosts. A screenshot is kept under target/tmp/report_browser/.
//! - 10,000 hosts from a journal written here: the file stays small, renders, and filters; host
//!   names that are markup render as text and run nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use hive::events::{Event, RebootPhase, Step, StepOutcome, StepState};
use hive::journal::{Record, RunHeader, RunLog, RunState, WaveState};
use hive::rollout::report::host_reports;
use hive::rollout::{HostEvidence, HostVerdict, PatchEvidence, RolloutOptions, Wave};
use hive::scan::evaluate::Status;

/// The harness's headless Chromium, or a loud failure naming the harness.
fn chromium() -> PathBuf {
    PathBuf::from(std::env::var("HIVE_TEST_CHROMIUM").unwrap_or_else(|_| {
        panic!(
            "HIVE_TEST_CHROMIUM is not set: run this test through integration/test.sh (it installs Debian's chromium)"
        )
    }))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn hive(args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_hive")).args(args))
}

/// The DOM after the report's script ran, for `file` opened at `#fragment`.
fn dump_dom(file: &Path, fragment: &str) -> String {
    let url = format!("file://{}#{fragment}", file.display());
    let out = run(Command::new(chromium()).arg("--dump-dom").arg(url));
    String::from_utf8(out.stdout).expect("the DOM is UTF-8")
}

fn screenshot(file: &Path, png: &Path, size: &str) {
    let url = format!("file://{}", file.display());
    run(Command::new(chromium())
        .arg(format!("--window-size={size}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(url));
    let bytes = std::fs::read(png).expect("the screenshot was written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{png:?}"
    );
}

/// Attribute and text escapes undone, to look for evidence text as a reader sees it.
fn plain(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The element that starts with `start`, up to its closing `end`.
fn element<'a>(dom: &'a str, start: &str, end: &str) -> &'a str {
    let from = dom
        .find(start)
        .unwrap_or_else(|| panic!("no `{start}` in the DOM"));
    let len = dom[from..].find(end).expect("the element closes") + end.len();
    &dom[from..from + len]
}

/// The headline number for `label`.
fn headline(dom: &str, label: &str) -> usize {
    let e = element(
        dom,
        &format!("data-count=\"{label}\"><span class=\"n\">"),
        "</span>",
    );
    e.split("class=\"n\">")
        .nth(1)
        .and_then(|t| t.strip_suffix("</span>"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no number in {e}"))
}

/// The matrix rows drawn (`<tr data-host=... data-verdict=...>`), as (host, verdict, row HTML).
fn matrix_rows(dom: &str) -> Vec<(String, String, String)> {
    let matrix = element(dom, "<table class=\"matrix\">", "</table>");
    matrix
        .split("<tr data-host=\"")
        .skip(1)
        .map(|row| {
            let host = row.split('"').next().unwrap_or_default().to_string();
            let verdict = row
                .split("data-verdict=\"")
                .nth(1)
                .and_then(|t| t.split('"').next())
                .unwrap_or_default()
                .to_string();
            (host, verdict, row.to_string())
        })
        .collect()
}

/// The kept demo folder, removed when the test ends however it ends.
struct Kept(PathBuf);

impl Drop for Kept {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report_browser");
    std::fs::create_dir_all(&dir).expect("the artifact folder");
    dir
}

#[test]
fn a_rollout_of_the_simulated_fleet_reads_in_chromium() {
    let chromium = chromium();
    assert!(chromium.exists(), "{chromium:?}");
    // 3 canaries + 48 hosts: CANARY01's update leaves W3SVC stopped (unhealthy, its update
    // withheld), WEB014's installer hangs (failed), WEB030 never returns from its reboot, WEB048's
    // connection resets.
    let out = hive(&[
        "demo",
        "--hosts",
        "48",
        "--reboot-ms",
        "300",
        "--parallel",
        "16",
        "--keep",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let kept = Kept(PathBuf::from(
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("kept "))
            .unwrap_or_else(|| panic!("the demo names the folder it kept:\n{stdout}")),
    ));
    let repo = kept.0.join("repo");
    let runs: Vec<_> = std::fs::read_dir(repo.join("runs"))
        .expect("runs/")
        .map(|e| e.expect("a run").file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run_id = &runs[0];

    let html = hive(&[
        "report",
        run_id,
        "--repo",
        repo.to_str().expect("a UTF-8 path"),
        "--catalog",
        kept.0.join("catalog.json").to_str().expect("a UTF-8 path"),
        "--output",
        "html",
    ])
    .stdout;
    let file = artifacts().join("rollout.html");
    std::fs::write(&file, &html).expect("the report is written");
    let text = String::from_utf8(html).expect("UTF-8");
    for remote in ["http://", "https://", "//cdn", "@import"] {
        assert!(
            !text.contains(remote),
            "the report fetches nothing: {remote}"
        );
    }

    // The journal's own verdicts, to compare with what the browser shows.
    let log = RunLog::load(&repo, run_id).expect("the journal reads");
    let reports = host_reports(&log);
    let count = |v: &str| reports.iter().filter(|r| r.verdict == v).count();
    assert_eq!(reports.len(), 51);
    assert_eq!(
        reports
            .iter()
            .find(|r| r.host == "WEB014")
            .map(|r| r.verdict.as_str()),
        Some("failed")
    );
    // The health gate: CANARY01 patched but unhealthy, its update withheld from the fleet.
    assert_eq!(
        reports
            .iter()
            .find(|r| r.host == "CANARY01")
            .map(|r| r.verdict.as_str()),
        Some("unhealthy")
    );
    assert!(stdout.contains("withheld: KB5035855"), "{stdout}");

    let dom = dump_dom(&file, "");
    for word in [
        "patched",
        "failed",
        "unreachable",
        "skipped",
        "nothing to do",
    ] {
        assert_eq!(headline(&dom, word), count(word), "the {word} count");
    }
    assert!(count("patched") >= 25, "{}", count("patched"));
    assert!(dom.contains("51 of 51 hosts"), "the filter line");

    // The hosts that need attention, with the reason in words: the hung installer among them.
    let attention = element(&dom, "<table class=\"attention\">", "</table>");
    let attention = plain(attention);
    assert!(attention.contains("WEB014"), "{attention}");
    assert!(
        attention.contains("The installer of KB5035849 failed (timed out)"),
        "{attention}"
    );
    // Its matrix row: failed, its update's CVEs marked failed.
    let rows = matrix_rows(&dom);
    assert_eq!(rows.len(), 51);
    let (_, verdict, row) = rows
        .iter()
        .find(|(h, ..)| h == "WEB014")
        .expect("WEB014 is drawn");
    assert_eq!(verdict, "failed");
    assert!(row.contains("data-state=\"failed\""), "{row}");
    // A patched host: its update's CVEs fixed, with the re-scan's evidence.
    let (_, _, row) = rows
        .iter()
        .find(|(_, v, _)| v == "patched")
        .expect("a patched host");
    let row = plain(row);
    assert!(row.contains("data-state=\"fixed\""), "{row}");
    assert!(row.contains("after the install: installed"), "{row}");
    // The catalog's CVE ids and severities.
    assert!(
        dom.contains("data-bulletin=\"CVE-2024-"),
        "the month's CVEs"
    );
    assert!(dom.contains("Important"), "severities");
    // The timeline: each host's steps to scale, in its wave.
    assert_eq!(dom.matches("class=\"tl-row\"").count(), 51);
    assert!(
        dom.contains("class=\"seg k-install bad\""),
        "the failed install"
    );
    assert!(dom.contains("class=\"seg k-reboot ok\""), "reboot phases");

    // Filters, from the address: by verdict, then by group.
    let failed = dump_dom(&file, "verdict=failed");
    let rows = matrix_rows(&failed);
    assert_eq!(rows.len(), count("failed"));
    assert!(rows.iter().all(|(_, v, _)| v == "failed"), "{rows:?}");
    let canaries = dump_dom(&file, "group=canary");
    let rows = matrix_rows(&canaries);
    let names: Vec<&str> = rows.iter().map(|(h, ..)| h.as_str()).collect();
    assert_eq!(names, ["CANARY01", "CANARY02", "CANARY03"]);

    screenshot(&file, &artifacts().join("rollout.png"), "1400,2000");

    // Compliance across runs: this run is the period's only one; the fleet's count after it is
    // what its scans found missing less what its re-scans found installed.
    let still_missing: usize = log
        .hosts
        .values()
        .filter_map(|h| h.evidence.as_ref())
        .flat_map(|e| e.patches.iter())
        .filter(|p| p.status == Status::Missing)
        .filter(|p| {
            !p.after
                .as_deref()
                .is_some_and(|a| a.starts_with("installed"))
        })
        .count();
    assert!(
        still_missing > 0,
        "the month's CVEs no update here fixes stay missing: {still_missing}"
    );
    let html = hive(&[
        "report",
        "--since",
        "1d",
        "--repo",
        repo.to_str().expect("a UTF-8 path"),
        "-o",
        "html",
    ])
    .stdout;
    let file = artifacts().join("compliance.html");
    std::fs::write(&file, &html).expect("the report is written");
    let dom = dump_dom(&file, "");
    let row = element(&dom, &format!("<tr data-run=\"{run_id}\">"), "</tr>");
    assert!(
        row.contains(&format!("<td class=\"fleet\">{still_missing}</td>")),
        "{row}"
    );
    assert_eq!(headline(&dom, "patches missing now"), still_missing);
    assert_eq!(dom.matches("<tr data-run=").count(), 1);
}

/// A journal of `n` hosts in four waves, written as hive writes it; host `i` fails when
/// `i % 97 == 5`, is unreachable when `i % 101 == 7`, and belongs to group `g{i % 10}`.
fn big_journal(repo: &Path, run: &str, n: usize, names: &dyn Fn(usize) -> String) {
    let t0 = 1_796_000_000_000u64;
    let hosts: Vec<String> = (0..n).map(names).collect();
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, h) in hosts.iter().enumerate() {
        groups
            .entry(format!("g{}", i % 10))
            .or_default()
            .push(h.clone());
    }
    let cut = [0, n / 100, n / 10, n / 2, n];
    let waves: Vec<Wave> = (0..4)
        .map(|w| Wave {
            index: w,
            name: ["canary", "1%", "50%", "100%"][w].to_string(),
            canary: w == 0,
            hosts: hosts[cut[w]..cut[w + 1]].to_vec(),
            soak_ms: 0,
            max_failed: None,
            max_unreachable: None,
            quarantine_after: None,
        })
        .collect();
    let header = RunHeader {
        run: run.to_string(),
        created_ms: t0,
        plan: "canary -> 1% -> 50% -> 100%".into(),
        waves: waves.clone(),
        options: RolloutOptions::default(),
        targets: vec![],
        operator: Some("tester".into()),
        groups,
        rollback: None,
    };
    let mut text = String::new();
    let mut line = |r: &Record| {
        let _ = writeln!(text, "{}", serde_json::to_string(r).expect("a record"));
    };
    line(&Record::Header(header));
    let patch = "KB5034127/windows10.0-kb5034127-x64.msu";
    for w in &waves {
        for (k, h) in w.hosts.iter().enumerate() {
            let i = cut[w.index] + k;
            let start = t0 + w.index as u64 * 600_000 + (k as u64 % 50) * 1000;
            let mut at = start;
            let mut step = |step: Step, ok: bool, outcome: StepOutcome, ms: u64| {
                line(&Record::Step(Event {
                    run: run.into(),
                    host: h.clone(),
                    step: step.clone(),
                    state: StepState::Started,
                    at_ms: at,
                }));
                at += ms;
                line(&Record::Step(Event {
                    run: run.into(),
                    host: h.clone(),
                    step,
                    state: StepState::finished(ok, outcome, "", None),
                    at_ms: at,
                }));
            };
            let evidence = |after: Option<&str>| HostEvidence {
                os: "Windows Server 2019 Datacenter".into(),
                build: Some("10.0.17763.5329".into()),
                patches: vec![
                    PatchEvidence {
                        patch: patch.into(),
                        bulletins: vec!["CVE-2024-21407".into(), "CVE-2024-21408".into()],
                        product: "Windows Server 2019".into(),
                        status: Status::Missing,
                        evidence: "ntoskrnl.exe 10.0.17763.5329 < 10.0.17763.5458".into(),
                        after: after.map(str::to_string),
                    },
                    PatchEvidence {
                        patch: "KB5033371".into(),
                        bulletins: vec!["CVE-2023-36025".into()],
                        product: "Windows Server 2019".into(),
                        status: Status::Installed,
                        evidence: "KB5033371 installed".into(),
                        after: None,
                    },
                ],
            };
            if i % 101 == 7 {
                step(Step::Scan, false, StepOutcome::Failed, 2000);
                line(&Record::Host {
                    host: h.clone(),
                    wave: w.index,
                    verdict: HostVerdict::Unreachable,
                    detail: "scan: connection refused".into(),
                    at_ms: at,
                    evidence: None,
                });
                continue;
            }
            step(Step::Scan, true, StepOutcome::Ok, 3000);
            let install = Step::Install {
                patch: patch.into(),
                index: 1,
                total: 1,
            };
            if i % 97 == 5 {
                step(install, false, StepOutcome::Failed, 40_000);
                line(&Record::Host {
                    host: h.clone(),
                    wave: w.index,
                    verdict: HostVerdict::Failed,
                    detail: "install_failed: exit 1603".into(),
                    at_ms: at,
                    evidence: Some(evidence(None)),
                });
                continue;
            }
            step(install, true, StepOutcome::RebootRequired, 60_000);
            for phase in [RebootPhase::Shutdown, RebootPhase::Down, RebootPhase::Login] {
                step(Step::Reboot { phase }, true, StepOutcome::Ok, 30_000);
            }
            step(Step::Verify, true, StepOutcome::Patched, 5000);
            line(&Record::Host {
                host: h.clone(),
                wave: w.index,
                verdict: HostVerdict::Patched,
                detail: "patched".into(),
                at_ms: at,
                evidence: Some(evidence(Some(
                    "installed: ntoskrnl.exe 10.0.17763.5458 = 10.0.17763.5458",
                ))),
            });
        }
        line(&Record::Wave {
            wave: w.index,
            state: WaveState::Passed,
            detail: String::new(),
            at_ms: t0 + w.index as u64 * 600_000 + 500_000,
        });
    }
    line(&Record::Run {
        state: RunState::Finished,
        reason: "every wave ran".into(),
        at_ms: t0 + 3_000_000,
    });
    let dir = repo.join("runs").join(run);
    std::fs::create_dir_all(&dir).expect("the run folder");
    std::fs::write(dir.join("journal.ndjson"), text).expect("the journal");
}

#[test]
fn ten_thousand_hosts_render_filter_and_names_stay_text() {
    chromium();
    let dir = tempfile::tempdir().expect("a temp dir");
    let repo = dir.path();
    let run_id = "20261205-000000";
    const SCRIPT: &str = "<script>document.title='pwned'</script>";
    const IMG: &str = "<img src=x onerror=\"document.title='pwned'\">";
    let n = 10_000;
    big_journal(repo, run_id, n, &|i| match i {
        // Failed (i % 97 == 5) hosts with markup for names.
        5 => SCRIPT.to_string(),
        102 => IMG.to_string(),
        _ => format!("SRV{i:05}"),
    });

    // An explicit catalog that does not load is an error naming the file, not a bare page.
    let out = Command::new(env!("CARGO_BIN_EXE_hive"))
        .args(["report", run_id, "--repo"])
        .arg(repo)
        .args(["--catalog", "/nonexistent/catalog.json", "-o", "html"])
        .output()
        .expect("hive starts");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/catalog.json"),
        "{out:?}"
    );

    let started = Instant::now();
    let html = hive(&[
        "report",
        run_id,
        "--repo",
        repo.to_str().expect("a UTF-8 path"),
        "--output",
        "html",
    ])
    .stdout;
    let made = started.elapsed();
    let file = artifacts().join("10000-hosts.html");
    std::fs::write(&file, &html).expect("the report is written");
    eprintln!(
        "10,000 hosts: {} bytes of HTML made in {:.1} s",
        html.len(),
        made.as_secs_f64()
    );
    assert!(html.len() < 6_000_000, "{} bytes", html.len());
    let text = String::from_utf8(html).expect("UTF-8");
    assert!(
        !text.contains("<script>document"),
        "a host name became markup"
    );
    assert!(!text.contains("<img"), "a host name became markup");

    let started = Instant::now();
    let dom = dump_dom(&file, "");
    eprintln!(
        "10,000 hosts: Chromium drew the report in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The markup in host names is text: the title is the report's, no image, two scripts.
    assert!(
        dom.contains(&format!("<title>hive run {run_id}</title>")),
        "a host name ran as script"
    );
    assert!(!dom.contains("<img"), "a host name became an element");
    assert_eq!(dom.matches("<script").count(), 2);
    let attention = element(&dom, "<table class=\"attention\">", "</table>");
    assert!(
        attention.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "{attention}"
    );
    assert!(
        plain(attention).contains(IMG),
        "the image name is shown as text"
    );

    let unreachable = |i: usize| i % 101 == 7;
    let failed = |i: usize| !unreachable(i) && i % 97 == 5;
    assert_eq!(
        headline(&dom, "failed"),
        (0..n).filter(|&i| failed(i)).count()
    );
    assert_eq!(
        headline(&dom, "unreachable"),
        (0..n).filter(|&i| unreachable(i)).count()
    );
    assert!(dom.contains("10000 of 10000 hosts, the first 200 drawn"));
    assert_eq!(matrix_rows(&dom).len(), 200);

    // Filter by verdict and group, then by verdict and wave (50% holds hosts n/10..n/2).
    let dom = dump_dom(&file, "verdict=failed&group=g5");
    let want: Vec<usize> = (0..n).filter(|&i| failed(i) && i % 10 == 5).collect();
    assert!(!want.is_empty());
    assert!(
        dom.contains(&format!("data-match=\"{}\"", want.len())),
        "{} hosts should match",
        want.len()
    );
    let rows = matrix_rows(&dom);
    assert_eq!(rows.len(), want.len());
    assert!(rows.iter().all(|(_, v, _)| v == "failed"));
    let dom = dump_dom(&file, "verdict=unreachable&wave=50%25");
    let want = (n / 10..n / 2).filter(|&i| unreachable(i)).count();
    assert_eq!(matrix_rows(&dom).len(), want);
    let timeline_rows = dom.matches("class=\"tl-row\"").count();
    assert_eq!(timeline_rows, want);
}
