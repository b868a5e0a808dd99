//! The inventory's health checks as the rollout runs them: each host's checks resolved from its
//! groups (`[group.NAME] health`, else `[group_defaults]`), the start types recorded before its
//! patches, and a [`HealthCheck`] the engine calls after the host is patched and during the soak.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::job::{HealthCheck, JobContext};
use crate::events::{Step, StepOutcome};
use crate::health::{self, Baseline, HealthReport};
use crate::inventory::{GroupPolicy, HealthCheckSpec, Host, Secret};
use crate::remote::{BoxFuture, Connector, Target};

/// Soak poll interval when no group sets `health_interval`.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(60);

struct HostChecks {
    host: Host,
    secret: Result<Secret, String>,
    checks: Vec<HealthCheckSpec>,
    interval: Duration,
}

/// Every host's checks, ready to run.
pub struct InventoryHealth {
    hosts: BTreeMap<String, HostChecks>,
    connector: Arc<dyn Connector>,
    baselines: Mutex<BTreeMap<String, Baseline>>,
}

impl InventoryHealth {
    /// The checks of `hosts` under `policy`; `None` when no host has any (nothing to run, and no
    /// soak polls to make).
    pub fn new(
        policy: &GroupPolicy,
        hosts: &[(Host, Result<Secret, String>)],
        connector: Arc<dyn Connector>,
    ) -> Option<InventoryHealth> {
        let mut out = BTreeMap::new();
        for (host, secret) in hosts {
            let checks = policy
                .layers(host)
                .find_map(|s| s.health.as_ref())
                .cloned()
                .unwrap_or_default();
            let interval = policy
                .layers(host)
                .find_map(|s| s.health_interval)
                .map(|s| Duration::from_secs(s.max(1)))
                .unwrap_or(DEFAULT_HEALTH_INTERVAL);
            out.insert(
                host.name.clone(),
                HostChecks {
                    host: host.clone(),
                    secret: secret.clone(),
                    checks,
                    interval,
                },
            );
        }
        out.values()
            .any(|h| !h.checks.is_empty())
            .then(|| InventoryHealth {
                hosts: out,
                connector,
                baselines: Mutex::default(),
            })
    }

    /// The checks declared for `host` (empty when none, or not in the inventory).
    pub fn checks_for(&self, host: &str) -> &[HealthCheckSpec] {
        self.hosts.get(host).map_or(&[], |h| &h.checks)
    }

    /// Records what the checks compare against later (service start types), before anything is
    /// installed on `host`, and returns it for the journal. Call it once per host and run, right
    /// before its first install; `None` when the host has no checks.
    pub async fn record_baseline(&self, host: &str, target: &mut dyn Target) -> Option<Baseline> {
        let checks = self.checks_for(host);
        if checks.is_empty() {
            return None;
        }
        let baseline = health::record_baseline(checks, target).await;
        self.lock().insert(host.to_string(), baseline.clone());
        Some(baseline)
    }

    /// Takes the baseline a resumed run read from the journal: the start types as they were
    /// before the host's first install, not as the host has them after it.
    pub fn restore_baseline(&self, host: &str, baseline: Baseline) {
        self.lock().insert(host.to_string(), baseline);
    }

