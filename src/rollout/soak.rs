//! The soak: after a wave passed its gate, hive waits before the next one, and keeps asking the
//! wave's patched hosts whether they are still healthy. A patch that breaks a service an hour
//! after the reboot (a leak, a scheduled task, a certificate reloaded) is caught here, while
//! only the wave has it. The first host found unhealthy ends the soak: waiting longer cannot
//! make the gate pass.
//!
//! Each host is polled at its own interval (its groups' `health_interval`) and once more when the
//! soak ends. Healthy polls are not journaled (a long soak would fill the journal with them); the
//! final check and every failure are, as `health` steps of the host.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::job::HealthCheck;
use super::stop::{StopFlag, StopReason};
use super::summary::{HostHealth, RunWatcher, SoakStatus};
use super::verdict::{HostOutcome, HostVerdict};
use crate::events::{Event, EventSink, Step, StepOutcome, StepState};

/// The verdict of a host the soak found unhealthy, with the evidence: the same words whichever
/// orchestrator soaked it, so reports read the same.
pub(crate) fn turned_unhealthy(evidence: &str) -> HostOutcome {
    HostOutcome::new(
        HostVerdict::Unhealthy,
        format!("turned unhealthy during the soak: {evidence}"),
    )
}

/// The failed gate of a wave whose soak found `unhealthy` hosts (host, evidence), if any.
pub(crate) fn health_gate(wave: &str, unhealthy: &[(String, String)]) -> Option<StopReason> {
    (!unhealthy.is_empty()).then(|| StopReason::HealthGate {
        wave: wave.to_string(),
        detail: unhealthy
            .iter()
            .map(|(host, evidence)| format!("{host}: {evidence}"))
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// What the soak found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SoakEnd {
    /// Hosts that turned unhealthy, with the evidence.
    pub unhealthy: Vec<(String, String)>,
    /// The operator stopped the run during the soak.
    pub stopped: bool,
}

/// Who soaks, and where the results go.
pub(crate) struct Soak<'a> {
    pub run: &'a str,
    pub wave: &'a str,
    pub health: Arc<dyn HealthCheck>,
    pub watcher: &'a Arc<dyn RunWatcher>,
    pub sink: &'a Arc<dyn EventSink>,
    pub stop: &'a StopFlag,
}

/// How often the countdown is shown between polls.
const TICK: Duration = Duration::from_millis(200);
const SHOW_EVERY: Duration = Duration::from_secs(1);

impl Soak<'_> {
    /// Soak `hosts` for `length`, polling each at its interval and all of them at the end.
    pub async fn run(&self, hosts: &[String], length: Duration) -> SoakEnd {
        let start = Instant::now();
        let end = start + length;
        let mut next: BTreeMap<String, Instant> = hosts
            .iter()
            .map(|h| (h.clone(), start + self.health.poll_interval(h)))
            .collect();
        let mut status: BTreeMap<String, HostHealth> = hosts
            .iter()
            .map(|h| (h.clone(), HostHealth::default()))
            .collect();
        let mut shown = start - SHOW_EVERY;
        loop {
            if self.stop.is_stopped() {
                return SoakEnd {
                    stopped: true,
                    ..SoakEnd::default()
                };
            }
            let now = Instant::now();
            let last = now >= end;
            let due: Vec<String> = if last {
                hosts.to_vec()
            } else {
                next.iter()
                    .filter(|(_, t)| **t <= now)
                    .map(|(h, _)| h.clone())
                    .collect()
            };
            if !due.is_empty() {
                let found = self.poll(&due, last).await;
                let mut unhealthy = Vec::new();
                for (host, result) in found {
                    let interval = self.health.poll_interval(&host);
                    next.insert(host.clone(), Instant::now() + interval);
                    let s = status.entry(host.clone()).or_default();
                    s.polls += 1;
                    match result {
                        Ok(evidence) => {
                            s.healthy = Some(true);
                            s.evidence = evidence;
                        }
                        Err(evidence) => {
                            s.healthy = Some(false);
                            s.evidence = evidence.clone();
                            unhealthy.push((host, evidence));
                        }
                    }
                }
                self.show(end, &status, true);
                shown = Instant::now();
                if last || !unhealthy.is_empty() {
                    return SoakEnd {
                        unhealthy,
                        stopped: false,
                    };
                }
            } else if last {
                // Nothing to poll (no host of the wave was patched): the soak is a wait.
                return SoakEnd::default();
            } else if now.duration_since(shown) >= SHOW_EVERY {
                self.show(end, &status, false);
                shown = now;
            }
            let wake = next.values().min().copied().unwrap_or(end).min(end);
            tokio::time::sleep(wake.saturating_duration_since(Instant::now()).min(TICK)).await;
        }
    }

    /// Checks `hosts` at once. Failures (and every result of the final poll) go to the journal.
    async fn poll(&self, hosts: &[String], last: bool) -> Vec<(String, Result<String, String>)> {
        let checks = hosts.iter().map(|h| {
            let health = self.health.clone();
            let host = h.clone();
            async move {
                let r = health.check(host.clone()).await;
                (host, r)
            }
        });
        let results = futures::future::join_all(checks).await;
        for (host, r) in &results {
            if !last && r.is_ok() {
                continue;
            }
            let (ok, outcome, detail) = match r {
                Ok(d) => (true, StepOutcome::Ok, format!("soak: {d}")),
                Err(e) => (false, StepOutcome::Failed, format!("soak: {e}")),
            };
            let emit = |state| {
                self.sink
                    .emit(&Event::new(self.run, host, Step::Health, state))
            };
            let _ = emit(StepState::Started);
            let _ = emit(StepState::finished(ok, outcome, &detail, None));
        }
        results
    }

    fn show(&self, end: Instant, hosts: &BTreeMap<String, HostHealth>, polled: bool) {
        self.watcher.soak(&SoakStatus {
            wave: self.wave.to_string(),
            left_ms: end.saturating_duration_since(Instant::now()).as_millis() as u64,
            polled,
            hosts: hosts.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::BoxFuture;
    use crate::rollout::summary::Quiet;
    use std::sync::Mutex;

    /// Hosts that answer healthy until their scripted poll number, then unhealthy.
    struct Script {
        fail_from: BTreeMap<String, u32>,
        polls: Mutex<BTreeMap<String, u32>>,
    }

    impl HealthCheck for Script {
        fn check(&self, host: String) -> BoxFuture<'static, Result<String, String>> {
            let mut polls = self.polls.lock().unwrap();
            let n = polls.entry(host.clone()).or_default();
            *n += 1;
            let bad = self.fail_from.get(&host).is_some_and(|from| *n >= *from);
            Box::pin(async move {
                if bad {
                    Err(format!("{host}: service W3SVC stopped"))
                } else {
                    Ok("fine".to_string())
                }
            })
        }
        fn poll_interval(&self, _host: &str) -> Duration {
            Duration::from_millis(100)
        }
    }

    fn soak_with(script: Arc<Script>, stop: &StopFlag) -> Soak<'static> {
        let watcher: Arc<dyn RunWatcher> = Arc::new(Quiet);
        let sink: Arc<dyn EventSink> = Arc::new(Quiet);
        Soak {
            run: "r1",
            wave: "canary",
            health: script,
            watcher: Box::leak(Box::new(watcher)),
            sink: Box::leak(Box::new(sink)),
            stop: Box::leak(Box::new(stop.clone())),
        }
    }

    fn hosts() -> Vec<String> {
        vec!["web01".into(), "web02".into()]
    }

    #[tokio::test]
    async fn a_host_turning_unhealthy_ends_the_soak_early() {
        let script = Arc::new(Script {
            fail_from: [("web02".to_string(), 3)].into(),
            polls: Mutex::default(),
        });
        let soak = soak_with(script.clone(), &StopFlag::default());
        let t0 = std::time::Instant::now();
        let end = soak.run(&hosts(), Duration::from_secs(30)).await;
        assert_eq!(
            end.unhealthy,
            vec![(
                "web02".to_string(),
                "web02: service W3SVC stopped".to_string()
            )]
        );
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert_eq!(script.polls.lock().unwrap()["web02"], 3);
    }

    #[tokio::test]
    async fn healthy_hosts_are_polled_through_the_soak_and_once_at_its_end() {
        let script = Arc::new(Script {
            fail_from: BTreeMap::new(),
            polls: Mutex::default(),
        });
        let soak = soak_with(script.clone(), &StopFlag::default());
        let end = soak.run(&hosts(), Duration::from_millis(450)).await;
        assert_eq!(end, SoakEnd::default());
        let polls = script.polls.lock().unwrap()["web01"];
        // Every 100 ms for 450 ms, then the final check.
        assert!((4..=6).contains(&polls), "{polls} polls");
    }

    #[tokio::test]
    async fn a_soak_without_hosts_to_poll_ends_with_its_length() {
        let script = Arc::new(Script {
            fail_from: BTreeMap::new(),
            polls: Mutex::default(),
        });
        let soak = soak_with(script, &StopFlag::default());
        let t0 = std::time::Instant::now();
        let end = tokio::time::timeout(
            Duration::from_secs(5),
            soak.run(&[], Duration::from_millis(300)),
        )
        .await
        .expect("the soak ends");
        assert_eq!(end, SoakEnd::default());
        assert!(t0.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn the_operator_can_stop_a_soak() {
        let script = Arc::new(Script {
            fail_from: BTreeMap::new(),
            polls: Mutex::default(),
        });
        let stop = StopFlag::default();
        stop.stop();
        let soak = soak_with(script, &stop);
        let end = soak.run(&hosts(), Duration::from_secs(60)).await;
        assert!(end.stopped);
    }
}
