//! Rollout: canary hosts first, then the fleet in waves, with gates between waves, failure budgets,
//! a bound on hosts in flight, and a journal that lets a stopped run resume where it was.
//!
//! The per-host work is a [`HostJob`]: given a host, what an earlier attempt already did there
//! ([`ResumeState`]) and an event sink, it returns a [`HostOutcome`]. Deploy plugs its
//! stage → install → reboot → verify pipeline in here; tests plug in simulated hosts. The rollout
//! itself never talks to a host, except through an optional [`HealthCheck`].
//!
//! Stopping is cooperative: when a budget is exceeded (or the operator presses Ctrl-C) no new host
//! starts and the [`StopFlag`] every job holds is raised, so in-flight jobs end after the step they
//! are in — an installer is never cut off halfway by hive.

pub mod plan;
pub mod report;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::task::JoinSet;

use crate::events::{Event, EventSink, Fanout, Step, StepState, now_ms};
use crate::inventory::Inventory;
use crate::journal::{Journal, JournalError, ResumeState, RunHeader, RunLog, RunState};
use crate::remote::{BoxFuture, Command, RemoteError, Target};
pub use plan::{Limit, PlanError, Stage, Wave, format_duration, parse_duration, parse_plan};

/// How one host ended in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostVerdict {
    /// Patches installed and verified.
    Patched,
    /// The host already had everything approved for it.
    NothingToDo,
    /// A step failed on a reachable host (installer error, verification mismatch, health check).
    Failed,
    /// The host could not be reached or logged on to.
    Unreachable,
    /// Deliberately not worked on (excluded, maintenance window closed...).
    Skipped,
    /// The job stopped at a step boundary because the run was stopping; resume continues it.
    Interrupted,
}

impl HostVerdict {
    pub fn word(self) -> &'static str {
        match self {
            HostVerdict::Patched => "patched",
            HostVerdict::NothingToDo => "nothing to do",
            HostVerdict::Failed => "failed",
            HostVerdict::Unreachable => "unreachable",
            HostVerdict::Skipped => "skipped",
            HostVerdict::Interrupted => "interrupted",
        }
    }

    /// The host is in the state the run wanted.
    pub fn good(self) -> bool {
        matches!(self, HostVerdict::Patched | HostVerdict::NothingToDo)
    }
}

/// What a [`HostJob`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOutcome {
    pub verdict: HostVerdict,
    /// The evidence: which step failed and why, which KBs were installed.
    pub detail: String,
}

impl HostOutcome {
    pub fn new(verdict: HostVerdict, detail: impl Into<String>) -> Self {
        HostOutcome {
            verdict,
            detail: detail.into(),
        }
    }
}

/// Raised to ask every job to stop at its next step boundary. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Everything a job gets for one host.
#[derive(Clone)]
pub struct HostContext {
    pub run: String,
    pub host: String,
    pub wave: usize,
    /// What an earlier attempt in this run already did on this host (empty on a first attempt).
    pub resume: ResumeState,
    /// Journal + progress: emit Started before each step and Finished after it.
    pub sink: Arc<dyn EventSink>,
    /// Check between steps; when raised, return [`HostVerdict::Interrupted`].
    pub stop: StopFlag,
}

impl HostContext {
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
        outcome: &str,
        detail: &str,
    ) -> Result<(), String> {
        self.emit(
            step,
            StepState::Finished {
                ok,
                outcome: outcome.to_string(),
                detail: detail.to_string(),
            },
        )
    }
    pub fn progress(&self, step: Step, done: u64, total: u64) -> Result<(), String> {
        self.emit(step, StepState::Progress { done, total })
    }
}

/// The work done on one host. Implemented for any `Fn(HostContext) -> impl Future<Output =
/// HostOutcome>`, so a test writes a closure and deploy writes a struct.
pub trait HostJob: Send + Sync + 'static {
    fn run(&self, ctx: HostContext) -> BoxFuture<'static, HostOutcome>;
}

impl<F, Fut> HostJob for F
where
    F: Fn(HostContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HostOutcome> + Send + 'static,
{
    fn run(&self, ctx: HostContext) -> BoxFuture<'static, HostOutcome> {
        Box::pin(self(ctx))
    }
}

