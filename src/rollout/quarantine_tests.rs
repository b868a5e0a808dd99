//! The engine's per-patch accounting and pre-flight on closures: a bad patch quarantined after
//! the canaries while the good one goes on, a release by hand, a reboot loop on one host, and
//! hosts set aside before their wave (outside the budgets, taken up again on request).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::journal::RunLog;
use super::preflight::SetAside;
use super::quarantine::release_marker;
use super::{
    HostOutcome, HostVerdict, JobContext, Limit, Rollout, RolloutOptions, StopReason, Wave,
};
use crate::events::{Event, Step, StepOutcome, StepState};
use crate::rollout::engine::Retry;

const GOOD: &str = "KB1";
const BAD: &str = "KB2";

fn waves() -> Vec<Wave> {
    let wave = |index, name: &str, canary, hosts: &[&str], after| Wave {
        index,
        name: name.into(),
        canary,
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        soak_ms: 0,
        max_failed: Some(Limit::Count(0)),
        max_unreachable: None,
        quarantine_after: after,
    };
    let mut fleet = wave(1, "fleet", false, &["F1", "F2", "F3", "F4"], None);
    fleet.max_failed = None;
    vec![wave(0, "canary", true, &["C1", "C2"], Some(1)), fleet]
}

/// What each host was asked to install (the patches not withheld from it).
type Installs = Arc<Mutex<Vec<(String, Vec<String>)>>>;

fn emit(ctx: &JobContext, patch: &str, ok: bool) {
    let step = Step::Install {
        patch: patch.into(),
        index: 1,
        total: 2,
    };
    let _ = ctx.sink.emit(&Event::new(
        &ctx.run,
        &ctx.host,
        step.clone(),
        StepState::Started,
    ));
    let outcome = if ok {
        StepOutcome::Ok
    } else {
        StepOutcome::Failed
    };
    let end = StepState::finished(ok, outcome, "", None);
    let _ = ctx.sink.emit(&Event::new(&ctx.run, &ctx.host, step, end));
}

/// A fleet where KB2 fails its installer everywhere; `looping` hosts reboot-loop on KB1.
fn job(
    installs: Installs,
    looping: &'static [&'static str],
) -> impl Fn(JobContext) -> std::pin::Pin<Box<dyn std::future::Future<Output = HostOutcome> + Send>>
+ Send
+ Sync
+ 'static {
    move |ctx: JobContext| {
        let installs = installs.clone();
        Box::pin(async move {
            let todo: Vec<String> = [GOOD, BAD]
                .iter()
                .filter(|p| !ctx.withheld.contains(**p))
                .map(|p| p.to_string())
                .collect();
            installs
                .lock()
                .unwrap()
                .push((ctx.host.clone(), todo.clone()));
            for p in &todo {
                let ok = p != BAD;
                emit(&ctx, p, ok);
                if !ok {
                    return HostOutcome::new(HostVerdict::Failed, format!("{p}: exit 1603"));
                }
            }
            if looping.contains(&ctx.host.as_str()) {
                return HostOutcome::new(HostVerdict::RebootLoop, "pending twice");
            }
            if todo.is_empty() {
                HostOutcome::new(HostVerdict::NothingToDo, "withheld")
            } else {
                HostOutcome::new(HostVerdict::Patched, todo.join(" "))
            }
        })
    }
}

