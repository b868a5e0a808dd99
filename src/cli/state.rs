//! `--state postgres://...` on `hive rollout` and `hive report`, and `hive worker`: the command
//! line of the shared run state ([`hive::state::postgres`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use hive::journal::{RunHeader, RunLog, new_run_id};
use hive::rollout::{RolloutOptions, plan_waves, stop_on_ctrl_c};
use hive::state::postgres::coordinator::Coordinator;
use hive::state::postgres::worker::Worker;
use hive::state::postgres::{Db, StateError, StateUrl, run, unsupported};

use super::args::at_least_one;
use super::exit::Outcome;
use super::rollout::{RolloutArgs, WorkArgs};

type CliResult = Result<Outcome, Box<dyn std::error::Error>>;

/// Where the run's state lives, when not in the repository's NDJSON journal.
#[derive(Args, Clone, Default)]
pub struct StateArg {
    /// Keep the run's state in PostgreSQL (postgres://USER@HOST:PORT/DB[?sslmode=...]) so several
    /// orchestrators (`hive worker`, one or more per site) take part in one rollout. TLS is
    /// verified unless the URL says sslmode=disable; a password goes in PGPASSWORD or HIVE_STATE.
    #[arg(long = "state", env = "HIVE_STATE", value_name = "URL")]
    pub url: Option<String>,
    /// The run to create or take up again in the state database (default: a new id).
    #[arg(id = "state_run", long = "run", requires = "url", value_name = "RUN")]
    pub run: Option<String>,
}

impl StateArg {
    fn parsed(&self) -> Result<Option<StateUrl>, StateError> {
        self.url.as_deref().map(parse_url).transpose()
    }
}

fn parse_url(url: &str) -> Result<StateUrl, StateError> {
    let from_env = std::env::var("HIVE_STATE").is_ok_and(|v| v == url);
    StateUrl::parse(url, from_env)
}

/// `hive worker`.
#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub work: WorkArgs,
    /// The state database (postgres://...), as `hive rollout --state` was given.
    #[arg(long = "state", env = "HIVE_STATE", value_name = "URL")]
    pub state: String,
    /// The site whose hosts this worker patches (the inventory's `site`; hosts without one are
    /// the site `default`).
    #[arg(long, value_name = "NAME")]
    pub site: String,
    /// The run to work on (default: the newest unfinished run, waiting for one to start).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    /// Seconds a claim on a host lasts without a heartbeat: how long a dead worker's hosts wait
    /// before another worker of the site takes them over.
    #[arg(long, default_value_t = 30, value_parser = at_least_one, value_name = "SECONDS")]
    pub lease: usize,
    /// This worker's name in the database (default: this machine's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// `hive rollout --state ...`: the coordinator.
pub fn coordinate(args: &RolloutArgs) -> Option<CliResult> {
    let url = match args.state.parsed() {
        Ok(Some(u)) => u,
        Ok(None) => return None,
        Err(e) => return Some(Err(e.into())),
    };
    Some(coordinate_at(args, url))
}

