//! One host's rollback: run each patch's uninstaller (last installed, first removed), reboot
//! once under the run's reboot policy, then prove by a re-scan with the same catalog detection
//! that every removed patch is missing again.
//!
//! Every step is announced before and after (the journal makes both durable), with deploy's
//! reboot control ([`crate::deploy::reboot`]): a host is rebooted by hive at most once, an
//! uninstaller's own restart (1641) is waited for, and a host that stays pending says so.
//! A patch that cannot come off — a permanent package, an uninstaller that is not there — is a
//! per-patch outcome with its evidence, not a stop: the other patches still come off.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::command::{self, ExitSaid, Method};
use super::resume::TakenOff;
use crate::catalog::model::InstallerRecipe;
use crate::deploy::{DeployVerdict, HostContext, RebootPolicy, RebootRecord, ScanInputs, Stop};
use crate::events::{Step, StepOutcome};
use crate::remote::{Command, ExecOutput, RemoteError};
use crate::scan::evaluate::{Status, Verdict};

/// One patch to take off, with the recipe it was approved with.
#[derive(Debug, Clone)]
pub struct Removal {
    pub patch: String,
    pub recipe: Option<InstallerRecipe>,
    /// The approved package in the repository: staged again when the recipe has the package
    /// take itself off (`uninstall = "package"`).
    pub package: Option<PackageFile>,
}

/// An installer in the repository and its name on the host.
#[derive(Debug, Clone)]
pub struct PackageFile {
    pub local: std::path::PathBuf,
    pub file_name: String,
}

/// What happened to one patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoveOutcome {
    /// Not run (the host stopped before it).
    NotRun,
    Removed,
    RebootRequired,
    RebootInitiated,
    /// Not on the host: the scan (or the uninstaller) says so; nothing was run.
    NotInstalled,
    Permanent,
    UninstallerMissing,
    Failed,
    TimedOut,
}

impl RemoveOutcome {
    pub fn word(self) -> &'static str {
        self.step_outcome().as_str()
    }

    fn step_outcome(self) -> StepOutcome {
        match self {
            RemoveOutcome::NotRun => StepOutcome::NotRun,
            RemoveOutcome::Removed => StepOutcome::Removed,
            RemoveOutcome::RebootRequired => StepOutcome::RebootRequired,
            RemoveOutcome::RebootInitiated => StepOutcome::RebootInitiated,
            RemoveOutcome::NotInstalled => StepOutcome::NotInstalled,
            RemoveOutcome::Permanent => StepOutcome::Permanent,
            RemoveOutcome::UninstallerMissing => StepOutcome::UninstallerMissing,
            RemoveOutcome::Failed => StepOutcome::Failed,
            RemoveOutcome::TimedOut => StepOutcome::TimedOut,
        }
    }

    /// The uninstaller took the patch off.
    pub fn removed(self) -> bool {
        matches!(
            self,
            RemoveOutcome::Removed | RemoveOutcome::RebootRequired | RemoveOutcome::RebootInitiated
        )
    }
}

/// One patch's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveResult {
    pub patch: String,
    pub outcome: RemoveOutcome,
    pub exit_code: Option<u32>,
    pub detail: String,
    /// The re-scan's word on it after the rollback (`missing: ...`).
    pub verified: Option<String>,
}

/// How one host's rollback ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackVerdict {
    /// Every patch came off, and the re-scan proves each missing again.
    RolledBack,
    /// None of the patches was on the host any more.
    NothingToDo,
    /// A patch is permanent: Windows will not remove it (the others came off).
    Permanent,
    /// A patch's uninstaller is not there (the others came off).
    UninstallerMissing,
    UninstallFailed,
    UninstallTimedOut,
    /// Removed, but the reboot policy forbade the reboot that finishes it.
    RebootPending,
    /// The re-scan still finds a removed patch.
    StillInstalled,
    /// The reboot (or reaching the host) failed; the deploy verdict says how.
    Stopped(DeployVerdict),
}