/// A custom health check run on each host after its job succeeded (e.g. "is the SQL service
/// running"). A host that fails it counts as failed, so it weighs on the wave's gate.
pub trait HealthCheck: Send + Sync + 'static {
    fn check(&self, host: String) -> BoxFuture<'static, Result<String, String>>;
}

/// Opens a [`Target`] for a host name (the CLI builds one from the inventory and credentials).
pub type Connector = Arc<dyn Fn(&str) -> Result<Box<dyn Target>, RemoteError> + Send + Sync>;

/// A health command run through a [`Target`]: healthy when it exits 0.
pub struct CommandHealth {
    pub connect: Connector,
    pub command: Command,
    pub timeout: Duration,
}

impl HealthCheck for CommandHealth {
    fn check(&self, host: String) -> BoxFuture<'static, Result<String, String>> {
        let connect = self.connect.clone();
        let command = self.command.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let mut target = connect(&host).map_err(|e| format!("{host}: {e}"))?;
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

/// Options of a run, recorded in the journal's header so a resume uses the same ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutOptions {
    /// Hosts in flight at once, across the whole run.
    pub parallel: usize,
    /// Default per-wave budgets for percentage waves (canary waves default to 0).
    pub max_failed_per_wave: Option<Limit>,
    pub max_unreachable_per_wave: Option<Limit>,
    /// Budgets over the whole run (of all its hosts).
    pub max_failed_total: Option<Limit>,
    pub max_unreachable_total: Option<Limit>,
    /// Stop after the canary waves until `hive rollout promote <run>`.
    pub pause_after_canary: bool,
    /// A job running longer than this is abandoned and the host counted failed.
    pub host_timeout_ms: Option<u64>,
}

impl Default for RolloutOptions {
    fn default() -> Self {
        RolloutOptions {
            parallel: 16,
            max_failed_per_wave: None,
            max_unreachable_per_wave: None,
            max_failed_total: None,
            max_unreachable_total: None,
            pause_after_canary: false,
            host_timeout_ms: None,
        }
    }
}

/// Why a run stopped before its last wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum StopReason {
    /// More hosts failed (or were unreachable) in one wave than its budget allows.
    WaveBudget {
        wave: String,
        kind: String,
        count: usize,
        allowed: usize,
    },
    /// More hosts failed (or were unreachable) in the whole run than its budget allows.
    TotalBudget {
        kind: String,
        count: usize,
        allowed: usize,
    },
    /// A canary wave did not prove the patches good.
    CanaryGate { wave: String, detail: String },
    /// Waiting for `hive rollout promote`.
    Paused { run: String },
    /// The operator asked to stop (Ctrl-C).
    Operator,
    /// The journal could not record a step: nothing may run that is not recorded.
    Journal { error: String },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::WaveBudget {
                wave,
                kind,
                count,
                allowed,
            } => write!(
                f,
                "wave {wave}: {count} hosts {kind}, its budget allows {allowed}"
            ),
            StopReason::TotalBudget {
                kind,
                count,
                allowed,
            } => write!(
                f,
                "{count} hosts {kind} in the run, the total budget allows {allowed}"
            ),
            StopReason::CanaryGate { wave, detail } => {
                write!(f, "canary wave {wave} did not pass its gate: {detail}")
            }
            StopReason::Paused { run } => write!(
                f,
                "paused after the canaries: run `hive rollout promote {run}` then `hive resume {run}`"
            ),
            StopReason::Operator => f.write_str("stopped by the operator"),
            StopReason::Journal { error } => write!(f, "the journal failed: {error}"),
        }
    }
}

/// One host's line in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLine {
    pub host: String,
    pub wave: usize,
    /// `None`: never started in this run (the run stopped before its wave or turn).
    pub verdict: Option<HostVerdict>,
    pub detail: String,
    /// Time spent on the host in this invocation (0 for hosts done before a resume).
    pub ms: u64,
}

/// Counts by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub patched: usize,
    pub nothing_to_do: usize,
    pub failed: usize,
    pub unreachable: usize,
    pub skipped: usize,
    pub interrupted: usize,
    pub not_started: usize,
}

impl Counts {
    pub fn add(&mut self, verdict: Option<HostVerdict>) {
        match verdict {
            Some(HostVerdict::Patched) => self.patched += 1,
            Some(HostVerdict::NothingToDo) => self.nothing_to_do += 1,
            Some(HostVerdict::Failed) => self.failed += 1,
            Some(HostVerdict::Unreachable) => self.unreachable += 1,
            Some(HostVerdict::Skipped) => self.skipped += 1,
            Some(HostVerdict::Interrupted) => self.interrupted += 1,
            None => self.not_started += 1,
        }
    }
    pub fn total(&self) -> usize {
        self.patched
            + self.nothing_to_do
            + self.failed
            + self.unreachable
            + self.skipped
            + self.interrupted
            + self.not_started
    }
}

