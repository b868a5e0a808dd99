//! `hive promote RUN --patch KB` and `hive report RUN` on a run that quarantined a patch: the
//! release is a marker the run acts on when it goes on, and the report lists both. No servers.

use std::process::{Command, Output};
use std::sync::Arc;

use hive::events::{Event, Step, StepOutcome, StepState};
use hive::rollout::{HostOutcome, HostVerdict, JobContext, Limit, Rollout, RolloutOptions, Wave};

fn hive(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hive"))
        .args(args)
        .env_remove("HIVE_REPO")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every host fails KB2's installer; the canary stage quarantines it after one host.
async fn quarantining_run(repo: &std::path::Path) -> String {
    let job = |ctx: JobContext| async move {
        let step = Step::Install {
            patch: "KB2".into(),
            index: 1,
            total: 1,
        };
        let _ = ctx.sink.emit(&Event::new(
            &ctx.run,
            &ctx.host,
            step.clone(),
            StepState::Started,
        ));
        if ctx.withheld.contains("KB2") {
            return HostOutcome::new(HostVerdict::NothingToDo, "KB2 withheld");
        }
        let end = StepState::finished(false, StepOutcome::Failed, "exit 1603", None);
        let _ = ctx.sink.emit(&Event::new(&ctx.run, &ctx.host, step, end));
        HostOutcome::new(HostVerdict::Failed, "KB2: exit 1603")
    };
    let waves = vec![
        Wave {
            index: 0,
            name: "canary".into(),
            canary: true,
            hosts: vec!["C1".into()],
            soak_ms: 0,
            max_failed: Some(Limit::Count(0)),
            max_unreachable: None,
            quarantine_after: Some(1),
        },
        Wave {
            index: 1,
            name: "100%".into(),
            canary: false,
            hosts: vec!["F1".into()],
            soak_ms: 0,
            max_failed: None,
            max_unreachable: None,
            quarantine_after: None,
        },
    ];
    let summary = Rollout::new(repo, Arc::new(job))
        .start(
            "canary(quarantine_after=1) -> 100%",
            waves,
            RolloutOptions::default(),
        )
        .await
        .unwrap();
    assert!(summary.stop.is_none(), "{}", summary.recap());
    summary.run
}

#[tokio::test]
async fn promote_patch_leaves_a_release_and_report_lists_withheld_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let run = quarantining_run(repo).await;
    let repo_s = repo.to_str().unwrap();

    let report = hive(&["report", &run, "-r", repo_s]);
    assert!(report.status.success(), "{}", text(&report.stderr));
    let out = text(&report.stdout);
    assert!(out.contains("patches withheld:"), "{out}");
    assert!(
        out.contains("KB2 withheld from the fleet: failed on C1"),
        "{out}"
    );

    let bad = hive(&["promote", &run, "--patch", "../KB2", "-r", repo_s]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad.stderr));
    assert!(
        text(&bad.stderr).contains("is not a patch id"),
        "{}",
        text(&bad.stderr)
    );

    let ok = hive(&["promote", &run, "--patch", "KB2", "-r", repo_s]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).contains("released KB2"),
        "{}",
        text(&ok.stdout)
    );

    let report = text(&hive(&["report", &run, "-r", repo_s]).stdout);
    assert!(
        report.contains("KB2 released (released by "),
        "the marker shows before any run acted on it: {report}"
    );
}
