//! What happens on each host, as a stream of events: the seam between the work (deploy, scan) and
//! those who watch it (the journal that makes it durable, the progress bars, NDJSON output).
//!
//! The deploy code emits an event *before* each step and *after* it; the journal writes and fsyncs
//! both, so after a crash the journal says exactly which steps had started and which had finished
//! on which host. Events carry no secrets: only host names, KB numbers, paths and exit codes.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One step of the per-host pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Scan before deploying (or re-scan on resume).
    Scan,
    /// Copy one installer to the host.
    Stage {
        patch: String,
        file: String,
        bytes: u64,
    },
    /// Check the staged installer's SHA-256 on the host itself.
    VerifyHash { patch: String },
    /// Run one installer (`index` of `total` on this host).
    Install {
        patch: String,
        index: u32,
        total: u32,
    },
    /// Run qchain.exe after chained legacy hotfixes.
    Qchain,
    /// Reboot and wait; `phase` says where the wait is (`shutdown`, `down`, `port`, `login`,
    /// `settled`, `pending`).
    Reboot { phase: String },
    /// Re-scan after the reboot to prove the patches landed.
    Verify,
    /// Remove staged files.
    Cleanup,
    /// A custom health command between waves.
    Health,
}

/// Where a step is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StepState {
    Started,
    /// Bytes or items done of a total, for progress bars (not journaled).
    Progress {
        done: u64,
        total: u64,
    },
    /// The step ended. `outcome` is a short word (`ok`, `reboot_required`, `already_installed`,
    /// `failed`, `timed_out`...), `detail` the evidence.
    Finished {
        ok: bool,
        outcome: String,
        detail: String,
    },
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub run: String,
    pub host: String,
    #[serde(flatten)]
    pub step: Step,
    #[serde(flatten)]
    pub state: StepState,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl Event {
    pub fn new(run: &str, host: &str, step: Step, state: StepState) -> Event {
        Event {
            run: run.to_string(),
            host: host.to_string(),
            step,
            state,
            at_ms: now_ms(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Anything that watches events. `emit` returns an error only when the event could not be made
/// durable (the journal's disk is full): the caller must then stop before doing the step.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: &Event) -> Result<(), String>;
}

/// Send each event to several sinks (journal first, then progress), stopping at the first error.
pub struct Fanout(pub Vec<std::sync::Arc<dyn EventSink>>);

impl EventSink for Fanout {
    fn emit(&self, event: &Event) -> Result<(), String> {
        for sink in &self.0 {
            sink.emit(event)?;
        }
        Ok(())
    }
}

/// Collects events in memory (tests, reports).
#[derive(Default)]
pub struct Recorder(pub std::sync::Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn emit(&self, event: &Event) -> Result<(), String> {
        self.0
            .lock()
            .map_err(|_| "event recorder poisoned".to_string())?
            .push(event.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_flat_for_ndjson() {
        let e = Event {
            run: "r1".into(),
            host: "web01".into(),
            step: Step::Install {
                patch: "KB1".into(),
                index: 1,
                total: 3,
            },
            state: StepState::Finished {
                ok: true,
                outcome: "reboot_required".into(),
                detail: "exit 3010".into(),
            },
            at_ms: 5,
        };
        let line = serde_json::to_string(&e).unwrap();
        assert_eq!(
            line,
            r#"{"run":"r1","host":"web01","step":"install","patch":"KB1","index":1,"total":3,"state":"finished","ok":true,"outcome":"reboot_required","detail":"exit 3010","at_ms":5}"#
        );
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(back, e);
    }
}