    /// The baseline for a host about to be worked on: read from the host and journaled (as a
    /// [`Step::Baseline`]) when nothing was installed on it yet in this run, else the one the
    /// journal kept. A resumed host whose journal has none (written by an older hive) keeps its
    /// start types unrecorded rather than recorded after the patch.
    pub async fn baseline_before_install(
        &self,
        ctx: &JobContext,
        target: &mut dyn Target,
    ) -> Result<(), String> {
        if !ctx.resume.install_started.is_empty() {
            if let Some(start_types) = &ctx.resume.start_types {
                let baseline = Baseline {
                    start_types: start_types.clone(),
                };
                self.restore_baseline(&ctx.host, baseline);
            }
            return Ok(());
        }
        let Some(baseline) = self.record_baseline(&ctx.host, target).await else {
            return Ok(());
        };
        let step = Step::Baseline {
            start_types: baseline.start_types.clone(),
        };
        let detail: Vec<String> = baseline
            .start_types
            .iter()
            .map(|(service, start)| format!("{service}: {start}"))
            .collect();
        ctx.started(step.clone())?;
        ctx.finished(step, true, StepOutcome::Ok, &detail.join(", "))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Baseline>> {
        self.baselines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `host`'s checks over a connection of its own.
    pub async fn report(&self, host: &str) -> Result<HealthReport, String> {
        let h = self
            .hosts
            .get(host)
            .ok_or_else(|| format!("{host} is not in the inventory"))?;
        let secret = h.secret.clone()?;
        let mut target = self
            .connector
            .open(&h.host, &secret)
            .map_err(|e| format!("cannot open {host}: {e}"))?;
        let baseline = self.lock().get(host).cloned().unwrap_or_default();
        let report = health::run_checks(&h.host, &h.checks, target.as_mut(), &baseline).await;
        target.disconnect();
        Ok(report)
    }
}

/// The engine's view: `Ok(summary)` when every check passed, `Err(evidence)` otherwise.
pub struct InventoryHealthCheck(pub Arc<InventoryHealth>);

impl HealthCheck for InventoryHealthCheck {
    fn check(&self, host: String) -> BoxFuture<'static, Result<String, String>> {
        let inner = self.0.clone();
        Box::pin(async move {
            if inner.checks_for(&host).is_empty() {
                return Ok("no health checks declared".to_string());
            }
            let report = inner.report(&host).await?;
            if report.healthy() {
                Ok(report.summary())
            } else {
                Err(report.summary())
            }
        })
    }

    fn poll_interval(&self, host: &str) -> Duration {
        self.0
            .hosts
            .get(host)
            .map_or(DEFAULT_HEALTH_INTERVAL, |h| h.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeTarget, Reply};
    use crate::inventory::Inventory;
    use crate::remote::RemoteError;
    use crate::rollout::journal::{Journal, ResumeState, RunLog};

    /// Opens the one scripted host for every name.
    struct OneHost(FakeTarget);

    impl Connector for OneHost {
        fn open(&self, _h: &Host, _s: &Secret) -> Result<Box<dyn Target>, RemoteError> {
            Ok(Box::new(self.0.clone()))
        }
    }

    const INV: &str = r#"
[defaults]
credential = "env:P"
[group_defaults]
health = [{ service = "W3SVC", retries = 0 }]
[group.db]
health = []
health_interval = 5
[[host]]
name = "web01"
address = "127.0.0.1"
[[host]]
name = "db01"
address = "127.0.0.1"
groups = ["db"]
"#;

    #[tokio::test]
    async fn groups_override_the_defaults_and_the_start_type_is_compared() {
        let inv = Inventory::parse(INV, std::path::Path::new("inv.toml")).unwrap();
        let fake = FakeTarget::new("web01", "b")
            .on("sc query", [Reply::exit(0, "STATE : 4 RUNNING\r\n")])
            .on(
                "sc qc",
                [
                    Reply::exit(0, "START_TYPE : 2 AUTO_START\r\n"),
                    Reply::exit(0, "START_TYPE : 4 DISABLED\r\n"),
                ],
            );
        let hosts: Vec<_> = inv
            .hosts
            .iter()
            .map(|h| (h.clone(), Ok(Secret::new("x"))))
            .collect();
        let health = Arc::new(
            InventoryHealth::new(&inv.policy, &hosts, Arc::new(OneHost(fake.clone()))).unwrap(),
        );
        assert!(health.checks_for("db01").is_empty());
        let check = InventoryHealthCheck(health.clone());
        assert_eq!(check.poll_interval("db01"), Duration::from_secs(5));
        assert_eq!(check.poll_interval("web01"), DEFAULT_HEALTH_INTERVAL);
        assert_eq!(
            check.check("db01".into()).await,
            Ok("no health checks declared".into())
        );
        health.record_baseline("web01", &mut fake.clone()).await;
        let err = check.check("web01".into()).await.unwrap_err();
        assert_eq!(
            err,
            "service W3SVC: running, but its start type changed from 2 AUTO_START to 4 DISABLED"
        );
    }

    fn header(run: &str) -> crate::rollout::journal::RunHeader {
        crate::rollout::journal::RunHeader {
            run: run.into(),
            created_ms: 0,
            plan: "100%".into(),
            waves: vec![crate::rollout::plan::Wave {
                index: 0,
                name: "100%".into(),
                canary: false,
                hosts: vec!["web01".into()],
                max_failed: None,
                max_unreachable: None,
                soak_ms: 0,
                quarantine_after: None,
            }],
            options: crate::rollout::RolloutOptions::default(),
            targets: vec![],
            operator: None,
            groups: Default::default(),
            rollback: None,
        }
    }

    fn context(journal: Arc<Journal>, resume: ResumeState) -> JobContext {
        JobContext {
            run: journal.run().to_string(),
            host: "web01".into(),
            wave: 0,
            resume,
            sink: journal,
            stop: Default::default(),
            withheld: Default::default(),
        }
    }

    /// hive killed between a host's install and its health check: the resumed run compares the
    /// start type with the one journaled before the install, not with the one after it.
    #[tokio::test]
    async fn a_resumed_run_compares_with_the_journaled_start_type() {
        let inv = Inventory::parse(INV, std::path::Path::new("inv.toml")).unwrap();
        let hosts: Vec<_> = inv
            .hosts
            .iter()
            .map(|h| (h.clone(), Ok(Secret::new("x"))))
            .collect();
        let repo = tempfile::tempdir().unwrap();
        let install = Step::Install {
            patch: "KB1".into(),
            index: 1,
            total: 1,
        };

        // The first process: start type read and journaled, the install started, then killed.
        let before = FakeTarget::new("web01", "b")
            .on("sc qc", [Reply::exit(0, "START_TYPE : 2 AUTO_START\r\n")]);
        let first =
            InventoryHealth::new(&inv.policy, &hosts, Arc::new(OneHost(before.clone()))).unwrap();
        let journal = Arc::new(Journal::create(repo.path(), &header("r1")).unwrap());
        let ctx = context(journal.clone(), ResumeState::default());
        first
            .baseline_before_install(&ctx, &mut before.clone())
            .await
            .unwrap();
        ctx.started(install.clone()).unwrap();
        drop((ctx, journal, first));

        // The patch set the service to Disabled; the resumed process reads the journal.
        let after = FakeTarget::new("web01", "b")
            .on("sc query", [Reply::exit(0, "STATE : 4 RUNNING\r\n")])
            .on("sc qc", [Reply::exit(0, "START_TYPE : 4 DISABLED\r\n")]);
        let log = RunLog::load(repo.path(), "r1").unwrap();
        let resume = log.resume_state("web01");
        assert!(resume.install_started.contains("KB1"));
        let journal = Arc::new(Journal::reopen(repo.path(), "r1").unwrap());
        let resumed = Arc::new(
            InventoryHealth::new(&inv.policy, &hosts, Arc::new(OneHost(after.clone()))).unwrap(),
        );
        resumed
            .baseline_before_install(&context(journal, resume), &mut after.clone())
            .await
            .unwrap();
        let err = InventoryHealthCheck(resumed)
            .check("web01".into())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            "service W3SVC: running, but its start type changed from 2 AUTO_START to 4 DISABLED"
        );
        // Read once, before the install: the resumed run did not read it again.
        assert_eq!(after.commands_with("sc qc").len(), 1);
    }

    #[test]
    fn an_inventory_without_checks_has_no_health_gate() {
        let inv = Inventory::parse(
            "[[host]]\nname=\"a\"\naddress=\"127.0.0.1\"\ncredential=\"env:P\"\n",
            std::path::Path::new("inv.toml"),
        )
        .unwrap();
        let hosts = vec![(inv.hosts[0].clone(), Ok(Secret::new("x")))];
        let fake = FakeTarget::new("a", "b");
        assert!(InventoryHealth::new(&inv.policy, &hosts, Arc::new(OneHost(fake))).is_none());
    }
}
