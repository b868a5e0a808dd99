//! `hive worker --state postgres://... --site NAME`: patches the hosts of one site, as many
//! workers per site as the operator starts, in the waves the coordinator opened.
//!
//! Each claimed host runs the same job a single orchestrator runs ([`crate::rollout::HostJob`],
//! pre-flight and health check included), with its step records kept in the database (fenced by
//! the host's lease) before each step acts. A host claimed before (its previous worker died, or
//! was cut off) starts from what its records say, as `hive resume` does: the open step is settled
//! from the host before anything else is done to it, so nothing is installed twice.
//!
//! While a wave of the run soaks, the worker also polls its site's patched hosts of that wave
//! with the same health checks (see [`super::soak`]), beside its claims.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::lease::{Claimed, LeasedSink, Leases};
use super::run;
use super::soak::SiteSoak;
use super::{Db, StateError};
use crate::journal::RunHeader;
use crate::rollout::job::{HealthCheck, HostJob, JobContext};
use crate::rollout::preflight::{PreflightCheck, SetAside, set_aside_detail};
use crate::rollout::stop::StopFlag;
use crate::rollout::verdict::{HostCounts, HostOutcome, HostVerdict};

/// How long a worker waits before asking again for hosts that were not there.
const CLAIM_PAUSE: Duration = Duration::from_millis(500);

/// One worker: where it works and what it runs on each host.
pub struct Worker {
    pub db: Arc<Db>,
    pub site: String,
    /// Its name in the database (defaults to the machine's name and the process id).
    pub name: String,
    pub parallel: usize,
    /// How long a claim holds without a heartbeat; a dead worker's hosts wait this long.
    pub lease: Duration,
    pub job: Arc<dyn HostJob>,
    pub health: Option<Arc<dyn HealthCheck>>,
    pub preflight: Option<Arc<dyn PreflightCheck>>,
    pub stop: StopFlag,
    /// Bound on one host's work (`None`: the run's option).
    pub host_timeout: Option<Duration>,
}

/// What one worker did.
#[derive(Debug, Clone, Default)]
pub struct WorkerSummary {
    pub run: String,
    pub counts: HostCounts,
    /// Hosts this worker took over from another (claimed more than once).
    pub taken_over: usize,
    /// Hosts whose lease another worker took while this one worked on them.
    pub lost: usize,
    /// Hosts this worker found unhealthy during their wave's soak.
    pub soak_unhealthy: usize,
    pub round_trips: u64,
}

