//! Deploy: put the approved installers a host is missing on it, run them silently, chain them,
//! reboot once, and prove by re-scanning that they landed — all from the orchestrator, with no
//! share of our own, no scheduled task and no service on the host.
//!
//! The order of work per host, each step announced to the [`EventSink`] before it happens and
//! after it ends (the journal makes both durable; a sink that cannot record stops the host):
//! [`stage`] (copy + hash on the target) → [`install`] (recipe switches, exit codes, 1618
//! back-off, per-installer timeout) → [`chain`] (qchain.exe after chained legacy hotfixes) →
//! [`reboot`] (policy, boot-time change, phases) → [`verify`] (re-scan, clean up).
//!
//! [`mod@plan`] is pure and gives `hive deploy --dry-run` its table.

pub mod chain;
pub mod install;
pub mod plan;
pub mod quote;
pub mod reboot;
pub mod settle;
pub mod stage;
pub mod verify;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::catalog::model::Catalog;
use crate::events::{Event, EventSink, Step, StepState};
use crate::inventory::Host;
use crate::remote::{RemoteError, Target};
use crate::repo::{RepoError, Repository};
use crate::scan::run::PreparedProbe;

pub use plan::{
    ApprovedInstaller, HostPlan, Plan, PlannedInstall, load_approved, plan, plan_host,
    plan_host_keeping, render,
};

/// Why deploying could not even start (the per-host outcomes carry everything else).
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("repository folder {path}: {message}")]
    Repository { path: PathBuf, message: String },
}

/// When hive reboots a host after installing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RebootPolicy {
    /// Never: patches needing a reboot stay pending (the verdict says so).
    Never,
    /// When an installer or the host says a reboot is needed.
    #[default]
    IfRequired,
    /// Always once after installing.
    Always,
}

/// How a deploy runs. The defaults suit real servers; tests shorten them.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub reboot: RebootPolicy,
    /// `shutdown /r /t N`.
    pub shutdown_delay_s: u32,
    /// One installer run; a hung installer is killed after this.
    pub install_timeout: Duration,
    /// Short commands (hash, boot time, shutdown).
    pub command_timeout: Duration,
    /// Attempts for an installer that answers 1618 (another install running).
    pub busy_attempts: u32,
    /// The first wait after a 1618; doubles each time.
    pub busy_backoff: Duration,
    /// How often the reboot phases look at the host.
    pub poll_interval: Duration,
    /// Phase `down`: from `shutdown` until the host is seen going down (or back with a new boot
    /// time).
    pub down_timeout: Duration,
    /// Phase `port`: until the WinRM port accepts again.
    pub port_timeout: Duration,
    /// Phase `login`: until a command runs and shows the new boot time.
    pub login_timeout: Duration,
    /// Phase `settled`: until servicing ("configuring updates") is finished.
    pub settle_timeout: Duration,
    /// The re-scan after the reboot.
    pub verify_timeout: Duration,
    /// qchain.exe to stage when legacy hotfixes are chained; `None`: `<repo>/tools/qchain.exe`
    /// if it exists, else the host's own qchain.exe on its search path.
    pub qchain: Option<PathBuf>,
    /// Remove the staged files at the end.
    pub cleanup: bool,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            reboot: RebootPolicy::IfRequired,
            shutdown_delay_s: 5,
            install_timeout: Duration::from_secs(30 * 60),
            command_timeout: Duration::from_secs(60),
            busy_attempts: 5,
            busy_backoff: Duration::from_secs(30),
            poll_interval: Duration::from_secs(5),
            down_timeout: Duration::from_secs(600),
            port_timeout: Duration::from_secs(600),
            login_timeout: Duration::from_secs(300),
            settle_timeout: Duration::from_secs(1800),
            verify_timeout: Duration::from_secs(300),
            qchain: None,
            cleanup: true,
        }
    }
}