impl RollbackVerdict {
    pub fn word(self) -> &'static str {
        match self {
            RollbackVerdict::RolledBack => "rolled_back",
            RollbackVerdict::NothingToDo => "nothing_to_do",
            RollbackVerdict::Permanent => "permanent",
            RollbackVerdict::UninstallerMissing => "uninstaller_missing",
            RollbackVerdict::UninstallFailed => "uninstall_failed",
            RollbackVerdict::UninstallTimedOut => "uninstall_timed_out",
            RollbackVerdict::RebootPending => "reboot_pending",
            RollbackVerdict::StillInstalled => "still_installed",
            RollbackVerdict::Stopped(v) => v.word(),
        }
    }
}

/// Everything about one host's rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOutcome {
    pub host: String,
    pub verdict: RollbackVerdict,
    pub patches: Vec<RemoveResult>,
    pub reboots: Vec<RebootRecord>,
    pub evidence: Vec<String>,
}

/// Take `removals` off the host, given the scan that just ran (`before`). `taken_before` are
/// the patches this run already took off (a resumed run): their uninstallers are not run again,
/// but their reboot and verification are still this host's.
pub async fn roll_back_host(
    ctx: &mut HostContext<'_>,
    scan: &ScanInputs<'_>,
    before: &[Verdict],
    removals: &[Removal],
    taken_before: &TakenOff,
) -> RollbackOutcome {
    let mut patches: Vec<RemoveResult> = removals
        .iter()
        .map(|r| RemoveResult {
            patch: r.patch.clone(),
            outcome: RemoveOutcome::NotRun,
            exit_code: None,
            detail: String::new(),
            verified: None,
        })
        .collect();
    let mut reboots = Vec::new();
    let mut evidence = Vec::new();
    let verdict = match run(
        ctx,
        scan,
        Before {
            verdicts: before,
            taken: taken_before,
        },
        removals,
        &mut patches,
        &mut reboots,
    )
    .await
    {
        Ok(v) => v,
        Err(stop) => {
            evidence.push(stop.why.clone());
            ctx.host_log(&format!(
                "rollback {}: stopped, {}: {}",
                ctx.run,
                stop.verdict.word(),
                stop.why
            ));
            match stop.verdict {
                DeployVerdict::InstallFailed => RollbackVerdict::UninstallFailed,
                DeployVerdict::InstallTimedOut => RollbackVerdict::UninstallTimedOut,
                DeployVerdict::VerifyFailed => RollbackVerdict::StillInstalled,
                v => RollbackVerdict::Stopped(v),
            }
        }
    };
    for p in &patches {
        if !p.detail.is_empty() && !p.outcome.removed() {
            evidence.push(format!("{} ({}): {}", p.patch, p.outcome.word(), p.detail));
        }
    }
    RollbackOutcome {
        host: ctx.host.name.clone(),
        verdict,
        patches,
        reboots,
        evidence,
    }
}

/// What was known of the host before its removals.
struct Before<'a> {
    /// The scan that just ran.
    verdicts: &'a [Verdict],
    /// Taken off earlier in this run.
    taken: &'a TakenOff,
}

