//! The engine: waves in order, hosts in flight up to `parallel`, budgets checked as verdicts come
//! in, the canary gate, the pause for promote, soak times, and the journal written throughout.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::task::JoinSet;

use super::budget::{
    canary_gate, count_in, total_budget, total_budget_of, wave_budget, wave_budget_of,
};
use super::change::{WaveHooks, WindowWatch};
use super::job::{HealthCheck, HostJob, JobContext};
use super::journal::{
    Journal, JournalError, PROMOTE_FILE, RunHeader, RunLog, RunState, WaveState, new_run_id,
};
use super::options::RolloutOptions;
use super::plan::{self, PlanError, Wave, format_duration, parse_plan};
use super::preflight::{PreflightCheck, SetAside, set_aside_detail};
use super::quarantine::{Ledger, release_markers};
use super::stop::{StopFlag, StopReason};
use super::summary::{HostLine, Quiet, RunWatcher, Summary, WaveLine};
use super::verdict::{HostCounts, HostOutcome, HostVerdict};
use crate::events::{EventSink, Fanout};
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
    /// Checks each host before its wave; hosts it sets aside end `skipped` with the reason. The
    /// [`HealthCheck`] also runs then, on hosts nothing was installed on yet.
    pub preflight: Option<Arc<dyn PreflightCheck>>,
    pub watcher: Arc<dyn RunWatcher>,
    /// Raise to stop the run (Ctrl-C): no new host starts, jobs stop after their current step.
    pub stop: StopFlag,
    /// While paused after the canaries, wait for the promote marker (polling its folder) instead
    /// of returning a paused summary.
    pub wait_for_promote: bool,
    /// Resolved hosts to journal in the run header (see `RunHeader::targets`).
    pub targets: Vec<crate::targets::TargetRecord>,
    /// Maintenance windows: a host starts only inside one its estimate fits in.
    pub gate: Option<Arc<crate::window::Gate>>,
    /// When every host left is outside its window, wait for the next opening instead of pausing.
    pub wait_for_window: bool,
    /// Commands before and after each wave.
    pub wave_hooks: Option<Arc<dyn WaveHooks>>,
    /// Set for a rollback run: journaled in the header (see `RunHeader::rollback`).
    pub rollback: Option<super::journal::RollbackOf>,
    /// The hosts' inventory groups (group → hosts) to journal in the run header, for reports.
    pub groups: BTreeMap<String, Vec<String>>,
}

