//! A journal written by hive before the journal was typed (main at 830fb18: `hive demo --hosts 20`,
//! SIGKILLed while one host's installer was running and seven hosts were waiting for their
//! reboot's logon) still reads, gives each host the resume state it had, and resumes.
//!
//! The fixture is `tests/fixtures/journal-830fb18/runs/20261204-215341/journal.ndjson`, kept
//! byte for byte as the old binary wrote it: outcomes, reboot phases and wave states as words,
//! and the boot time only inside the scan's detail text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hive::events::{RebootPhase, Step};
use hive::journal::{self, RunLog, RunState, WaveState};
use hive::rollout::{HostOutcome, HostVerdict, JobContext, ResumeState, Rollout};

const RUN: &str = "20261204-215341";
const PATCH: &str = "MS01-033/Q300972_W2K_SP3_x86_en.EXE";
const BOOT: &str = "2026-11-27T21:53:00.000Z";
const DONE: [&str; 12] = [
    "CANARY01", "CANARY02", "WEB001", "WEB002", "WEB003", "WEB004", "WEB005", "WEB006", "WEB007",
    "WEB008", "WEB009", "WEB010",
];
const REBOOTING: [&str; 7] = [
    "WEB011", "WEB012", "WEB014", "WEB015", "WEB016", "WEB017", "WEB018",
];
const NOT_STARTED: [&str; 2] = ["WEB019", "WEB020"];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-830fb18")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

#[test]
fn the_old_journal_reads_with_the_resume_state_of_each_host() {
    let log = RunLog::load(&fixture(), RUN).expect("the 830fb18 journal reads");
    assert_eq!(log.hosts.len(), 22);
    assert_eq!(log.torn_line, None);
    assert_eq!(log.state, Some((RunState::Running, "started".to_string())));
    assert_eq!(
        log.waves
            .iter()
            .map(|(w, s, _)| (*w, *s))
            .collect::<Vec<_>>(),
        [
            (0, WaveState::Started),
            (0, WaveState::Passed),
            (1, WaveState::Started),
            (1, WaveState::Passed),
            (2, WaveState::Started),
            (2, WaveState::Passed),
            (3, WaveState::Started),
        ]
    );

    // Done hosts: verdict patched, never worked on again.
    let verdicts = log.verdicts();
    assert_eq!(verdicts.len(), DONE.len());
    for host in DONE {
        assert_eq!(verdicts[host].0, HostVerdict::Patched, "{host}");
        let s = log.resume_state(host);
        assert!(
            s.verified && s.open_steps.is_empty() && !s.reboot_in_flight(),
            "{host}: {s:?}"
        );
    }

    // The open install: started, never finished, to be settled from the host's evidence.
    let s = log.resume_state("WEB013");
    let install = Step::Install {
        patch: PATCH.into(),
        index: 1,
        total: 1,
    };
    assert_eq!(s.open_installs().collect::<Vec<_>>(), [&install], "{s:?}");
    assert_eq!(s.interrupted, Some(install));
    assert!(s.install_started.contains(PATCH) && s.installed_ok.is_empty());
    assert!(s.staged_ok.contains(PATCH) && s.hash_verified.contains(PATCH));
    assert!(!s.reboot_started && !s.reboot_required);

    // Reboots in flight: installed, shutdown sent, down and port seen, logon awaited; the boot
    // time from before the reboot comes out of the old scan record's detail text.
    for host in REBOOTING {
        let s = log.resume_state(host);
        assert!(s.reboot_in_flight(), "{host}: {s:?}");
        assert_eq!(s.boot_before_reboot.as_deref(), Some(BOOT), "{host}");
        assert!(s.installed_ok.contains(PATCH), "{host}");
        assert_eq!(
            s.interrupted,
            Some(Step::Reboot {
                phase: RebootPhase::Login
            }),
            "{host}"
        );
        assert_eq!(s.open_steps.len(), 1, "{host}: {s:?}");
        assert!(!s.verified, "{host}");
    }

    for host in NOT_STARTED {
        assert_eq!(log.resume_state(host), ResumeState::default(), "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_journal_resumes() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    let seen: Arc<Mutex<BTreeMap<String, ResumeState>>> = Arc::default();
    let record = seen.clone();
    let job = move |ctx: JobContext| {
        let record = record.clone();
        async move {
            record
                .lock()
                .unwrap()
                .insert(ctx.host.clone(), ctx.resume.clone());
            HostOutcome::new(HostVerdict::Patched, "resumed")
        }
    };
    let rollout = Rollout::new(dir.path(), Arc::new(job));
    let summary = rollout.resume(RUN, false).await.expect("resume");
    assert_eq!(summary.state, RunState::Finished, "{}", summary.recap());
    assert_eq!(summary.counts().patched, 22, "{}", summary.recap());

    let seen = seen.lock().unwrap();
    let mut rerun: Vec<&str> = seen.keys().map(String::as_str).collect();
    rerun.sort();
    let mut expected: Vec<&str> = REBOOTING
        .iter()
        .chain(NOT_STARTED.iter())
        .chain(["WEB013"].iter())
        .copied()
        .collect();
    expected.sort();
    assert_eq!(rerun, expected, "done hosts are not worked on again");
    assert_eq!(seen["WEB013"].open_installs().count(), 1);
    assert_eq!(seen["WEB011"].boot_before_reboot.as_deref(), Some(BOOT));

    // The resumed run appended typed records to the old file, and the whole of it reads.
    let log = RunLog::load(dir.path(), RUN).unwrap();
    assert_eq!(log.verdicts().len(), 22);
    assert_eq!(log.state.as_ref().map(|s| s.0), Some(RunState::Finished));
    assert!(
        journal::list_runs(dir.path()).unwrap()[0].error.is_none(),
        "rollout list reads it"
    );
}