async fn run(
    ctx: &mut HostContext<'_>,
    scan: &ScanInputs<'_>,
    before: Before<'_>,
    removals: &[Removal],
    patches: &mut [RemoveResult],
    reboots: &mut Vec<RebootRecord>,
) -> Result<RollbackVerdict, Stop> {
    // What this run took off already, or the scan finds missing, is not touched: the uninstaller
    // never runs twice.
    let mut todo = Vec::new();
    let mut earlier = Vec::new();
    for (i, r) in removals.iter().enumerate() {
        if before.taken.patches.contains(&r.patch) {
            patches[i].outcome = RemoveOutcome::Removed;
            patches[i].detail = "taken off earlier in this run (journal)".into();
            earlier.push(i);
            continue;
        }
        match before.verdicts.iter().find(|v| *v.patch == *r.patch) {
            Some(v) if v.status == Status::Installed => todo.push(i),
            Some(v) => {
                patches[i].outcome = RemoveOutcome::NotInstalled;
                patches[i].detail = format!("the scan says {}: {}", v.status, v.evidence);
            }
            None => {
                patches[i].outcome = RemoveOutcome::NotInstalled;
                patches[i].detail = "the catalog no longer knows the patch".into();
            }
        }
    }
    if todo.is_empty() && earlier.is_empty() {
        return Ok(RollbackVerdict::NothingToDo);
    }
    let state = crate::deploy::reboot::host_state(ctx).await?;
    let mut boot = state.boot.clone();
    let mut system_root: Option<String> = None;
    let needs_reboot = uninstall_each(
        ctx,
        removals,
        &todo,
        patches,
        reboots,
        &mut boot,
        &mut system_root,
    )
    .await?;
    let removed: Vec<usize> = earlier
        .iter()
        .chain(&todo)
        .copied()
        .filter(|&i| patches[i].outcome.removed())
        .collect();
    let kept = |o: RemoveOutcome| todo.iter().any(|&i| patches[i].outcome == o);
    let after_removal = if kept(RemoveOutcome::Permanent) {
        RollbackVerdict::Permanent
    } else if kept(RemoveOutcome::UninstallerMissing) {
        RollbackVerdict::UninstallerMissing
    } else {
        RollbackVerdict::RolledBack
    };
    if removed.is_empty() {
        return Ok(if after_removal == RollbackVerdict::RolledBack {
            RollbackVerdict::NothingToDo
        } else {
            after_removal
        });
    }
    if !reboot_as_needed(ctx, reboots, &boot, needs_reboot, false).await? {
        return Ok(RollbackVerdict::RebootPending);
    }
    // An uninstall settled on resume as finishing at the reboot, still there after one: it was
    // cut off before it ran, so it runs now, once, and the host reboots again if it asks to.
    let rebooted = !reboots.is_empty();
    let never_ran = |p: &str| rebooted && before.taken.at_reboot.contains(p);
    let rerun = verify(ctx, scan, &removed, patches, &never_ran).await?;
    if rerun.is_empty() {
        return Ok(after_removal);
    }
    if let Some(after) = reboots.last().and_then(|r| r.boot_after.clone()) {
        boot = after;
    }
    let needs_reboot = uninstall_each(
        ctx,
        removals,
        &rerun,
        patches,
        reboots,
        &mut boot,
        &mut system_root,
    )
    .await?;
    if !reboot_as_needed(ctx, reboots, &boot, needs_reboot, true).await? {
        return Ok(RollbackVerdict::RebootPending);
    }
    verify(ctx, scan, &removed, patches, &|_| false).await?;
    Ok(after_removal)
}

/// Reboot under the run's policy once the uninstallers ran; `false` when the host stays with a
/// reboot pending (policy `never`). `reboots` holds the reboots this job already made: `always`
/// asks for one when there was none; a second round of uninstallers (`again`) reboots only when
/// it needs to.
async fn reboot_as_needed(
    ctx: &mut HostContext<'_>,
    reboots: &mut Vec<RebootRecord>,
    boot: &str,
    needs_reboot: bool,
    again: bool,
) -> Result<bool, Stop> {
    let state = crate::deploy::reboot::host_state(ctx).await?;
    let needs_reboot = needs_reboot || !state.pending.is_empty();
    let reboot_now = match ctx.options.reboot {
        RebootPolicy::Never => false,
        RebootPolicy::IfRequired => needs_reboot,
        RebootPolicy::Always if again => needs_reboot,
        RebootPolicy::Always => reboots.is_empty(),
    };
    if reboot_now {
        reboots.push(crate::deploy::reboot::reboot(ctx, boot).await?);
    }
    Ok(reboot_now || !needs_reboot)
}