impl Worker {
    /// Work on `run` (or, without one, the newest unfinished run, waiting for one to appear)
    /// until the coordinator ends it.
    pub async fn run(&self, run: Option<&str>) -> Result<WorkerSummary, StateError> {
        let run = match run {
            // Started before the coordinator created it: wait for it.
            Some(r) => loop {
                match run::status(&self.db, r).await {
                    Ok(_) => break r.to_string(),
                    Err(StateError::NoSuchRun(_)) if !self.stop.is_stopped() => {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(e) => return Err(e),
                }
            },
            None => loop {
                if let Some(r) = run::current_run(&self.db).await? {
                    break r;
                }
                if self.stop.is_stopped() {
                    return Ok(WorkerSummary::default());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            },
        };
        let header = run::load(&self.db, &run).await?.header;
        let host_timeout = self
            .host_timeout
            .or(header.options.host_timeout_ms.map(Duration::from_millis));
        let leases = Arc::new(Leases::new(
            self.db.clone(),
            &run,
            &self.site,
            format!("{}-{}", self.name, crate::time::now_ms()),
            self.lease,
        ));
        leases.register().await?;
        let mut summary = WorkerSummary {
            run: run.clone(),
            ..WorkerSummary::default()
        };
        let beat = (self.lease / 3).max(Duration::from_millis(100));
        let mut last_beat: Option<Instant> = None;
        let mut status = run::status(&self.db, &run).await?;
        let mut set: JoinSet<(String, usize, Result<(), StateError>, HostOutcome)> = JoinSet::new();
        let mut flags: BTreeMap<String, StopFlag> = BTreeMap::new();
        let jobs = StopFlag::default();
        let mut idle_pause = Duration::from_millis(50);
        // A claim that found fewer hosts than it asked for is not repeated before this, unless a
        // wave opened: what is left is held by live workers, or not open yet.
        let mut next_claim = Instant::now();
        let mut claimed_wave = -1;
        let mut soak: Option<SoakTask> = None;
        let mut soaked: BTreeSet<i32> = BTreeSet::new();
        loop {
            if last_beat.is_none_or(|t| t.elapsed() >= beat) {
                let (s, mine) = leases.heartbeat().await?;
                status = s;
                last_beat = Some(Instant::now());
                // A host whose lease is no longer ours: stop working on it at its next step.
                for (host, flag) in &flags {
                    if !mine.contains(host) {
                        flag.stop();
                    }
                }
                if status.over() {
                    jobs.stop();
                }
            }
            if self.stop.is_stopped() {
                jobs.stop();
            }
            let stopping = self.stop.is_stopped() || !status.running();
            if let Some(task) = &soak
                && (stopping || status.soak.as_ref().map(|s| s.wave) != Some(task.wave))
            {
                task.stop.stop();
            }
            if soak.as_ref().is_some_and(|t| t.handle.is_finished())
                && let Some(task) = soak.take()
            {
                soaked.insert(task.wave);
                summary.soak_unhealthy += task.join().await?;
            }
            if soak.is_none()
                && !stopping
                && let Some(s) = &status.soak
                && !soaked.contains(&s.wave)
            {
                soak = Some(self.soak_task(&leases, &header, s.wave));
            }
            if !stopping
                && set.len() < self.parallel
                && (Instant::now() >= next_claim || status.open_wave != claimed_wave)
            {
                let want = self.parallel - set.len();
                let claimed = leases.claim(want, status.open_wave).await?;
                claimed_wave = status.open_wave;
                if !claimed.is_empty() {
                    idle_pause = Duration::from_millis(50);
                }
                if claimed.len() < want {
                    next_claim = Instant::now() + CLAIM_PAUSE;
                }
                for c in claimed {
                    if c.claims > 1 {
                        summary.taken_over += 1;
                    }
                    let flag = jobs.child();
                    flags.insert(c.host.clone(), flag.clone());
                    set.spawn(self.host_task(leases.clone(), &run, c, flag, host_timeout));
                }
            }
            if set.is_empty() {
                if status.over() || self.stop.is_stopped() {
                    break;
                }
                // Nothing claimable now: wait a little longer each time (a wave not yet open,
                // hosts held by a live worker), up to a heartbeat.
                tokio::time::sleep(idle_pause).await;
                idle_pause = (idle_pause * 2).min(beat).min(CLAIM_PAUSE);
                last_beat = None;
                next_claim = Instant::now();
                continue;
            }
            let joined = tokio::select! {
                j = set.join_next() => j,
                _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
            };
            let Some(Ok((host, _wave, settled, outcome))) = joined else {
                continue;
            };
            flags.remove(&host);
            next_claim = Instant::now();
            match settled {
                Ok(()) => summary.counts.add(Some(outcome.verdict)),
                Err(StateError::LeaseLost { .. }) => summary.lost += 1,
                Err(e) => return Err(e),
            }
        }
        if let Some(task) = soak.take() {
            task.stop.stop();
            summary.soak_unhealthy += task.join().await?;
        }
        summary.round_trips = self.db.round_trips();
        Ok(summary)
    }

    /// Poll this site's hosts of a soaking wave, beside the claims (see [`super::soak`]).
    fn soak_task(&self, leases: &Leases, header: &RunHeader, wave: i32) -> SoakTask {
        let stop = StopFlag::default();
        let db = self.db.clone();
        let run = leases.run.clone();
        let site = self.site.clone();
        let writer = leases.worker.clone();
        let wave_name = header
            .waves
            .get(wave.max(0) as usize)
            .map_or_else(|| wave.to_string(), |w| w.name.clone());
        let health = self.health.clone();
        let flag = stop.clone();
        let handle = tokio::spawn(async move {
            SiteSoak {
                db: &db,
                run: &run,
                site: &site,
                writer: &writer,
                wave,
                wave_name: &wave_name,
                health,
                stop: &flag,
            }
            .run()
            .await
            .map(|unhealthy| unhealthy.len())
        });
        SoakTask { wave, stop, handle }
    }

    fn host_task(
        &self,
        leases: Arc<Leases>,
        run: &str,
        claimed: Claimed,
        flag: StopFlag,
        timeout: Option<Duration>,
    ) -> impl std::future::Future<Output = (String, usize, Result<(), StateError>, HostOutcome)>
    + Send
    + 'static {
        let job = self.job.clone();
        let health = self.health.clone();
        let preflight = self.preflight.clone();
        let run = run.to_string();
        async move {
            let Claimed { host, wave, claims } = claimed;
            // Only a host claimed before can have records: the first claim costs no read.
            let resume = if claims > 1 {
                match leases.history(&host).await {
                    Ok(log) => log.resume_state(),
                    Err(e) => {
                        return (
                            host,
                            wave,
                            Err(e),
                            HostOutcome::new(HostVerdict::Interrupted, ""),
                        );
                    }
                }
            } else {
                Default::default()
            };
            let ctx = JobContext {
                run,
                host: host.clone(),
                wave,
                resume,
                sink: Arc::new(LeasedSink(leases.clone())),
                stop: flag,
                withheld: BTreeSet::new(),
            };
            let work = work_on(job, health, preflight, ctx);
            let outcome = match timeout {
                Some(t) => tokio::time::timeout(t, work).await.unwrap_or_else(|_| {
                    HostOutcome::new(
                        HostVerdict::Failed,
                        format!(
                            "no result within {}",
                            crate::rollout::plan::format_duration(t)
                        ),
                    )
                }),
                None => work.await,
            };
            let settled = leases.settle(&host, wave, &outcome).await;
            (host, wave, settled, outcome)
        }
    }
}

/// A soak this worker polls, beside its claims.
struct SoakTask {
    wave: i32,
    stop: StopFlag,
    handle: tokio::task::JoinHandle<Result<usize, StateError>>,
}

impl SoakTask {
    /// The hosts it found unhealthy, once it ended.
    async fn join(self) -> Result<usize, StateError> {
        self.handle.await.map_err(|e| StateError::Soak {
            wave: self.wave,
            message: format!("the polling task ended abnormally (a hive bug): {e}"),
        })?
    }
}

/// One host's work as the single orchestrator does it: pre-flight (and the health check) on a
/// host nothing was installed on yet, the job, then the health check on a host it patched.
async fn work_on(
    job: Arc<dyn HostJob>,
    health: Option<Arc<dyn HealthCheck>>,
    preflight: Option<Arc<dyn PreflightCheck>>,
    ctx: JobContext,
) -> HostOutcome {
    let host = ctx.host.clone();
    if ctx.resume.install_started.is_empty() {
        if let Some(p) = &preflight
            && let Err(reason) = p.check(ctx.clone()).await
        {
            return HostOutcome::new(HostVerdict::Skipped, set_aside_detail(&reason));
        }
        if preflight.is_some()
            && let Some(h) = &health
            && let Err(evidence) = h.check(host.clone()).await
        {
            return HostOutcome::new(
                HostVerdict::Skipped,
                set_aside_detail(&SetAside::Unhealthy { evidence }),
            );
        }
    }
    crate::rollout::job::job_then_health(job, health, &ctx)
        .await
        .unwrap_or_else(|e| HostOutcome::new(HostVerdict::Interrupted, format!("state: {e}")))
}
