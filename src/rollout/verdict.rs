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
    /// A step failed on a reachable host (installer error, verification mismatch).
    Failed,
    /// Patched, but a health check failed afterwards (or during the soak): the patch may have
    /// broken what the host is for. Counts against the failure budgets like `Failed`.
    Unhealthy,
    /// The host could not be reached or logged on to.
    Unreachable,
    /// Deliberately not worked on (excluded, maintenance window closed...).
    Skipped,
    /// The job stopped at a step boundary because the run was stopping; resume continues it.
    Interrupted,
    /// The host kept asking for reboots: it rebooted more often than allowed, or came back from
    /// a reboot with the same reboot still pending (or the same patch missing) twice. It is not
    /// retried; the patches it was installing are withheld from it alone.
    RebootLoop,
}

impl HostVerdict {
    pub fn word(self) -> &'static str {
        match self {
            HostVerdict::Patched => "patched",
            HostVerdict::NothingToDo => "nothing to do",
            HostVerdict::Failed => "failed",
            HostVerdict::Unhealthy => "unhealthy",
            HostVerdict::Unreachable => "unreachable",
            HostVerdict::Skipped => "skipped",
            HostVerdict::Interrupted => "interrupted",
            HostVerdict::RebootLoop => "reboot_loop",
        }
    }

    /// The host is in the state the run wanted.
    pub fn good(self) -> bool {
        matches!(self, HostVerdict::Patched | HostVerdict::NothingToDo)
    }

    /// The host ended badly on something hive did to it: evidence against the patches it was
    /// installing (see [`super::quarantine`]).
    pub fn against_patches(self) -> bool {
        matches!(
            self,
            HostVerdict::Failed | HostVerdict::Unhealthy | HostVerdict::RebootLoop
        )
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
    pub unhealthy: usize,
    pub unreachable: usize,
    pub skipped: usize,
    pub interrupted: usize,
    #[serde(default)]
    pub reboot_loop: usize,
    /// Failed hosts whose failure a quarantined patch explains: the patch is withheld, so they
    /// do not count against the budgets (their verdict stays `failed`).
    #[serde(default)]
    pub withheld: usize,
    pub not_started: usize,
}

impl HostCounts {
    pub fn add(&mut self, verdict: Option<HostVerdict>) {
        match verdict {
            Some(HostVerdict::Patched) => self.patched += 1,
            Some(HostVerdict::NothingToDo) => self.nothing_to_do += 1,
            Some(HostVerdict::Failed) => self.failed += 1,
            Some(HostVerdict::Unhealthy) => self.unhealthy += 1,
            Some(HostVerdict::Unreachable) => self.unreachable += 1,
            Some(HostVerdict::Skipped) => self.skipped += 1,
            Some(HostVerdict::Interrupted) => self.interrupted += 1,
            Some(HostVerdict::RebootLoop) => self.reboot_loop += 1,
            None => self.not_started += 1,
        }
    }

    /// Count a host's verdict, or (when a quarantined patch explains its failure) count it as
    /// withheld, outside the budgets.
    pub fn add_judged(&mut self, verdict: Option<HostVerdict>, withheld: bool) {
        if withheld {
            self.withheld += 1;
        } else {
            self.add(verdict);
        }
    }

    /// What the failure budgets count: hosts that failed, were left unhealthy, or are stuck in a
    /// reboot loop.
    pub fn failed_for_budget(&self) -> usize {
        self.failed + self.unhealthy + self.reboot_loop
    }
    pub fn total(&self) -> usize {
        self.patched
            + self.nothing_to_do
            + self.failed
            + self.unhealthy
            + self.unreachable
            + self.skipped
            + self.interrupted
            + self.reboot_loop
            + self.withheld
            + self.not_started
    }
}