/// What the journal already knows about this host in this run, so a resumed run never runs an
/// installer twice where it already succeeded. Plain data the journal fills from its records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeState {
    /// Patches whose `Install` step finished ok (any ok outcome) in this run.
    pub installed: BTreeSet<String>,
    /// The reboot after the installs completed (its last phase finished ok).
    pub rebooted: bool,
    /// `Install` steps the journal shows started and never finished: the orchestrator died
    /// during them. Each is settled from the host's evidence ([`settle`]) before anything runs.
    #[serde(default)]
    pub interrupted: Vec<Step>,
    /// An earlier install asked for a reboot (3010/1641, qchain) that has not happened yet.
    #[serde(default)]
    pub reboot_required: bool,
}

/// The per-host verdict, one word for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostVerdict {
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
    /// The re-scan says a patch is still missing.
    VerifyFailed,
    /// Commands could not reach the host.
    Unreachable,
    /// The journal could not record a step; the host was stopped before it.
    JournalFailed,
}

impl HostVerdict {
    pub fn word(self) -> &'static str {
        match self {
            HostVerdict::Patched => "patched",
            HostVerdict::NothingToDo => "nothing_to_do",
            HostVerdict::NeedsReview => "needs_review",
            HostVerdict::RebootPending => "reboot_pending",
            HostVerdict::StageFailed => "stage_failed",
            HostVerdict::HashMismatch => "hash_mismatch",
            HostVerdict::InstallFailed => "install_failed",
            HostVerdict::InstallTimedOut => "install_timed_out",
            HostVerdict::RebootFailed => "reboot_failed",
            HostVerdict::NeverReturned => "never_returned",
            HostVerdict::DidNotReboot => "did_not_reboot",
            HostVerdict::StillConfiguring => "still_configuring",
            HostVerdict::RebootStillPending => "reboot_still_pending",
            HostVerdict::VerifyFailed => "verify_failed",
            HostVerdict::Unreachable => "unreachable",
            HostVerdict::JournalFailed => "journal_failed",
        }
    }

    pub fn is_success(self) -> bool {
        matches!(self, HostVerdict::Patched | HostVerdict::NothingToDo)
    }
}

impl std::fmt::Display for HostVerdict {
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

/// Everything the report needs about one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOutcome {
    pub host: String,
    pub verdict: HostVerdict,
    pub patches: Vec<PatchResult>,
    pub reboots: Vec<RebootRecord>,
    /// Evidence lines: why the verdict, log tails, hash mismatches.
    pub evidence: Vec<String>,
}

/// A host stopping: the verdict and why.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    pub verdict: HostVerdict,
    pub why: String,
}

impl Stop {
    pub fn new(verdict: HostVerdict, why: impl Into<String>) -> Stop {
        Stop {
            verdict,
            why: why.into(),
        }
    }

    pub fn remote(e: &RemoteError) -> Stop {
        let verdict = match e {
            RemoteError::TimedOut(_) | RemoteError::Unreachable(_) => HostVerdict::Unreachable,
            _ => HostVerdict::Unreachable,
        };
        Stop::new(verdict, e.to_string())
    }
}

/// What one host's deploy works with.
pub struct HostContext<'a> {
    pub run: &'a str,
    pub host: &'a Host,
    pub target: &'a mut dyn Target,
    pub sink: &'a dyn EventSink,
    /// Where failed installers' log tails go (`logs/<host>.log`); optional for library users
    /// without a repository.
    pub repo: Option<&'a Repository>,
    pub options: &'a DeployOptions,
    /// Files and folders the installs created beside the staged ones (expanded cabinets), for
    /// the clean-up.
    pub(crate) created_files: Vec<String>,
    pub(crate) created_dirs: Vec<String>,
}

impl<'a> HostContext<'a> {
    pub fn new(
        run: &'a str,
        host: &'a Host,
        target: &'a mut dyn Target,
        sink: &'a dyn EventSink,
        repo: Option<&'a Repository>,
        options: &'a DeployOptions,
    ) -> HostContext<'a> {
        HostContext {
            run,
            host,
            target,
            sink,
            repo,
            options,
            created_files: Vec::new(),
            created_dirs: Vec::new(),
        }
    }
}

