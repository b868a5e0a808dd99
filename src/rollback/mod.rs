//! Rollback: take off what an earlier run installed, host by host, through the same rollout
//! (waves, budgets, progress, a journal whose header says which run it undoes) and the same
//! reboot control and verification as the install — where verification proves each patch is
//! *missing* again, by a re-scan with the catalog detection that found it missing the first time.
//!
//! By job: [`source`] (what the run installed where, read from its journal; `--hosts`/`--patch`
//! narrowing and their errors), [`command`] (the uninstaller per installer technology and what
//! its exit codes mean), [`host`] (one host: uninstall, reboot, verify). [`RollbackJob`] is the
//! rollout's [`HostJob`] for it.
//!
//! A rollback run stopped by Ctrl-C, a crash or kill -9 is continued by `hive resume RUN` like a
//! rollout, under the same journal rules ([`resume`]): an uninstall the journal shows finished is
//! never run again, and one the crash cut off is settled from the host's re-scan first.

pub mod command;
pub mod host;
pub mod resume;
pub mod source;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::catalog::model::InstallerRecipe;
use crate::deploy::DeployVerdict;
use crate::deploy::plan::ApprovedInstaller;
use crate::pipeline::DeployJob;
use crate::remote::BoxFuture;
use crate::rollout::{HostJob, HostOutcome, HostVerdict, JobContext};

pub use host::{
    PackageFile, Removal, RemoveOutcome, RollbackOutcome, RollbackVerdict, roll_back_host,
};
pub use source::{SourceError, installed_by, plan};

/// Everything a rollback run needs, shared by all its hosts.
pub struct RollbackJob {
    /// The hosts and what they are reached, scanned and verified with: a deploy job's inputs.
    /// Its approved installers' recipes say how each patch went on, so how it comes off.
    pub inputs: DeployJob,
    /// Per host, the patches to take off, in removal order (the run header's `rollback.remove`).
    pub remove: BTreeMap<String, Vec<String>>,
}

impl RollbackJob {
    /// The recipe `patch` was installed with: its bulletin's approved recipe, else the catalog's.
    pub fn recipe(&self, patch: &str) -> Option<InstallerRecipe> {
        self.approved_for(patch)
            .map(|a| a.recipe.clone())
            .or_else(|| self.inputs.catalog.patches.get(patch)?.installer.clone())
    }

    /// The approved installer of `patch`'s bulletin.
    fn approved_for(&self, patch: &str) -> Option<&ApprovedInstaller> {
        let p = self.inputs.catalog.patches.get(patch)?;
        p.bulletins.iter().find_map(|b| {
            self.inputs
                .approved
                .iter()
                .find(|a| a.bulletin.eq_ignore_ascii_case(b))
        })
    }

    /// What taking `patch` off needs.
    pub fn removal(&self, patch: &str) -> Removal {
        Removal {
            patch: patch.to_string(),
            recipe: self.recipe(patch),
            package: self.approved_for(patch).map(|a| PackageFile {
                local: a.path.clone(),
                file_name: a.file_name.clone(),
            }),
        }
    }

    async fn run_host(self: Arc<Self>, ctx: JobContext) -> HostOutcome {
        let removals: Vec<Removal> = self
            .remove
            .get(&ctx.host)
            .into_iter()
            .flatten()
            .map(|p| self.removal(p))
            .collect();
        let access = self.inputs.access();
        let scanned = access
            .connect_and_scan(&ctx, |result| {
                let on_host = removals
                    .iter()
                    .filter(|r| installed(&result.verdicts, &r.patch))
                    .count();
                (
                    format!(
                        "{on_host} of {} patch(es) to take off are installed",
                        removals.len()
                    ),
                    (),
                )
            })
            .await;
        let mut scanned = match scanned {
            Ok((s, ())) => s,
            Err(outcome) => return outcome,
        };
        let taken_before = match resume::settle_open_uninstalls(&ctx, &scanned.result) {
            Ok(r) => r,
            Err(e) => return HostOutcome::new(HostVerdict::Failed, format!("journal: {e}")),
        };
        let verdicts = scanned.result.verdicts.clone();
        let (mut dctx, inputs) = access.work_on(&ctx, &mut scanned);
        let out = roll_back_host(&mut dctx, &inputs, &verdicts, &removals, &taken_before).await;
        host_outcome(&out)
    }
}

/// The scan finds `patch` installed.
fn installed(verdicts: &[crate::scan::evaluate::Verdict], patch: &str) -> bool {
    verdicts
        .iter()
        .any(|v| *v.patch == *patch && v.status == crate::scan::evaluate::Status::Installed)
}

/// A host's rollback in the rollout's terms: a host rolled back is where the run wanted it
/// (counted as the rollout counts a patched host); a patch that could not come off is a failure
/// the budgets see.
pub fn host_outcome(out: &RollbackOutcome) -> HostOutcome {
    let verdict = match out.verdict {
        RollbackVerdict::RolledBack => HostVerdict::Patched,
        RollbackVerdict::NothingToDo => HostVerdict::NothingToDo,
        RollbackVerdict::Stopped(DeployVerdict::Unreachable | DeployVerdict::NeverReturned) => {
            HostVerdict::Unreachable
        }
        _ => HostVerdict::Failed,
    };
    let lines: Vec<String> = out
        .patches
        .iter()
        .map(|p| format!("{} {}", p.patch, p.outcome.word()))
        .collect();
    let mut detail = format!("{}: {}", out.verdict.word(), lines.join(", "));
    if !out.evidence.is_empty() {
        detail.push_str(&format!(" ({})", out.evidence.join("; ")));
    }
    HostOutcome::new(verdict, detail)
}

/// The rollout's view of the rollback job.
pub struct Job(pub Arc<RollbackJob>);

impl HostJob for Job {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, HostOutcome> {
        Box::pin(self.0.clone().run_host(ctx))
    }
}
