//! What happens on each host, as a stream of events: the seam between the work (deploy, scan) and
//! those who watch it (the journal that makes it durable, the progress bars, NDJSON output).
//!
//! The deploy code emits an event *before* each step and *after* it; the journal writes and fsyncs
//! both, so after a crash the journal says exactly which steps had started and which had finished
//! on which host. Events carry no secrets: only host names, KB numbers, paths and exit codes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::now_ms;

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
    /// Take one patch off again (`hive rollback`; `index` of `total` on this host).
    Uninstall {
        patch: String,
        index: u32,
        total: u32,
    },
    /// Run qchain.exe after chained legacy hotfixes.
    Qchain,
    /// Reboot and wait; `phase` says where the wait is.
    Reboot { phase: RebootPhase },
    /// Re-scan after the reboot to prove the patches landed.
    Verify,
    /// Remove staged files.
    Cleanup,
    /// A custom health command between waves.
    Health,
    /// The start types of the services the host's health checks name, read before its first
    /// install: a resumed run compares with these, not with what the host says after the patch.
    Baseline {
        start_types: std::collections::BTreeMap<String, String>,
    },
    /// A hook command around the host's work (see `crate::hooks`).
    Hook { hook: HookPoint },
}

/// Where a host hook runs: before or after the host's work, on the host or on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookPoint {
    PreHostLocal,
    PreHost,
    PostHost,
    PostHostLocal,
}

impl HookPoint {
    /// The inventory field that declares it.
    pub fn field(self) -> &'static str {
        match self {
            HookPoint::PreHostLocal => "pre_host_local",
            HookPoint::PreHost => "pre_host",
            HookPoint::PostHost => "post_host",
            HookPoint::PostHostLocal => "post_host_local",
        }
    }

    /// The pre hook a post hook undoes (`None` for a pre hook).
    pub fn undoes(self) -> Option<HookPoint> {
        match self {
            HookPoint::PostHost => Some(HookPoint::PreHost),
            HookPoint::PostHostLocal => Some(HookPoint::PreHostLocal),
            _ => None,
        }
    }

    pub fn is_pre(self) -> bool {
        matches!(self, HookPoint::PreHostLocal | HookPoint::PreHost)
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field())
    }
}

/// Where a reboot is. A resumed run reads these back: a reboot is done once its
/// [`RebootPhase::Pending`] phase finished ok.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RebootPhase {
    /// `shutdown /r` sent.
    Shutdown,
    /// Waiting for the host to go down (or come back with a new boot time).
    Down,
    /// Waiting for the WinRM port to accept again.
    Port,
    /// Waiting for a logon that shows a new boot time.
    Login,
    /// A resumed run finding out whether a reboot in flight at the crash happened.
    Resume,
    /// Waiting for servicing to finish configuring updates.
    Settled,
    /// Checking that nothing asks for another reboot: the last phase.
    Pending,
}

impl RebootPhase {
    pub fn word(self) -> &'static str {
        match self {
            RebootPhase::Shutdown => "shutdown",
            RebootPhase::Down => "down",
            RebootPhase::Port => "port",
            RebootPhase::Login => "login",
            RebootPhase::Resume => "resume",
            RebootPhase::Settled => "settled",
            RebootPhase::Pending => "pending",
        }
    }
}

