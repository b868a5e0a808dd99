//! How deploying one host ended: its verdict, each patch's outcome, the reboots, and the work an
//! earlier attempt already did.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::events::{Step, StepOutcome};

/// The work an earlier attempt in this run already did on this host, so a resumed run never runs
/// an installer twice where it already succeeded. The pipeline fills it from the journal's
/// [`crate::rollout::ResumeState`] (deploy sits below the rollout and does not read journals).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorWork {
    /// Patches whose `Install` step finished ok (any ok outcome) in this run.
    pub installed: BTreeSet<String>,
    /// The reboot after the installs completed (its last phase finished ok).
    pub rebooted: bool,
    /// `Install` steps the journal shows started and never finished: the orchestrator died
    /// during them. Each is settled from the host's evidence ([`super::settle`]) before anything runs.
    #[serde(default)]
    pub interrupted: Vec<Step>,
    /// An earlier install asked for a reboot (3010/1641, qchain) that has not happened yet.
    #[serde(default)]
    pub reboot_required: bool,
    /// How many times each patch's installer was started in this run, finished or not: a patch
    /// still missing after its reboot is installed once more, never a third time
    /// ([`super::reinstall_once`]).
    #[serde(default)]
    pub install_runs: BTreeMap<String, u32>,
    /// What the last failed verification of this run found (its detail), kept as the first
    /// re-scan's evidence when a patch turns out missing twice.
    #[serde(default)]
    pub missing_after_reboot: Option<String>,
}

/// How deploying one host ended, step by step precise (which step failed, and how), for the
/// deploy report and the evidence. The rollout counts budgets on the coarser
/// [`crate::rollout::HostVerdict`] the pipeline maps this onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployVerdict {
    /// Every planned patch is installed, proven by the re-scan.
    Patched,
    /// Nothing was missing (or nothing approved).
    NothingToDo,
    /// An installer said "already installed" or "not applicable" but the re-scan still says
    /// missing: catalog and installer disagree; an admin must look.
    NeedsReview,
    /// Installed, but the reboot policy forbade the reboot they need.
    RebootPending,
    StageFailed,
    HashMismatch,
    InstallFailed,
    /// An installer hung and was killed.
    InstallTimedOut,
    /// `shutdown` was refused.
    RebootFailed,
    /// The host went down and did not come back in time.
    NeverReturned,
    /// The shutdown never happened (no boot-time change, host still up).
    DidNotReboot,
    /// Back up, but servicing was still configuring updates when the settle timeout ran out.
    StillConfiguring,
    /// Back up and settled, yet a reboot is still pending.
    RebootStillPending,
    /// The same reboot still pending after two reboots in a row, more reboots than allowed, or
    /// the same patch missing after two installs each followed by a reboot: the host is not
    /// rebooted (or the patch installed) again.
    RebootLoop,
    /// The re-scan says a patch is still missing.
    VerifyFailed,
    /// Commands could not reach the host.
    Unreachable,
    /// The journal could not record a step; the host was stopped before it.
    JournalFailed,
}

impl DeployVerdict {
    pub fn word(self) -> &'static str {
        match self {
            DeployVerdict::Patched => "patched",
            DeployVerdict::NothingToDo => "nothing_to_do",
            DeployVerdict::NeedsReview => "needs_review",
            DeployVerdict::RebootPending => "reboot_pending",
            DeployVerdict::StageFailed => "stage_failed",
            DeployVerdict::HashMismatch => "hash_mismatch",
            DeployVerdict::InstallFailed => "install_failed",
            DeployVerdict::InstallTimedOut => "install_timed_out",
            DeployVerdict::RebootFailed => "reboot_failed",
            DeployVerdict::NeverReturned => "never_returned",
            DeployVerdict::DidNotReboot => "did_not_reboot",
            DeployVerdict::StillConfiguring => "still_configuring",
            DeployVerdict::RebootStillPending => "reboot_still_pending",
            DeployVerdict::RebootLoop => "reboot_loop",
            DeployVerdict::VerifyFailed => "verify_failed",
            DeployVerdict::Unreachable => "unreachable",
            DeployVerdict::JournalFailed => "journal_failed",
        }
    }

    pub fn is_success(self) -> bool {
        matches!(self, DeployVerdict::Patched | DeployVerdict::NothingToDo)
    }
}

impl std::fmt::Display for DeployVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// What happened to one patch on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchOutcome {
    /// Not run (the host stopped before it).
    NotRun,
    /// Installed in an earlier attempt of this run (journal).
    DoneEarlier,
    Installed,
    RebootRequired,
    RebootInitiated,
    AlreadyInstalled,
    NotApplicable,
    Failed,
    TimedOut,
}

impl PatchOutcome {
    pub fn word(self) -> &'static str {
        match self {
            PatchOutcome::NotRun => "not_run",
            PatchOutcome::DoneEarlier => "done_earlier",
            PatchOutcome::Installed => "ok",
            PatchOutcome::RebootRequired => "reboot_required",
            PatchOutcome::RebootInitiated => "reboot_initiated",
            PatchOutcome::AlreadyInstalled => "already_installed",
            PatchOutcome::NotApplicable => "not_applicable",
            PatchOutcome::Failed => "failed",
            PatchOutcome::TimedOut => "timed_out",
        }
    }

    /// The install step's outcome in the journal.
    pub fn step_outcome(self) -> StepOutcome {
        match self {
            PatchOutcome::NotRun => StepOutcome::NotRun,
            PatchOutcome::DoneEarlier => StepOutcome::DoneEarlier,
            PatchOutcome::Installed => StepOutcome::Ok,
            PatchOutcome::RebootRequired => StepOutcome::RebootRequired,
            PatchOutcome::RebootInitiated => StepOutcome::RebootInitiated,
            PatchOutcome::AlreadyInstalled => StepOutcome::AlreadyInstalled,
            PatchOutcome::NotApplicable => StepOutcome::NotApplicable,
            PatchOutcome::Failed => StepOutcome::Failed,
            PatchOutcome::TimedOut => StepOutcome::TimedOut,
        }
    }

    /// Whether the installer ran to an acceptable end.
    pub fn is_ok(self) -> bool {
        matches!(
            self,
            PatchOutcome::DoneEarlier
                | PatchOutcome::Installed
                | PatchOutcome::RebootRequired
                | PatchOutcome::RebootInitiated
                | PatchOutcome::AlreadyInstalled
                | PatchOutcome::NotApplicable
        )
    }
}

/// One patch's line in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchResult {
    pub patch: String,
    pub bulletin: String,
    pub file: String,
    pub outcome: PatchOutcome,
    /// The last exit code (for .msu: of the last DISM run).
    pub exit_code: Option<u32>,
    pub attempts: u32,
    /// The re-scan's word on it (`installed`, `missing`, ...) with its evidence.
    pub verified: Option<String>,
    pub detail: String,
}

/// The reboot, measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootRecord {
    /// `hive` (shutdown /r) or `installer` (exit 1641).
    pub by: String,
    pub boot_before: String,
    pub boot_after: Option<String>,
    pub duration_ms: u64,
}

/// Everything the deploy report needs about one host (the rollout keeps only a verdict and a
/// line of it, as [`crate::rollout::HostOutcome`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployOutcome {
    pub host: String,
    pub verdict: DeployVerdict,
    pub patches: Vec<PatchResult>,
    pub reboots: Vec<RebootRecord>,
    /// Evidence lines: why the verdict, log tails, hash mismatches.
    pub evidence: Vec<String>,
}
