//! The per-host pipeline a rollout runs: connect → scan → plan → deploy (stage, install, chain,
//! reboot, verify) — the glue between `rollout` (waves, budgets, journal) and `deploy` (one host).
//!
//! Each host is scanned again right before it is worked on, not trusted from an earlier scan: in
//! a rollout that runs for hours, a host may have been patched (or rolled back) in between, and on
//! resume the re-scan is what settles a step the orchestrator died in the middle of.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::catalog::model::Catalog;
use crate::deploy::plan::ApprovedInstaller;
use crate::deploy::{self, DeployOptions, ScanInputs};
use crate::events::{Step, StepOutcome};
use crate::inventory::{Host, Secret};
use crate::remote::{BoxFuture, Connector, RemoteError};
use crate::repo::Repository;
use crate::rollout::{
    HostEvidence, HostJob, HostOutcome, HostVerdict, InventoryHealth, JobContext,
};
use crate::scan::run::{FileSource, PreparedProbe, scan_target};

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
        let mut target = match self.connector.open(host, secret) {
            Ok(t) => t,
            Err(e) => return HostOutcome::new(HostVerdict::Unreachable, e.to_string()),
        };

        // A resumed host: first close what the crash left open and settle a reboot that was
        // under way (the host may be down, or back with a new boot time), then scan.
        let mut rebooted = ctx.resume.reboot_done;
        if ctx.resume.attempted {
            if let Err(e) = close_open_steps(&ctx) {
                return HostOutcome::new(HostVerdict::Failed, format!("journal: {e}"));
            }
            if ctx.resume.reboot_in_flight() {
                let sink = ctx.sink.clone();
                let mut dctx = deploy::HostContext::new(
                    &ctx.run,
                    host,
                    target.as_mut(),
                    sink.as_ref(),
                    Some(&self.repo),
                    &self.options,
                );
                let boot = ctx.resume.boot_before_reboot.as_deref();
                match deploy::settle::reboot_in_flight(&mut dctx, boot).await {
                    Ok(record) => rebooted = record.is_some() || rebooted,
                    Err(stop) => return outcome_of_stop(stop),
                }
            }
        }

        // Scan: what is missing now, on this host.
        if let Err(e) = ctx.started(Step::Scan) {
            return HostOutcome::new(HostVerdict::Failed, format!("journal: {e}"));
        }
        // A host hive was changing when it stopped may be restarting on its own (an installer's
        // 1641 restart): on resume, wait for it like for a reboot before calling it unreachable.
        let patience = if ctx.resume.install_started.is_empty() {
            std::time::Duration::ZERO
        } else {
            self.options.port_timeout
        };
        let give_up = std::time::Instant::now() + patience;
        let scan = loop {
            let scan = scan_target(
                target.as_mut(),
                &self.catalog,
                &self.probe,
                self.options.verify_timeout,
                self.files,
            )
            .await;
            match scan {
                Err(RemoteError::Unreachable(_) | RemoteError::TimedOut(_))
                    if std::time::Instant::now() < give_up =>
                {
                    target.disconnect();
                    tokio::time::sleep(self.options.poll_interval).await;
                }
                other => break other,
            }
        };
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
        // Patches this run already started installing stay in the plan even when the re-scan
        // says they are installed now: their reboot and verification may still be due.
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
        // The boot time goes into the journal: a resumed run compares it with the host's to tell
        // whether a reboot happened while hive was not watching.
        let boot = result.facts.last_boot.clone();
        let _ = ctx.finished_at_boot(
            Step::Scan,
            true,
            StepOutcome::Ok,
            &match &boot {
                Some(b) => format!("{missing} approved patch(es) missing; boot time {b}"),
                None => {
                    format!("{missing} approved patch(es) missing; the host reported no boot time")
                }
            },
            boot,
        );
        let mut evidence = HostEvidence::of_scan(&result.facts, &result.verdicts);
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
            && let Err(e) = health.baseline_before_install(&ctx, target.as_mut()).await
        {
            return HostOutcome::new(HostVerdict::Failed, format!("journal: {e}"));
        }
        let prior = deploy::PriorWork {
            installed: ctx.resume.installed_ok.clone(),
            rebooted,
            interrupted: ctx.resume.open_installs().cloned().collect(),
            reboot_required: ctx.resume.reboot_required,
            install_runs: ctx.resume.install_runs.clone(),
            missing_after_reboot: ctx.resume.verify_failed.clone(),
        };
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

fn outcome_of_stop(stop: deploy::Stop) -> HostOutcome {
    HostOutcome::new(
        rollout_verdict(stop.verdict),
        format!("{}: {}", stop.verdict, stop.why),
    )
}

/// Steps a crash left open, closed in the journal as interrupted before the host is worked on
/// again, so every started step has an end. Installs are not closed here: the host's evidence
/// settles them (deploy's `settle`), and their end says what it found.
fn close_open_steps(ctx: &JobContext) -> Result<(), String> {
    for step in &ctx.resume.open_steps {
        if matches!(step, Step::Install { .. }) {
            continue;
        }
        ctx.finished(
            step.clone(),
            false,
            StepOutcome::Interrupted,
            "hive stopped during this step (Ctrl-C, crash or kill); resumed",
        )?;
    }
    Ok(())
}

/// The rollout's view of the deploy job.
pub struct Job(pub Arc<DeployJob>);

impl HostJob for Job {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, HostOutcome> {
        Box::pin(self.0.clone().run_host(ctx))
    }
}