fn coordinate_at(args: &RolloutArgs, url: StateUrl) -> CliResult {
    // Refused before anything is resolved or connected: flags and the plan alone.
    unsupported::check_run(
        &hive::rollout::parse_plan(&args.waves.plan)?,
        args.pause_after_canary,
        args.work.wait_for_window,
    )?;
    // Hosts and waves first: resolving sources starts a runtime of its own.
    let selected = args
        .work
        .select
        .select_targets(Some(&args.work.repo.repo))?;
    let inv = hive::inventory::Inventory {
        hosts: selected.hosts,
        policy: selected.policy,
    };
    unsupported::check_inventory(&inv.policy, &inv.hosts)?;
    let options = RolloutOptions {
        parallel: args.work.parallel,
        max_failed_per_wave: args.waves.max_failed,
        max_failed_total: args.waves.max_failed_total,
        ..RolloutOptions::default()
    };
    let waves = plan_waves(&args.waves.plan, &inv, None, &options)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let db = Db::open(url).await?;
        let coordinator = Coordinator {
            db: db.clone(),
            watcher: Arc::new(hive::progress::Progress::stdout()),
            poll: Duration::from_millis(250),
            stop: Default::default(),
        };
        stop_on_ctrl_c(coordinator.stop.clone());
        if let Some(existing) = &args.state.run
            && run::status(&db, existing).await.is_ok()
        {
            let summary = coordinator.resume(existing).await?;
            return Ok(Outcome::of_run(&summary));
        }
        let header = RunHeader {
            run: args
                .state
                .run
                .clone()
                .unwrap_or_else(|| new_run_id(&args.work.repo.repo)),
            created_ms: hive::time::now_ms(),
            plan: args.waves.plan.clone(),
            waves,
            options,
            targets: selected.records.unwrap_or_default(),
            operator: std::env::var("USER").ok(),
            groups: super::rollout::group_members(&inv.hosts),
            rollback: None,
        };
        hive::journal::validate_run_id(&header.run)?;
        let sites: BTreeMap<String, String> = inv
            .hosts
            .iter()
            .map(|h| (h.name.clone(), site_of(h)))
            .collect();
        let summary = coordinator.start(&header, &sites).await?;
        Ok(Outcome::of_run(&summary))
    })
}

fn site_of(h: &hive::inventory::Host) -> String {
    h.site.clone().unwrap_or_else(|| "default".into())
}

/// `hive worker`.
pub fn worker(args: WorkerArgs) -> CliResult {
    let url = parse_url(&args.state)?;
    unsupported::check_flags(args.work.wait_for_window)?;
    let selected = args
        .work
        .select
        .select_targets(Some(&args.work.repo.repo))?;
    let hosts: Vec<_> = selected
        .hosts
        .into_iter()
        .filter(|h| site_of(h) == args.site)
        .collect();
    if hosts.is_empty() {
        return Err(format!("no host of the inventory is in site `{}`", args.site).into());
    }
    let inv = hive::inventory::Inventory {
        hosts,
        policy: selected.policy,
    };
    // Before the job is built: windows would have their hosts' zones read over the network.
    unsupported::check_inventory(&inv.policy, &inv.hosts)?;
    let (job, inv) = super::rollout::job(&args.work, inv)?;
    let rollout = super::change::rollout(
        job,
        &inv,
        false,
        args.work.install_estimate,
        super::rollout::preflight_settings(&args.work.preflight),
    )?;
    let name = args.name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "worker".into());
        format!("{host}-{}", std::process::id())
    });
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(async {
        let db = Db::open(url).await?;
        let worker = Worker {
            db,
            site: args.site.clone(),
            name,
            parallel: args.work.parallel,
            lease: Duration::from_secs(args.lease as u64),
            job: rollout.job.clone(),
            health: rollout.health.clone(),
            preflight: rollout.preflight.clone(),
            stop: rollout.stop.clone(),
            host_timeout: None,
        };
        stop_on_ctrl_c(worker.stop.clone());
        worker.run(args.run.as_deref()).await
    })?;
    let c = &summary.counts;
    println!(
        "worker site {} run {}: {} patched, {} nothing to do, {} failed, {} unreachable, {} skipped, \
         {} turned unhealthy in a soak, {} taken over, {} lost to another worker, {} database round trips",
        args.site,
        summary.run,
        c.patched,
        c.nothing_to_do,
        c.failed + c.unhealthy + c.reboot_loop,
        c.unreachable,
        c.skipped,
        summary.soak_unhealthy,
        summary.taken_over,
        summary.lost,
        summary.round_trips
    );
    Ok(Outcome::Done)
}

/// A run's log from the state database, for `hive report --state`.
pub fn load(state: &StateArg, run: &str) -> Result<Option<RunLog>, Box<dyn std::error::Error>> {
    let Some(url) = state.parsed()? else {
        return Ok(None);
    };
    let runtime = tokio::runtime::Runtime::new()?;
    Ok(Some(runtime.block_on(async {
        let db = Db::open(url).await?;
        run::load(&db, run).await
    })?))
}
