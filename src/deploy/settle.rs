//! Settling what a crash left in doubt, the way an admin picking up after a dead console would:
//! ask the host, not the memory of what was about to happen.
//!
//! - An install the journal shows started and never finished may have completed, failed, or may
//!   still be running (a WinRS shell outlives the client that opened it, and so does its
//!   installer). Running it again blindly is how a hotfix gets installed twice. So: wait while
//!   its process is still running (`tasklist`), then look for evidence on the host — the re-scan's
//!   verdict, and the hotfix list (`Get-HotFix`/the `Hotfix` registry keys), which names a KB as
//!   soon as its installer is done even while its files wait in `PendingFileRenameOperations`
//!   for the reboot. Only with no such evidence is the installer run again.
//! - A reboot the journal shows under way may be scheduled, in progress or long done: the boot
//!   time the journal saw before it tells which. Hive waits for the host to answer, and continues
//!   with the settle phases when the boot time moved, or lets the normal path reboot it when it
//!   did not (`shutdown` answers 1190 when one is already scheduled).

use std::time::{Duration, Instant};

use super::reboot::{self, HostState};
use super::{HostContext, HostVerdict, PlannedInstall, RebootRecord, ScanInputs, Stop, elapsed_ms};
use crate::catalog::model::InstallerKind;
use crate::events::Step;
use crate::remote::Command;
use crate::scan::evaluate::Status;
use crate::scan::run::scan_target;

/// What the host says about an install a crash interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The installer finished before (or after) the crash: evidence on the host.
    Landed(String),
    /// No evidence of it on the host and no installer running: it may run again.
    NotInstalled(String),
}

/// The process names an install shows in `tasklist` while it runs.
pub fn installer_images(install: &PlannedInstall) -> Vec<String> {
    match install.installer.recipe.kind {
        InstallerKind::Msu => vec!["expand.exe".into(), "dism.exe".into(), "wusa.exe".into()],
        InstallerKind::Msi => vec!["msiexec.exe".into()],
        InstallerKind::HotfixExe | InstallerKind::UpdateExe | InstallerKind::Exe => {
            vec![install.installer.file_name.clone()]
        }
    }
}

/// The image names `tasklist /FO CSV /NH` lists (its first column).
pub fn tasklist_images(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix('"')?;
            let end = rest.find('"')?;
            Some(rest[..end].to_string())
        })
        .collect()
}

/// Which of `images` is running on the host now; `Ok(None)` also when the host cannot say
/// (Windows 2000 has no `tasklist`: there only the evidence decides).
async fn running(ctx: &mut HostContext<'_>, images: &[String]) -> Result<Option<String>, Stop> {
    let out = ctx
        .target
        .exec(
            &Command::Cmd("tasklist /FO CSV /NH".into()),
            ctx.options.command_timeout,
        )
        .await
        .map_err(|e| Stop::remote(&e))?;
    if out.exit_code != 0 {
        return Ok(None);
    }
    Ok(tasklist_images(&out.stdout)
        .into_iter()
        .find(|name| images.iter().any(|i| i.eq_ignore_ascii_case(name))))
}

/// The host's evidence about one patch: the re-scan's verdict, then the hotfix list.
async fn evidence(
    ctx: &mut HostContext<'_>,
    scan: &ScanInputs<'_>,
    install: &PlannedInstall,
) -> Result<Settled, Stop> {
    let result = scan_target(
        &mut *ctx.target,
        scan.catalog,
        scan.probe,
        ctx.options.verify_timeout,
        scan.files,
    )
    .await
    .map_err(|e| Stop::new(HostVerdict::Unreachable, format!("the re-scan failed: {e}")))?;
    let verdict = result.verdicts.iter().find(|v| v.patch == install.patch);
    if let Some(v) = verdict
        && matches!(v.status, Status::Installed | Status::Superseded)
    {
        return Ok(Settled::Landed(format!(
            "the re-scan says {}: {}",
            v.status, v.evidence
        )));
    }
    let kb = scan.catalog.patches.get(&install.patch).and_then(|p| p.kb);
    if let Some(kb) = kb
        && result.facts.kbs.contains(&kb)
    {
        let pending = if result.facts.pending_reboot.is_empty() {
            String::new()
        } else {
            format!(
                "; reboot pending ({})",
                result.facts.pending_reboot.join(", ")
            )
        };
        return Ok(Settled::Landed(format!(
            "{kb} is in the host's hotfix list{pending}"
        )));
    }
    let seen = verdict
        .map(|v| format!("{}: {}", v.status, v.evidence))
        .unwrap_or_else(|| "no verdict".into());
    Ok(Settled::NotInstalled(format!(
        "not on the host ({seen}) and no installer running"
    )))
}

