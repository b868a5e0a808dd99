//! How a host ended in a run, in the terms the rollout's budgets and gates count.
//!
//! Deploy has its own, finer verdict ([`crate::deploy::DeployVerdict`]: which step failed and
//! how); the pipeline maps it onto this one, which is all a budget needs to know.

use serde::{Deserialize, Serialize};

use super::evidence::HostEvidence;

/// How one host ended in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostVerdict {
    /// Patches installed and verified.
    Patched,
    /// The host already had everything approved for it.
    NothingToDo,
    /// A step failed on a reachable host (installer error, verification mismatch, health check).
    Failed,
    /// The host could not be reached or logged on to.
    Unreachable,
    /// Deliberately not worked on (excluded, maintenance window closed...).
    Skipped,
    /// The job stopped at a step boundary because the run was stopping; resume continues it.
    Interrupted,
}

impl HostVerdict {
    pub fn word(self) -> &'static str {
        match self {
            HostVerdict::Patched => "patched",
            HostVerdict::NothingToDo => "nothing to do",
            HostVerdict::Failed => "failed",
            HostVerdict::Unreachable => "unreachable",
            HostVerdict::Skipped => "skipped",
            HostVerdict::Interrupted => "interrupted",
        }
    }

    /// The host is in the state the run wanted.
    pub fn good(self) -> bool {
        matches!(self, HostVerdict::Patched | HostVerdict::NothingToDo)
    }
}

/// What a [`super::HostJob`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOutcome {
    pub verdict: HostVerdict,
    /// The evidence: which step failed and why, which KBs were installed.
    pub detail: String,
    /// What the scan found on the host, when the job got that far (for reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<HostEvidence>,
}

impl HostOutcome {
    pub fn new(verdict: HostVerdict, detail: impl Into<String>) -> Self {
        HostOutcome {
            verdict,
            detail: detail.into(),
            evidence: None,
        }
    }

    /// The same outcome, with the scan evidence the job gathered.
    pub fn with_evidence(mut self, evidence: HostEvidence) -> Self {
        self.evidence = Some(evidence);
        self
    }
}

/// HostCounts by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCounts {
    pub patched: usize,
    pub nothing_to_do: usize,
    pub failed: usize,
    pub unreachable: usize,
    pub skipped: usize,
    pub interrupted: usize,
    pub not_started: usize,
}

impl HostCounts {
    pub fn add(&mut self, verdict: Option<HostVerdict>) {
        match verdict {
            Some(HostVerdict::Patched) => self.patched += 1,
            Some(HostVerdict::NothingToDo) => self.nothing_to_do += 1,
            Some(HostVerdict::Failed) => self.failed += 1,
            Some(HostVerdict::Unreachable) => self.unreachable += 1,
            Some(HostVerdict::Skipped) => self.skipped += 1,
            Some(HostVerdict::Interrupted) => self.interrupted += 1,
            None => self.not_started += 1,
        }
    }
    pub fn total(&self) -> usize {
        self.patched
            + self.nothing_to_do
            + self.failed
            + self.unreachable
            + self.skipped
            + self.interrupted
            + self.not_started
    }
}
