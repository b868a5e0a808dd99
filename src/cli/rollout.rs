//! `hive deploy`, `hive rollout`, `hive resume`, `hive promote` and `hive report`: the remediation
//! half of the job, from the command line.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use hive::deploy::plan::{load_approved, plan, render as render_plan};
use hive::deploy::{DeployOptions, RebootPolicy};
use hive::inventory::Inventory;
use hive::journal::RunLog;
use hive::pipeline::DeployJob;
use hive::remote::Timeouts;
use hive::repo::Repository;
use hive::rollout::engine::Retry;
use hive::rollout::preflight::{PendingReboot, PreflightSettings};
use hive::rollout::quarantine::release_marker;
use hive::rollout::{InventoryHealth, Limit, RolloutOptions, Summary, plan_waves, stop_on_ctrl_c};
use hive::scan::run::{FileSource, PreparedProbe, ScanOptions, scan_fleet_with};
use hive::targets::TargetRecord;

use super::args::{
    CatalogArgs, HostSelection, RepoArg, at_least_one, limit, poll_ms, shutdown_delay, timeout_secs,
};
use super::exit::Outcome;
use super::scan::secrets_for;

type CliResult = Result<Outcome, Box<dyn std::error::Error>>;

/// What every remediation command needs.
#[derive(Args)]
pub struct WorkArgs {
    #[command(flatten)]
    pub select: HostSelection,
    #[command(flatten)]
    pub repo: RepoArg,
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// Hosts in flight at once, across the whole run.
    #[arg(long, default_value_t = 16, value_parser = at_least_one, value_name = "N")]
    pub parallel: usize,
    /// When to reboot: never, if-required, always.
    #[arg(long, value_enum, default_value_t = Reboot::IfRequired)]
    pub reboot: Reboot,
    /// Seconds one installer may run before it is killed.
    #[arg(long, default_value_t = 1800, value_parser = timeout_secs, value_name = "SECONDS")]
    pub install_timeout: u64,
    /// How file versions are read.
    #[arg(long, value_enum, default_value_t = FileSource::Probe)]
    pub files: FileSource,
    /// Seconds `shutdown /r /t N` gives logged-on users before the reboot (0 to 600).
    #[arg(long, default_value_t = 5, value_parser = shutdown_delay, value_name = "SECONDS")]
    pub shutdown_delay: u32,
    /// Seconds a rebooting host may take in each phase (go down, open its port, log on again).
    #[arg(long, default_value_t = 600, value_parser = timeout_secs, value_name = "SECONDS")]
    pub reboot_timeout: u64,
    /// Milliseconds between two looks at a rebooting host (or at an installer still running).
    #[arg(long, default_value_t = 5000, value_parser = poll_ms, value_name = "MS")]
    pub poll_ms: u64,
    /// When the hosts left are outside their maintenance windows, wait for the next opening
    /// instead of pausing the run (exit 5).
    #[arg(long)]
    pub wait_for_window: bool,
    /// Seconds one installer is expected to take, for fitting hosts into their windows
    /// (default by installer kind: 2 min a hotfix, 5 min an MSI or EXE, 15 min an MSU).
    #[arg(long, value_parser = timeout_secs, value_name = "SECONDS")]
    pub install_estimate: Option<u64>,
    #[command(flatten)]
    pub preflight: PreflightArgs,
}