impl fmt::Display for RebootPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// Declares [`StepOutcome`] from one list of (variant, journal word): the enum with each word
/// as its serde name, [`StepOutcome::ALL`] and [`StepOutcome::as_str`], so the three can never
/// disagree.
macro_rules! step_outcomes {
    ($($(#[$doc:meta])* $variant:ident = $word:literal,)*) => {
        /// How a step ended, one word per distinct end. The serde names are the words journals
        /// have always held, so journals written before this type existed still read.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum StepOutcome {
            $($(#[$doc])* #[serde(rename = $word)] $variant,)*
        }

        impl StepOutcome {
            /// Every outcome, in declaration order.
            pub const ALL: &'static [StepOutcome] = &[$(StepOutcome::$variant,)*];

            /// The word as journaled.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(StepOutcome::$variant => $word,)*
                }
            }
        }
    };
}

step_outcomes! {
    Ok = "ok",
    Failed = "failed",
    TimedOut = "timed_out",
    /// Closed on resume: hive stopped during the step.
    Interrupted = "interrupted",
    // Stage.
    Copied = "copied",
    /// The same SHA-256 was on the host already.
    Cached = "cached",
    HashMismatch = "hash_mismatch",
    // Install (see `deploy::PatchOutcome`).
    NotRun = "not_run",
    DoneEarlier = "done_earlier",
    RebootRequired = "reboot_required",
    RebootInitiated = "reboot_initiated",
    AlreadyInstalled = "already_installed",
    NotApplicable = "not_applicable",
    // An install a crash left open, settled from the host's evidence.
    LandedBeforeCrash = "landed_before_crash",
    DidNotComplete = "did_not_complete",
    /// The re-scan no longer plans the patch.
    NotPlanned = "not_planned",
    // Reboot, phase `shutdown`.
    AlreadyScheduled = "already_scheduled",
    InProgress = "in_progress",
    ConnectionDropped = "connection_dropped",
    ReplyLost = "reply_lost",
    // Phase `down`.
    Down = "down",
    RebootedBetweenPolls = "rebooted_between_polls",
    NotAnswering = "not_answering",
    // Phase `port`.
    Open = "open",
    // Phase `pending`.
    NothingPending = "none",
    StillPending = "still_pending",
    // Phase `resume`.
    Rebooted = "rebooted",
    NotRebooted = "not_rebooted",
    Pending = "pending",
    Answering = "answering",
    // Verify.
    Patched = "patched",
    NeedsReview = "needs_review",
    VerifyFailed = "verify_failed",
    // Cleanup.
    LeftBehind = "left_behind",
    // Uninstall (see `rollback::RemoveOutcome`).
    Removed = "removed",
    /// Windows keeps the package for good (DISM 0x800F0825).
    Permanent = "permanent",
    /// The uninstaller (`$NtUninstall$` folder, DISM package, MSI product code) is not there.
    UninstallerMissing = "uninstaller_missing",
    /// The scan (or the uninstaller) says the patch is not on the host.
    NotInstalled = "not_installed",
    // Verify after a rollback.
    RolledBack = "rolled_back",
    StillInstalled = "still_installed",
}

impl fmt::Display for StepOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// The step ended: `outcome` says how, `detail` is the evidence for a reader.
    Finished {
        ok: bool,
        outcome: StepOutcome,
        detail: String,
        /// The host's last boot time, when the step saw it (a scan, a reboot's logon). A resumed
        /// run compares it with the host's to tell whether a reboot happened while hive was
        /// not watching. Journals from before this field hold it in `detail` only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        boot_time: Option<String>,
    },
}

impl StepState {
    /// A step's end; `boot_time` when the step saw the host's (a scan, a reboot's logon).
    pub fn finished(
        ok: bool,
        outcome: StepOutcome,
        detail: &str,
        boot_time: Option<&str>,
    ) -> StepState {
        StepState::Finished {
            ok,
            outcome,
            detail: detail.to_string(),
            boot_time: boot_time.map(str::to_string),
        }
    }
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
                outcome: StepOutcome::RebootRequired,
                detail: "exit 3010".into(),
                boot_time: None,
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

    #[test]
    fn outcome_words_are_their_serde_names() {
        let mut words = std::collections::BTreeSet::new();
        assert_eq!(StepOutcome::ALL.len(), 40);
        for &o in StepOutcome::ALL {
            assert!(words.insert(o.as_str()), "{o:?}: its word is taken");
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.as_str()));
            assert_eq!(serde_json::from_str::<StepOutcome>(&json).unwrap(), o);
        }
    }

    #[test]
    fn a_boot_time_is_a_field_and_old_lines_without_it_read() {
        let old = r#"{"run":"r","host":"h","step":"reboot","phase":"login","state":"finished","ok":true,"outcome":"ok","detail":"boot time T1","at_ms":1}"#;
        let e: Event = serde_json::from_str(old).unwrap();
        assert_eq!(
            e.step,
            Step::Reboot {
                phase: RebootPhase::Login
            }
        );
        assert!(matches!(
            e.state,
            StepState::Finished {
                boot_time: None,
                ..
            }
        ));
        let mut new = e.clone();
        new.state = StepState::Finished {
            ok: true,
            outcome: StepOutcome::Ok,
            detail: String::new(),
            boot_time: Some("T1".into()),
        };
        let line = serde_json::to_string(&new).unwrap();
        assert!(line.contains(r#""boot_time":"T1""#), "{line}");
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), new);
    }
}