/// Run the uninstallers of `which` (indexes into `removals`), each announced and journaled, in
/// order; an uninstaller that restarts the host (1641) is waited for. Returns whether one asked
/// for a reboot it did not make itself.
async fn uninstall_each(
    ctx: &mut HostContext<'_>,
    removals: &[Removal],
    which: &[usize],
    patches: &mut [RemoveResult],
    reboots: &mut Vec<RebootRecord>,
    boot: &mut String,
    system_root: &mut Option<String>,
) -> Result<bool, Stop> {
    let mut needs_reboot = false;
    for (k, &i) in which.iter().enumerate() {
        let step = Step::Uninstall {
            patch: removals[i].patch.clone(),
            index: k as u32 + 1,
            total: which.len() as u32,
        };
        ctx.started(&step)?;
        let result = remove_one(ctx, &removals[i], system_root).await;
        let (said, stop) = match result {
            Ok(s) => (s, None),
            Err((s, stop)) => (s, Some(stop)),
        };
        patches[i].outcome = said.outcome;
        patches[i].exit_code = said.exit_code;
        patches[i].detail = said.detail.clone();
        let detail = match said.exit_code {
            Some(c) => format!("exit {c} (0x{c:08X}); {}", said.detail),
            None => said.detail.clone(),
        };
        let ok = said.outcome.removed() || said.outcome == RemoveOutcome::NotInstalled;
        ctx.finished(&step, ok, said.outcome.step_outcome(), &detail)?;
        if !ok {
            ctx.host_log(&format!("{}: {}", removals[i].patch, detail));
        }
        if let Some(stop) = stop {
            return Err(stop);
        }
        match said.outcome {
            RemoveOutcome::RebootRequired => needs_reboot = true,
            RemoveOutcome::RebootInitiated => {
                let record =
                    crate::deploy::reboot::wait_for_reboot(ctx, boot, "uninstaller").await?;
                if let Some(after) = record.boot_after.clone() {
                    *boot = after;
                }
                reboots.push(record);
                needs_reboot = false;
            }
            _ => {}
        }
    }
    Ok(needs_reboot)
}

/// How one uninstaller run ended.
struct Said {
    outcome: RemoveOutcome,
    exit_code: Option<u32>,
    detail: String,
}

impl Said {
    fn new(outcome: RemoveOutcome, detail: impl Into<String>) -> Said {
        Said {
            outcome,
            exit_code: None,
            detail: detail.into(),
        }
    }
}

type Ended = Result<Said, (Said, Stop)>;

fn failed(patch: &str, detail: String, verdict: DeployVerdict) -> (Said, Stop) {
    let outcome = if verdict == DeployVerdict::InstallTimedOut {
        RemoveOutcome::TimedOut
    } else {
        RemoveOutcome::Failed
    };
    (
        Said::new(outcome, detail.clone()),
        Stop::new(verdict, format!("{patch}: {detail}")),
    )
}

async fn remove_one(
    ctx: &mut HostContext<'_>,
    removal: &Removal,
    system_root: &mut Option<String>,
) -> Ended {
    let mut staged = None;
    let ended = remove_with(ctx, removal, system_root, &mut staged).await;
    if let Some(path) = staged {
        // The package was copied only to take itself off: it does not stay on the host.
        if let Ok(line) = crate::deploy::quote::command_line(&["del", "/q", &path]) {
            let _ = ctx
                .target
                .exec(&Command::Cmd(line), ctx.options.command_timeout)
                .await;
        }
    }
    ended
}