/// Pre-flight: what sets a host aside (as `skipped`) before its wave.
#[derive(Args)]
pub struct PreflightArgs {
    /// A host with a reboot already pending: skip it, or reboot it first.
    #[arg(long, value_enum, default_value_t = PendingRebootArg::Skip)]
    pub pending_reboot: PendingRebootArg,
    /// Seconds a host's clock may differ from this machine's before it is set aside.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub max_clock_skew: u64,
    /// Reboots one host may take in one run before it is judged a reboot loop.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_reboots: u32,
    /// Do not check hosts before their wave.
    #[arg(long)]
    pub no_preflight: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PendingRebootArg {
    Skip,
    RebootFirst,
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

/// The waves of a run and their failure budgets (`hive rollout`, `hive rollback`).
#[derive(Args)]
pub struct WaveArgs {
    /// Stages, e.g. "canary(group=canary, soak=5m) -> 10% -> 50% -> 100%".
    #[arg(long, default_value = "canary(group=canary) -> 10% -> 50% -> 100%")]
    pub plan: String,
    /// Failed hosts allowed in one wave before the run stops (a count, or N% of the wave).
    #[arg(long, value_parser = limit, value_name = "N|N%")]
    pub max_failed: Option<Limit>,
    /// Failed hosts allowed in the whole run (a count, or N% of its hosts).
    #[arg(long, value_parser = limit, value_name = "N|N%")]
    pub max_failed_total: Option<Limit>,
}

/// `hive rollout`.
#[derive(Args)]
pub struct RolloutArgs {
    #[command(flatten)]
    pub work: WorkArgs,
    #[command(flatten)]
    pub waves: WaveArgs,
    /// Stop after the canaries until `hive promote RUN`.
    #[arg(long)]
    pub pause_after_canary: bool,
    #[command(flatten)]
    pub state: super::state::StateArg,
}

/// `hive resume`.
#[derive(Args)]
pub struct ResumeArgs {
    /// The run id (`hive rollout` prints it; runs/ in the repository lists them).
    pub run: String,
    #[command(flatten)]
    pub work: WorkArgs,
    /// Try hosts that failed or were unreachable again.
    #[arg(long)]
    pub retry_failed: bool,
    /// Try hosts that were skipped (set aside by pre-flight) again.
    #[arg(long)]
    pub retry_skipped: bool,
}

/// `hive promote`.
#[derive(Args)]
pub struct PromoteArgs {
    pub run: String,
    #[command(flatten)]
    pub repo: RepoArg,
    /// Release these quarantined patches (KB or bulletin ids) instead of the paused run: hosts
    /// the run starts from now on install them again.
    #[arg(long, num_args = 1.., value_name = "KB")]
    pub patch: Vec<String>,
}

/// `hive report`.
#[derive(Args)]
pub struct ReportArgs {
    /// The run id (`hive rollout list`); leave it out with --since.
    #[arg(required_unless_present = "since", conflicts_with = "since")]
    pub run: Option<String>,
    /// Compliance across the runs of a period instead of one run: how the fleet's count of
    /// missing patches moved (e.g. 30d, 2w, 12h).
    #[arg(long, value_name = "PERIOD")]
    pub since: Option<String>,
    #[command(flatten)]
    pub repo: RepoArg,
    /// Bulletin titles, CVEs and severities for the HTML report come from the catalog (the cached
    /// one when it is there); the report itself is read from the journal alone.
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, value_name = "FORMAT", default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,
    /// Every step of every host, with its evidence.
    #[arg(long)]
    pub steps: bool,
    #[command(flatten)]
    pub state: super::state::StateArg,
}

/// The hosts of a new run, resolved now; what it journals of them when a source found them.
fn selected(work: &WorkArgs) -> Result<(Inventory, Vec<TargetRecord>), Box<dyn std::error::Error>> {
    let selected = work.select.select_targets(Some(&work.repo.repo))?;
    Ok((
        Inventory {
            hosts: selected.hosts,
            policy: selected.policy,
        },
        selected.records.unwrap_or_default(),
    ))
}

pub(super) fn job(
    work: &WorkArgs,
    inv: Inventory,
) -> Result<(DeployJob, Inventory), Box<dyn std::error::Error>> {
    let catalog = Arc::new(work.catalog.load()?);
    let repo = Repository::open(&work.repo.repo)?;
    let approved = load_approved(&repo)?;
    if approved.is_empty() {
        return Err(format!(
            "nothing is approved in {}: approve a bulletin first (`hive triage approve`)",
            repo.root().join("hotfixes").display()
        )
        .into());
    }
    let secrets = secrets_for(&inv.hosts);
    let options = deploy_options(work);
    let connector = super::connect::connector(Timeouts::default());
    let health = InventoryHealth::new(&inv.policy, &secrets, connector.clone()).map(Arc::new);
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
        connector,
        health,
    };
    Ok((job, inv))
}

/// The per-host options the work flags set (shared by deploy, rollout, resume and rollback).
pub(super) fn deploy_options(work: &WorkArgs) -> DeployOptions {
    DeployOptions {
        reboot: match work.reboot {
            Reboot::Never => RebootPolicy::Never,
            Reboot::IfRequired => RebootPolicy::IfRequired,
            Reboot::Always => RebootPolicy::Always,
        },
        install_timeout: Duration::from_secs(work.install_timeout),
        shutdown_delay_s: work.shutdown_delay,
        down_timeout: Duration::from_secs(work.reboot_timeout),
        port_timeout: Duration::from_secs(work.reboot_timeout),
        login_timeout: Duration::from_secs(work.reboot_timeout),
        poll_interval: Duration::from_millis(work.poll_ms),
        max_reboots: work.preflight.max_reboots,
        ..DeployOptions::default()
    }
}

fn run_rollout(
    job: DeployJob,
    inv: &Inventory,
    targets: Vec<TargetRecord>,
    plan_text: &str,
    options: RolloutOptions,
    work: &WorkArgs,
) -> CliResult {
    let waves = plan_waves(plan_text, inv, None, &options)?;
    let mut rollout = super::change::rollout(
        job,
        inv,
        work.wait_for_window,
        work.install_estimate,
        preflight_settings(&work.preflight),
    )?;
    rollout.targets = targets;
    rollout.groups = group_members(&inv.hosts);
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(async {
        stop_on_ctrl_c(rollout.stop.clone());
        rollout.start(plan_text, waves, options).await
    })?;
    Ok(ended(&summary))
}

/// The group settings as the inventory file (or, without `-i`, the machines folder) says now:
/// what a resumed or undone run applies to the hosts its journal names.
pub(super) fn current_policy(
    work: &WorkArgs,
) -> Result<hive::inventory::GroupPolicy, Box<dyn std::error::Error>> {
    Ok(match &work.select.inventory {
        Some(path) => hive::inventory::InventoryFile::load(path)?.inventory.policy,
        None => {
            super::adopt::machine_targets(&work.repo.repo)?
                .file
                .inventory
                .policy
        }
    })
}

/// Group → hosts, for the run header (reports filter by group without the inventory file).
pub(crate) fn group_members(hosts: &[hive::inventory::Host]) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in hosts {
        for g in &h.groups {
            groups.entry(g.clone()).or_default().push(h.name.clone());
        }
    }
    groups
}

