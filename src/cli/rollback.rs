//! `hive rollback RUN`: take off what run RUN installed, as a new run of its own.

use std::sync::Arc;

use clap::Args;

use hive::inventory::{Host, Inventory};
use hive::journal::{RollbackOf, RunHeader, RunLog};
use hive::rollback::{Job, RollbackJob};
use hive::rollout::engine::Retry;
use hive::rollout::{Rollout, RolloutOptions, plan_waves, stop_on_ctrl_c};

use super::exit::Outcome;
use super::rollout::{WaveArgs, WorkArgs, ended};

type CliResult = Result<Outcome, Box<dyn std::error::Error>>;

/// `hive rollback`.
#[derive(Args)]
pub struct RollbackArgs {
    /// The run whose installs to take off (`hive rollout` printed it; runs/ lists them).
    pub run: String,
    /// Only these patches (KB or Q numbers, comma-separated or repeated); each must be one the
    /// run installed. `--hosts` likewise narrows the run's hosts.
    #[arg(long = "patch", value_delimiter = ',', value_name = "KB")]
    pub patches: Vec<String>,
    #[command(flatten)]
    pub work: WorkArgs,
    #[command(flatten)]
    pub waves: WaveArgs,
}

pub fn rollback(args: RollbackArgs) -> CliResult {
    let repo_root = &args.work.repo.repo;
    let of = hive::rollback::plan(repo_root, &args.run, &args.work.select.hosts, &args.patches)?;
    let header = RunLog::load(repo_root, &args.run)?.header;
    let job = job(&args.work, &header, &of)?;
    let options = RolloutOptions {
        parallel: args.work.parallel,
        max_failed_per_wave: args.waves.max_failed,
        max_failed_total: args.waves.max_failed_total,
        ..RolloutOptions::default()
    };
    let inv = Inventory {
        hosts: job.inputs.hosts.values().map(|(h, _)| h.clone()).collect(),
        policy: Default::default(),
    };
    let waves = plan_waves(&args.waves.plan, &inv, None, &options)?;
    let mut rollout = Rollout::new(repo_root, Arc::new(Job(Arc::new(job))));
    rollout.watcher = Arc::new(hive::progress::Progress::stdout());
    rollout.rollback = Some(of);
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(async {
        stop_on_ctrl_c(rollout.stop.clone());
        rollout.start(&args.waves.plan, waves, options).await
    })?;
    Ok(ended(&summary))
}

/// `hive resume RUN` of a rollback run (`header` is its header, `of` what it takes off): the
/// same job over the hosts it was started on, continued from its journal.
pub fn resume(header: &RunHeader, of: &RollbackOf, work: &WorkArgs, retry: Retry) -> CliResult {
    let repo_root = &work.repo.repo;
    let job = job(work, &RunLog::load(repo_root, &of.run)?.header, of)?;
    let mut rollout = Rollout::new(repo_root, Arc::new(Job(Arc::new(job))));
    rollout.watcher = Arc::new(hive::progress::Progress::stdout());
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(async {
        stop_on_ctrl_c(rollout.stop.clone());
        rollout.resume_retrying(&header.run, retry).await
    })?;
    Ok(ended(&summary))
}

/// The rollback job for `of`, on the hosts as the undone run reached them (`undone` is its
/// header): journaled when a source found them, else the inventory. A host hive cannot reach
/// any more is an error naming it, before anything starts.
fn job(
    work: &WorkArgs,
    undone: &RunHeader,
    of: &RollbackOf,
) -> Result<RollbackJob, Box<dyn std::error::Error>> {
    let repo_root = &work.repo.repo;
    let hosts = if undone.targets.is_empty() {
        work.select.select_targets(Some(repo_root))?.hosts
    } else {
        undone
            .targets
            .iter()
            .map(|t| t.host())
            .collect::<Result<Vec<Host>, _>>()?
    };
    let missing: Vec<&String> = of
        .remove
        .keys()
        .filter(|h| !hosts.iter().any(|x| x.name.eq_ignore_ascii_case(h)))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "run `{}` installed on {} which {} not in {}: hive cannot reach {} to take the patches off",
            of.run,
            join(&missing),
            if missing.len() == 1 { "is" } else { "are" },
            work.select
                .inventory
                .as_ref()
                .map_or_else(|| "the machines folder".to_string(), |p| p.display().to_string()),
            if missing.len() == 1 { "it" } else { "them" },
        )
        .into());
    }
    let hosts: Vec<Host> = hosts
        .into_iter()
        .filter(|h| of.remove.contains_key(&h.name))
        .collect();
    let inv = Inventory {
        hosts,
        policy: Default::default(),
    };
    let (inputs, _) = super::rollout::job(work, inv)?;
    Ok(RollbackJob {
        inputs,
        remove: of.remove.clone(),
    })
}

fn join(names: &[&String]) -> String {
    names
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