/// The end of a run (or of one invocation of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub run: String,
    pub state: RunState,
    pub stop: Option<StopReason>,
    pub elapsed_ms: u64,
    pub waves: Vec<WaveLine>,
    pub hosts: Vec<HostLine>,
}

/// One wave's line in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveLine {
    pub name: String,
    pub counts: Counts,
    /// `passed`, `failed: ...`, or `not reached`.
    pub gate: String,
}

impl Summary {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for h in &self.hosts {
            c.add(h.verdict);
        }
        c
    }

    /// "200 hosts: 187 patched, 3 failed, 10 unreachable, 0 skipped in 4m12s".
    pub fn recap(&self) -> String {
        let c = self.counts();
        let mut s = format!(
            "{} hosts: {} patched, {} failed, {} unreachable, {} skipped",
            c.total(),
            c.patched,
            c.failed,
            c.unreachable,
            c.skipped
        );
        if c.nothing_to_do > 0 {
            s.push_str(&format!(", {} already up to date", c.nothing_to_do));
        }
        if c.interrupted > 0 {
            s.push_str(&format!(", {} interrupted", c.interrupted));
        }
        if c.not_started > 0 {
            s.push_str(&format!(", {} not started", c.not_started));
        }
        s.push_str(&format!(
            " in {}",
            format_duration(Duration::from_millis(self.elapsed_ms))
        ));
        if let Some(why) = &self.stop {
            s.push_str(&format!("; stopped: {why}"));
        }
        s
    }
}

/// Who watches a run besides the journal: the progress bars or the NDJSON printer. Every method
/// has a no-op default.
pub trait RunWatcher: EventSink {
    fn run_started(&self, _header: &RunHeader, _done_before: usize) {}
    fn wave_started(&self, _wave: &Wave) {}
    fn host_started(&self, _host: &str, _wave: usize) {}
    fn host_finished(&self, _host: &str, _wave: usize, _outcome: &HostOutcome) {}
    fn wave_finished(&self, _wave: &Wave, _gate: &str) {}
    fn paused(&self, _run: &str) {}
    fn run_finished(&self, _summary: &Summary) {}
}

/// A watcher that shows nothing.
pub struct Quiet;

impl EventSink for Quiet {
    fn emit(&self, _: &Event) -> Result<(), String> {
        Ok(())
    }
}
impl RunWatcher for Quiet {}

#[derive(Debug, Error)]
pub enum RolloutError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the plan has no host to patch")]
    NoHosts,
    #[error("host `{host}` is in waves {a} and {b}: a host may be in one wave only")]
    DuplicateHost { host: String, a: usize, b: usize },
}

/// Resolve a plan text against an inventory (optionally restricted to `only` hosts).
pub fn plan_waves(
    plan_text: &str,
    inventory: &Inventory,
    only: Option<&[String]>,
    options: &RolloutOptions,
) -> Result<Vec<Wave>, RolloutError> {
    let stages = parse_plan(plan_text)?;
    let hosts: Vec<(String, Vec<String>)> = inventory
        .hosts
        .iter()
        .filter(|h| only.is_none_or(|o| o.iter().any(|n| n.eq_ignore_ascii_case(&h.name))))
        .map(|h| (h.name.clone(), h.groups.iter().cloned().collect()))
        .collect();
    let waves = plan::resolve(
        &stages,
        &hosts,
        options.max_failed_per_wave,
        options.max_unreachable_per_wave,
    )?;
    if waves.iter().all(|w| w.hosts.is_empty()) {
        return Err(RolloutError::NoHosts);
    }
    Ok(waves)
}

/// Release a run paused after its canaries (`hive rollout promote <run>`).
pub fn promote(repo_root: &Path, run: &str) -> Result<PathBuf, RolloutError> {
    let by = std::env::var("USER").unwrap_or_else(|_| "an operator".into());
    Ok(crate::journal::promote(repo_root, run, &by)?)
}