async fn remove_with(
    ctx: &mut HostContext<'_>,
    removal: &Removal,
    system_root: &mut Option<String>,
    staged: &mut Option<String>,
) -> Ended {
    let patch = removal.patch.as_str();
    let Some(recipe) = removal.recipe.as_ref() else {
        let why = command::NoMethod::NoRecipe.to_string();
        return Ok(Said::new(RemoveOutcome::UninstallerMissing, why));
    };
    let method = match command::method(patch, Some(recipe)) {
        Ok(m) => m,
        Err(e) => return Ok(Said::new(RemoveOutcome::UninstallerMissing, e.to_string())),
    };
    let bad_line = |e: crate::deploy::quote::QuoteError| {
        failed(patch, e.to_string(), DeployVerdict::InstallFailed)
    };
    let timeout = ctx.options.command_timeout;
    let lines: Vec<String> = match &method {
        Method::Spuninst { id } => {
            let root = match system_root.clone() {
                Some(r) => r,
                None => {
                    let out = exec(ctx, patch, command::SYSTEM_ROOT_QUERY, timeout).await?;
                    let Some(root) = command::parse_system_root(&out.stdout) else {
                        return Err(failed(
                            patch,
                            format!(
                                "cannot read SystemRoot (reg query exited {}): {}",
                                out.exit_code,
                                first_line(&out)
                            ),
                            DeployVerdict::InstallFailed,
                        ));
                    };
                    *system_root = Some(root.clone());
                    root
                }
            };
            let path = command::spuninst_path(&root, id);
            match ctx.target.read_file_range(&path, 0, 2).await {
                Ok(_) => {}
                Err(RemoteError::NotFound(_)) => {
                    return Ok(Said::new(
                        RemoveOutcome::UninstallerMissing,
                        format!(
                            "{path} is not there: the hotfix was installed without its uninstall folder (-n) or the $NtUninstall{id}$ folder was deleted, so Windows cannot put the old files back"
                        ),
                    ));
                }
                Err(e) => {
                    return Err((
                        Said::new(RemoveOutcome::Failed, e.to_string()),
                        Stop::remote(&e),
                    ));
                }
            }
            vec![command::spuninst_line(&path).map_err(bad_line)?]
        }
        Method::Dism { kb } => {
            let out = exec(ctx, patch, command::GET_PACKAGES, timeout).await?;
            if out.exit_code != 0 {
                return Err(failed(
                    patch,
                    format!(
                        "`{}` exited {}: {}",
                        command::GET_PACKAGES,
                        out.exit_code,
                        first_line(&out)
                    ),
                    DeployVerdict::InstallFailed,
                ));
            }
            let names = command::packages_for(&out.stdout, kb);
            if names.is_empty() {
                return Ok(Said::new(
                    RemoveOutcome::UninstallerMissing,
                    format!(
                        "`{}` lists no Package_for_{kb}~… package: DISM has nothing to remove for it",
                        command::GET_PACKAGES
                    ),
                ));
            }
            names
                .iter()
                .map(|n| command::dism_remove_line(n))
                .collect::<Result<_, _>>()
                .map_err(bad_line)?
        }
        Method::Msi { product_code } => {
            vec![command::msiexec_remove_line(product_code).map_err(bad_line)?]
        }
        Method::HotfixPackage { id } => {
            let Some(package) = &removal.package else {
                return Ok(Said::new(
                    RemoveOutcome::UninstallerMissing,
                    format!(
                        "its recipe has the package take {id} off (-y) but no approved package for it is in the repository"
                    ),
                ));
            };
            let remote = format!(r"{}\{}", ctx.stage_dir(), package.file_name);
            if let Err(e) = ctx.target.put_file(&package.local, &remote).await {
                return Err((
                    Said::new(
                        RemoveOutcome::Failed,
                        format!("staging {} to take it off: {e}", package.file_name),
                    ),
                    Stop::remote(&e),
                ));
            }
            *staged = Some(remote.clone());
            vec![command::hotfix_uninstall_line(&remote).map_err(bad_line)?]
        }
    };
    let mut parts = Vec::new();
    let mut last = None;
    for line in &lines {
        let (said, code) = run_with_retry(ctx, patch, recipe, line).await?;
        last = Some(code);
        match said {
            ExitSaid::Permanent => {
                return Ok(Said {
                    outcome: RemoveOutcome::Permanent,
                    exit_code: Some(code),
                    detail: format!(
                        "Windows marks it permanent (DISM 0x{code:08X}): it cannot be removed"
                    ),
                });
            }
            ExitSaid::Failed | ExitSaid::RetryLater => {
                let why = if said == ExitSaid::RetryLater {
                    format!("still busy (exit {code}): another installation kept running")
                } else {
                    format!("`{line}` failed with exit {code} (0x{code:08X})")
                };
                return Err((
                    Said {
                        outcome: RemoveOutcome::Failed,
                        exit_code: Some(code),
                        detail: why.clone(),
                    },
                    Stop::new(DeployVerdict::InstallFailed, format!("{patch}: {why}")),
                ));
            }
            other => parts.push(other),
        }
    }
    let outcome = if parts.contains(&ExitSaid::RebootInitiated) {
        RemoveOutcome::RebootInitiated
    } else if parts.contains(&ExitSaid::RebootRequired) {
        RemoveOutcome::RebootRequired
    } else if parts.iter().all(|p| *p == ExitSaid::NotInstalled) {
        RemoveOutcome::NotInstalled
    } else {
        RemoveOutcome::Removed
    };
    Ok(Said {
        outcome,
        exit_code: last,
        detail: match &method {
            Method::Spuninst { .. } => "spuninst.exe".to_string(),
            Method::HotfixPackage { .. } => "the hotfix package, -y -z -q".to_string(),
            Method::Dism { .. } => format!("{} package(s) removed with DISM", lines.len()),
            Method::Msi { product_code } => format!("msiexec /x {product_code}"),
        },
    })
}