/// What pre-flight checks before each wave, or `None` with `--no-preflight`.
pub(super) fn preflight_settings(preflight: &PreflightArgs) -> Option<PreflightSettings> {
    (!preflight.no_preflight).then(|| PreflightSettings {
        pending_reboot: match preflight.pending_reboot {
            PendingRebootArg::Skip => PendingReboot::Skip,
            PendingRebootArg::RebootFirst => PendingReboot::RebootFirst,
        },
        max_clock_skew_s: preflight.max_clock_skew,
        ..PreflightSettings::default()
    })
}

/// The exit code of how the run ended. The summary is the watcher's to print (the table after
/// the bars, the `summary` record in NDJSON): printing it here too showed it twice.
pub(super) fn ended(summary: &Summary) -> Outcome {
    Outcome::of_run(summary)
}

pub fn deploy(args: DeployArgs) -> CliResult {
    let (inv, targets) = selected(&args.work)?;
    let (job, inv) = job(&args.work, inv)?;
    if args.dry_run {
        let runtime = tokio::runtime::Runtime::new()?;
        let hosts = secrets_for(&inv.hosts);
        let options = ScanOptions {
            parallel: args.work.parallel,
            files: args.work.files,
            ..ScanOptions::default()
        };
        let scans = runtime.block_on(scan_fleet_with(
            hosts.into(),
            job.catalog.clone(),
            options,
            Arc::new(()),
            job.connector.clone(),
        ));
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
        for h in &p.hosts {
            hive::deploy::record_plan(&job.repo, h, &p.run, &job.options);
        }
        let work = p
            .hosts
            .iter()
            .map(|h| {
                (
                    h.host.clone(),
                    super::change::planned(h, job.options.reboot, args.work.install_estimate),
                )
            })
            .collect();
        if let Some(gate) = super::change::gate(&inv, &job, work, args.work.install_estimate)? {
            let names: Vec<String> = inv.hosts.iter().map(|h| h.name.clone()).collect();
            print!("{}", hive::window::listing(&gate, &names));
        }
        for s in scans.iter().filter(|s| s.result.is_err()) {
            if let Err(e) = &s.result {
                println!("{}: not scanned ({e})", s.host);
            }
        }
        return Ok(Outcome::of_hosts(scans.iter().all(|s| s.result.is_ok())));
    }
    let options = RolloutOptions {
        parallel: args.work.parallel,
        ..RolloutOptions::default()
    };
    run_rollout(job, &inv, targets, "100%", options, &args.work)
}