/// Raise `stop` on the first Ctrl-C (no new host starts, in-flight hosts end their current
/// step, the journal records where each host is); a second Ctrl-C exits at once (status 130),
/// which the journal is built to survive like a crash.
pub fn stop_on_ctrl_c(stop: StopFlag) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping: no new host starts; Ctrl-C again to quit at once");
            stop.stop();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
}

/// Runs rollouts. Build one, then call [`Rollout::start`] or [`Rollout::resume`].
pub struct Rollout {
    pub repo_root: PathBuf,
    pub job: Arc<dyn HostJob>,
    pub health: Option<Arc<dyn HealthCheck>>,
    pub watcher: Arc<dyn RunWatcher>,
    /// Raise to stop the run (Ctrl-C): no new host starts, jobs stop after their current step.
    pub stop: StopFlag,
    /// While paused after the canaries, wait for the promote marker (polling its folder) instead
    /// of returning a paused summary.
    pub wait_for_promote: bool,
    /// Resolved hosts to journal in the run header (see `RunHeader::targets`).
    pub targets: Vec<crate::targets::TargetRecord>,
}

impl Rollout {
    pub fn new(repo_root: &Path, job: Arc<dyn HostJob>) -> Rollout {
        Rollout {
            repo_root: repo_root.to_path_buf(),
            job,
            health: None,
            watcher: Arc::new(Quiet),
            stop: StopFlag::default(),
            wait_for_promote: false,
            targets: Vec::new(),
        }
    }

    /// Start a new run of `waves`; the run id is made from the clock.
    pub async fn start(
        &self,
        plan_text: &str,
        waves: Vec<Wave>,
        options: RolloutOptions,
    ) -> Result<Summary, RolloutError> {
        check_waves(&waves)?;
        let header = RunHeader {
            run: crate::journal::new_run_id(&self.repo_root),
            created_ms: now_ms(),
            plan: plan_text.to_string(),
            waves,
            options,
            targets: self.targets.clone(),
        };
        let journal = Arc::new(Journal::create(&self.repo_root, &header)?);
        journal.run_state(RunState::Running, "started")?;
        self.execute(journal, &header, BTreeMap::new(), None).await
    }

    /// Continue a run: hosts whose journal shows a verdict are not touched again (failed and
    /// unreachable ones too, unless `retry_failed`); every other host is re-run with the resume
    /// state its journal gives.
    pub async fn resume(&self, run: &str, retry_failed: bool) -> Result<Summary, RolloutError> {
        let log = RunLog::load(&self.repo_root, run)?;
        let journal = Arc::new(Journal::reopen(&self.repo_root, run)?);
        let prior: BTreeMap<String, HostOutcome> = log
            .verdicts()
            .into_iter()
            .filter(|(_, (v, _))| {
                !(retry_failed && matches!(v, HostVerdict::Failed | HostVerdict::Unreachable))
            })
            .map(|(h, (verdict, detail))| (h, HostOutcome { verdict, detail }))
            .collect();
        let reason = format!(
            "resumed: {} hosts done before{}",
            prior.len(),
            if log.torn_line.is_some() {
                " (a torn last journal line from the crash was cut off)"
            } else {
                ""
            }
        );
        journal.run_state(RunState::Running, &reason)?;
        let header = log.header.clone();
        self.execute(journal, &header, prior, Some(&log)).await
    }

