//! `hive rollout --state postgres://...`: the coordinator. It creates the run (plan, waves, every
//! host with its site), opens one wave at a time, and judges each wave's budget and gate over the
//! verdicts of every site, as the single orchestrator does over its own.
//!
//! A wave with a soak is soaked over the database once it passed its gate (see [`super::soak`]):
//! each site's workers poll their own hosts; the coordinator judges what they found.
//!
//! It keeps nothing the database does not: killed and started again (`hive rollout --state ...
//! --run RUN`), it reads which waves passed from the run's records and goes on from the first
//! wave without a gate. Workers keep working on the open waves meanwhile.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::types::Type;

use super::lease::verdict_of;
use super::run::{self, RunRecords};
use super::soak::{self, Progress};
use super::{Db, StateError};
use crate::journal::{Record, RunHeader, RunLog, RunState, WaveState};
use crate::rollout::budget::{canary_gate, total_budget_of, wave_budget_of};
use crate::rollout::plan::Wave;
use crate::rollout::soak::health_gate;
use crate::rollout::stop::{StopFlag, StopReason};
use crate::rollout::summary::{HostHealth, HostLine, RunWatcher, SoakStatus, Summary, WaveLine};
use crate::rollout::verdict::{HostCounts, HostOutcome};
use crate::time::now_ms;

/// The coordinator of one run.
pub struct Coordinator {
    pub db: Arc<Db>,
    pub watcher: Arc<dyn RunWatcher>,
    /// How often the verdicts are counted while a wave runs.
    pub poll: Duration,
    pub stop: StopFlag,
}

impl Coordinator {
    /// Create the run and drive it to its end.
    pub async fn start(
        &self,
        header: &RunHeader,
        sites: &BTreeMap<String, String>,
    ) -> Result<Summary, StateError> {
        run::create(&self.db, header, sites).await?;
        let records = self.records(&header.run);
        records
            .add(&Record::Run {
                state: RunState::Running,
                reason: "started".into(),
                at_ms: now_ms(),
            })
            .await?;
        self.drive(header, &records, &[]).await
    }

    /// Take up a run whose coordinator stopped (or was killed).
    pub async fn resume(&self, run: &str) -> Result<Summary, StateError> {
        let log = run::load(&self.db, run).await?;
        let records = self.records(run);
        let status = run::status(&self.db, run).await?;
        if status.over() {
            return self.summary(&log.header, Instant::now(), None).await;
        }
        records
            .add(&Record::Run {
                state: RunState::Running,
                reason: "coordinator restarted".into(),
                at_ms: now_ms(),
            })
            .await?;
        self.drive(&log.header, &records, &log.waves).await
    }

    fn records(&self, run: &str) -> RunRecords {
        RunRecords::new(
            self.db.clone(),
            run,
            format!("coordinator-{}-{}", std::process::id(), now_ms()),
        )
    }

    async fn drive(
        &self,
        header: &RunHeader,
        records: &RunRecords,
        done: &[(usize, WaveState, String)],
    ) -> Result<Summary, StateError> {
        let t0 = Instant::now();
        self.watcher.run_started(header, 0);
        let total: usize = header.waves.iter().map(|w| w.hosts.len()).sum();
        let mut stop: Option<StopReason> = None;
        for wave in &header.waves {
            let gated = done
                .iter()
                .filter(|(w, _, _)| *w == wave.index)
                .map(|(_, s, _)| *s)
                .find(|s| matches!(s, WaveState::Passed | WaveState::Failed));
            match gated {
                Some(WaveState::Passed) => continue,
                Some(_) => {
                    stop = Some(StopReason::Journal {
                        error: format!("wave {} failed its gate before the restart", wave.name),
                    });
                    break;
                }
                None => {}
            }
            if !done
                .iter()
                .any(|(w, s, _)| *w == wave.index && *s == WaveState::Started)
            {
                records
                    .add(&Record::Wave {
                        wave: wave.index,
                        state: WaveState::Started,
                        detail: format!("{} hosts", wave.hosts.len()),
                        at_ms: now_ms(),
                    })
                    .await?;
            }
            run::set_status(&self.db, &header.run, RunState::Running, wave.index as i32).await?;
            self.watcher.wave_started(wave);
            // A soak begins only after the wave's budgets and canary gate passed: a restarted
            // coordinator takes it up, not judging again verdicts the soak itself changed.
            let soaking = done
                .iter()
                .any(|(w, s, _)| *w == wave.index && *s == WaveState::Soak);
            if !soaking {
                stop = self.watch_wave(header, wave, total).await?;
                let lines = self.lines(&header.run, Some(wave.index)).await?;
                if stop.is_none()
                    && let Some(detail) = canary_gate(wave, &lines)
                {
                    stop = Some(StopReason::CanaryGate {
                        wave: wave.name.clone(),
                        detail,
                    });
                }
            }
            let last = wave.index + 1 == header.waves.len();
            if stop.is_none() && !last && wave.soak_ms > 0 {
                stop = self.soak(header, wave, records, soaking).await?;
            }
            let (state, gate) = match &stop {
                None => (WaveState::Passed, "passed".to_string()),
                Some(why) => (WaveState::Failed, format!("failed: {why}")),
            };
            records
                .add(&Record::Wave {
                    wave: wave.index,
                    state,
                    detail: gate.clone(),
                    at_ms: now_ms(),
                })
                .await?;
            self.watcher.wave_finished(wave, &gate);
            if stop.is_some() {
                break;
            }
        }
        let state = if stop.is_some() {
            RunState::Stopped
        } else {
            RunState::Finished
        };
        let reason = stop.as_ref().map(|s| s.to_string()).unwrap_or_default();
        run::set_status(&self.db, &header.run, state, -1).await?;
        records
            .add(&Record::Run {
                state,
                reason,
                at_ms: now_ms(),
            })
            .await?;
        let summary = self.summary(header, t0, stop).await?;
        self.watcher.run_finished(&summary);
        Ok(summary)
    }

