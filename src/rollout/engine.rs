//! The engine: waves in order, hosts in flight up to `parallel`, budgets checked as verdicts come
//! in, the canary gate, the pause for promote, soak times, and the journal written throughout.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::task::JoinSet;

use super::budget::{
    canary_gate, count_in, total_budget, total_budget_of, wave_budget, wave_budget_of,
};
use super::job::{HealthCheck, HostJob, JobContext};
use super::journal::{
    Journal, JournalError, PROMOTE_FILE, RunHeader, RunLog, RunState, WaveState, new_run_id,
};
use super::options::RolloutOptions;
use super::plan::{self, PlanError, Wave, format_duration, parse_plan};
use super::stop::{StopFlag, StopReason};
use super::summary::{HostLine, Quiet, RunWatcher, Summary, WaveLine};
use super::verdict::{HostCounts, HostOutcome, HostVerdict};
use crate::events::{EventSink, Fanout, Step, StepOutcome};
use crate::inventory::Inventory;
use crate::time::now_ms;

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
    Ok(super::journal::promote(repo_root, run, &by)?)
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
    /// The hosts' inventory groups (group → hosts) to journal in the run header, for reports.
    pub groups: BTreeMap<String, Vec<String>>,
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
            groups: BTreeMap::new(),
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
            run: new_run_id(&self.repo_root),
            created_ms: now_ms(),
            plan: plan_text.to_string(),
            waves,
            options,
            targets: self.targets.clone(),
            operator: ["USER", "LOGNAME", "USERNAME"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty())),
            groups: self.groups.clone(),
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
            .map(|(h, (verdict, detail))| (h, HostOutcome::new(verdict, detail)))
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
                && !journal.dir().join(PROMOTE_FILE).exists()
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
                if stop.is_none() {
                    WaveState::Passed
                } else {
                    WaveState::Failed
                },
                &gate,
            )?;
            self.watcher.wave_finished(wave, &gate);
            gates[wave.index] = gate;
            let last = wave.index + 1 == header.waves.len();
            if stop.is_none() && !last && wave.soak_ms > 0 && outcome.ran > 0 {
                journal.wave(wave.index, WaveState::Soak, &format!("{} ms", wave.soak_ms))?;
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
                let mut counts = HostCounts::default();
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
        if let Err(e) = journal.wave(
            wave.index,
            WaveState::Started,
            &format!("{} hosts", todo.len()),
        ) {
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
        // Hosts whose task has not handed back its outcome: what a second Ctrl-C cuts off.
        let mut in_flight: BTreeSet<String> = BTreeSet::new();
        let mut aborting = false;
        loop {
            while stop.is_none() && !self.stop.is_stopped() && set.len() < parallel {
                let Some(host) = queue.next() else { break };
                ran += 1;
                in_flight.insert(host.clone());
                let ctx = JobContext {
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
            if self.stop.is_aborted() && !aborting {
                // Stop now: cut the tasks off where they are. Those that already ended still
                // hand back their outcome below; the others are journaled interrupted after.
                aborting = true;
                jobs.abort();
                set.abort_all();
                if !matches!(stop, Some(StopReason::Journal { .. })) {
                    stop = Some(StopReason::Interrupted);
                }
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
            in_flight.remove(&host);
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
        for host in in_flight {
            let outcome = HostOutcome::new(
                HostVerdict::Interrupted,
                "cut off by the operator (second Ctrl-C); resume settles the step it was in",
            );
            if let Err(e) = journal.host_done(&host, wave.index, &outcome) {
                stop = Some(StopReason::Journal {
                    error: e.to_string(),
                });
            }
            self.watcher.host_finished(&host, wave.index, &outcome);
            if let Some(l) = lines.get_mut(&host) {
                l.verdict = Some(outcome.verdict);
                l.detail = outcome.detail;
            }
        }
        WaveOutcome { stop, ran }
    }

    async fn wait_promote(&self, journal: &Journal) -> bool {
        let marker = journal.dir().join(PROMOTE_FILE);
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
    ctx: JobContext,
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
                Ok(d) => (true, StepOutcome::Ok, d.clone()),
                Err(e) => (false, StepOutcome::Failed, e.clone()),
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