    async fn execute(
        &self,
        journal: Arc<Journal>,
        header: &RunHeader,
        prior: BTreeMap<String, HostOutcome>,
        log: Option<&RunLog>,
    ) -> Result<Summary, RolloutError> {
        let t0 = Instant::now();
        let total_hosts: usize = header.waves.iter().map(|w| w.hosts.len()).sum();
        let mut lines: BTreeMap<String, HostLine> = BTreeMap::new();
        for wave in &header.waves {
            for h in &wave.hosts {
                let p = prior.get(h);
                lines.insert(
                    h.clone(),
                    HostLine {
                        host: h.clone(),
                        wave: wave.index,
                        verdict: p.map(|o| o.verdict),
                        detail: p.map(|o| o.detail.clone()).unwrap_or_default(),
                        ms: 0,
                    },
                );
            }
        }
        self.watcher.run_started(header, prior.len());
        let sink: Arc<dyn EventSink> = Arc::new(Fanout(vec![
            journal.clone() as Arc<dyn EventSink>,
            self.watcher.clone() as Arc<dyn EventSink>,
        ]));
        let mut stop: Option<StopReason> = None;
        let mut gates: Vec<String> = vec!["not reached".into(); header.waves.len()];
        for wave in &header.waves {
            if stop.is_some() {
                break;
            }
            if !wave.canary
                && header.options.pause_after_canary
                && header.waves[..wave.index].iter().any(|w| w.canary)
                && !journal.dir().join(crate::journal::PROMOTE_FILE).exists()
            {
                journal.run_state(RunState::Paused, "waiting for promote")?;
                self.watcher.paused(&header.run);
                if !self.wait_for_promote || !self.wait_promote(&journal).await {
                    stop = Some(if self.stop.is_stopped() {
                        StopReason::Operator
                    } else {
                        StopReason::Paused {
                            run: header.run.clone(),
                        }
                    });
                    break;
                }
                journal.run_state(RunState::Running, "promoted")?;
            }
            let outcome = self
                .run_wave(wave, header, &journal, &sink, &mut lines, log)
                .await;
            stop = outcome.stop;
            if stop.is_none() {
                stop = total_budget(&header.options, &lines, total_hosts);
            }
            let gate = match &stop {
                Some(why) => format!("failed: {why}"),
                None => match canary_gate(wave, &lines) {
                    Some(detail) => {
                        stop = Some(StopReason::CanaryGate {
                            wave: wave.name.clone(),
                            detail: detail.clone(),
                        });
                        format!("failed: {detail}")
                    }
                    None => "passed".to_string(),
                },
            };
            journal.wave(
                wave.index,
                if stop.is_none() { "passed" } else { "failed" },
                &gate,
            )?;
            self.watcher.wave_finished(wave, &gate);
            gates[wave.index] = gate;
            let last = wave.index + 1 == header.waves.len();
            if stop.is_none() && !last && wave.soak_ms > 0 && outcome.ran > 0 {
                journal.wave(wave.index, "soak", &format!("{} ms", wave.soak_ms))?;
                if !self.sleep_unless_stopped(wave.soak_ms).await {
                    stop = Some(StopReason::Operator);
                }
            }
        }
        let state = match &stop {
            None => RunState::Finished,
            Some(StopReason::Paused { .. }) => RunState::Paused,
            Some(_) => RunState::Stopped,
        };
        let reason = stop.as_ref().map(|s| s.to_string()).unwrap_or_default();
        // The journal may be the thing that failed; the summary still goes out.
        let _ = journal.run_state(state, &reason);
        let waves = header
            .waves
            .iter()
            .map(|w| {
                let mut counts = Counts::default();
                for h in &w.hosts {
                    counts.add(lines.get(h).and_then(|l| l.verdict));
                }
                WaveLine {
                    name: w.name.clone(),
                    counts,
                    gate: gates[w.index].clone(),
                }
            })
            .collect();
        let hosts = header
            .waves
            .iter()
            .flat_map(|w| w.hosts.iter())
            .filter_map(|h| lines.remove(h))
            .collect();
        let summary = Summary {
            run: header.run.clone(),
            state,
            stop,
            elapsed_ms: t0.elapsed().as_millis() as u64,
            waves,
            hosts,
        };
        self.watcher.run_finished(&summary);
        Ok(summary)
    }