pub fn rollout(args: RolloutArgs) -> CliResult {
    if let Some(coordinated) = super::state::coordinate(&args) {
        return coordinated;
    }
    let (inv, targets) = selected(&args.work)?;
    let (job, inv) = job(&args.work, inv)?;
    let options = RolloutOptions {
        parallel: args.work.parallel,
        max_failed_per_wave: args.waves.max_failed,
        max_failed_total: args.waves.max_failed_total,
        pause_after_canary: args.pause_after_canary,
        ..RolloutOptions::default()
    };
    run_rollout(job, &inv, targets, &args.waves.plan, options, &args.work)
}

/// `hive resume RUN`: continue a run after Ctrl-C, a crash or kill -9.
pub fn resume(args: ResumeArgs) -> CliResult {
    // A run whose hosts came from a source resumes on the hosts it journaled, without asking
    // the directory (or sweeping the range) again.
    let header = RunLog::load(&args.work.repo.repo, &args.run)?.header;
    let retry = Retry {
        failed: args.retry_failed,
        skipped: args.retry_skipped,
    };
    if let Some(of) = &header.rollback {
        return super::rollback::resume(&header, of, &args.work, retry);
    }
    let inv = if header.targets.is_empty() {
        selected(&args.work)?.0
    } else {
        let hosts = header
            .targets
            .iter()
            .map(|t| t.host())
            .collect::<Result<Vec<_>, _>>()?;
        // The hosts come from the journal; the group settings from the inventory file (or the
        // machines folder) as it is now.
        let policy = current_policy(&args.work)?;
        Inventory { hosts, policy }
    };
    let (job, inv) = job(&args.work, inv)?;
    let rollout = super::change::rollout(
        job,
        &inv,
        args.work.wait_for_window,
        args.work.install_estimate,
        preflight_settings(&args.work.preflight),
    )?;
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(async {
        stop_on_ctrl_c(rollout.stop.clone());
        rollout.resume_retrying(&args.run, retry).await
    })?;
    Ok(ended(&summary))
}

/// `hive promote RUN`: release a run paused after its canaries.
pub fn promote(args: PromoteArgs) -> CliResult {
    let run = &args.run;
    if !args.patch.is_empty() {
        let by = std::env::var("USER").unwrap_or_else(|_| "an operator".into());
        for patch in &args.patch {
            let marker = release_marker(&args.repo.repo, run, patch, &by)?;
            println!(
                "released {patch} in {run} ({}); hosts the run starts from now on get it",
                marker.display()
            );
        }
        return Ok(Outcome::Done);
    }
    let marker = hive::rollout::promote(&args.repo.repo, run)?;
    println!(
        "promoted {run} ({}); continue it with `hive resume {run}`",
        marker.display()
    );
    Ok(Outcome::Done)
}