    /// Count the verdicts until every host of the wave has one or a budget is exceeded.
    async fn watch_wave(
        &self,
        header: &RunHeader,
        wave: &Wave,
        total: usize,
    ) -> Result<Option<StopReason>, StateError> {
        loop {
            let counts = self.counts(&header.run).await?;
            let of_wave = counts.get(&wave.index).cloned().unwrap_or_default();
            let mut all = HostCounts::default();
            for c in counts.values() {
                add_counts(&mut all, c);
            }
            if let Some(why) = wave_budget_of(wave, &of_wave)
                .or_else(|| total_budget_of(&header.options, &all, total))
            {
                return Ok(Some(why));
            }
            if of_wave.not_started == 0 {
                return Ok(None);
            }
            if self.stop.is_stopped() {
                return Ok(Some(StopReason::Operator));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// The wave's soak (see [`super::soak`]): started (or, after a restart, taken up with its
    /// deadline), watched until it is settled, then closed and judged from what the workers
    /// reported. A host that turned unhealthy fails the wave's gate.
    async fn soak(
        &self,
        header: &RunHeader,
        wave: &Wave,
        records: &RunRecords,
        recorded: bool,
    ) -> Result<Option<StopReason>, StateError> {
        let run = &header.run;
        soak::begin(
            &self.db,
            run,
            wave.index,
            Duration::from_millis(wave.soak_ms),
        )
        .await?;
        if !recorded {
            records
                .add(&Record::Wave {
                    wave: wave.index,
                    state: WaveState::Soak,
                    detail: format!("{} ms", wave.soak_ms),
                    at_ms: now_ms(),
                })
                .await?;
        }
        let mut shown: Option<(Instant, BTreeMap<String, HostHealth>)> = None;
        loop {
            let p = soak::progress(&self.db, run, wave.index).await?;
            if p.ended || p.settled() {
                break;
            }
            self.show_soak(wave, &p, &mut shown);
            if self.stop.is_stopped() {
                return Ok(Some(StopReason::Operator));
            }
            tokio::time::sleep(self.poll.min(p.left.max(Duration::from_millis(50)))).await;
        }
        soak::close(&self.db, run, wave.index).await?;
        // Counted after the close: every report the workers made is in, none can follow.
        let p = soak::progress(&self.db, run, wave.index).await?;
        self.show_soak(
            wave,
            &Progress {
                left: Duration::ZERO,
                ..p.clone()
            },
            &mut None,
        );
        Ok(health_gate(&wave.name, &p.unhealthy))
    }

    /// The soak's countdown for the watcher: a polled status when a host's health changed, the
    /// clock otherwise, at most once a second.
    fn show_soak(
        &self,
        wave: &Wave,
        p: &Progress,
        shown: &mut Option<(Instant, BTreeMap<String, HostHealth>)>,
    ) {
        let polled = shown.as_ref().is_none_or(|(_, hosts)| *hosts != p.hosts);
        if !polled
            && shown
                .as_ref()
                .is_some_and(|(at, _)| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.watcher.soak(&SoakStatus {
            wave: wave.name.clone(),
            left_ms: p.left.as_millis() as u64,
            polled,
            hosts: p.hosts.clone(),
        });
        *shown = Some((Instant::now(), p.hosts.clone()));
    }

    /// Verdicts per wave, in one round trip.
    async fn counts(&self, run: &str) -> Result<BTreeMap<usize, HostCounts>, StateError> {
        let rows = self
            .db
            .query(
                "SELECT wave, verdict, count(*) FROM hive.hosts WHERE run = $1 GROUP BY wave, verdict",
                &[(&run, Type::TEXT)],
            )
            .await?;
        let mut out: BTreeMap<usize, HostCounts> = BTreeMap::new();
        for r in &rows {
            let wave = r.get::<_, i32>(0).max(0) as usize;
            let verdict: Option<String> = r.get(1);
            let n: i64 = r.get(2);
            let c = out.entry(wave).or_default();
            let v = verdict.as_deref().and_then(verdict_of);
            for _ in 0..n {
                c.add(v);
            }
        }
        Ok(out)
    }

    /// Host lines (verdict and wave) of one wave, or of the whole run.
    async fn lines(
        &self,
        run: &str,
        wave: Option<usize>,
    ) -> Result<BTreeMap<String, HostLine>, StateError> {
        let wave = wave.map_or(-1, |w| w as i32);
        let rows = self
            .db
            .query(
                "SELECT host, wave, verdict FROM hive.hosts WHERE run = $1 AND ($2 < 0 OR wave = $2)",
                &[(&run, Type::TEXT), (&wave, Type::INT4)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let host: String = r.get(0);
                let verdict: Option<String> = r.get(2);
                (
                    host.clone(),
                    HostLine {
                        host,
                        wave: r.get::<_, i32>(1).max(0) as usize,
                        verdict: verdict.as_deref().and_then(verdict_of),
                        detail: String::new(),
                        ms: 0,
                        withheld: false,
                    },
                )
            })
            .collect())
    }

    /// The run's summary from its records: the same the single orchestrator prints.
    async fn summary(
        &self,
        header: &RunHeader,
        t0: Instant,
        stop: Option<StopReason>,
    ) -> Result<Summary, StateError> {
        let log = run::load(&self.db, &header.run).await?;
        Ok(summary_of(&log, t0.elapsed().as_millis() as u64, stop))
    }
}

/// A summary of a run from its log: verdicts per host, counts and gates per wave.
pub fn summary_of(log: &RunLog, elapsed_ms: u64, stop: Option<StopReason>) -> Summary {
    let verdicts = log.verdicts();
    let mut hosts = Vec::new();
    let mut waves = Vec::new();
    for w in &log.header.waves {
        let mut counts = HostCounts::default();
        for h in &w.hosts {
            let v = verdicts.get(h);
            counts.add(v.map(|(v, _)| *v));
            let outcome = v.map(|(v, d)| HostOutcome::new(*v, d.clone()));
            hosts.push(HostLine {
                host: h.clone(),
                wave: w.index,
                verdict: outcome.as_ref().map(|o| o.verdict),
                detail: outcome.map(|o| o.detail).unwrap_or_default(),
                ms: 0,
                withheld: false,
            });
        }
        let gate = log
            .waves
            .iter()
            .rev()
            .find(|(i, s, _)| *i == w.index && matches!(s, WaveState::Passed | WaveState::Failed))
            .map(|(_, _, d)| d.clone())
            .unwrap_or_else(|| "not reached".into());
        waves.push(WaveLine {
            name: w.name.clone(),
            counts,
            gate,
        });
    }
    let state = log.state.as_ref().map_or(RunState::Running, |(s, _)| *s);
    Summary {
        run: log.header.run.clone(),
        state,
        stop,
        elapsed_ms,
        waves,
        hosts,
        withheld: log.withheld.clone(),
    }
}

fn add_counts(to: &mut HostCounts, c: &HostCounts) {
    to.patched += c.patched;
    to.nothing_to_do += c.nothing_to_do;
    to.failed += c.failed;
    to.unhealthy += c.unhealthy;
    to.unreachable += c.unreachable;
    to.skipped += c.skipped;
    to.interrupted += c.interrupted;
    to.reboot_loop += c.reboot_loop;
    to.withheld += c.withheld;
    to.not_started += c.not_started;
}
