//! The journal: a durable record of every step on every host of a rollout, so that after Ctrl-C, a
//! crash or `kill -9` the next `hive resume` knows exactly what was done where.
//!
//! One run is one folder, `<repo>/runs/<run-id>/`, holding `journal.ndjson`: an append-only log of
//! JSON records, one per line. The first record is the run header (the plan: waves, hosts,
//! options); then step events (`started`/`finished`), host verdicts, wave gates and run states.
//!
//! Why an append-only NDJSON file and not SQLite:
//! - no C dependency to build and ship beside hive (rusqlite bundles a C library);
//! - crash-safe by construction: each record is written with one `write` and `fsync`ed before
//!   `emit` returns, so the step it announces only starts once the record is on disk; a crash can
//!   at worst tear the *last* line, which the reader recognises (no final newline) and ignores,
//!   and which [`Journal::reopen`] cuts off before appending again;
//! - an admin can read it with `less`, `grep` or `jq` when hive itself is not at hand;
//! - the access pattern is exactly what a log is good at: many small appends while running,
//!   one sequential read on resume or report.
//!
//! A damaged line anywhere but at the end is not a crash artefact: the reader refuses it with the
//! file and line number instead of guessing.
//!
//! What resume trusts is typed: step outcomes, reboot phases and wave states are enums whose serde
//! names are the words journals have always held, and the boot time a step saw is a field of its
//! record. Journals written before the boot time had a field keep it in the detail text; only the
//! replay reads it from there, and only for such old records.
//!
//! The journal is the rollout's: it records the rollout's plan, options and verdicts, and the
//! rollout engine is its only writer. By job: [`runs`] (run folders and ids, the promote marker),
//! [`writer`] (appends, group commit), [`reader`] (records back into per-host logs), [`replay`]
//! (what a host already went through, for resume).

pub mod reader;
pub mod replay;
pub mod runs;
pub mod store;
pub mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::events::Event;
use crate::rollout::evidence::HostEvidence;
use crate::rollout::options::RolloutOptions;
use crate::rollout::plan::Wave;
use crate::rollout::quarantine::Evidence;
use crate::rollout::verdict::HostVerdict;

pub use reader::{HostLog, RunListing, RunLog, StepEnd, StepRecord, list_runs, parse_records};
pub use replay::ResumeState;
pub use runs::{new_run_id, promote, run_dir, runs_dir, validate_run_id};
pub use store::RecordStore;
pub use writer::Journal;

/// The journal's file name inside a run folder.
pub const JOURNAL_FILE: &str = "journal.ndjson";
/// The marker `hive rollout promote` writes to release a run paused after its canaries.
pub const PROMOTE_FILE: &str = "promote";

/// What a run set out to do, written once as the journal's first record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHeader {
    pub run: String,
    pub created_ms: u64,
    /// The plan as the operator wrote it.
    pub plan: String,
    pub waves: Vec<Wave>,
    pub options: RolloutOptions,
    /// The hosts as resolved at start when they came from a source (a directory, a range, a
    /// list): `hive resume` works on these, not on a second answer from the source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<crate::targets::TargetRecord>,
    /// Who started the run (the login name), for reports; absent in older journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The inventory groups of the run's hosts (group → hosts), so a report can filter by group
    /// without the inventory file; absent in older journals.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
    /// Set when this run takes off what an earlier run installed (`hive rollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackOf>,
}

/// What a rollback run takes off, fixed when it starts: the run it undoes and, per host, the
/// patches to remove in the order they come off (the reverse of their install order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOf {
    pub run: String,
    pub remove: std::collections::BTreeMap<String, Vec<String>>,
}

impl RunHeader {
    /// Every host of the run, wave by wave.
    pub fn hosts(&self) -> impl Iterator<Item = &String> {
        self.waves.iter().flat_map(|w| w.hosts.iter())
    }
}

/// Where a run as a whole is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// Waiting for `hive rollout promote` after the canaries.
    Paused,
    /// A budget, a gate or the operator stopped it; `reason` says which.
    Stopped,
    /// Every wave ran.
    Finished,
}

/// Where a wave is, as its journal records say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveState {
    Started,
    /// Its gate passed (every budget held; a canary wave also proved the patches).
    Passed,
    /// Its gate failed; the record's detail says which budget or gate.
    Failed,
    /// Waiting its soak time before the next wave.
    Soak,
    /// A `pre_wave` or `post_wave` hook ran; the detail keeps its output.
    Hook,
}

impl WaveState {
    pub fn word(self) -> &'static str {
        match self {
            WaveState::Started => "started",
            WaveState::Passed => "passed",
            WaveState::Failed => "failed",
            WaveState::Soak => "soak",
            WaveState::Hook => "hook",
        }
    }
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    Header(RunHeader),
    /// A step event (never `Progress`: those are for the bars only).
    Step(Event),
    /// The end of the work on one host in this run.
    Host {
        host: String,
        wave: usize,
        verdict: HostVerdict,
        detail: String,
        at_ms: u64,
        /// What the scan found on the host, patch by patch; journals from before it had this
        /// field read without it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence: Option<HostEvidence>,
    },
    /// A wave started, passed or failed its gate.
    Wave {
        wave: usize,
        state: WaveState,
        detail: String,
        at_ms: u64,
    },
    /// The run changed state (started, resumed, paused, stopped, finished).
    Run {
        state: RunState,
        reason: String,
        at_ms: u64,
    },
    /// A patch withheld from the rest of the run (or from one host), and the hosts whose
    /// verdicts are the evidence ([`crate::rollout::quarantine`]).
    Quarantine {
        patch: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
        evidence: Vec<Evidence>,
        at_ms: u64,
    },
    /// A quarantine lifted by hand (`hive promote RUN --patch KB`).
    Release {
        patch: String,
        by: String,
        at_ms: u64,
    },
}

#[derive(Debug, Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "journal {path}, line {line}: {message} (only a torn last line is a crash artefact; this one is damage: keep a copy and repair or remove the line by hand)"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("journal {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("run `{run}` not found under {runs}")]
    NoSuchRun { run: String, runs: PathBuf },
    #[error("run id `{run}` is not valid: use letters, digits, '-', '_' and '.' only")]
    BadRunId { run: String },
    #[error("could not record the event durably: {0}")]
    Write(String),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}
