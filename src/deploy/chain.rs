//! Chaining: several installers back to back with no reboot between them, and — where legacy
//! NT4/Windows 2000 hotfixes were chained — qchain.exe (Q296861) before the single reboot.
//!
//! Why qchain: each hotfix that finds a file in use queues its replacement in
//! `PendingFileRenameOperations`, having compared versions against the OLD file; at boot the
//! queue is applied in order and the last writer wins, so a later hotfix carrying an older build
//! of a shared DLL silently downgrades it. qchain rewrites the queue so the highest version wins.

use std::path::{Path, PathBuf};

use super::quote::command_line;
use super::{DeployVerdict, HostContext, HostPlan, Stop};
use crate::events::{Step, StepOutcome};
use crate::remote::Command;

/// The local qchain.exe to stage for this plan: the option, else `<repo>/tools/qchain.exe` when
/// it exists; `None` when qchain is not needed or hive has no copy (the host's own is used).
pub(crate) fn qchain_tool(ctx: &HostContext<'_>, plan: &HostPlan) -> Option<PathBuf> {
    if !plan.qchain {
        return None;
    }
    if let Some(p) = &ctx.options.qchain {
        return Some(p.clone());
    }
    let repo_copy = crate::folders::child(&ctx.repo?.folder("tools"), "qchain.exe");
    repo_copy.is_file().then_some(repo_copy)
}

/// Run qchain.exe (the staged copy, or the host's own by name).
pub(crate) async fn run_qchain(
    ctx: &mut HostContext<'_>,
    staged: Option<&str>,
) -> Result<(), Stop> {
    let step = Step::Qchain;
    ctx.started(&step)?;
    let line = match staged {
        Some(p) => command_line(&[p])
            .map_err(|e| Stop::new(DeployVerdict::InstallFailed, e.to_string()))?,
        None => "qchain.exe".to_string(),
    };
    match ctx
        .target
        .exec(&Command::Cmd(line), ctx.options.command_timeout)
        .await
    {
        Ok(out) if out.exit_code == 0 => {
            ctx.finished(&step, true, StepOutcome::Ok, "rename queue rewritten")
        }
        Ok(out) => {
            let why = format!(
                "qchain.exe exited {}: {}",
                out.exit_code,
                out.stderr.lines().next().unwrap_or("").trim()
            );
            let _ = ctx.finished(&step, false, StepOutcome::Failed, &why);
            Err(Stop::new(DeployVerdict::InstallFailed, why))
        }
        Err(e) => {
            let _ = ctx.finished(&step, false, StepOutcome::Failed, &e.to_string());
            Err(Stop::remote(&e))
        }
    }
}

/// Whether a path names qchain (for callers listing staged tools).
pub fn is_qchain(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.eq_ignore_ascii_case("qchain.exe"))
}