fn first_line(out: &ExecOutput) -> String {
    format!("{}{}", out.stdout, out.stderr)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

async fn exec(
    ctx: &mut HostContext<'_>,
    patch: &str,
    line: &str,
    timeout: Duration,
) -> Result<ExecOutput, (Said, Stop)> {
    match ctx
        .target
        .exec(&Command::Cmd(line.to_string()), timeout)
        .await
    {
        Ok(out) => Ok(out),
        Err(RemoteError::TimedOut(m)) => Err(failed(
            patch,
            format!("no exit after {timeout:?}: the uninstaller was killed ({m})"),
            DeployVerdict::InstallTimedOut,
        )),
        Err(RemoteError::Failed(m)) => Err(failed(patch, m, DeployVerdict::InstallFailed)),
        Err(e) => Err((
            Said::new(RemoveOutcome::Failed, e.to_string()),
            Stop::remote(&e),
        )),
    }
}

/// One uninstaller line; 1618 is retried with a doubling wait, as installs are.
async fn run_with_retry(
    ctx: &mut HostContext<'_>,
    patch: &str,
    recipe: &InstallerRecipe,
    line: &str,
) -> Result<(ExitSaid, u32), (Said, Stop)> {
    let mut wait = ctx.options.busy_backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let out = exec(ctx, patch, line, ctx.options.install_timeout).await?;
        let said = command::exit_said(recipe, out.exit_code);
        if said == ExitSaid::RetryLater && attempt < ctx.options.busy_attempts.max(1) {
            ctx.host_log(&format!(
                "{patch}: exit {} (busy), attempt {attempt}, trying again in {wait:?}",
                out.exit_code
            ));
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
            continue;
        }
        return Ok((said, out.exit_code));
    }
}

