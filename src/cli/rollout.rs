//! `hive deploy`, `hive rollout`, `hive resume`, `hive promote` and `hive report`: the remediation
//! half of the job, from the command line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use hive::deploy::plan::{load_approved, plan, render as render_plan};
use hive::deploy::{DeployOptions, RebootPolicy};
use hive::inventory::Inventory;
use hive::journal::RunLog;
use hive::pipeline::{DeployJob, Job};
use hive::remote::{NetworkConnector, Timeouts};
use hive::repo::Repository;
use hive::rollout::{Limit, Rollout, RolloutOptions, plan_waves};
use hive::scan::run::{FileSource, PreparedProbe, ScanOptions, scan_fleet};

use super::catalog::CacheArg;
use super::scan::{HostSelection, load_catalog, secrets_for};

type CliResult = Result<bool, Box<dyn std::error::Error>>;

/// What every remediation command needs.
#[derive(Args)]
pub struct WorkArgs {
    #[command(flatten)]
    pub select: HostSelection,
    /// The HIVE repository (hotfixes/ holds the approved installers; runs/ the journals).
    #[arg(long, short = 'r', env = "HIVE_REPO")]
    pub repo: PathBuf,
    /// A catalog instead of the cached one.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    #[command(flatten)]
    pub cache: CacheArg,
    /// Hosts in flight at once, across the whole run.
    #[arg(long, default_value_t = 16)]
    pub parallel: usize,
    /// When to reboot: never, if-required, always.
    #[arg(long, value_enum, default_value_t = Reboot::IfRequired)]
    pub reboot: Reboot,
    /// Seconds one installer may run before it is killed.
    #[arg(long, default_value_t = 1800)]
    pub install_timeout: u64,
    /// How file versions are read.
    #[arg(long, value_enum, default_value_t = FileSource::Probe)]
    pub files: FileSource,
    /// Seconds `shutdown /r /t N` gives logged-on users before the reboot.
    #[arg(long, default_value_t = 5)]
    pub shutdown_delay: u32,
    /// Seconds a rebooting host may take in each phase (go down, open its port, log on again).
    #[arg(long, default_value_t = 600)]
    pub reboot_timeout: u64,
    /// Milliseconds between two looks at a rebooting host (or at an installer still running).
    #[arg(long, default_value_t = 5000)]
    pub poll_ms: u64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Reboot {
    Never,
    IfRequired,
    Always,
}

/// `hive deploy`: one wave over the selected hosts, or `--dry-run` for the plan only.
#[derive(Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub work: WorkArgs,
    /// Print the plan (host × patch, reboots, bytes) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `hive rollout`.
#[derive(Args)]
pub struct RolloutArgs {
    #[command(flatten)]
    pub work: WorkArgs,
    /// Stages, e.g. "canary(group=canary, soak=5m) -> 10% -> 50% -> 100%".
    #[arg(long, default_value = "canary(group=canary) -> 10% -> 50% -> 100%")]
    pub plan: String,
    /// Failed hosts allowed in one wave before the run stops (a number or N%).
    #[arg(long)]
    pub max_failed: Option<String>,
    /// Failed hosts allowed in the whole run.
    #[arg(long)]
    pub max_failed_total: Option<String>,
    /// Stop after the canaries until `hive promote RUN`.
    #[arg(long)]
    pub pause_after_canary: bool,
}

fn limit(text: &Option<String>) -> Result<Option<Limit>, Box<dyn std::error::Error>> {
    let Some(t) = text else { return Ok(None) };
    let t = t.trim();
    if let Some(p) = t.strip_suffix('%') {
        let n: u8 = p
            .trim()
            .parse()
            .map_err(|_| format!("`{t}` is not a percentage"))?;
        Ok(Some(Limit::Percent(n)))
    } else {
        let n: u32 = t.parse().map_err(|_| format!("`{t}` is not a count"))?;
        Ok(Some(Limit::Count(n)))
    }
}

fn job(work: &WorkArgs) -> Result<(DeployJob, Inventory), Box<dyn std::error::Error>> {
    let hosts = work.select.select()?;
    let inv = Inventory { hosts };
    let catalog = Arc::new(load_catalog(work.catalog.as_deref(), &work.cache)?);
    let repo = Repository::open(&work.repo)?;
    let approved = load_approved(&repo)?;
    if approved.is_empty() {
        return Err(format!(
            "nothing is approved in {}: approve a bulletin first (`hive triage approve`)",
            repo.root().join("hotfixes").display()
        )
        .into());
    }
    let secrets = secrets_for(&inv.hosts);
    let options = DeployOptions {
        reboot: match work.reboot {
            Reboot::Never => RebootPolicy::Never,
            Reboot::IfRequired => RebootPolicy::IfRequired,
            Reboot::Always => RebootPolicy::Always,
        },
        install_timeout: Duration::from_secs(work.install_timeout.max(1)),
        shutdown_delay_s: work.shutdown_delay,
        down_timeout: Duration::from_secs(work.reboot_timeout.max(1)),
        port_timeout: Duration::from_secs(work.reboot_timeout.max(1)),
        login_timeout: Duration::from_secs(work.reboot_timeout.max(1)),
        poll_interval: Duration::from_millis(work.poll_ms.max(50)),
        ..DeployOptions::default()
    };
    let job = DeployJob {
        hosts: secrets
            .into_iter()
            .map(|(h, s)| (h.name.clone(), (h, s)))
            .collect::<BTreeMap<_, _>>(),
        probe: Arc::new(PreparedProbe::new(&catalog)),
        catalog,
        approved: Arc::new(approved),
        repo,
        options,
        files: work.files,
        connector: Arc::new(NetworkConnector::new(Timeouts::default())),
    };
    Ok((job, inv))
}

fn run_rollout(
    job: DeployJob,
    inv: &Inventory,
    plan_text: &str,
    options: RolloutOptions,
) -> CliResult {
    let repo_root = job.repo.root().to_path_buf();
    let waves = plan_waves(plan_text, inv, None, &options)?;
    let progress = Arc::new(hive::progress::Progress::stdout());
    let mut rollout = Rollout::new(&repo_root, Arc::new(Job(Arc::new(job))));
    rollout.watcher = progress;
    let runtime = tokio::runtime::Runtime::new()?;
    let stop = rollout.stop.clone();
    let summary = runtime.block_on(async {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nstopping: no new host starts; hosts in flight finish their step");
                stop.stop();
            }
        });
        rollout.start(plan_text, waves, options).await
    })?;
    println!("{}", hive::progress::render_summary(&summary));
    Ok(summary.stop.is_none())
}

