//! A rollback run continued after Ctrl-C, a crash or kill -9 (`hive resume RUN`): the journal
//! says which uninstallers finished (never run again) and which one the stop cut off; the host's
//! re-scan settles that one before anything else runs.

use std::collections::BTreeSet;

use crate::events::{Step, StepOutcome};
use crate::rollout::JobContext;
use crate::scan::HostResult;
use crate::scan::evaluate::Status;

/// What this run took off a host before its job started again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TakenOff {
    /// Uninstallers the journal saw finish, and cut-off ones the re-scan settled: not run again.
    pub patches: BTreeSet<String>,
    /// Of those, the ones settled only because the host had a reboot pending. The pending reboot
    /// may be another patch's, and the uninstaller may have been cut off before it ran: when the
    /// reboot leaves such a patch installed, its uninstaller never took effect and runs then.
    pub at_reboot: BTreeSet<String>,
}

/// Close every uninstall step a crash left open with what the host shows now, and return the
/// patches this run has taken off so far (finished before, or settled now): their uninstallers
/// are not run again.
///
/// A cut-off uninstall whose patch the re-scan finds missing is done; one whose patch is still
/// there while the host has a reboot pending is done too, waiting for the reboot (a DLL in use
/// comes back only then, as it went on), so its uninstaller is not run a second time before the
/// reboot. Only an uninstall that left no trace runs again at once.
pub fn settle_open_uninstalls(ctx: &JobContext, scan: &HostResult) -> Result<TakenOff, String> {
    let mut taken = TakenOff {
        patches: ctx.resume.uninstalled_ok.clone(),
        at_reboot: BTreeSet::new(),
    };
    for step in &ctx.resume.open_steps {
        let Step::Uninstall { patch, .. } = step else {
            continue;
        };
        let status = scan
            .verdicts
            .iter()
            .find(|v| *v.patch == **patch)
            .map(|v| v.status);
        let pending = &scan.facts.pending_reboot;
        let (ok, outcome, detail) = if status.is_some_and(|s| s != Status::Installed) {
            (
                true,
                StepOutcome::Removed,
                "settled on resume: the re-scan finds it missing".to_string(),
            )
        } else if status == Some(Status::Installed) && !pending.is_empty() {
            (
                true,
                StepOutcome::RebootRequired,
                format!(
                    "settled on resume: still detected, with a reboot pending ({}): the removal finishes at the reboot",
                    pending.join(", ")
                ),
            )
        } else {
            (
                false,
                StepOutcome::Interrupted,
                "hive stopped during this uninstall and the host shows no trace of it; it runs again"
                    .to_string(),
            )
        };
        ctx.finished(step.clone(), ok, outcome, &detail)?;
        if ok {
            taken.patches.insert(patch.clone());
        }
        if outcome == StepOutcome::RebootRequired {
            taken.at_reboot.insert(patch.clone());
        }
    }
    Ok(taken)
}