fn got(installs: &Installs, host: &str) -> Vec<String> {
    installs
        .lock()
        .unwrap()
        .iter()
        .filter(|(h, _)| h == host)
        .flat_map(|(_, p)| p.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_patch_is_quarantined_after_the_canaries_and_the_good_one_goes_on() {
    let repo = tempfile::tempdir().unwrap();
    let installs = Installs::default();
    let rollout = Rollout::new(repo.path(), Arc::new(job(installs.clone(), &["F3"])));
    let summary = rollout
        .start("plan", waves(), RolloutOptions::default())
        .await
        .unwrap();
    // The canaries failed with KB2 only: the run goes on without it.
    assert_eq!(summary.stop, None, "{}", summary.recap());
    for host in ["F1", "F2", "F4"] {
        assert_eq!(got(&installs, host), [GOOD], "{host}");
    }
    let c = summary.counts();
    assert_eq!(
        (c.withheld, c.patched, c.reboot_loop, c.failed),
        (2, 3, 1, 0)
    );
    let fleet: Vec<_> = summary
        .withheld
        .iter()
        .filter(|w| w.host.is_none())
        .collect();
    assert_eq!(fleet.len(), 1);
    assert_eq!(fleet[0].patch, BAD);
    let evidence: BTreeSet<&str> = fleet[0].evidence.iter().map(|e| e.host.as_str()).collect();
    assert!(evidence.contains("C1") || evidence.contains("C2"));
    // The reboot loop withholds KB1 from F3 alone.
    let own: Vec<_> = summary
        .withheld
        .iter()
        .filter(|w| w.host.as_deref() == Some("F3"))
        .collect();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].patch, GOOD);
    assert!(
        summary.recap().contains("withheld: KB2"),
        "{}",
        summary.recap()
    );
    assert!(
        summary.waves[0].gate.contains("withheld: KB2"),
        "{}",
        summary.waves[0].gate
    );

    // The journal says which patch, on which evidence; a resume rebuilds the same.
    let log = RunLog::load(repo.path(), &summary.run).unwrap();
    let patches: Vec<(&str, Option<&str>)> = log
        .withheld
        .iter()
        .map(|w| (w.patch.as_str(), w.host.as_deref()))
        .collect();
    assert!(patches.contains(&(BAD, None)), "{patches:?}");
    assert!(patches.contains(&(GOOD, Some("F3"))), "{patches:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_threshold_the_failed_canary_stops_the_run() {
    let repo = tempfile::tempdir().unwrap();
    let installs = Installs::default();
    let mut w = waves();
    w[0].quarantine_after = None;
    let rollout = Rollout::new(repo.path(), Arc::new(job(installs.clone(), &[])));
    let summary = rollout
        .start("plan", w, RolloutOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(summary.stop, Some(StopReason::CanaryGate { .. })),
        "{}",
        summary.recap()
    );
    assert!(got(&installs, "F1").is_empty());
    assert!(summary.withheld.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_patch_goes_to_the_hosts_started_after_the_release() {
    let repo = tempfile::tempdir().unwrap();
    let installs = Installs::default();
    let rollout = Rollout::new(repo.path(), Arc::new(job(installs.clone(), &[])));
    let options = RolloutOptions {
        pause_after_canary: true,
        ..RolloutOptions::default()
    };
    let paused = rollout.start("plan", waves(), options).await.unwrap();
    assert!(matches!(paused.stop, Some(StopReason::Paused { .. })));
    assert_eq!(paused.withheld.len(), 1);

    release_marker(repo.path(), &paused.run, BAD, "ops").unwrap();
    super::promote(repo.path(), &paused.run).unwrap();
    let summary = rollout.resume(&paused.run, false).await.unwrap();
    assert_eq!(got(&installs, "F1"), [GOOD, BAD]);
    assert!(summary.withheld.is_empty(), "{:?}", summary.withheld);
    let log = RunLog::load(repo.path(), &paused.run).unwrap();
    assert_eq!(log.released.len(), 1);
    assert!(log.withheld.is_empty());
    assert!(log.released[0].by.contains("released by ops"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_flight_sets_hosts_aside_outside_the_budgets_and_resume_takes_them_up() {
    let repo = tempfile::tempdir().unwrap();
    let installs = Installs::default();
    let mut rollout = Rollout::new(repo.path(), Arc::new(job(installs.clone(), &[])));
    let sick = Arc::new(Mutex::new(true));
    let s = sick.clone();
    rollout.preflight = Some(Arc::new(move |ctx: JobContext| {
        let sick = *s.lock().unwrap();
        async move {
            match ctx.host.as_str() {
                "F1" if sick => Err(SetAside::ClockSkew {
                    skew_s: 900,
                    bound_s: 300,
                }),
                "F2" if sick => Err(SetAside::RebootPending {
                    markers: vec!["CBS RebootPending".into()],
                }),
                _ => Ok(String::new()),
            }
        }
    }));
    let mut w = waves();
    w[0].hosts = vec!["F1".into(), "C1".into()];
    w[1].hosts.retain(|h| h != "F1");
    let summary = rollout
        .start("plan", w, RolloutOptions::default())
        .await
        .unwrap();
    // F1 is a canary set aside: it neither fails the zero budget nor counts as proof.
    let line = |h: &str| summary.hosts.iter().find(|l| l.host == h).unwrap().clone();
    assert_eq!(line("F1").verdict, Some(HostVerdict::Skipped));
    assert!(
        line("F1")
            .detail
            .contains("pre-flight: its clock is 900 s ahead")
    );
    assert!(line("F2").detail.contains("a reboot is already pending"));
    assert!(got(&installs, "F1").is_empty() && got(&installs, "F2").is_empty());

    *sick.lock().unwrap() = false;
    let again = rollout
        .resume_retrying(
            &summary.run,
            Retry {
                failed: false,
                skipped: true,
            },
        )
        .await
        .unwrap();
    let line = |h: &str| again.hosts.iter().find(|l| l.host == h).unwrap().clone();
    assert_ne!(line("F1").verdict, Some(HostVerdict::Skipped));
    assert!(!got(&installs, "F2").is_empty());
}

/// A health check that fails on the hosts listed.
struct SickHosts(&'static [&'static str]);

impl super::HealthCheck for SickHosts {
    fn check(&self, host: String) -> crate::remote::BoxFuture<'static, Result<String, String>> {
        let sick = self.0.contains(&host.as_str());
        Box::pin(async move {
            if sick {
                Err(format!("{host}: W3SVC is Stopped"))
            } else {
                Ok("W3SVC Running".into())
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_sick_before_install_is_set_aside_and_not_held_against_the_patch() {
    let repo = tempfile::tempdir().unwrap();
    let installs = Installs::default();
    let mut rollout = Rollout::new(repo.path(), Arc::new(job(installs.clone(), &[])));
    rollout.health = Some(Arc::new(SickHosts(&["F2"])));
    let summary = rollout
        .start("plan", waves(), RolloutOptions::default())
        .await
        .unwrap();
    let l = summary.hosts.iter().find(|l| l.host == "F2").unwrap();
    assert_eq!(l.verdict, Some(HostVerdict::Skipped), "{}", l.detail);
    assert!(
        l.detail
            .contains("pre-flight: unhealthy before anything was installed: F2: W3SVC is Stopped"),
        "{}",
        l.detail
    );
    assert!(got(&installs, "F2").is_empty());
    assert_eq!(summary.counts().skipped, 1);
    assert_eq!(got(&installs, "F1"), [GOOD]);
}
