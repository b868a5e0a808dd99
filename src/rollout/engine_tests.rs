//! The engine on closures instead of hosts: waves, the bound on hosts in flight, budgets, the
//! canary gate, both levels of stopping, and the wait for promote. Each runs in milliseconds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::journal::{RunLog, RunState, WaveState};
use super::{
    HostOutcome, HostVerdict, JobContext, Limit, Rollout, RolloutOptions, StopReason, Wave,
};

fn wave(index: usize, canary: bool, hosts: &[&str], max_failed: Option<Limit>) -> Wave {
    Wave {
        index,
        name: if canary {
            "canary".into()
        } else {
            format!("w{index}")
        },
        canary,
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        soak_ms: 0,
        max_failed,
        max_unreachable: None,
        quarantine_after: None,
    }
}

fn three_waves() -> Vec<Wave> {
    vec![
        wave(0, true, &["C1"], Some(Limit::Count(0))),
        wave(1, false, &["A1", "A2", "A3"], None),
        wave(2, false, &["B1", "B2", "B3", "B4"], None),
    ]
}

/// Hosts in the order their job started, and the most ever in flight at once.
#[derive(Default)]
struct Seen {
    order: Mutex<Vec<String>>,
    now: AtomicUsize,
    max: AtomicUsize,
}

/// A job that takes `ms`, records itself, and ends with whatever `verdict` says for the host.
fn job(
    seen: Arc<Seen>,
    ms: u64,
    verdict: fn(&str) -> HostVerdict,
) -> impl Fn(JobContext) -> std::pin::Pin<Box<dyn std::future::Future<Output = HostOutcome> + Send>>
+ Send
+ Sync
+ 'static {
    move |ctx: JobContext| {
        let seen = seen.clone();
        Box::pin(async move {
            seen.order.lock().unwrap().push(ctx.host.clone());
            let n = seen.now.fetch_add(1, Ordering::SeqCst) + 1;
            seen.max.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            seen.now.fetch_sub(1, Ordering::SeqCst);
            HostOutcome::new(verdict(&ctx.host), "done")
        })
    }
}

fn patched(_: &str) -> HostVerdict {
    HostVerdict::Patched
}

fn options(parallel: usize) -> RolloutOptions {
    RolloutOptions {
        parallel,
        ..RolloutOptions::default()
    }
}

