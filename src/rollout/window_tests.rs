//! The engine under maintenance windows, on a simulated clock: a window closing mid-run pauses
//! it with nothing done twice, `--wait-for-window` waits instead, and a host whose estimate does
//! not fit is not started.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::journal::{RunLog, RunState};
use super::{HostOutcome, HostVerdict, JobContext, Rollout, RolloutOptions, StopReason, Wave};
use crate::events::{Step, StepOutcome};
use crate::window::{Estimator, Gate, HostWindows, Schedule, SimClock};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Each host: install KB1 (unless its journal says it did), then a "reboot" that looks at the
/// stop flag between polls. Installs are logged, like the simulator's install log. The host
/// named `closer` moves the clock past the window's end while it installs.
fn job(
    installs: Arc<Mutex<Vec<String>>>,
    clock: Arc<SimClock>,
    closer: &'static str,
) -> impl Fn(JobContext) -> std::pin::Pin<Box<dyn std::future::Future<Output = HostOutcome> + Send>>
+ Send
+ Sync
+ 'static {
    move |ctx: JobContext| {
        let installs = installs.clone();
        let clock = clock.clone();
        Box::pin(async move {
            let step = Step::Install {
                patch: "KB1".into(),
                index: 1,
                total: 1,
            };
            if !ctx.resume.installed_ok.contains("KB1") {
                ctx.started(step.clone()).unwrap();
                installs.lock().unwrap().push(ctx.host.clone());
                if ctx.host == closer {
                    clock.set(ts("2026-12-05T06:00:05Z"));
                }
                ctx.finished(step, true, StepOutcome::Ok, "exit 0").unwrap();
            }
            for _ in 0..20 {
                if ctx.stop.is_stopped() {
                    return HostOutcome::new(HostVerdict::Interrupted, "stopped after install");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            HostOutcome::new(HostVerdict::Patched, "KB1")
        })
    }
}

fn gate(clock: &Arc<SimClock>, hosts: &[&str], need: Duration) -> Arc<Gate> {
    let mut windows = HostWindows::default();
    for h in hosts {
        windows.set(
            h,
            Some(Schedule::new(&["Sat 02:00-06:00".into()], "UTC".into(), TimeZone::UTC).unwrap()),
        );
    }
    let mut estimator = Estimator::zero();
    estimator.default_work.install = need;
    Arc::new(Gate {
        clock: Arc::new(clock.clone()),
        windows,
        estimator,
    })
}

const HOSTS: [&str; 4] = ["A1", "A2", "A3", "A4"];

/// A run's folder, a clock at Saturday 05:30 UTC, the install log, and a rollout of [`job`] whose
/// `windowed` hosts have a "Sat 02:00-06:00" window and each need `need`.
fn bench(
    closer: &'static str,
    windowed: &[&str],
    need: Duration,
) -> (
    tempfile::TempDir,
    Arc<SimClock>,
    Arc<Mutex<Vec<String>>>,
    Rollout,
) {
    let repo = tempfile::tempdir().unwrap();
    let clock = Arc::new(SimClock::starting_at(ts("2026-12-05T05:30:00Z")));
    let installs = Arc::new(Mutex::new(Vec::new()));
    let mut rollout = Rollout::new(
        repo.path(),
        Arc::new(job(installs.clone(), clock.clone(), closer)),
    );
    rollout.gate = Some(gate(&clock, windowed, need));
    (repo, clock, installs, rollout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_closing_mid_run_pauses_it_and_resume_goes_on_in_the_next_with_nothing_twice() {
    let (repo, clock, installs, rollout) = bench("A2", &HOSTS, Duration::from_secs(60));
    let opts = RolloutOptions {
        parallel: 1,
        ..RolloutOptions::default()
    };
    let summary = rollout
        .start("100%", Wave::one(&HOSTS), opts)
        .await
        .unwrap();
    assert_eq!(summary.state, RunState::Paused, "{}", summary.recap());
    let Some(StopReason::Window { detail, .. }) = &summary.stop else {
        panic!("{:?}", summary.stop)
    };
    assert!(detail.contains("A2: its window closed"), "{detail}");
    let v: Vec<_> = summary.hosts.iter().map(|h| h.verdict).collect();
    assert_eq!(
        v,
        [
            Some(HostVerdict::Patched),
            Some(HostVerdict::Interrupted),
            None,
            None
        ]
    );
    assert_eq!(*installs.lock().unwrap(), ["A1", "A2"]);
    let log = RunLog::load(repo.path(), &summary.run).unwrap();
    let (state, reason) = log.state.clone().unwrap();
    assert_eq!(state, RunState::Paused);
    assert!(
        reason.contains("outside the maintenance window"),
        "{reason}"
    );

    // Resumed outside the window: still paused, nothing started.
    let again = rollout.resume(&summary.run, false).await.unwrap();
    assert_eq!(again.state, RunState::Paused);
    assert_eq!(installs.lock().unwrap().len(), 2);

    // The next Saturday's window: A2 goes on after its install, A3 and A4 are patched.
    clock.set(ts("2026-12-12T02:00:10Z"));
    let done = rollout.resume(&summary.run, false).await.unwrap();
    assert_eq!(done.state, RunState::Finished, "{}", done.recap());
    assert_eq!(done.counts().patched, 4);
    assert_eq!(*installs.lock().unwrap(), ["A1", "A2", "A3", "A4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_window_waits_for_the_next_opening_instead_of_pausing() {
    let (repo, clock, installs, mut rollout) = bench("A2", &HOSTS, Duration::from_secs(60));
    rollout.wait_for_window = true;
    let waiter = clock.clone();
    let root = repo.path().to_path_buf();
    tokio::spawn(async move {
        // Once the run says it waits, a week passes.
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Ok(runs) = super::journal::list_runs(&root)
                && let Some(r) = runs.first()
                && let Ok(log) = RunLog::load(&root, &r.run)
                && log
                    .state
                    .as_ref()
                    .is_some_and(|(_, why)| why.starts_with("waiting for a maintenance window"))
            {
                waiter.advance(SignedDuration::from_hours(24 * 7 - 4));
                break;
            }
        }
    });
    let opts = RolloutOptions {
        parallel: 1,
        ..RolloutOptions::default()
    };
    let summary = tokio::time::timeout(
        Duration::from_secs(20),
        rollout.start("100%", Wave::one(&HOSTS), opts),
    )
    .await
    .expect("the wait ended")
    .unwrap();
    assert_eq!(summary.state, RunState::Finished, "{}", summary.recap());
    assert_eq!(summary.counts().patched, 4);
    assert_eq!(*installs.lock().unwrap(), ["A1", "A2", "A3", "A4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_estimate_does_not_fit_is_not_started() {
    // 05:30 in a window that ends at 06:00; each host needs 45 minutes.
    let (_repo, _clock, installs, rollout) = bench("", &["A1"], Duration::from_secs(45 * 60));
    let summary = rollout
        .start("100%", Wave::one(&["A1", "B1"]), RolloutOptions::default())
        .await
        .unwrap();
    assert_eq!(summary.state, RunState::Paused);
    // B1 has no window: it ran; A1 did not start.
    assert_eq!(*installs.lock().unwrap(), ["B1"]);
    let Some(StopReason::Window { detail, .. }) = &summary.stop else {
        panic!("{:?}", summary.stop)
    };
    assert!(
        detail.contains("A1 needs about 45m") && detail.contains("30m left"),
        "{detail}"
    );
}