impl Rollout {
    pub fn new(repo_root: &Path, job: Arc<dyn HostJob>) -> Rollout {
        Rollout {
            repo_root: repo_root.to_path_buf(),
            job,
            health: None,
            preflight: None,
            watcher: Arc::new(Quiet),
            stop: StopFlag::default(),
            wait_for_promote: false,
            targets: Vec::new(),
            gate: None,
            wait_for_window: false,
            wave_hooks: None,
            rollback: None,
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
            rollback: self.rollback.clone(),
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
        self.resume_retrying(
            run,
            Retry {
                failed: retry_failed,
                skipped: false,
            },
        )
        .await
    }

    /// [`Rollout::resume`], choosing which ended hosts to take up again. A host in a reboot loop
    /// is never retried: rebooting it again is what the loop is.
    pub async fn resume_retrying(&self, run: &str, retry: Retry) -> Result<Summary, RolloutError> {
        let log = RunLog::load(&self.repo_root, run)?;
        let journal = Arc::new(Journal::reopen(&self.repo_root, run)?);
        let prior: BTreeMap<String, HostOutcome> = log
            .verdicts()
            .into_iter()
            .filter(|(_, (v, _))| {
                !(retry.failed && matches!(v, HostVerdict::Failed | HostVerdict::Unreachable)
                    || retry.skipped && *v == HostVerdict::Skipped)
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
        let ledger = Arc::new(log.map(Ledger::restore).unwrap_or_default());
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
                        withheld: p.is_some_and(|o| o.verdict.against_patches())
                            && ledger.absorbs(h),
                    },
                );
            }
        }
        self.watcher.run_started(header, prior.len());
        let mut sinks = vec![
            journal.clone() as Arc<dyn EventSink>,
            self.watcher.clone() as Arc<dyn EventSink>,
            ledger.clone() as Arc<dyn EventSink>,
        ];
        if let Some(gate) = &self.gate {
            // Estimates use the copy rate this run measures.
            sinks.push(gate.estimator.rate.clone());
        }
        let sink: Arc<dyn EventSink> = Arc::new(Fanout(sinks));
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
            apply_releases(&journal, &ledger)?;
            let outcome = self
                .run_wave(
                    wave,
                    header,
                    RunShared {
                        journal: &journal,
                        sink: &sink,
                        ledger: &ledger,
                    },
                    &mut lines,
                    log,
                )
                .await;
            stop = outcome.stop;
            if stop.is_none() {
                stop = total_budget(&header.options, &lines, total_hosts);
            }
            let last = wave.index + 1 == header.waves.len();
            if stop.is_none()
                && !last
                && wave.soak_ms > 0
                && outcome.ran > 0
                && canary_gate(wave, &lines).is_none()
            {
                journal.wave(wave.index, WaveState::Soak, &format!("{} ms", wave.soak_ms))?;
                stop = self.soak(wave, header, &journal, &sink, &mut lines).await;
            }
            let window_pause = matches!(stop, Some(StopReason::Window { .. }));
            let gate = match &stop {
                Some(why) if window_pause => format!("paused: {why}"),
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
            let withheld_here: Vec<String> = ledger
                .withheld()
                .into_iter()
                .filter(|w| w.host.is_none() && w.evidence.iter().any(|e| e.wave == wave.index))
                .map(|w| w.patch)
                .collect();
            let gate = if withheld_here.is_empty() {
                gate
            } else {
                format!("{gate}; withheld: {}", withheld_here.join(", "))
            };
            // A wave paused by its windows has no gate yet: resume runs it on.
            if !window_pause {
                journal.wave(
                    wave.index,
                    if stop.is_none() {
                        WaveState::Passed
                    } else {
                        WaveState::Failed
                    },
                    &gate,
                )?;
            }
            self.watcher.wave_finished(wave, &gate);
            gates[wave.index] = gate;
        }
        let state = match &stop {
            None => RunState::Finished,
            Some(StopReason::Paused { .. } | StopReason::Window { .. }) => RunState::Paused,
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
            withheld: ledger.withheld(),
        };
        self.watcher.run_finished(&summary);
        Ok(summary)
    }

    async fn run_wave(
        &self,
        wave: &Wave,
        header: &RunHeader,
        run: RunShared<'_>,
        lines: &mut BTreeMap<String, HostLine>,
        log: Option<&RunLog>,
    ) -> WaveOutcome {
        let RunShared {
            journal,
            sink,
            ledger,
        } = run;
        let todo: Vec<&String> = wave
            .hosts
            .iter()
            .filter(|h| lines.get(*h).is_none_or(|l| l.verdict.is_none()))
            .collect();
        let mut stop = wave_budget(wave, lines);
        if todo.is_empty() || stop.is_some() {
            return WaveOutcome { stop, ran: 0 };
        }
        let context = |host: &String| JobContext {
            run: header.run.clone(),
            host: host.clone(),
            wave: wave.index,
            resume: log.map(|l| l.resume_state(host)).unwrap_or_default(),
            sink: sink.clone(),
            stop: StopFlag::default(),
            withheld: ledger.withheld_for(host),
        };
        // Pre-flight: hosts not fit to be patched are set aside before any of the wave starts.
        let set_aside = self.preflight_wave(&todo, header, &context).await;
        for (host, reason) in &set_aside {
            let outcome = HostOutcome::new(HostVerdict::Skipped, set_aside_detail(reason));
            if let Err(e) = journal.host_done(host, wave.index, &outcome) {
                return WaveOutcome {
                    stop: Some(StopReason::Journal {
                        error: e.to_string(),
                    }),
                    ran: 0,
                };
            }
            self.watcher.host_finished(host, wave.index, &outcome);
            if let Some(l) = lines.get_mut(host) {
                l.verdict = Some(outcome.verdict);
                l.detail = outcome.detail;
            }
        }
        let todo: Vec<&String> = todo
            .into_iter()
            .filter(|h| !set_aside.contains_key(*h))
            .collect();
        if todo.is_empty() {
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
        if let Some(hooks) = &self.wave_hooks
            && let Err(e) = self
                .wave_hook(hooks.before(&header.run, wave), journal, wave)
                .await
        {
            return WaveOutcome {
                stop: Some(e),
                ran: 0,
            };
        }
        let parallel = header.options.parallel.max(1);
        let timeout = header.options.host_timeout_ms.map(Duration::from_millis);
        let mut queue: VecDeque<String> = todo.into_iter().cloned().collect();
        let gate = self.gate.as_deref();
        let mut windows = WindowWatch::default();
        // Each host's own flag, under the wave's: its window closing stops it alone.
        let mut flags: BTreeMap<String, StopFlag> = BTreeMap::new();
        // Hosts a window closed on, queued again to wait for the next one: what they did is in
        // the journal now, not in the log this invocation started from.
        let mut reread: BTreeSet<String> = BTreeSet::new();
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
            let mut held = Vec::new();
            while stop.is_none() && !self.stop.is_stopped() && set.len() < parallel {
                let Some(host) = queue.pop_front() else { break };
                if !windows.admit(gate, &host) {
                    held.push(host);
                    continue;
                }
                let host = &host;
                let resume = if reread.remove(host) {
                    match RunLog::load(&self.repo_root, &header.run) {
                        Ok(l) => l.resume_state(host),
                        Err(e) => {
                            stop = Some(StopReason::Journal {
                                error: e.to_string(),
                            });
                            break;
                        }
                    }
                } else {
                    log.map(|l| l.resume_state(host)).unwrap_or_default()
                };
                ran += 1;
                in_flight.insert(host.clone());
                let ctx = JobContext {
                    resume,
                    stop: flags
                        .entry(host.clone())
                        .or_insert_with(|| jobs.child())
                        .clone(),
                    ..context(host)
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
            for h in held.into_iter().rev() {
                queue.push_front(h);
            }
            windows.close_ended(gate, &in_flight, &flags);
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
            let Some(joined) = next else {
                // Nothing in flight: done, unless hosts wait for their windows.
                if queue.is_empty() || stop.is_some() || self.stop.is_stopped() {
                    break;
                }
                match self.wait_for_windows(&windows, journal, header).await {
                    Ok(()) => continue,
                    Err(why) => {
                        stop = Some(why);
                        break;
                    }
                }
            };
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
            if outcome.verdict == HostVerdict::Interrupted
                && self.wait_for_window
                && stop.is_none()
                && !self.stop.is_stopped()
                && windows.closed.remove(&host).is_some()
            {
                flags.remove(&host);
                reread.insert(host.clone());
                queue.push_front(host.clone());
            } else if outcome.verdict != HostVerdict::Interrupted {
                // Its window closed during its last step, and the host finished anyway: nothing is
                // left to do on it, so it is no reason to pause the run.
                windows.closed.remove(&host);
            }
            if let Some(error) = journal_error {
                stop.get_or_insert(StopReason::Journal { error });
                jobs.stop();
            }
            self.watcher.host_finished(&host, wave.index, &outcome);
            let judged = ledger.judge(&host, wave, &outcome);
            for w in &judged.new {
                if let Err(e) = journal.quarantine(w) {
                    stop.get_or_insert(StopReason::Journal {
                        error: e.to_string(),
                    });
                    jobs.stop();
                }
            }
            if let Some(l) = lines.get_mut(&host) {
                l.verdict = Some(outcome.verdict);
                l.detail = outcome.detail;
                l.ms = ms;
                l.withheld = judged.absorbed;
                // Counted as they come: recounting the fleet per host is quadratic.
                wave_counts.add_judged(Some(outcome.verdict), judged.absorbed);
                run_counts.add_judged(Some(outcome.verdict), judged.absorbed);
            }
            if !judged.new.is_empty() {
                // Hosts of this wave that failed earlier with a patch quarantined only now are
                // withheld from the budgets as well.
                for h in &wave.hosts {
                    if let Some(l) = lines.get_mut(h)
                        && !l.withheld
                        && l.verdict.is_some_and(HostVerdict::against_patches)
                        && ledger.absorbs(h)
                    {
                        l.withheld = true;
                    }
                }
                wave_counts = count_in(wave.hosts.iter(), lines);
                run_counts = count_in(lines.keys(), lines);
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
        if stop.is_none() && !windows.closed.is_empty() {
            stop = windows.pause(&header.run);
        }
        if let (Some(hooks), true) = (&self.wave_hooks, ran > 0) {
            let gate = match &stop {
                Some(why) => format!("failed: {why}"),
                None => "passed".to_string(),
            };
            let after = hooks.after(&header.run, wave, &gate);
            if let Err(e) = self.wave_hook(after, journal, wave).await {
                stop.get_or_insert(e);
            }
        }
        WaveOutcome { stop, ran }
    }

    /// Run a wave hook and journal its end; its failure stops the run.
    async fn wave_hook(
        &self,
        hook: crate::remote::BoxFuture<'static, Result<String, String>>,
        journal: &Journal,
        wave: &Wave,
    ) -> Result<(), StopReason> {
        let result = hook.await;
        if matches!(&result, Ok(d) if d.is_empty()) {
            // No hook for this wave's hosts.
            return Ok(());
        }
        let detail = match &result {
            Ok(d) | Err(d) => d.clone(),
        };
        let state = if result.is_ok() {
            WaveState::Hook
        } else {
            WaveState::Failed
        };
        journal
            .wave(wave.index, state, &detail)
            .map_err(|e| StopReason::Journal {
                error: e.to_string(),
            })?;
        result.map(|_| ()).map_err(|detail| StopReason::Hook {
            wave: wave.name.clone(),
            detail,
        })
    }

    /// Every host left is outside its window: wait for the soonest opening (`--wait-for-window`),
    /// or pause the run with why.
    async fn wait_for_windows(
        &self,
        windows: &WindowWatch,
        journal: &Journal,
        header: &RunHeader,
    ) -> Result<(), StopReason> {
        let paused = || {
            windows.pause(&header.run).unwrap_or(StopReason::Window {
                run: header.run.clone(),
                detail: "hosts are outside their windows".into(),
            })
        };
        let (Some(gate), true) = (self.gate.as_deref(), self.wait_for_window) else {
            return Err(paused());
        };
        let Some((until, what)) = windows.soonest() else {
            return Err(paused());
        };
        let what = format!("for a maintenance window: {what}");
        journal
            .run_state(RunState::Running, &format!("waiting {what}"))
            .map_err(|e| StopReason::Journal {
                error: e.to_string(),
            })?;
        self.watcher.waiting(&what);
        let opened = gate.sleep_until(until);
        tokio::pin!(opened);
        loop {
            tokio::select! {
                _ = &mut opened => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if self.stop.is_stopped() {
                        return Err(StopReason::Operator);
                    }
                }
            }
        }
    }

    /// Run the pre-flight check (then the health check) on the hosts of a wave that nothing was
    /// installed on yet, up to `parallel` at once; the hosts to set aside, with the reason.
    async fn preflight_wave(
        &self,
        todo: &[&String],
        header: &RunHeader,
        context: &(dyn Fn(&String) -> JobContext + Sync),
    ) -> BTreeMap<String, SetAside> {
        let mut out = BTreeMap::new();
        if self.preflight.is_none() && self.health.is_none() {
            return out;
        }
        let parallel = header.options.parallel.max(1);
        let mut queue = todo
            .iter()
            .map(|h| context(h))
            // A host this run already installed on is past pre-flight: what it shows now is
            // ours to settle.
            .filter(|ctx| ctx.resume.install_started.is_empty());
        let mut set: JoinSet<(String, Result<String, SetAside>)> = JoinSet::new();
        loop {
            while set.len() < parallel && !self.stop.is_stopped() {
                let Some(ctx) = queue.next() else { break };
                let preflight = self.preflight.clone();
                let health = self.health.clone();
                set.spawn(async move {
                    let host = ctx.host.clone();
                    if let Some(p) = preflight
                        && let Err(reason) = p.check(ctx).await
                    {
                        return (host, Err(reason));
                    }
                    if let Some(h) = health
                        && let Err(evidence) = h.check(host.clone()).await
                    {
                        return (host, Err(SetAside::Unhealthy { evidence }));
                    }
                    (host, Ok(String::new()))
                });
            }
            match set.join_next().await {
                Some(Ok((host, Err(reason)))) => {
                    out.insert(host, reason);
                }
                Some(_) => {}
                None => break,
            }
        }
        out
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

    /// The wave's soak (see [`super::soak`]); a host that turns unhealthy gets that verdict and
    /// fails the wave's gate.
    async fn soak(
        &self,
        wave: &Wave,
        header: &RunHeader,
        journal: &Journal,
        sink: &Arc<dyn EventSink>,
        lines: &mut BTreeMap<String, HostLine>,
    ) -> Option<StopReason> {
        let length = Duration::from_millis(wave.soak_ms);
        let Some(health) = self.health.clone() else {
            return (!self.sleep_unless_stopped(length).await).then_some(StopReason::Operator);
        };
        let patched: Vec<String> = wave
            .hosts
            .iter()
            .filter(|h| lines.get(*h).and_then(|l| l.verdict) == Some(HostVerdict::Patched))
            .cloned()
            .collect();
        let soak = super::soak::Soak {
            run: &header.run,
            wave: &wave.name,
            health,
            watcher: &self.watcher,
            sink,
            stop: &self.stop,
        };
        let end = soak.run(&patched, length).await;
        if end.stopped {
            return Some(StopReason::Operator);
        }
        for (host, evidence) in &end.unhealthy {
            let outcome = super::soak::turned_unhealthy(evidence);
            if let Err(e) = journal.host_done(host, wave.index, &outcome) {
                return Some(StopReason::Journal {
                    error: e.to_string(),
                });
            }
            self.watcher.host_finished(host, wave.index, &outcome);
            if let Some(l) = lines.get_mut(host) {
                l.verdict = Some(outcome.verdict);
                l.detail = outcome.detail;
            }
        }
        super::soak::health_gate(&wave.name, &end.unhealthy)
    }

    async fn sleep_unless_stopped(&self, length: Duration) -> bool {
        let end = Instant::now() + length;
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

/// What every wave of a run writes to: the journal, the event sinks, the patch ledger.
#[derive(Clone, Copy)]
struct RunShared<'a> {
    journal: &'a Arc<Journal>,
    sink: &'a Arc<dyn EventSink>,
    ledger: &'a Arc<Ledger>,
}

/// Which ended hosts `hive resume` takes up again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retry {
    /// Hosts that failed or were unreachable (`--retry-failed`).
    pub failed: bool,
    /// Hosts pre-flight set aside, or skipped otherwise (`--retry-skipped`).
    pub skipped: bool,
}

/// Journal and act on the release markers `hive promote RUN --patch KB` left since the last look.
fn apply_releases(journal: &Journal, ledger: &Ledger) -> Result<(), RolloutError> {
    let done = ledger.released();
    for r in release_markers(journal.dir()) {
        if done.iter().any(|d| d.patch == r.patch) {
            continue;
        }
        ledger.release(&r);
        journal.release(&r)?;
    }
    Ok(())
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

/// Run one host's job, then (when it patched the host) its health checks, bounded by the host timeout, and journal the
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
        super::job::job_then_health(job, health, &ctx)
            .await
            .unwrap_or_else(|e| HostOutcome::new(HostVerdict::Failed, format!("journal: {e}")))
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
