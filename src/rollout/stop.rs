//! Stopping a run: why it stopped ([`StopReason`]), and the operator's two levels of asking
//! ([`StopFlag`]), wired to Ctrl-C by [`stop_on_ctrl_c`] for every command that runs hosts.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

/// The operator's wish, shared by the engine and every job. Cheap to clone.
///
/// Two levels, because an installer cut off halfway is the one thing a patch run must not do
/// by accident, and yet an operator must be able to get the console back:
/// - [`StopFlag::stop`] (first Ctrl-C): no new host starts; hosts in flight finish the step they
///   are in, journal it, and end `interrupted`; resume continues them.
/// - [`StopFlag::abort`] (second Ctrl-C): stop now. Hosts in flight are cut off where they are;
///   the journal records each as `interrupted` and the run as stopped, and resume settles the
///   steps left open from the hosts' own evidence, as after a crash.
///
/// A [`StopFlag::child`] sees its parent's level and can be raised on its own: one host's
/// maintenance window closing stops that host, not the others.
#[derive(Debug, Clone, Default)]
pub struct StopFlag {
    own: Arc<AtomicU8>,
    parent: Option<Arc<AtomicU8>>,
}

const RUNNING: u8 = 0;
const STOPPING: u8 = 1;
const ABORTED: u8 = 2;

impl StopFlag {
    /// No new host starts; in-flight steps finish.
    pub fn stop(&self) {
        let _ = self
            .own
            .compare_exchange(RUNNING, STOPPING, Ordering::SeqCst, Ordering::SeqCst);
    }
    /// Stop now, without waiting for in-flight steps.
    pub fn abort(&self) {
        self.own.store(ABORTED, Ordering::SeqCst);
    }
    fn level(&self) -> u8 {
        let p = self
            .parent
            .as_ref()
            .map_or(RUNNING, |p| p.load(Ordering::SeqCst));
        self.own.load(Ordering::SeqCst).max(p)
    }
    /// A flag raised when this one is, or on its own.
    pub fn child(&self) -> StopFlag {
        StopFlag {
            own: Arc::new(AtomicU8::new(RUNNING)),
            parent: Some(self.own.clone()),
        }
    }
    /// Either level was asked for.
    pub fn is_stopped(&self) -> bool {
        self.level() >= STOPPING
    }
    pub fn is_aborted(&self) -> bool {
        self.level() >= ABORTED
    }
}

/// Wire Ctrl-C to `flag`: the first raises [`StopFlag::stop`], the second [`StopFlag::abort`].
/// A third exits at once (status 130), for a run stuck where it cannot see the flag; the
/// journal survives that like a crash. Call it inside the Tokio runtime that runs the rollout.
pub fn stop_on_ctrl_c(flag: StopFlag) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!(
            "stopping: no new host starts, steps in flight finish; Ctrl-C again to stop at once"
        );
        flag.stop();
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!("stopping at once: hosts in flight are journaled as interrupted");
        flag.abort();
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}

/// Why a run stopped before its last wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum StopReason {
    /// More hosts failed (or were unreachable) in one wave than its budget allows.
    WaveBudget {
        wave: String,
        kind: String,
        count: usize,
        allowed: usize,
    },
    /// More hosts failed (or were unreachable) in the whole run than its budget allows.
    TotalBudget {
        kind: String,
        count: usize,
        allowed: usize,
    },
    /// A canary wave did not prove the patches good.
    CanaryGate { wave: String, detail: String },
    /// A host of the wave turned unhealthy during its soak.
    HealthGate { wave: String, detail: String },
    /// Waiting for `hive rollout promote`.
    Paused { run: String },
    /// Hosts are left whose maintenance window is closed (or too short for them): `hive resume`
    /// continues in their next window.
    Window { run: String, detail: String },
    /// A `pre_wave` or `post_wave` hook failed.
    Hook { wave: String, detail: String },
    /// The operator asked to stop (Ctrl-C).
    Operator,
    /// The operator asked to stop at once (a second Ctrl-C): in-flight hosts were cut off.
    Interrupted,
    /// The journal could not record a step: nothing may run that is not recorded.
    Journal { error: String },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::WaveBudget {
                wave,
                kind,
                count,
                allowed,
            } => write!(
                f,
                "wave {wave}: {count} hosts {kind}, its budget allows {allowed}"
            ),
            StopReason::TotalBudget {
                kind,
                count,
                allowed,
            } => write!(
                f,
                "{count} hosts {kind} in the run, the total budget allows {allowed}"
            ),
            StopReason::CanaryGate { wave, detail } => {
                write!(f, "canary wave {wave} did not pass its gate: {detail}")
            }
            StopReason::HealthGate { wave, detail } => {
                write!(f, "wave {wave} turned unhealthy during its soak: {detail}")
            }
            StopReason::Paused { run } => write!(
                f,
                "paused after the canaries: run `hive rollout promote {run}` then `hive resume {run}`"
            ),
            StopReason::Window { run, detail } => write!(
                f,
                "paused outside the maintenance window: {detail}; `hive resume {run}` continues (or add --wait-for-window)"
            ),
            StopReason::Hook { wave, detail } => write!(f, "wave {wave}: {detail}"),
            StopReason::Operator => f.write_str("stopped by the operator"),
            StopReason::Interrupted => f.write_str(
                "interrupted by the operator: hosts in flight were cut off (resume settles them)",
            ),
            StopReason::Journal { error } => write!(f, "the journal failed: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_then_abort_and_abort_is_never_undone_by_stop() {
        let f = StopFlag::default();
        assert!(!f.is_stopped() && !f.is_aborted());
        f.stop();
        assert!(f.is_stopped() && !f.is_aborted());
        f.abort();
        f.stop();
        assert!(f.is_stopped() && f.is_aborted());
        let g = f.clone();
        assert!(g.is_aborted());
    }

    #[test]
    fn a_child_follows_its_parent_and_stops_alone() {
        let parent = StopFlag::default();
        let a = parent.child();
        let b = parent.child();
        a.stop();
        assert!(a.is_stopped() && !b.is_stopped() && !parent.is_stopped());
        parent.abort();
        assert!(a.is_aborted() && b.is_aborted());
    }
}