/// Re-scan with the same catalog detection: each removed patch must be missing again. When every
/// patch still installed is one whose uninstaller `never_ran` (see [`TakenOff::at_reboot`]),
/// their indexes come back to be run; any other patch still installed stops the host.
async fn verify(
    ctx: &mut HostContext<'_>,
    scan: &ScanInputs<'_>,
    removed: &[usize],
    patches: &mut [RemoveResult],
    never_ran: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<usize>, Stop> {
    let step = Step::Verify;
    ctx.started(&step)?;
    let result = match crate::deploy::verify::rescan(ctx, scan).await {
        Ok(r) => r,
        Err(stop) => {
            let _ = ctx.finished(&step, false, StepOutcome::Failed, &stop.why);
            return Err(stop);
        }
    };
    let mut still = Vec::new();
    let mut rerun = Vec::new();
    for &i in removed {
        let p = &mut patches[i];
        match result.verdicts.iter().find(|v| *v.patch == *p.patch) {
            Some(v) => {
                p.verified = Some(format!("{}: {}", v.status, v.evidence));
                if v.status == Status::Installed {
                    if never_ran(&p.patch) {
                        rerun.push(i);
                    }
                    still.push(format!(
                        "{} still installed after its uninstaller: {}",
                        p.patch, v.evidence
                    ));
                }
            }
            None => p.verified = Some("not in the catalog any more".into()),
        }
    }
    if still.is_empty() {
        ctx.finished(
            &step,
            true,
            StepOutcome::RolledBack,
            &format!("{} patch(es) missing again", removed.len()),
        )?;
        Ok(Vec::new())
    } else if rerun.len() == still.len() {
        let why = format!(
            "{}: cut off before it ran (the reboot did not finish it); it runs now",
            still.join("; ")
        );
        ctx.finished(&step, false, StepOutcome::StillInstalled, &why)?;
        Ok(rerun)
    } else {
        let why = still.join("; ");
        ctx.finished(&step, false, StepOutcome::StillInstalled, &why)?;
        Err(Stop::new(DeployVerdict::VerifyFailed, why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::model::Catalog;
    use crate::deploy::test_support::{Bench, ScanFixture};
    use crate::fake::{FakeTarget, Reply};

    fn installed(patch: &str) -> Verdict {
        Verdict {
            patch: patch.into(),
            bulletins: Vec::new().into(),
            product: "p".into(),
            status: Status::Installed,
            evidence: "KB listed".into(),
        }
    }

    async fn roll_back(
        fake: FakeTarget,
        before: &[Verdict],
        removals: &[Removal],
    ) -> (RollbackOutcome, Bench) {
        let fixture = ScanFixture::new(Catalog::default());
        let mut b = Bench::new(fake);
        let out = roll_back_host(
            &mut b.ctx(),
            &fixture.inputs(),
            before,
            removals,
            &TakenOff::default(),
        )
        .await;
        (out, b)
    }

    fn removal(patch: &str, recipe: InstallerRecipe) -> Removal {
        Removal {
            patch: patch.into(),
            recipe: Some(recipe),
            package: None,
        }
    }

    const PACKAGES: &str = "Package Identity : Package_for_KB1~31bf3856ad364e35~amd64~~10.0.1.0\r\nState : Installed\r\n";

    #[tokio::test]
    async fn dism_is_retried_while_busy_and_a_permanent_package_is_called_so() {
        let fake = FakeTarget::new("H1", "B1")
            .on("Get-Packages", [Reply::exit(0, PACKAGES)])
            .on(
                "Remove-Package",
                [
                    Reply::exit(1618, ""),
                    Reply::exit(command::DISM_PERMANENT, ""),
                ],
            );
        let (out, b) = roll_back(
            fake,
            &[installed("KB1")],
            &[removal("KB1", InstallerRecipe::msu())],
        )
        .await;
        assert_eq!(out.verdict, RollbackVerdict::Permanent, "{out:?}");
        assert_eq!(out.patches[0].outcome, RemoveOutcome::Permanent);
        assert_eq!(b.fake.commands_with("Remove-Package").len(), 2);
        assert!(out.evidence[0].contains("permanent"), "{:?}", out.evidence);
        assert!(b.all_closed());
        assert!(
            b.fake.commands_with("shutdown").is_empty(),
            "nothing came off"
        );
    }

    #[tokio::test]
    async fn a_missing_spuninst_is_a_verdict_and_nothing_runs() {
        let fake = FakeTarget::new("H1", "B1").on(
            "reg query",
            [Reply::exit(
                0,
                "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\r\n    SystemRoot    REG_SZ    C:\\WINNT\r\n",
            )],
        );
        let (out, b) = roll_back(
            fake,
            &[installed("Q300972")],
            &[removal("Q300972", InstallerRecipe::update_exe())],
        )
        .await;
        assert_eq!(out.verdict, RollbackVerdict::UninstallerMissing, "{out:?}");
        assert!(
            out.patches[0]
                .detail
                .contains(r"C:\WINNT\$NtUninstallQ300972$\spuninst\spuninst.exe"),
            "{:?}",
            out.patches[0]
        );
        assert!(b.fake.commands_with("spuninst").is_empty());
    }

    #[tokio::test]
    async fn a_self_removing_hotfix_is_staged_run_with_y_z_q_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("Q300972_W2K_SP3_x86_en.EXE");
        std::fs::write(&local, b"MZ hotfix").unwrap();
        let mut recipe = InstallerRecipe::update_exe();
        recipe.uninstall = crate::catalog::model::UninstallVia::Package;
        let fake = FakeTarget::new("H1", "B1").on(" -y -z -q", [Reply::exit(1603, "")]);
        let with_package = Removal {
            package: Some(PackageFile {
                local,
                file_name: "Q300972_W2K_SP3_x86_en.EXE".into(),
            }),
            ..removal("Q300972", recipe.clone())
        };
        let (out, b) = roll_back(fake, &[installed("Q300972")], &[with_package]).await;
        assert_eq!(out.verdict, RollbackVerdict::UninstallFailed, "{out:?}");
        let runs = b.fake.commands_with(" -y -z -q");
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert!(
            runs[0].ends_with(r"\Q300972_W2K_SP3_x86_en.EXE -y -z -q")
                && runs[0].starts_with(r"C:\Windows\Temp\hive\"),
            "{runs:?}"
        );
        assert_eq!(
            b.fake.commands_with("del /q").len(),
            1,
            "the copy is removed"
        );
        assert!(b.fake.commands_with("spuninst").is_empty());

        // Without the approved package in the repository it cannot take itself off.
        let fake = FakeTarget::new("H1", "B1");
        let (out, b) =
            roll_back(fake, &[installed("Q300972")], &[removal("Q300972", recipe)]).await;
        assert_eq!(out.verdict, RollbackVerdict::UninstallerMissing, "{out:?}");
        assert!(out.patches[0].detail.contains("-y"), "{:?}", out.patches[0]);
        assert!(b.fake.commands_with("-y").is_empty());
    }

    #[tokio::test]
    async fn a_failing_uninstaller_stops_the_host_with_its_exit_code() {
        let mut msi = InstallerRecipe::msi();
        msi.product_code = Some("{00000000-0000-0000-0000-000000000001}".into());
        let fake = FakeTarget::new("H1", "B1").on("msiexec /x", [Reply::exit(1603, "")]);
        let (out, b) = roll_back(
            fake,
            &[installed("KB2"), installed("KB1")],
            &[removal("KB2", msi.clone()), removal("KB1", msi)],
        )
        .await;
        assert_eq!(out.verdict, RollbackVerdict::UninstallFailed, "{out:?}");
        assert_eq!(out.patches[0].exit_code, Some(1603));
        assert_eq!(out.patches[1].outcome, RemoveOutcome::NotRun);
        assert_eq!(b.fake.commands_with("msiexec").len(), 1);
        assert!(b.all_closed());
    }

    #[tokio::test]
    async fn what_the_scan_finds_missing_is_left_alone() {
        let mut gone = installed("KB1");
        gone.status = Status::Missing;
        let (out, b) = roll_back(
            FakeTarget::new("H1", "B1"),
            &[gone],
            &[removal("KB1", InstallerRecipe::msu())],
        )
        .await;
        assert_eq!(out.verdict, RollbackVerdict::NothingToDo);
        assert_eq!(out.patches[0].outcome, RemoveOutcome::NotInstalled);
        assert!(b.fake.commands_with("dism").is_empty());
    }
}