impl HostContext<'_> {
    /// Announce a step; a sink that cannot record it stops the host before the step.
    pub(crate) fn started(&self, step: &Step) -> Result<(), Stop> {
        self.emit(step, StepState::Started)
    }

    pub(crate) fn finished(
        &self,
        step: &Step,
        ok: bool,
        outcome: &str,
        detail: &str,
    ) -> Result<(), Stop> {
        self.emit(
            step,
            StepState::Finished {
                ok,
                outcome: outcome.to_string(),
                detail: detail.to_string(),
            },
        )
    }

    fn emit(&self, step: &Step, state: StepState) -> Result<(), Stop> {
        let event = Event::new(self.run, &self.host.name, step.clone(), state);
        self.sink.emit(&event).map_err(|e| {
            Stop::new(
                HostVerdict::JournalFailed,
                format!("the journal could not record {step:?}: {e}"),
            )
        })
    }

    /// Append to the host's log in the repository (best effort: the event stream already holds
    /// the evidence).
    pub(crate) fn host_log(&self, line: &str) {
        if let Some(repo) = self.repo {
            let _ = repo.append_host_log(&self.host.name, line);
        }
    }

    /// `C:\Windows\Temp\hive\<run>`.
    pub fn stage_dir(&self) -> String {
        format!(r"C:\Windows\Temp\hive\{}", self.run)
    }
}

/// What the scan side gives the deploy: the catalog and the prepared probe to re-scan with.
pub struct ScanInputs<'a> {
    pub catalog: &'a Catalog,
    pub probe: &'a PreparedProbe,
    /// Where the re-scan reads file versions (as the first scan did).
    pub files: crate::scan::run::FileSource,
}

/// Deploy one host's plan. Never panics and never returns early without an outcome: every end,
/// good or bad, is a [`HostOutcome`] with evidence.
pub async fn deploy_host(
    ctx: &mut HostContext<'_>,
    plan: &HostPlan,
    scan: &ScanInputs<'_>,
    resume: &ResumeState,
) -> HostOutcome {
    let mut patches: Vec<PatchResult> = plan
        .installs
        .iter()
        .map(|i| PatchResult {
            patch: i.patch.clone(),
            bulletin: i.bulletin.clone(),
            file: i.installer.file_name.clone(),
            outcome: if resume.installed.contains(&i.patch) {
                PatchOutcome::DoneEarlier
            } else {
                PatchOutcome::NotRun
            },
            exit_code: None,
            attempts: 0,
            verified: None,
            detail: String::new(),
        })
        .collect();
    let mut reboots = Vec::new();
    let mut evidence = Vec::new();
    if plan.installs.is_empty() {
        return HostOutcome {
            host: ctx.host.name.clone(),
            verdict: HostVerdict::NothingToDo,
            patches,
            reboots,
            evidence: plan
                .unplanned
                .iter()
                .map(|u| format!("{}: {}", u.patch, u.why))
                .collect(),
        };
    }
    let verdict = match run_host(ctx, plan, scan, resume, &mut patches, &mut reboots).await {
        Ok(v) => v,
        Err(stop) => {
            evidence.push(stop.why.clone());
            ctx.host_log(&format!(
                "run {}: stopped, {}: {}",
                ctx.run,
                stop.verdict.word(),
                stop.why
            ));
            stop.verdict
        }
    };
    for p in &patches {
        if !p.detail.is_empty() && !p.outcome.is_ok() {
            evidence.push(format!("{} ({}): {}", p.patch, p.outcome.word(), p.detail));
        }
    }
    HostOutcome {
        host: ctx.host.name.clone(),
        verdict,
        patches,
        reboots,
        evidence,
    }
}

