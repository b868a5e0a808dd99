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
//! A rollback run is not resumed with `hive resume`: run `hive rollback` for the same run again.
//! It scans each host first and leaves alone whatever is already missing, so nothing comes off
//! twice.

pub mod command;
pub mod host;
pub mod source;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::catalog::model::{Catalog, InstallerRecipe};
use crate::deploy::plan::ApprovedInstaller;
use crate::deploy::{self, DeployOptions, DeployVerdict, ScanInputs};
use crate::events::{Step, StepOutcome};
use crate::inventory::{Host, Secret};
use crate::remote::{BoxFuture, Connector, RemoteError};
use crate::repo::Repository;
use crate::rollout::{HostJob, HostOutcome, HostVerdict, JobContext};
use crate::scan::run::{FileSource, PreparedProbe, scan_target};

pub use host::{Removal, RemoveOutcome, RollbackOutcome, RollbackVerdict, roll_back_host};
pub use source::{SourceError, installed_by, plan};

/// Everything a rollback run needs, shared by all its hosts.
pub struct RollbackJob {
    pub hosts: BTreeMap<String, (Host, Result<Secret, String>)>,
    /// Per host, the patches to take off, in removal order (the run header's `rollback.remove`).
    pub remove: BTreeMap<String, Vec<String>>,
    pub catalog: Arc<Catalog>,
    pub probe: Arc<PreparedProbe>,
    /// The approved installers: their recipes say how each patch went on, so how it comes off.
    pub approved: Arc<Vec<ApprovedInstaller>>,
    pub repo: Repository,
    pub options: DeployOptions,
    pub files: FileSource,
    pub connector: Arc<dyn Connector>,
}

impl RollbackJob {
    /// The recipe `patch` was installed with: its bulletin's approved recipe, else the catalog's.
    pub fn recipe(&self, patch: &str) -> Option<InstallerRecipe> {
        let p = self.catalog.patches.get(patch)?;
        p.bulletins
            .iter()
            .find_map(|b| {
                self.approved
                    .iter()
                    .find(|a| a.bulletin.eq_ignore_ascii_case(b))
            })
            .map(|a| a.recipe.clone())
            .or_else(|| p.installer.clone())
    }

    async fn run_host(self: Arc<Self>, ctx: JobContext) -> HostOutcome {
        let Some((host, secret)) = self.hosts.get(&ctx.host) else {
            return HostOutcome::new(
                HostVerdict::Skipped,
                format!("{} is not in the inventory", ctx.host),
            );
        };
        let secret = match secret {
            Ok(s) => s,
            Err(e) => return HostOutcome::new(HostVerdict::Unreachable, e.clone()),
        };
        let removals: Vec<Removal> = self
            .remove
            .get(&ctx.host)
            .into_iter()
            .flatten()
            .map(|p| Removal {
                patch: p.clone(),
                recipe: self.recipe(p),
            })
            .collect();
        let mut target = match self.connector.open(host, secret) {
            Ok(t) => t,
            Err(e) => return HostOutcome::new(HostVerdict::Unreachable, e.to_string()),
        };
        if let Err(e) = ctx.started(Step::Scan) {
            return HostOutcome::new(HostVerdict::Failed, format!("journal: {e}"));
        }
        let scan = scan_target(
            target.as_mut(),
            &self.catalog,
            &self.probe,
            self.options.verify_timeout,
            self.files,
        )
        .await;
        let result = match scan {
            Ok(r) => r,
            Err(e) => {
                let _ = ctx.finished(Step::Scan, false, StepOutcome::Failed, &e.to_string());
                let verdict = match e {
                    RemoteError::Unreachable(_)
                    | RemoteError::AuthFailed(_)
                    | RemoteError::TimedOut(_) => HostVerdict::Unreachable,
                    _ => HostVerdict::Failed,
                };
                return HostOutcome::new(verdict, format!("scan: {e}"));
            }
        };
        let on_host = removals
            .iter()
            .filter(|r| {
                result.verdicts.iter().any(|v| {
                    v.patch == r.patch && v.status == crate::scan::evaluate::Status::Installed
                })
            })
            .count();
        let _ = ctx.finished_at_boot(
            Step::Scan,
            true,
            StepOutcome::Ok,
            &format!(
                "{on_host} of {} patch(es) to take off are installed",
                removals.len()
            ),
            result.facts.last_boot.clone(),
        );
        let sink = ctx.sink.clone();
        let mut dctx = deploy::HostContext::new(
            &ctx.run,
            host,
            target.as_mut(),
            sink.as_ref(),
            Some(&self.repo),
            &self.options,
        );
        let inputs = ScanInputs {
            catalog: &self.catalog,
            probe: &self.probe,
            files: self.files,
        };
        let out = roll_back_host(&mut dctx, &inputs, &result.verdicts, &removals).await;
        host_outcome(&out)
    }
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
