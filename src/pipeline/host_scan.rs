//! The first step of every per-host job (deploy, rollback): reach the host, settle what a crash
//! left open, and scan it with the scan journaled — so the job itself starts from a fresh,
//! journaled picture of the host and only adds its own work (installs, removals).

use std::collections::BTreeMap;

use crate::catalog::model::Catalog;
use crate::deploy::{self, DeployOptions, ScanInputs};
use crate::events::{Step, StepOutcome};
use crate::inventory::{Host, Secret};
use crate::remote::{Connector, RemoteError, Target};
use crate::repo::Repository;
use crate::rollout::{HostOutcome, HostVerdict, JobContext};
use crate::scan::HostResult;
use crate::scan::run::{FileSource, PreparedProbe, scan_target};

/// What a job reaches and scans its hosts with, borrowed from the job.
pub struct HostAccess<'a> {
    pub hosts: &'a BTreeMap<String, (Host, Result<Secret, String>)>,
    pub catalog: &'a Catalog,
    pub probe: &'a PreparedProbe,
    pub repo: &'a Repository,
    pub options: &'a DeployOptions,
    pub files: FileSource,
    pub connector: &'a dyn Connector,
}

/// A host reached and scanned.
pub struct ScannedHost<'a> {
    pub host: &'a Host,
    pub target: Box<dyn Target>,
    pub result: HostResult,
    /// A reboot this run started has completed (the journal says so, or it was settled now).
    pub rebooted: bool,
}

impl<'a> HostAccess<'a> {
    /// Connect to `ctx.host`; on a resumed host close the steps a crash left open and settle a
    /// reboot that was under way; then scan, journaling the scan step. `summary` words the end of
    /// the scan step from its result (the boot time is added here) and may hand back what it
    /// worked out on the way. `Err` is the host's outcome when it ends before the job's own work.
    pub async fn connect_and_scan<T>(
        &self,
        ctx: &JobContext,
        summary: impl FnOnce(&HostResult) -> (String, T),
    ) -> Result<(ScannedHost<'a>, T), HostOutcome> {
        let Some((host, secret)) = self.hosts.get(&ctx.host) else {
            return Err(HostOutcome::new(
                HostVerdict::Skipped,
                format!("{} is not in the inventory", ctx.host),
            ));
        };
        let secret = secret
            .as_ref()
            .map_err(|e| HostOutcome::new(HostVerdict::Unreachable, e.clone()))?;
        let mut target = self
            .connector
            .open(host, secret)
            .map_err(|e| HostOutcome::new(HostVerdict::Unreachable, e.to_string()))?;

        // A resumed host: first close what the crash left open and settle a reboot that was
        // under way (the host may be down, or back with a new boot time), then scan.
        let mut rebooted = ctx.resume.reboot_done;
        if ctx.resume.attempted {
            close_open_steps(ctx)
                .map_err(|e| HostOutcome::new(HostVerdict::Failed, format!("journal: {e}")))?;
            if ctx.resume.reboot_in_flight() {
                let mut dctx = deploy::HostContext::new(
                    &ctx.run,
                    host,
                    target.as_mut(),
                    ctx.sink.as_ref(),
                    Some(self.repo),
                    self.options,
                );
                let boot = ctx.resume.boot_before_reboot.as_deref();
                match deploy::settle::reboot_in_flight(&mut dctx, boot).await {
                    Ok(record) => rebooted = record.is_some() || rebooted,
                    Err(stop) => return Err(super::outcome_of_stop(stop)),
                }
            }
        }

        ctx.started(Step::Scan)
            .map_err(|e| HostOutcome::new(HostVerdict::Failed, format!("journal: {e}")))?;
        // A host hive was changing when it stopped may be restarting on its own (an installer's
        // 1641 restart): on resume, wait for it like for a reboot before calling it unreachable.
        let patience = if ctx.resume.changed_the_host() {
            self.options.port_timeout
        } else {
            std::time::Duration::ZERO
        };
        let give_up = std::time::Instant::now() + patience;
        let scan = loop {
            let scan = scan_target(
                target.as_mut(),
                self.catalog,
                self.probe,
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
                return Err(HostOutcome::new(verdict, format!("scan: {e}")));
            }
        };
        let (said, extra) = summary(&result);
        // The boot time goes into the journal: a resumed run compares it with the host's to tell
        // whether a reboot happened while hive was not watching.
        let boot = result.facts.last_boot.clone();
        let detail = match &boot {
            Some(b) => format!("{said}; boot time {b}"),
            None => format!("{said}; the host reported no boot time"),
        };
        let _ = ctx.finished_at_boot(Step::Scan, true, StepOutcome::Ok, &detail, boot);
        Ok((
            ScannedHost {
                host,
                target,
                result,
                rebooted,
            },
            extra,
        ))
    }

    /// The context the job's own work runs in on `scanned`, and what its re-scans read.
    pub fn work_on<'b>(
        &'b self,
        ctx: &'b JobContext,
        scanned: &'b mut ScannedHost<'a>,
    ) -> (deploy::HostContext<'b>, ScanInputs<'b>) {
        let dctx = deploy::HostContext::new(
            &ctx.run,
            scanned.host,
            scanned.target.as_mut(),
            ctx.sink.as_ref(),
            Some(self.repo),
            self.options,
        );
        let inputs = ScanInputs {
            catalog: self.catalog,
            probe: self.probe,
            files: self.files,
        };
        (dctx, inputs)
    }
}

/// Steps a crash left open, closed in the journal as interrupted before the host is worked on
/// again, so every started step has an end. Installs and uninstalls are not closed here: the
/// host's evidence settles them (deploy's `settle`, the rollback's re-scan), and their end says
/// what it found.
fn close_open_steps(ctx: &JobContext) -> Result<(), String> {
    for step in &ctx.resume.open_steps {
        if matches!(step, Step::Install { .. } | Step::Uninstall { .. }) {
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
