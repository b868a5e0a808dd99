//! The per-host pipeline a rollout runs: connect → scan → plan → deploy (stage, install, chain,
//! reboot, verify) — the glue between `rollout` (waves, budgets, journal) and `deploy` (one host).
//!
//! Each host is scanned again right before it is worked on, not trusted from an earlier scan: in
//! a rollout that runs for hours, a host may have been patched (or rolled back) in between, and on
//! resume the re-scan is what settles a step the orchestrator died in the middle of.

use std::collections::BTreeMap;
use std::sync::Arc;

pub mod host_scan;

pub use host_scan::{HostAccess, ScannedHost};

use crate::catalog::model::Catalog;
use crate::deploy::plan::ApprovedInstaller;
use crate::deploy::{self, DeployOptions};
use crate::inventory::{Host, Secret};
use crate::remote::{BoxFuture, Connector};
use crate::repo::Repository;
use crate::rollout::{
    HostEvidence, HostJob, HostOutcome, HostVerdict, InventoryHealth, JobContext,
};
use crate::scan::run::{FileSource, PreparedProbe};

/// Everything the deploy job needs, shared by all hosts of a run.
pub struct DeployJob {
    pub hosts: BTreeMap<String, (Host, Result<Secret, String>)>,
    pub catalog: Arc<Catalog>,
    pub probe: Arc<PreparedProbe>,
    pub approved: Arc<Vec<ApprovedInstaller>>,
    pub repo: Repository,
    pub options: DeployOptions,
    pub files: FileSource,
    /// How each host's [`Target`](crate::remote::Target) is opened (the network, or the demo's
    /// simulated drives).
    pub connector: Arc<dyn Connector>,
    /// The inventory's health checks: their baseline (service start types) is read here, right
    /// before a host's first install; the engine runs the checks themselves.
    pub health: Option<Arc<InventoryHealth>>,
}

impl DeployJob {
    /// What this job reaches and scans its hosts with.
    pub fn access(&self) -> HostAccess<'_> {
        HostAccess {
            hosts: &self.hosts,
            catalog: &self.catalog,
            probe: &self.probe,
            repo: &self.repo,
            options: &self.options,
            files: self.files,
            connector: self.connector.as_ref(),
        }
    }

    async fn run_host(self: Arc<Self>, ctx: JobContext) -> HostOutcome {
        let access = self.access();
        // Scan: what is missing now, on this host. Patches this run already started installing
        // stay in the plan even when the re-scan says they are installed now: their reboot and
        // verification may still be due.
        let scanned = access
            .connect_and_scan(&ctx, |result| {
                let (plan, withheld) = crate::rollout::quarantine::plan_without_withheld(
                    &ctx.host,
                    &result.verdicts,
                    &self.catalog,
                    &self.approved,
                    &ctx.resume.install_started,
                    &ctx.withheld,
                );
                deploy::record_plan(&self.repo, &plan, &ctx.run, &self.options);
                let missing = plan
                    .installs
                    .iter()
                    .filter(|i| !ctx.resume.install_started.contains(&i.patch))
                    .count();
                (
                    format!("{missing} approved patch(es) missing"),
                    (plan, withheld),
                )
            })
            .await;
        let (mut scanned, (plan, withheld)) = match scanned {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        let mut evidence = HostEvidence::of_scan(&scanned.result.facts, &scanned.result.verdicts);
        if plan.installs.is_empty() {
            return HostOutcome::new(
                HostVerdict::NothingToDo,
                if withheld.is_empty() {
                    "no approved patch is missing".to_string()
                } else {
                    format!(
                        "no approved patch is missing but the withheld {}",
                        withheld.join(", ")
                    )
                },
            )
            .with_evidence(evidence);
        }
        // The run is stopping (Ctrl-C, a budget, the host's window closed): nothing changed on the
        // host yet, so end here; resume starts it over.
        if ctx.stop.is_stopped() {
            return HostOutcome::new(
                HostVerdict::Interrupted,
                "stopped after the scan, before anything was installed",
            );
        }

        // Before anything is installed, journaled; a resumed host takes the journal's.
        if let Some(health) = &self.health
            && let Err(e) = health
                .baseline_before_install(&ctx, scanned.target.as_mut())
                .await
        {
            return HostOutcome::new(HostVerdict::Failed, format!("journal: {e}"));
        }
        let prior = deploy::PriorWork {
            installed: ctx.resume.installed_ok.clone(),
            rebooted: scanned.rebooted,
            interrupted: ctx.resume.open_installs().cloned().collect(),
            reboot_required: ctx.resume.reboot_required,
            install_runs: ctx.resume.install_runs.clone(),
            missing_after_reboot: ctx.resume.verify_failed.clone(),
        };
        let (mut dctx, inputs) = access.work_on(&ctx, &mut scanned);
        let out = deploy::deploy_host(&mut dctx, &plan, &inputs, &prior).await;
        for p in &out.patches {
            if let Some(after) = &p.verified {
                evidence.set_after(&p.patch, after);
            }
        }
        HostOutcome::new(
            rollout_verdict(out.verdict),
            deploy::detail::host_detail(&out),
        )
        .with_evidence(evidence)
    }
}

/// Deploy's word for a host, in the rollout's terms (which count budgets).
fn rollout_verdict(v: deploy::DeployVerdict) -> HostVerdict {
    match v {
        deploy::DeployVerdict::Patched => HostVerdict::Patched,
        deploy::DeployVerdict::NothingToDo => HostVerdict::NothingToDo,
        deploy::DeployVerdict::Unreachable | deploy::DeployVerdict::NeverReturned => {
            HostVerdict::Unreachable
        }
        deploy::DeployVerdict::RebootLoop => HostVerdict::RebootLoop,
        _ => HostVerdict::Failed,
    }
}

pub(crate) fn outcome_of_stop(stop: deploy::Stop) -> HostOutcome {
    HostOutcome::new(
        rollout_verdict(stop.verdict),
        format!("{}: {}", stop.verdict, stop.why),
    )
}

/// The rollout's view of the deploy job.
pub struct Job(pub Arc<DeployJob>);

impl HostJob for Job {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, HostOutcome> {
        Box::pin(self.0.clone().run_host(ctx))
    }
}