/// `hive report RUN`: per host the verdict, KBs installed, failed installs and reboot time (from
/// the journal alone); `--steps` adds every step with its evidence.
pub fn report(args: ReportArgs) -> CliResult {
    let Some(run) = &args.run else {
        return compliance(&args);
    };
    let log = match super::state::load(&args.state, run)? {
        Some(log) => log,
        None => RunLog::load(&args.repo.repo, run)?,
    };
    let rows = hive::rollout::report::host_reports(&log);
    match args.output {
        ReportFormat::Html => {
            let catalog = report_catalog(&args.catalog)?;
            let page = hive::report::html::run::page(&log, catalog.as_ref(), hive::time::now_ms());
            print!("{}", hive::report::html::render(&page)?);
        }
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        ReportFormat::Csv => print!("{}", hive::rollout::report::to_csv(&rows)),
        ReportFormat::Table => {
            match &log.header.rollback {
                Some(of) => println!(
                    "run {run}: rollback of {}, plan {}",
                    of.run, log.header.plan
                ),
                None => println!("run {run}: plan {}", log.header.plan),
            }
            print!("{}", hive::rollout::report::to_table(&rows));
            let withheld = hive::rollout::report::withheld_lines(&log);
            if !withheld.is_empty() {
                println!("\npatches withheld:");
                for line in withheld {
                    println!("  {line}");
                }
            }
        }
    }
    if args.steps {
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
    Ok(Outcome::Done)
}

/// The catalog for a report's titles and CVEs: an explicit `--catalog` must load; the cached one
/// is used when it is there (a report is made from the journal alone, so none is fine).
fn report_catalog(
    args: &CatalogArgs,
) -> Result<Option<hive::catalog::model::Catalog>, Box<dyn std::error::Error>> {
    if args.catalog.is_some() {
        return Ok(Some(args.load()?));
    }
    Ok(args.load().ok())
}

/// `hive report --since PERIOD`: the runs of the period, with the fleet's missing patches after
/// each.
fn compliance(args: &ReportArgs) -> CliResult {
    let since = args.since.as_deref().unwrap_or("30d");
    let period = hive::report::html::compliance::parse_since(since)?;
    let now = hive::time::now_ms();
    let from = now.saturating_sub(period.as_millis() as u64);
    let catalog = report_catalog(&args.catalog)?;
    let page = hive::report::html::compliance::page(&args.repo.repo, from, now, catalog.as_ref())?;
    let trend = page
        .compliance
        .clone()
        .unwrap_or_else(|| hive::report::html::compliance::Trend {
            points: vec![],
            line: String::new(),
            max: 0,
        });
    match args.output {
        ReportFormat::Html => print!("{}", hive::report::html::render(&page)?),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&trend.points)?),
        ReportFormat::Csv => {
            println!(
                "run,started,hosts,scanned,missing_before,patched,missing_after,fleet_missing,failed"
            );
            for p in &trend.points {
                println!(
                    "{},{},{},{},{},{},{},{},{}",
                    p.run,
                    p.when,
                    p.hosts,
                    p.scanned,
                    p.missing_before,
                    p.fixed,
                    p.missing_after,
                    p.fleet_missing,
                    p.failed
                );
            }
        }
        ReportFormat::Table => {
            println!(
                "{:<20} {:<24} {:>6} {:>14} {:>8} {:>13} {:>13}",
                "run",
                "started",
                "hosts",
                "missing before",
                "patched",
                "missing after",
                "fleet missing"
            );
            for p in &trend.points {
                println!(
                    "{:<20} {:<24} {:>6} {:>14} {:>8} {:>13} {:>13}",
                    p.run,
                    p.when,
                    p.hosts,
                    p.missing_before,
                    p.fixed,
                    p.missing_after,
                    p.fleet_missing
                );
            }
            for n in &page.notes {
                eprintln!("{n}");
            }
        }
    }
    Ok(Outcome::Done)
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    /// One self-contained HTML page (no network needed to view it).
    Html,
}