pub fn deploy(args: DeployArgs) -> CliResult {
    let (job, inv) = job(&args.work)?;
    if args.dry_run {
        let runtime = tokio::runtime::Runtime::new()?;
        let hosts = secrets_for(&inv.hosts);
        let options = ScanOptions {
            parallel: args.work.parallel,
            files: args.work.files,
            ..ScanOptions::default()
        };
        let scans = runtime.block_on(scan_fleet(&hosts, job.catalog.clone(), options, &()));
        let scanned: Vec<(String, Vec<_>)> = scans
            .iter()
            .filter_map(|s| {
                s.result
                    .as_ref()
                    .ok()
                    .map(|r| (s.host.clone(), r.verdicts.clone()))
            })
            .collect();
        let p = plan("dry-run", &scanned, &job.catalog, &job.approved);
        print!("{}", render_plan(&p));
        for s in scans.iter().filter(|s| s.result.is_err()) {
            if let Err(e) = &s.result {
                println!("{}: not scanned ({e})", s.host);
            }
        }
        return Ok(scans.iter().all(|s| s.result.is_ok()));
    }
    let options = RolloutOptions {
        parallel: args.work.parallel,
        ..RolloutOptions::default()
    };
    run_rollout(job, &inv, "100%", options)
}

pub fn rollout(args: RolloutArgs) -> CliResult {
    let (job, inv) = job(&args.work)?;
    let options = RolloutOptions {
        parallel: args.work.parallel,
        max_failed_per_wave: limit(&args.max_failed)?,
        max_failed_total: limit(&args.max_failed_total)?,
        pause_after_canary: args.pause_after_canary,
        ..RolloutOptions::default()
    };
    run_rollout(job, &inv, &args.plan, options)
}

/// `hive resume RUN`: continue a run after Ctrl-C, a crash or kill -9.
pub fn resume(run: &str, work: WorkArgs, retry_failed: bool) -> CliResult {
    let (job, _) = job(&work)?;
    let repo_root = job.repo.root().to_path_buf();
    let progress = Arc::new(hive::progress::Progress::stdout());
    let mut rollout = Rollout::new(&repo_root, Arc::new(Job(Arc::new(job))));
    rollout.watcher = progress;
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(rollout.resume(run, retry_failed))?;
    println!("{}", hive::progress::render_summary(&summary));
    Ok(summary.stop.is_none())
}

/// `hive promote RUN`: release a run paused after its canaries.
pub fn promote(repo: &std::path::Path, run: &str) -> CliResult {
    let marker = hive::rollout::promote(repo, run)?;
    println!(
        "promoted {run} ({}); continue it with `hive resume {run}`",
        marker.display()
    );
    Ok(true)
}

/// `hive report RUN`: per host the verdict, KBs installed, failed installs and reboot time (from
/// the journal alone); `--steps` adds every step with its evidence.
pub fn report(repo: &std::path::Path, run: &str, format: ReportFormat, steps: bool) -> CliResult {
    let log = RunLog::load(repo, run)?;
    let rows = hive::rollout::report::host_reports(&log);
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        ReportFormat::Csv => print!("{}", hive::rollout::report::to_csv(&rows)),
        ReportFormat::Table => {
            println!("run {run}: plan {}", log.header.plan);
            print!("{}", hive::rollout::report::to_table(&rows));
        }
    }
    if steps {
        for (host, h) in &log.hosts {
            println!("\n{host}:");
            for s in &h.steps {
                let (ok, outcome, detail, ms) = match &s.finished {
                    Some(e) => (
                        if e.ok { "ok" } else { "FAILED" },
                        e.outcome.as_str(),
                        e.detail.as_str(),
                        e.at_ms.saturating_sub(s.started_ms),
                    ),
                    None => ("UNFINISHED", "", "", 0),
                };
                let step = serde_json::to_value(&s.step)
                    .ok()
                    .and_then(|v| v.get("step").and_then(|x| x.as_str()).map(str::to_string))
                    .unwrap_or_default();
                println!("  {step:<12} {ok:<10} {outcome:<18} {ms:>7} ms  {detail}");
            }
        }
    }
    Ok(true)
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}