    async fn run_wave(
        &self,
        wave: &Wave,
        header: &RunHeader,
        journal: &Arc<Journal>,
        sink: &Arc<dyn EventSink>,
        lines: &mut BTreeMap<String, HostLine>,
        log: Option<&RunLog>,
    ) -> WaveOutcome {
        let todo: Vec<&String> = wave
            .hosts
            .iter()
            .filter(|h| lines.get(*h).is_none_or(|l| l.verdict.is_none()))
            .collect();
        let mut stop = wave_budget(wave, lines);
        if todo.is_empty() || stop.is_some() {
            return WaveOutcome { stop, ran: 0 };
        }
        if let Err(e) = journal.wave(wave.index, "started", &format!("{} hosts", todo.len())) {
            return WaveOutcome {
                stop: Some(StopReason::Journal {
                    error: e.to_string(),
                }),
                ran: 0,
            };
        }
        self.watcher.wave_started(wave);
        let parallel = header.options.parallel.max(1);
        let timeout = header.options.host_timeout_ms.map(Duration::from_millis);
        let mut queue = todo.into_iter();
        let mut set: JoinSet<HostDone> = JoinSet::new();
        // The jobs' own flag: raised by a budget here or by the operator's flag, and not left
        // raised on the operator's flag, so the same Rollout can resume the run afterwards.
        let jobs = StopFlag::default();
        let mut wave_counts = count_in(wave.hosts.iter(), lines);
        let mut run_counts = count_in(lines.keys(), lines);
        let total_hosts = total(header);
        let mut ran = 0;
        loop {
            while stop.is_none() && !self.stop.is_stopped() && set.len() < parallel {
                let Some(host) = queue.next() else { break };
                ran += 1;
                let ctx = HostContext {
                    run: header.run.clone(),
                    host: host.clone(),
                    wave: wave.index,
                    resume: log.map(|l| l.resume_state(host)).unwrap_or_default(),
                    sink: sink.clone(),
                    stop: jobs.clone(),
                };
                self.watcher.host_started(host, wave.index);
                set.spawn(run_host(
                    self.job.clone(),
                    self.health.clone(),
                    ctx,
                    timeout,
                    journal.clone(),
                ));
            }
            if self.stop.is_stopped() {
                stop.get_or_insert(StopReason::Operator);
                jobs.stop();
            }
            let next = tokio::select! {
                r = set.join_next() => r,
                _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
            };
            let Some(joined) = next else { break };
            let HostDone {
                host,
                outcome,
                ms,
                journal_error,
            } = match joined {
                Ok(r) => r,
                // run_host catches panics, so only a cancelled task lands here.
                Err(_) => continue,
            };
            if let Some(error) = journal_error {
                stop.get_or_insert(StopReason::Journal { error });
                jobs.stop();
            }
            self.watcher.host_finished(&host, wave.index, &outcome);
            if let Some(l) = lines.get_mut(&host) {
                l.verdict = Some(outcome.verdict);
                l.detail = outcome.detail;
                l.ms = ms;
                // Counted as they come: recounting the fleet per host is quadratic.
                wave_counts.add(Some(outcome.verdict));
                run_counts.add(Some(outcome.verdict));
            }
            if stop.is_none() {
                stop = wave_budget_of(wave, &wave_counts)
                    .or_else(|| total_budget_of(&header.options, &run_counts, total_hosts));
                if stop.is_some() {
                    // In-flight jobs end after their current step; no new host starts.
                    jobs.stop();
                }
            }
        }
        WaveOutcome { stop, ran }
    }

    async fn wait_promote(&self, journal: &Journal) -> bool {
        let marker = journal.dir().join(crate::journal::PROMOTE_FILE);
        loop {
            if marker.exists() {
                return true;
            }
            if self.stop.is_stopped() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn sleep_unless_stopped(&self, ms: u64) -> bool {
        let end = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < end {
            if self.stop.is_stopped() {
                return false;
            }
            let left = end.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(200))).await;
        }
        !self.stop.is_stopped()
    }
}

struct WaveOutcome {
    stop: Option<StopReason>,
    /// Hosts started in this invocation.
    ran: usize,
}

fn total(header: &RunHeader) -> usize {
    header.waves.iter().map(|w| w.hosts.len()).sum()
}

fn check_waves(waves: &[Wave]) -> Result<(), RolloutError> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for w in waves {
        for h in &w.hosts {
            if let Some(a) = seen.insert(h, w.index) {
                return Err(RolloutError::DuplicateHost {
                    host: h.clone(),
                    a,
                    b: w.index,
                });
            }
        }
    }
    if seen.is_empty() {
        return Err(RolloutError::NoHosts);
    }
    Ok(())
}

/// What a host task hands back to the wave loop.
struct HostDone {
    host: String,
    outcome: HostOutcome,
    ms: u64,
    /// The verdict could not be journaled: the run must stop.
    journal_error: Option<String>,
}