async fn run_host(
    ctx: &mut HostContext<'_>,
    plan: &HostPlan,
    scan: &ScanInputs<'_>,
    resume: &ResumeState,
    patches: &mut [PatchResult],
    reboots: &mut Vec<RebootRecord>,
) -> Result<HostVerdict, Stop> {
    // Installs a crash left open: the host says whether each landed (or waits for it to end).
    for step in &resume.interrupted {
        let Step::Install { patch, .. } = step else {
            continue;
        };
        let Some(i) = plan.installs.iter().position(|p| &p.patch == patch) else {
            ctx.finished(
                step,
                false,
                "not_planned",
                "the re-scan no longer plans this patch (not applicable or no approved installer)",
            )?;
            continue;
        };
        match settle::interrupted_install(ctx, scan, &plan.installs[i], step).await? {
            settle::Settled::Landed(why) => {
                patches[i].outcome = PatchOutcome::DoneEarlier;
                patches[i].detail = why;
            }
            settle::Settled::NotInstalled(_) => patches[i].outcome = PatchOutcome::NotRun,
        }
    }
    let left = patches.iter().any(|p| p.outcome == PatchOutcome::NotRun);
    if !resume.rebooted || left {
        let before = reboot::host_state(ctx).await?;
        let mut boot = before.boot.clone();
        let todo: Vec<usize> = (0..plan.installs.len())
            .filter(|&i| patches[i].outcome == PatchOutcome::NotRun)
            .collect();
        let qchain_tool = chain::qchain_tool(ctx, plan);
        let staged = stage::stage_all(ctx, plan, &todo, qchain_tool.as_deref()).await?;
        // A patch installed before the crash may still wait for its reboot.
        let mut needs_reboot = resume.reboot_required && !resume.rebooted;
        for &i in &todo {
            let Some(remote) = staged.installers.get(&i) else {
                continue;
            };
            let result =
                install::install_one(ctx, &plan.installs[i], i, plan.installs.len(), remote).await;
            let (outcome, stop) = match result {
                Ok(r) => {
                    patches[i].outcome = r.outcome;
                    patches[i].exit_code = r.exit_code;
                    patches[i].attempts = r.attempts;
                    patches[i].detail = r.detail;
                    (r.outcome, None)
                }
                Err((r, stop)) => {
                    patches[i].outcome = r.outcome;
                    patches[i].exit_code = r.exit_code;
                    patches[i].attempts = r.attempts;
                    patches[i].detail = r.detail;
                    (r.outcome, Some(stop))
                }
            };
            if let Some(stop) = stop {
                return Err(stop);
            }
            match outcome {
                PatchOutcome::RebootRequired => needs_reboot = true,
                PatchOutcome::RebootInitiated => {
                    // The installer restarts the host itself: wait for it before going on.
                    let record = reboot::wait_for_reboot(ctx, &boot, "installer").await?;
                    boot = record.boot_after.clone().unwrap_or(boot);
                    reboots.push(record);
                    needs_reboot = false;
                }
                _ => {}
            }
        }
        let chained_legacy = plan.qchain
            && patches
                .iter()
                .zip(&plan.installs)
                .filter(|(p, i)| {
                    i.installer.recipe.needs_qchain
                        && matches!(
                            p.outcome,
                            PatchOutcome::Installed
                                | PatchOutcome::RebootRequired
                                | PatchOutcome::DoneEarlier
                        )
                })
                .count()
                > 1;
        if chained_legacy {
            chain::run_qchain(ctx, staged.qchain.as_deref()).await?;
            needs_reboot = true;
        }
        let state = reboot::host_state(ctx).await?;
        needs_reboot |= !state.pending.is_empty();
        let reboot_now = match ctx.options.reboot {
            RebootPolicy::Never => false,
            RebootPolicy::IfRequired => needs_reboot,
            // Once after installing: not again for a resumed host whose reboot already came.
            RebootPolicy::Always => needs_reboot || !resume.rebooted || !todo.is_empty(),
        };
        if reboot_now {
            let record = reboot::reboot(ctx, &boot).await?;
            reboots.push(record);
        } else if needs_reboot {
            verify::cleanup(ctx, &staged).await;
            return Ok(HostVerdict::RebootPending);
        }
        let verdict = verify::verify(ctx, scan, plan, patches).await;
        verify::cleanup(ctx, &staged).await;
        return verdict;
    }
    let verdict = verify::verify(ctx, scan, plan, patches).await;
    let staged = stage::staged_paths(ctx, plan, plan.qchain);
    verify::cleanup(ctx, &staged).await;
    verdict
}

/// Milliseconds since `start`, for records.
pub(crate) fn elapsed_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}