/// Settle an install the journal left open: wait for a still-running installer, then decide
/// from the host's evidence. Journals the open step's end, so the journal holds no open install
/// once the host has moved on.
pub(crate) async fn interrupted_install(
    ctx: &mut HostContext<'_>,
    scan: &ScanInputs<'_>,
    install: &PlannedInstall,
    step: &Step,
) -> Result<Settled, Stop> {
    let images = installer_images(install);
    let deadline = Instant::now() + ctx.options.install_timeout;
    let mut waited = false;
    while let Some(name) = running(ctx, &images).await? {
        if Instant::now() >= deadline {
            let why = format!(
                "{}: {name} is still running {:?} after hive resumed (hung installer?)",
                install.patch, ctx.options.install_timeout
            );
            let _ = ctx.finished(step, false, "timed_out", &why);
            return Err(Stop::new(HostVerdict::InstallTimedOut, why));
        }
        waited = true;
        tokio::time::sleep(ctx.options.poll_interval).await;
    }
    let settled = evidence(ctx, scan, install).await?;
    let waited = if waited {
        " (waited for the installer still running from before the crash)"
    } else {
        ""
    };
    match &settled {
        Settled::Landed(why) => {
            ctx.finished(step, true, "landed_before_crash", &format!("{why}{waited}"))?
        }
        Settled::NotInstalled(why) => ctx.finished(
            step,
            false,
            "did_not_complete",
            &format!("{why}{waited}; it runs again"),
        )?,
    }
    Ok(settled)
}

/// A reboot was under way when hive stopped. Wait until the host answers, then: its boot time
/// moved → the reboot happened, run the settle phases; unchanged → reboot now (as decided before
/// the crash). Returns the reboot's record once the host is back and settled; `None` only when
/// the journal had no boot time to compare and nothing is pending (nothing left to reboot for).
pub(crate) async fn reboot_in_flight(
    ctx: &mut HostContext<'_>,
    boot_before: Option<&str>,
) -> Result<Option<RebootRecord>, Stop> {
    let start = Instant::now();
    let step = Step::Reboot {
        phase: "resume".into(),
    };
    ctx.started(&step)?;
    let o = ctx.options.clone();
    let deadline = Instant::now() + o.down_timeout + o.port_timeout + o.login_timeout;
    let state: HostState = loop {
        ctx.target.disconnect();
        let last =
            match reboot::try_state(ctx, o.command_timeout.min(Duration::from_secs(10))).await {
                Ok(s) => break s,
                Err(e) => e,
            };
        if Instant::now() >= deadline {
            let why = format!(
                "the host did not answer after hive resumed during its reboot ({:?}): {last}",
                deadline.saturating_duration_since(start)
            );
            let _ = ctx.finished(&step, false, "timed_out", &why);
            return Err(Stop::new(HostVerdict::NeverReturned, why));
        }
        tokio::time::sleep(o.poll_interval).await;
    };
    match boot_before {
        Some(before) if crate::scan::facts::boot_time_moved(before, &state.boot) => {
            ctx.finished(
                &step,
                true,
                "rebooted",
                &format!("boot time {} (was {before})", state.boot),
            )?;
            let boot_after = state.boot.clone();
            reboot::settle_phases(ctx, state).await?;
            Ok(Some(RebootRecord {
                by: "hive".into(),
                boot_before: before.to_string(),
                boot_after: Some(boot_after),
                duration_ms: elapsed_ms(start),
            }))
        }
        Some(_) => {
            // Not rebooted (the command never went out, or it is scheduled): reboot now, as
            // was decided before the crash; `shutdown` answers 1190 if one is scheduled.
            ctx.finished(
                &step,
                true,
                "not_rebooted",
                &format!("boot time {}, unchanged: rebooting", state.boot),
            )?;
            Ok(Some(reboot::reboot(ctx, &state.boot).await?))
        }
        None if !state.pending.is_empty() => {
            ctx.finished(
                &step,
                true,
                "pending",
                &format!(
                    "boot time {}, reboot pending ({}); the journal has no boot time from before: rebooting",
                    state.boot,
                    state.pending.join(", ")
                ),
            )?;
            Ok(Some(reboot::reboot(ctx, &state.boot).await?))
        }
        None => {
            ctx.finished(
                &step,
                true,
                "answering",
                &format!(
                    "boot time {}, nothing pending (the journal has no boot time from before the reboot)",
                    state.boot
                ),
            )?;
            reboot::settle_phases(ctx, state).await?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasklist_csv_gives_image_names() {
        let out = "\"System\",\"4\",\"Services\",\"0\",\"4,096 K\"\r\n\"KB5000003.exe\",\"1012\",\"Services\",\"0\",\"4,096 K\"\r\n";
        assert_eq!(tasklist_images(out), ["System", "KB5000003.exe"]);
        assert!(
            tasklist_images("INFO: No tasks are running which match the specified criteria.\r\n")
                .is_empty()
        );
    }
}
