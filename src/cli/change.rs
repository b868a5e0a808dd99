//! Change control for the remediation commands: the inventory's maintenance windows and hooks
//! turned into the rollout's gate, wave hooks and hooked job, and the dry run's window listing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use hive::deploy::RebootPolicy;
use hive::deploy::plan::{ApprovedInstaller, HostPlan};
use hive::hooks::{ConnectorTarget, HookedJob, Hooks, WaveHookRunner};
use hive::inventory::Inventory;
use hive::pipeline::{DeployJob, Job};
use hive::remote::BoxFuture;
use hive::rollout::{HostJob, HostOutcome, HostVerdict, JobContext, Rollout};
use hive::scan::zone::read_zone;
use hive::window::estimate::install_estimate;
use hive::window::zones::{HostZone, zone_of};
use hive::window::{Estimator, Gate, HostWindows, HostWork, RateMeter, SystemClock};

/// The copy rate assumed until this run measured one: 5 MB/s, a WAN link to a branch office.
const ASSUMED_BYTES_PER_SEC: u64 = 5_000_000;

/// A host's work if it needed every approved installer: the estimate before a scan says which.
fn worst_case(approved: &[ApprovedInstaller], reboot: RebootPolicy, each: Option<u64>) -> HostWork {
    HostWork {
        bytes: approved.iter().map(|a| a.bytes).sum(),
        install: approved.iter().map(|a| estimate(a, each)).sum(),
        reboot: reboot != RebootPolicy::Never && !approved.is_empty(),
    }
}

/// One installer's expected time: `each` seconds when the operator said, else by its kind.
fn estimate(a: &ApprovedInstaller, each: Option<u64>) -> Duration {
    each.map(Duration::from_secs)
        .unwrap_or_else(|| install_estimate(a.recipe.kind))
}

/// A host's work as its plan says.
pub fn planned(plan: &HostPlan, reboot: RebootPolicy, each: Option<u64>) -> HostWork {
    HostWork {
        bytes: plan.bytes,
        install: plan
            .installs
            .iter()
            .map(|i| estimate(&i.installer, each))
            .sum(),
        reboot: reboot != RebootPolicy::Never
            && !plan.installs.is_empty()
            && plan.expected_reboot != hive::catalog::model::Restart::No,
    }
}

/// The window gate of `inv`, or `None` when no host has a window.
pub fn gate(
    inv: &Inventory,
    job: &DeployJob,
    per_host: BTreeMap<String, HostWork>,
    each: Option<u64>,
) -> Result<Option<Arc<Gate>>, Box<dyn std::error::Error>> {
    let zones = host_zones(inv, job)?;
    let windows = HostWindows::resolve(&inv.policy, &inv.hosts, jiff::Timestamp::now(), &zones)?;
    if !windows.any() {
        return Ok(None);
    }
    let estimator = Estimator {
        default_work: worst_case(&job.approved, job.options.reboot, each),
        per_host,
        // Down, port and logon each get this long; a reboot that fits in one is the usual case.
        reboot_budget: job.options.down_timeout.max(Duration::from_secs(60)),
        rate: Arc::new(RateMeter::new(ASSUMED_BYTES_PER_SEC)),
    };
    Ok(Some(Arc::new(Gate {
        clock: Arc::new(SystemClock),
        windows,
        estimator,
    })))
}

/// Each host whose windows are in its own zone, with that zone read from its registry (all at
/// once, before the run: the gate decides before a host's job connects), or why it cannot be.
fn host_zones(
    inv: &Inventory,
    job: &DeployJob,
) -> Result<BTreeMap<String, Result<HostZone, String>>, Box<dyn std::error::Error>> {
    let names = HostWindows::need_host_zone(&inv.policy, &inv.hosts);
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timeout = job.options.command_timeout;
    let read = |name: String| async move {
        let zone = match job.hosts.get(&name) {
            None => Err(format!("{name}: not in the inventory")),
            Some((_, Err(e))) => Err(format!("{name}: cannot read its time zone: {e}")),
            Some((host, Ok(secret))) => match job.connector.open(host, secret) {
                Err(e) => Err(format!("{name}: cannot read its time zone: {e}")),
                Ok(mut target) => read_zone(target.as_mut(), timeout)
                    .await
                    .and_then(|id| zone_of(&name, &id)),
            },
        };
        (name, zone)
    };
    // As many hosts at once as a scan reads: a large fleet is not opened all at the same time.
    let reads = futures::stream::iter(names.into_iter().map(read))
        .buffer_unordered(ZONE_READS_AT_ONCE)
        .collect::<BTreeMap<_, _>>();
    Ok(runtime.block_on(reads))
}

/// Hosts whose zone is read at the same time before a run.
const ZONE_READS_AT_ONCE: usize = 32;

/// Ends a host whose windows could not be placed in its own zone before anything touches it:
/// `skipped`, with the reason naming the host and the zone.
struct ZoneRefusal {
    inner: Arc<dyn HostJob>,
    gate: Arc<Gate>,
}

impl HostJob for ZoneRefusal {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, HostOutcome> {
        match self.gate.windows.refused(&ctx.host) {
            Some(why) => {
                let outcome = HostOutcome::new(HostVerdict::Skipped, why);
                Box::pin(async move { outcome })
            }
            None => self.inner.run(ctx),
        }
    }
}

/// The engine over a deploy job with the inventory's windows and hooks.
pub fn rollout(
    job: DeployJob,
    inv: &Inventory,
    wait_for_window: bool,
    install_estimate: Option<u64>,
    preflight: Option<hive::rollout::preflight::PreflightSettings>,
) -> Result<Rollout, Box<dyn std::error::Error>> {
    let hooks = Hooks::resolve(&inv.policy, &inv.hosts)?;
    let gate = gate(inv, &job, BTreeMap::new(), install_estimate)?;
    let repo = job.repo.clone();
    let remote = Arc::new(ConnectorTarget {
        hosts: job.hosts.clone(),
        connector: job.connector.clone(),
    });
    let job = Arc::new(job);
    let inner: Arc<dyn HostJob> = Arc::new(Job(job.clone()));
    let host_job: Arc<dyn HostJob> = if hooks.any_host_hooks() {
        Arc::new(Arc::new(HookedJob {
            inner,
            hooks: hooks.clone(),
            hosts: inv
                .hosts
                .iter()
                .map(|h| (h.name.clone(), h.clone()))
                .collect(),
            remote: Arc::new(remote),
            repo: Some(repo.clone()),
        }))
    } else {
        inner
    };
    let host_job: Arc<dyn HostJob> = match &gate {
        Some(gate) => Arc::new(ZoneRefusal {
            inner: host_job,
            gate: gate.clone(),
        }),
        None => host_job,
    };
    let mut rollout = Rollout::new(repo.root(), host_job);
    rollout.watcher = Arc::new(hive::progress::Progress::stdout());
    rollout.gate = gate;
    rollout.wait_for_window = wait_for_window;
    if hooks.any_wave_hooks() {
        rollout.wave_hooks = Some(Arc::new(WaveHookRunner { hooks }));
    }
    rollout.health = job.health.clone().map(|h| {
        Arc::new(hive::rollout::InventoryHealthCheck(h)) as Arc<dyn hive::rollout::HealthCheck>
    });
    if let Some(settings) = preflight {
        rollout.preflight = Some(Arc::new(hive::host_preflight::HostPreflight {
            job,
            settings,
        }));
    }
    Ok(rollout)
}