fn verdicts(summary: &super::Summary) -> BTreeMap<String, Option<HostVerdict>> {
    summary
        .hosts
        .iter()
        .map(|h| (h.host.clone(), h.verdict))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_run_in_order_each_host_once_within_the_parallel_bound() {
    let repo = tempfile::tempdir().unwrap();
    let seen = Arc::new(Seen::default());
    let rollout = Rollout::new(repo.path(), Arc::new(job(seen.clone(), 5, patched)));
    let summary = rollout
        .start("plan", three_waves(), options(2))
        .await
        .unwrap();
    assert_eq!(summary.state, RunState::Finished, "{}", summary.recap());
    assert_eq!(summary.counts().patched, 8);
    let order = seen.order.lock().unwrap().clone();
    assert_eq!(order.len(), 8, "{order:?}");
    let wave_of = |h: &String| h.chars().next();
    let waves: Vec<_> = order.iter().map(wave_of).collect();
    assert_eq!(waves[0], Some('C'));
    let first_b = waves.iter().position(|w| *w == Some('B')).unwrap();
    assert!(waves[..first_b].iter().all(|w| *w != Some('B')));
    assert!(
        waves[first_b..].iter().all(|w| *w == Some('B')),
        "{order:?}"
    );
    assert!(seen.max.load(Ordering::SeqCst) <= 2);

    let log = RunLog::load(repo.path(), &summary.run).unwrap();
    let passed = log
        .waves
        .iter()
        .filter(|(_, s, _)| *s == WaveState::Passed)
        .count();
    assert_eq!(passed, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_over_its_budget_stops_the_run_before_the_next_wave() {
    let repo = tempfile::tempdir().unwrap();
    let seen = Arc::new(Seen::default());
    let fail_a = |h: &str| {
        if h.starts_with('A') {
            HostVerdict::Failed
        } else {
            HostVerdict::Patched
        }
    };
    let mut waves = three_waves();
    waves[1].max_failed = Some(Limit::Count(1));
    let rollout = Rollout::new(repo.path(), Arc::new(job(seen.clone(), 1, fail_a)));
    let summary = rollout.start("plan", waves, options(1)).await.unwrap();
    assert_eq!(summary.state, RunState::Stopped);
    assert!(
        matches!(&summary.stop, Some(StopReason::WaveBudget { wave, count: 2, allowed: 1, .. }) if wave == "w1"),
        "{:?}",
        summary.stop
    );
    let v = verdicts(&summary);
    assert!(["B1", "B2", "B3", "B4"].iter().all(|h| v[*h].is_none()));
    // One at a time: the budget broke at the second failure and the third host never started.
    assert_eq!(v["A3"], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_budget_counts_across_waves() {
    let repo = tempfile::tempdir().unwrap();
    let seen = Arc::new(Seen::default());
    let fail_a1_b1 = |h: &str| {
        if h == "A1" || h == "B1" {
            HostVerdict::Failed
        } else {
            HostVerdict::Patched
        }
    };
    let rollout = Rollout::new(repo.path(), Arc::new(job(seen, 1, fail_a1_b1)));
    let opts = RolloutOptions {
        max_failed_total: Some(Limit::Count(1)),
        ..options(1)
    };
    let summary = rollout.start("plan", three_waves(), opts).await.unwrap();
    assert!(
        matches!(
            &summary.stop,
            Some(StopReason::TotalBudget {
                count: 2,
                allowed: 1,
                ..
            })
        ),
        "{:?}",
        summary.stop
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_canary_stops_the_run_at_the_gate() {
    let repo = tempfile::tempdir().unwrap();
    let seen = Arc::new(Seen::default());
    let fail_c = |h: &str| {
        if h == "C1" {
            HostVerdict::Failed
        } else {
            HostVerdict::Patched
        }
    };
    let rollout = Rollout::new(repo.path(), Arc::new(job(seen.clone(), 1, fail_c)));
    let summary = rollout
        .start("plan", three_waves(), options(4))
        .await
        .unwrap();
    assert!(
        matches!(&summary.stop, Some(StopReason::CanaryGate { .. })),
        "{:?}",
        summary.stop
    );
    assert_eq!(seen.order.lock().unwrap().as_slice(), ["C1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_lets_hosts_in_flight_finish_and_starts_no_other() {
    let repo = tempfile::tempdir().unwrap();
    let seen = Arc::new(Seen::default());
    let rollout = Rollout::new(repo.path(), Arc::new(job(seen.clone(), 300, patched)));
    let flag = rollout.stop.clone();
    let watch = seen.clone();
    tokio::spawn(async move {
        while watch.order.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        flag.stop();
    });
    let waves = vec![wave(0, false, &["A1", "A2", "A3", "A4"], None)];
    let summary = rollout.start("plan", waves, options(2)).await.unwrap();
    assert_eq!(summary.stop, Some(StopReason::Operator));
    assert_eq!(summary.state, RunState::Stopped);
    let v = verdicts(&summary);
    assert_eq!(v["A1"], Some(HostVerdict::Patched), "in flight: finished");
    assert_eq!(v["A2"], Some(HostVerdict::Patched), "in flight: finished");
    assert_eq!((v["A3"], v["A4"]), (None, None), "never started");
    let log = RunLog::load(repo.path(), &summary.run).unwrap();
    assert_eq!(log.verdicts().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_cuts_hosts_in_flight_off_and_the_journal_says_interrupted() {
    let repo = tempfile::tempdir().unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let count = started.clone();
    let hang = move |_ctx: JobContext| {
        count.fetch_add(1, Ordering::SeqCst);
        async move {
            std::future::pending::<()>().await;
            HostOutcome::new(HostVerdict::Patched, "never")
        }
    };
    let rollout = Rollout::new(repo.path(), Arc::new(hang));
    let flag = rollout.stop.clone();
    tokio::spawn(async move {
        while started.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        flag.stop();
        tokio::time::sleep(Duration::from_millis(20)).await;
        flag.abort();
    });
    let waves = vec![wave(0, false, &["A1", "A2", "A3"], None)];
    let summary = tokio::time::timeout(
        Duration::from_secs(10),
        rollout.start("plan", waves, options(2)),
    )
    .await
    .expect("abort ends the run")
    .unwrap();
    assert_eq!(summary.stop, Some(StopReason::Interrupted));
    let v = verdicts(&summary);
    assert_eq!(v["A1"], Some(HostVerdict::Interrupted));
    assert_eq!(v["A2"], Some(HostVerdict::Interrupted));
    assert_eq!(v["A3"], None);
    let log = RunLog::load(repo.path(), &summary.run).unwrap();
    assert_eq!(
        log.hosts["A1"].verdict.as_ref().map(|v| v.0),
        Some(HostVerdict::Interrupted)
    );
    assert!(log.verdicts().is_empty(), "interrupted hosts are not done");
    assert!(log.state.unwrap().1.contains("interrupted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_run_waits_for_promote_then_goes_on() {
    let repo = tempfile::tempdir().unwrap();
    let seen = Arc::new(Seen::default());
    let mut rollout = Rollout::new(repo.path(), Arc::new(job(seen.clone(), 1, patched)));
    rollout.wait_for_promote = true;
    let root = repo.path().to_path_buf();
    tokio::spawn(async move {
        // Promote once the run pauses (its folder exists and the canary is done).
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Ok(runs) = super::journal::list_runs(&root)
                && let Some(r) = runs.first()
                && r.state == Some(RunState::Paused)
            {
                super::journal::promote(&root, &r.run, "test").unwrap();
                break;
            }
        }
    });
    let opts = RolloutOptions {
        pause_after_canary: true,
        ..options(4)
    };
    let summary = tokio::time::timeout(
        Duration::from_secs(10),
        rollout.start("plan", three_waves(), opts),
    )
    .await
    .expect("promoted in time")
    .unwrap();
    assert_eq!(summary.state, RunState::Finished, "{}", summary.recap());
    let log = RunLog::load(repo.path(), &summary.run).unwrap();
    assert!(log.promoted());

    // Without waiting, the run returns paused after its canaries.
    let repo = tempfile::tempdir().unwrap();
    let rollout = Rollout::new(repo.path(), Arc::new(job(seen, 1, patched)));
    let opts = RolloutOptions {
        pause_after_canary: true,
        ..options(4)
    };
    let summary = rollout.start("plan", three_waves(), opts).await.unwrap();
    assert_eq!(summary.state, RunState::Paused);
    assert_eq!(verdicts(&summary)["A1"], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_before_it_starts_starts_no_host() {
    let repo = tempfile::tempdir().unwrap();
    let seen = Arc::new(Seen::default());
    let rollout = Rollout::new(repo.path(), Arc::new(job(seen.clone(), 1, patched)));
    rollout.stop.stop();
    let summary = rollout
        .start("plan", three_waves(), options(4))
        .await
        .unwrap();
    assert_eq!(summary.stop, Some(StopReason::Operator));
    assert!(seen.order.lock().unwrap().is_empty());
    assert_eq!(summary.counts().not_started, 8);
}

/// Hosts named in `sick` fail their health checks from the `from`-th check on.
struct Sick {
    sick: &'static [&'static str],
    from: usize,
    checks: Mutex<BTreeMap<String, usize>>,
}

impl super::HealthCheck for Sick {
    fn check(&self, host: String) -> crate::remote::BoxFuture<'static, Result<String, String>> {
        let mut checks = self.checks.lock().unwrap();
        let n = checks.entry(host.clone()).or_default();
        *n += 1;
        let bad = self.sick.contains(&host.as_str()) && *n >= self.from;
        Box::pin(async move {
            if bad {
                Err("service W3SVC: state 1 STOPPED".into())
            } else {
                Ok("healthy".into())
            }
        })
    }
    fn poll_interval(&self, _host: &str) -> Duration {
        Duration::from_millis(20)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_canary_stops_the_run_and_nothing_to_do_is_not_judged() {
    let repo = tempfile::tempdir().unwrap();
    let seen = Arc::new(Seen::default());
    let mut rollout = Rollout::new(repo.path(), Arc::new(job(seen.clone(), 1, patched)));
    // The first check is pre-flight's, before anything is installed; the one after the patch fails.
    let sick = Arc::new(Sick {
        sick: &["C1"],
        from: 2,
        checks: Mutex::default(),
    });
    rollout.health = Some(sick.clone());
    let summary = rollout
        .start("plan", three_waves(), options(4))
        .await
        .unwrap();
    assert!(
        matches!(&summary.stop, Some(StopReason::CanaryGate { detail, .. }) if detail.contains("failed or unhealthy")),
        "{:?}",
        summary.stop
    );
    let c1 = &summary.hosts[0];
    assert_eq!(c1.verdict, Some(HostVerdict::Unhealthy));
    assert_eq!(c1.detail, "health check: service W3SVC: state 1 STOPPED");
    assert_eq!(seen.order.lock().unwrap().as_slice(), ["C1"]);

    // A host with nothing to do was not touched: its health is not the patches' doing.
    let repo = tempfile::tempdir().unwrap();
    let mut rollout = Rollout::new(
        repo.path(),
        Arc::new(job(Arc::default(), 1, |_| HostVerdict::NothingToDo)),
    );
    let sick = Arc::new(Sick {
        sick: &["C1", "A1"],
        from: 2,
        checks: Mutex::default(),
    });
    rollout.health = Some(sick.clone());
    let summary = rollout
        .start("plan", three_waves(), options(4))
        .await
        .unwrap();
    assert_eq!(summary.stop, None);
    // Pre-flight's check before anything is installed, and none after the job.
    assert!(sick.checks.lock().unwrap().values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_turning_unhealthy_in_the_soak_fails_its_wave_and_is_journaled() {
    let repo = tempfile::tempdir().unwrap();
    let mut waves = three_waves();
    waves[0].soak_ms = 10_000;
    let mut rollout = Rollout::new(repo.path(), Arc::new(job(Arc::default(), 1, patched)));
    // C1 passes the check after its job and the first soak poll, then fails.
    rollout.health = Some(Arc::new(Sick {
        sick: &["C1"],
        from: 3,
        checks: Mutex::default(),
    }));
    let t0 = std::time::Instant::now();
    let summary = rollout.start("plan", waves, options(4)).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(
        matches!(&summary.stop, Some(StopReason::HealthGate { wave, .. }) if wave == "canary"),
        "{:?}",
        summary.stop
    );
    assert!(
        summary.waves[0]
            .gate
            .contains("turned unhealthy during its soak")
    );
    assert_eq!(summary.waves[1].gate, "not reached");
    let log = RunLog::load(repo.path(), &summary.run).unwrap();
    let (v, detail) = &log.verdicts()["C1"];
    assert_eq!(*v, HostVerdict::Unhealthy);
    assert!(
        detail.starts_with("turned unhealthy during the soak: "),
        "{detail}"
    );
    assert!(
        log.waves
            .iter()
            .any(|(i, st, _)| *i == 0 && *st == WaveState::Soak),
        "the journal records the soak: {:?}",
        log.waves
    );
}
