//! Pre-flight on a real host: the facts [`crate::rollout::preflight`] judges, read with the
//! probe hive already sends (pending-reboot markers, free disk on the system drive, the host's
//! clock) and the host's plan (the installers it is to get), and the reboot a pending one asks
//! for when the settings say to reboot first.
//!
//! Nothing is changed on a host by checking it; only `reboot-first` reboots, through deploy's
//! reboot code, journaled as any reboot is. A host that cannot be reached is left to its job
//! (which calls it unreachable, as it is): only a refused logon sets it aside here.

use std::sync::Arc;
use std::time::Duration;

use crate::deploy::{self, reboot_loop};
use crate::pipeline::DeployJob;
use crate::remote::{BoxFuture, RemoteError};
use crate::rollout::JobContext;
use crate::rollout::preflight::{
    Judged, PreflightCheck, PreflightFacts, PreflightSettings, SetAside, judge,
};
use crate::rollout::quarantine::plan_without_withheld;
use crate::scan::probe::pending_reboot_names;
use crate::scan::run::{scan_target, state_probe};
use crate::time::parse_utc_seconds;

/// The pre-flight of a deploy job's hosts.
pub struct HostPreflight {
    pub job: Arc<DeployJob>,
    pub settings: PreflightSettings,
}

impl PreflightCheck for HostPreflight {
    fn check(&self, ctx: JobContext) -> BoxFuture<'static, Result<String, SetAside>> {
        let job = self.job.clone();
        let settings = self.settings.clone();
        Box::pin(async move { check_host(&job, &settings, &ctx).await })
    }
}

async fn check_host(
    job: &DeployJob,
    settings: &PreflightSettings,
    ctx: &JobContext,
) -> Result<String, SetAside> {
    // Hosts without an entry or a secret are the job's to report.
    let Some((host, Ok(secret))) = job.hosts.get(&ctx.host) else {
        return Ok(String::new());
    };
    let mut target = match job.connector.open(host, secret) {
        Ok(t) => t,
        Err(RemoteError::AuthFailed(error)) => return Err(SetAside::LogonRefused { error }),
        Err(_) => return Ok(String::new()),
    };
    let timeout = job.options.verify_timeout;
    let scan = scan_target(
        target.as_mut(),
        &job.catalog,
        &job.probe,
        timeout,
        job.files,
    )
    .await;
    let result = match scan {
        Ok(r) => r,
        Err(RemoteError::AuthFailed(error)) => return Err(SetAside::LogonRefused { error }),
        Err(_) => return Ok(String::new()),
    };
    let (plan, _) = plan_without_withheld(
        &ctx.host,
        &result.verdicts,
        &job.catalog,
        &job.approved,
        &ctx.resume.install_started,
        &ctx.withheld,
    );
    if plan.installs.is_empty() {
        // Nothing to install: nothing for pre-flight to protect.
        return Ok(String::new());
    }
    let raw = match state_probe(target.as_mut(), job.options.command_timeout).await {
        Ok(f) => f,
        Err(_) => return Ok(String::new()),
    };
    let now_s = (crate::time::now_ms() / 1000) as i64;
    let host_s = (!raw.unknown.contains_key("utc_now"))
        .then(|| parse_utc_seconds(&raw.utc_now))
        .flatten();
    let facts = PreflightFacts {
        pending: pending_reboot_names(&raw.pending_reboot),
        free_disk: (!raw.unknown.contains_key("free_disk_bytes")).then_some(raw.free_disk_bytes),
        installer_bytes: plan.bytes,
        clock_skew: host_s.map(|h| Duration::from_secs(h.abs_diff(now_s))),
        clock_ahead: host_s.is_some_and(|h| h > now_s),
    };
    match judge(&facts, settings) {
        Judged::Fit => Ok(String::new()),
        Judged::SetAside(reason) => Err(reason),
        Judged::RebootFirst(markers) => {
            let sink = ctx.sink.clone();
            let mut dctx = deploy::HostContext::new(
                &ctx.run,
                host,
                target.as_mut(),
                sink.as_ref(),
                Some(&job.repo),
                &job.options,
            );
            let mut reboots = Vec::new();
            match reboot_loop::reboot_until_clear(&mut dctx, &raw.last_boot_time, &mut reboots)
                .await
            {
                Ok(()) => Ok(format!("rebooted first ({})", markers.join(", "))),
                Err(stop) => Err(SetAside::RebootPending {
                    markers: vec![format!(
                        "{} (rebooting first did not clear it: {})",
                        markers.join(", "),
                        stop.why
                    )],
                }),
            }
        }
    }
}
