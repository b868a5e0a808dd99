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
pub mod hostlog;
pub mod detail;
pub mod install;
pub mod installs;
pub mod options;
pub mod outcome;
pub mod plan;
pub mod quote;
pub mod reboot;
pub mod reboot_loop;
pub mod reinstall_once;
pub mod settle;
pub mod stage;
pub mod verify;

#[cfg(test)]
pub mod test_support;

use std::path::PathBuf;
use std::time::Instant;

use crate::catalog::model::Catalog;
use crate::events::{Event, EventSink, Step, StepOutcome, StepState};
use crate::inventory::Host;
use crate::remote::{RemoteError, Target};
use crate::repo::{RepoError, Repository};
use crate::scan::run::PreparedProbe;

pub use options::{DeployOptions, RebootPolicy};
pub use outcome::{
    DeployOutcome, DeployVerdict, PatchOutcome, PatchResult, PriorWork, RebootRecord,
};
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

/// A host stopping: the verdict and why.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    pub verdict: DeployVerdict,
    pub why: String,
}

impl Stop {
    pub fn new(verdict: DeployVerdict, why: impl Into<String>) -> Stop {
        Stop {
            verdict,
            why: why.into(),
        }
    }

    pub fn remote(e: &RemoteError) -> Stop {
        let verdict = match e {
            RemoteError::TimedOut(_) | RemoteError::Unreachable(_) => DeployVerdict::Unreachable,
            _ => DeployVerdict::Unreachable,
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
    /// How the reboot phases see the host's port open and close (TCP unless a test fakes it).
    pub(crate) port: std::sync::Arc<dyn reboot::PortProbe>,
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
            port: std::sync::Arc::new(reboot::TcpPortProbe),
            created_files: Vec::new(),
            created_dirs: Vec::new(),
        }
    }

    /// See the host's port through `probe` instead of TCP (a [`crate::fake::FakeTarget`]'s).
    pub fn with_port_probe(mut self, probe: std::sync::Arc<dyn reboot::PortProbe>) -> Self {
        self.port = probe;
        self
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
        outcome: StepOutcome,
        detail: &str,
    ) -> Result<(), Stop> {
        self.emit(step, StepState::finished(ok, outcome, detail, None))
    }

    /// A step that ended ok having seen the host's boot time: the journal keeps it as a field,
    /// which a resumed run compares with the host's to tell whether a reboot happened meanwhile.
    pub(crate) fn finished_at_boot(
        &self,
        step: &Step,
        outcome: StepOutcome,
        detail: &str,
        boot_time: &str,
    ) -> Result<(), Stop> {
        self.emit(
            step,
            StepState::finished(true, outcome, detail, Some(boot_time)),
        )
    }

    fn emit(&self, step: &Step, state: StepState) -> Result<(), Stop> {
        if let StepState::Finished {
            ok,
            outcome,
            detail,
            ..
        } = &state
        {
            self.host_log(&hostlog::line(self.run, step, *ok, *outcome, detail));
        }
        let event = Event::new(self.run, &self.host.name, step.clone(), state);
        self.sink.emit(&event).map_err(|e| {
            Stop::new(
                DeployVerdict::JournalFailed,
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
        stage_dir_of(self.run)
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
/// good or bad, is a [`DeployOutcome`] with evidence.
pub async fn deploy_host(
    ctx: &mut HostContext<'_>,
    plan: &HostPlan,
    scan: &ScanInputs<'_>,
    resume: &PriorWork,
) -> DeployOutcome {
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
        return DeployOutcome {
            host: ctx.host.name.clone(),
            verdict: DeployVerdict::NothingToDo,
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
    DeployOutcome {
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
    resume: &PriorWork,
    patches: &mut [PatchResult],
    reboots: &mut Vec<RebootRecord>,
) -> Result<DeployVerdict, Stop> {
    // Installs a crash left open: the host says whether each landed (or waits for it to end).
    for step in &resume.interrupted {
        let Step::Install { patch, .. } = step else {
            continue;
        };
        let Some(i) = plan.installs.iter().position(|p| &p.patch == patch) else {
            ctx.finished(
                step,
                false,
                StepOutcome::NotPlanned,
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
            reboot_loop::reboot_until_clear(ctx, &boot, reboots).await?;
        } else if needs_reboot {
            verify::cleanup(ctx, &staged).await;
            return Ok(DeployVerdict::RebootPending);
        }
        // An installer's own restart (1641) is a reboot too.
        let rebooted = reboot_now || !reboots.is_empty();
        let verdict = reinstall_once::verify_after_reboot(
            ctx, scan, plan, patches, reboots, resume, rebooted,
        )
        .await;
        verify::cleanup(ctx, &staged).await;
        return verdict;
    }
    let verdict =
        reinstall_once::verify_after_reboot(ctx, scan, plan, patches, reboots, resume, true).await;
    let staged = stage::staged_paths(ctx, plan, plan.qchain);
    verify::cleanup(ctx, &staged).await;
    verdict
}

/// Where a run stages its files on a host: `C:\Windows\Temp\hive\<run>`.
pub fn stage_dir_of(run: &str) -> String {
    format!(r"C:\Windows\Temp\hive\{run}")
}

/// Write `installs/<host>.cmd` for a plan a run is about to carry out (or a dry run printed).
/// A record only: a failure to write it is said in the host's log and does not stop the host.
pub fn record_plan(repo: &Repository, plan: &HostPlan, run: &str, options: &DeployOptions) {
    let written = installs::write(
        repo,
        plan,
        run,
        &stage_dir_of(run),
        options.shutdown_delay_s,
    );
    if let Err(e) = written {
        let _ = repo.append_host_log(
            &plan.host,
            &format!("run {run}: installs/{}.cmd not written: {e}", plan.host),
        );
    }
}

/// Milliseconds since `start`, for records.
pub(crate) fn elapsed_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}