/// Run one host's job, then its health check, bounded by the host timeout, and journal the
/// verdict from the host's own task (so verdicts of many hosts share fsyncs).
async fn run_host(
    job: Arc<dyn HostJob>,
    health: Option<Arc<dyn HealthCheck>>,
    ctx: HostContext,
    timeout: Option<Duration>,
    journal: Arc<Journal>,
) -> HostDone {
    let t0 = Instant::now();
    let host = ctx.host.clone();
    let work = async {
        use futures::FutureExt as _;
        let mut outcome = match std::panic::AssertUnwindSafe(job.run(ctx.clone()))
            .catch_unwind()
            .await
        {
            Ok(o) => o,
            Err(_) => HostOutcome::new(HostVerdict::Failed, "the host job panicked (a hive bug)"),
        };
        if let (Some(check), true) = (health, outcome.verdict.good()) {
            if let Err(e) = ctx.started(Step::Health) {
                return HostOutcome::new(HostVerdict::Failed, format!("journal: {e}"));
            }
            let result = check.check(host.clone()).await;
            let (ok, word, detail) = match &result {
                Ok(d) => (true, "ok", d.clone()),
                Err(e) => (false, "failed", e.clone()),
            };
            let _ = ctx.finished(Step::Health, ok, word, &detail);
            if let Err(e) = result {
                outcome = HostOutcome::new(HostVerdict::Failed, format!("health check: {e}"));
            }
        }
        outcome
    };
    let outcome = match timeout {
        Some(t) => tokio::time::timeout(t, work).await.unwrap_or_else(|_| {
            HostOutcome::new(
                HostVerdict::Failed,
                format!("no result within {}", format_duration(t)),
            )
        }),
        None => work.await,
    };
    let journal_error = journal
        .host_done(&host, ctx.wave, &outcome)
        .err()
        .map(|e| e.to_string());
    HostDone {
        host,
        outcome,
        ms: t0.elapsed().as_millis() as u64,
        journal_error,
    }
}

fn count_in<'a>(
    hosts: impl Iterator<Item = &'a String>,
    lines: &BTreeMap<String, HostLine>,
) -> Counts {
    let mut c = Counts::default();
    for h in hosts {
        c.add(lines.get(h).and_then(|l| l.verdict));
    }
    c
}

fn over(limit: Option<Limit>, count: usize, of: usize) -> Option<usize> {
    let allowed = limit?.allowed(of);
    (count > allowed).then_some(allowed)
}

fn wave_budget(wave: &Wave, lines: &BTreeMap<String, HostLine>) -> Option<StopReason> {
    wave_budget_of(wave, &count_in(wave.hosts.iter(), lines))
}

fn wave_budget_of(wave: &Wave, c: &Counts) -> Option<StopReason> {
    let n = wave.hosts.len();
    let hit = |kind: &str, count: usize, allowed: usize| {
        Some(if wave.canary {
            StopReason::CanaryGate {
                wave: wave.name.clone(),
                detail: format!("{count} of {n} canaries {kind} (allowed: {allowed})"),
            }
        } else {
            StopReason::WaveBudget {
                wave: wave.name.clone(),
                kind: kind.to_string(),
                count,
                allowed,
            }
        })
    };
    if let Some(allowed) = over(wave.max_failed, c.failed, n) {
        return hit("failed", c.failed, allowed);
    }
    if let Some(allowed) = over(wave.max_unreachable, c.unreachable, n) {
        return hit("unreachable", c.unreachable, allowed);
    }
    None
}

fn total_budget(
    options: &RolloutOptions,
    lines: &BTreeMap<String, HostLine>,
    total: usize,
) -> Option<StopReason> {
    total_budget_of(options, &count_in(lines.keys(), lines), total)
}

fn total_budget_of(options: &RolloutOptions, c: &Counts, total: usize) -> Option<StopReason> {
    if let Some(allowed) = over(options.max_failed_total, c.failed, total) {
        return Some(StopReason::TotalBudget {
            kind: "failed".into(),
            count: c.failed,
            allowed,
        });
    }
    if let Some(allowed) = over(options.max_unreachable_total, c.unreachable, total) {
        return Some(StopReason::TotalBudget {
            kind: "unreachable".into(),
            count: c.unreachable,
            allowed,
        });
    }
    None
}

/// A canary wave passes only when every canary ended, none was interrupted, and at least one
/// is verified good (a wave of skipped canaries proves nothing). Budgets were checked already.
fn canary_gate(wave: &Wave, lines: &BTreeMap<String, HostLine>) -> Option<String> {
    if !wave.canary {
        return None;
    }
    let c = count_in(wave.hosts.iter(), lines);
    if c.not_started + c.interrupted > 0 {
        return Some(format!(
            "{} canaries did not finish",
            c.not_started + c.interrupted
        ));
    }
    if c.patched + c.nothing_to_do == 0 {
        return Some("no canary was verified".into());
    }
    None
}
