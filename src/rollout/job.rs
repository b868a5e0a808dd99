//! The seam between the rollout and the work on one host: a [`HostJob`] gets a [`JobContext`]
//! and returns a [`HostOutcome`]; an optional [`HealthCheck`] runs after it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::journal::ResumeState;
use super::stop::StopFlag;
use super::verdict::HostOutcome;
use crate::events::{Event, EventSink, Step, StepOutcome, StepState};
use crate::inventory::{Host, Secret};
use crate::remote::{BoxFuture, Command, Connector};

/// Everything a job gets for one host.
#[derive(Clone)]
pub struct JobContext {
    pub run: String,
    pub host: String,
    pub wave: usize,
    /// What an earlier attempt in this run already did on this host (empty on a first attempt).
    pub resume: ResumeState,
    /// Journal + progress: emit Started before each step and Finished after it.
    pub sink: Arc<dyn EventSink>,
    /// Check between steps; when raised, return [`super::HostVerdict::Interrupted`].
    pub stop: StopFlag,
    /// Patches this host must not get: quarantined by the run, or withheld from this host after
    /// a reboot loop ([`super::quarantine`]), as they stood when the host started.
    pub withheld: BTreeSet<String>,
}

impl JobContext {
    pub fn emit(&self, step: Step, state: StepState) -> Result<(), String> {
        self.sink
            .emit(&Event::new(&self.run, &self.host, step, state))
    }
    pub fn started(&self, step: Step) -> Result<(), String> {
        self.emit(step, StepState::Started)
    }
    pub fn finished(
        &self,
        step: Step,
        ok: bool,
        outcome: StepOutcome,
        detail: &str,
    ) -> Result<(), String> {
        self.finished_at_boot(step, ok, outcome, detail, None)
    }
    /// A step that saw the host's boot time: the journal keeps it as a field, for a resumed run
    /// to compare with.
    pub fn finished_at_boot(
        &self,
        step: Step,
        ok: bool,
        outcome: StepOutcome,
        detail: &str,
        boot_time: Option<String>,
    ) -> Result<(), String> {
        self.emit(
            step,
            StepState::finished(ok, outcome, detail, boot_time.as_deref()),
        )
    }
    pub fn progress(&self, step: Step, done: u64, total: u64) -> Result<(), String> {
        self.emit(step, StepState::Progress { done, total })
    }
}

/// The work done on one host. Implemented for any `Fn(JobContext) -> impl Future<Output =
/// HostOutcome>`, so a test writes a closure and deploy writes a struct.
pub trait HostJob: Send + Sync + 'static {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, HostOutcome>;
}

impl<F, Fut> HostJob for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HostOutcome> + Send + 'static,
{
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, HostOutcome> {
        Box::pin(self(ctx))
    }
}

/// Run the host's job (a panic is that host's failure, not the run's end), then, when the job
/// patched the host, its health checks as a journaled `health` step: only a host this run changed
/// is judged, since one with nothing to do was not touched and a sick host the patches never
/// reached must not count against them. `Err` is a journal write that failed; the caller says
/// what that makes of the host.
pub(crate) async fn job_then_health(
    job: Arc<dyn HostJob>,
    health: Option<Arc<dyn HealthCheck>>,
    ctx: &JobContext,
) -> Result<HostOutcome, String> {
    use futures::FutureExt as _;
    let mut outcome = match std::panic::AssertUnwindSafe(job.run(ctx.clone()))
        .catch_unwind()
        .await
    {
        Ok(o) => o,
        Err(_) => HostOutcome::new(
            super::verdict::HostVerdict::Failed,
            "the host job panicked (a hive bug)",
        ),
    };
    if let (Some(check), super::verdict::HostVerdict::Patched) = (health, outcome.verdict) {
        ctx.started(Step::Health)?;
        let result = check.check(ctx.host.clone()).await;
        let (ok, word, detail) = match &result {
            Ok(d) => (true, StepOutcome::Ok, d.clone()),
            Err(e) => (false, StepOutcome::Failed, e.clone()),
        };
        let _ = ctx.finished(Step::Health, ok, word, &detail);
        if let Err(e) = result {
            outcome = HostOutcome::new(
                super::verdict::HostVerdict::Unhealthy,
                format!("health check: {e}"),
            );
        }
    }
    Ok(outcome)
}

/// Health checks run on each host after its job patched it, and polled during its wave's soak.
/// `Ok` carries what was seen, `Err` the evidence of what is wrong; a host that fails is
/// [`super::HostVerdict::Unhealthy`], which weighs on the gates and budgets like a failure.
pub trait HealthCheck: Send + Sync + 'static {
    fn check(&self, host: String) -> BoxFuture<'static, Result<String, String>>;
    /// How often the soak polls this host.
    fn poll_interval(&self, _host: &str) -> Duration {
        Duration::from_secs(60)
    }
}

/// A health command run through a [`Target`](crate::remote::Target): healthy when it exits 0.
pub struct CommandHealth {
    /// The hosts the command may run on, with their credentials.
    pub hosts: Arc<BTreeMap<String, (Host, Secret)>>,
    pub connector: Arc<dyn Connector>,
    pub command: Command,
    pub timeout: Duration,
}

impl HealthCheck for CommandHealth {
    fn check(&self, host: String) -> BoxFuture<'static, Result<String, String>> {
        let hosts = self.hosts.clone();
        let connector = self.connector.clone();
        let command = self.command.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let (h, secret) = hosts
                .get(&host)
                .ok_or_else(|| format!("{host}: not in the inventory"))?;
            let mut target = connector
                .open(h, secret)
                .map_err(|e| format!("{host}: {e}"))?;
            let out = target
                .exec(&command, timeout)
                .await
                .map_err(|e| format!("{host}: health command: {e}"))?;
            let first = out.stdout.lines().next().unwrap_or("").trim().to_string();
            if out.exit_code == 0 {
                Ok(first)
            } else {
                let err = out.stderr.lines().next().unwrap_or("").trim();
                Err(format!(
                    "{host}: health command `{}` exited {} ({})",
                    command.label(),
                    out.exit_code,
                    if err.is_empty() { &first } else { err }
                ))
            }
        })
    }
}
