//! `hive init`, `hive scan` and `hive triage`: the hfnetchk half of the job.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use hive::catalog::model::InstallerRecipe;
use hive::inventory::{Host, InventoryError, Secret, SecretSource, resolve_host};
use hive::repo::{IgnoreReason, Repository, Triage};
use hive::report::{Format, render};
use hive::scan::HostScan;
use hive::scan::run::{FileSource, ScanOptions, ScanProgress, scan_fleet_with};

use super::args::{
    CatalogArgs, HostSelection, OptionalRepoArg, RepoArg, at_least_one, timeout_secs,
};
use super::exit::Outcome;

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// `hive scan`.
#[derive(Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub select: HostSelection,
    #[command(flatten)]
    pub repo: OptionalRepoArg,
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, value_name = "FORMAT", default_value_t = Format::Table)]
    pub output: Format,
    /// Hosts scanned at once.
    #[arg(long, default_value_t = 64, value_parser = at_least_one, value_name = "N")]
    pub parallel: usize,
    /// Seconds one host's scan may take.
    #[arg(long, default_value_t = 120, value_parser = timeout_secs, value_name = "SECONDS")]
    pub host_timeout: u64,
    /// How file versions are read.
    #[arg(long, value_enum, default_value_t = FileSource::Probe)]
    pub files: FileSource,
}

/// `hive triage`.
#[derive(Subcommand)]
pub enum TriageCommand {
    /// List every triaged bulletin and where it sits.
    List {
        #[command(flatten)]
        repo: RepoArg,
    },
    /// Approve a bulletin: copy its installer into hotfixes/<bulletin>/ with a recipe.
    Approve {
        bulletin: String,
        /// The installer file.
        #[arg(long, value_name = "FILE")]
        installer: std::path::PathBuf,
        /// Arguments instead of the recipe's defaults (e.g. "-z -q -m").
        #[arg(long, allow_hyphen_values = true)]
        args: Option<String>,
        /// Also write a hiveexec.cmd running the installer with those arguments, as HIVE
        /// admins did; edit it for whatever else the hotfix needs (hive runs it from the staged
        /// folder instead of its own recipe).
        #[arg(long)]
        hiveexec: bool,
        #[command(flatten)]
        repo: RepoArg,
    },
    /// Ignore a bulletin, saying why and who decided.
    Ignore {
        bulletin: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        owner: String,
        /// YYYY-MM-DD after which the bulletin counts as untriaged again.
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        repo: RepoArg,
    },
}

/// `hive init <repo>`.
pub fn init(path: &Path) -> CliResult {
    Repository::init(path)?;
    println!(
        "initialised HIVE repository {} (hotfixes/, ignore/, tbe/, machines/, logs/, runs/)",
        path.display()
    );
    Ok(())
}

pub fn triage(cmd: TriageCommand) -> CliResult {
    match cmd {
        TriageCommand::List { repo } => {
            let repo = Repository::open(&repo.repo)?;
            for (state, id) in repo.list()? {
                println!("{:<9} {id}", state.to_string());
            }
        }
        TriageCommand::Approve {
            bulletin,
            installer,
            args,
            hiveexec,
            repo,
        } => {
            let repo = Repository::open(&repo.repo)?;
            let name = installer
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut recipe = InstallerRecipe::guess_from_file_name(&name).ok_or_else(|| {
                format!("{name}: cannot tell how to run it (expected .exe, .msu or .msi)")
            })?;
            if let Some(args) = args {
                recipe.arguments = args.split_whitespace().map(str::to_string).collect();
            }
            let dest = repo.approve(&bulletin, &installer, &recipe)?;
            if hiveexec {
                let script = hive::adopt::hiveexec::write_script(&dest, &name, &recipe.arguments)?;
                println!("wrote {}", script.display());
            }
            println!(
                "approved {bulletin}: {} with `{}` in {}",
                name,
                recipe.arguments.join(" "),
                dest.display()
            );
        }
        TriageCommand::Ignore {
            bulletin,
            reason,
            owner,
            expires,
            repo,
        } => {
            let repo = Repository::open(&repo.repo)?;
            let dest = repo.ignore(
                &bulletin,
                &IgnoreReason {
                    reason,
                    owner,
                    expires,
                },
            )?;
            println!("ignored {bulletin} ({})", dest.display());
        }
    }
    Ok(())
}

/// Reads passwords from the terminal without echo; refuses when there is no terminal rather than
/// hanging a scheduled run.
pub struct TerminalPrompt;

impl SecretSource for TerminalPrompt {
    fn prompt(&mut self, label: &str) -> Result<Secret, String> {
        rpassword::prompt_password(format!("{label}: "))
            .map(Secret::new)
            .map_err(|e| format!("cannot prompt for a password ({e}); use env: or file: instead"))
    }
}

/// Credentials for each host, each distinct reference read (or asked for) once. A reference that
/// cannot be read fails every host that names it, each error naming its own host.
pub fn secrets_for(hosts: &[Host]) -> Vec<(Host, Result<Secret, String>)> {
    let mut cache: Vec<(String, Result<Secret, String>)> = Vec::new();
    let mut prompt = TerminalPrompt;
    hosts
        .iter()
        .map(|h| {
            let key = format!("{}|{}|{:?}", h.credential, h.user, h.smb_credential);
            let read = match cache.iter().find(|(k, _)| *k == key) {
                Some((_, s)) => s.clone(),
                None => {
                    let s = resolve_host(h, &mut prompt);
                    cache.push((key, s.clone()));
                    s
                }
            };
            let secret = read.map_err(|message| {
                InventoryError::Credential {
                    host: h.name.clone(),
                    reference: h.credential.to_string(),
                    message,
                }
                .to_string()
            });
            (h.clone(), secret)
        })
        .collect()
}

/// A progress bar on stderr while hosts are scanned (hidden when stderr is not a terminal).
struct Bar(indicatif::ProgressBar, std::sync::atomic::AtomicUsize);

impl ScanProgress for Bar {
    fn host_done(&self, scan: &HostScan) {
        if scan.result.is_err() {
            let n = self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            self.0.set_message(format!("{n} not scanned"));
        }
        self.0.inc(1);
    }
}

/// `hive scan`: scan, record in the repository when there is one, print the report.
pub fn scan(args: ScanArgs) -> Result<Outcome, Box<dyn std::error::Error>> {
    let hosts = args.select.select(args.repo.repo.as_deref())?;
    let catalog = args.catalog.load()?;
    let repo = match &args.repo.repo {
        Some(p) => Some(Repository::open(p)?),
        None => None,
    };
    let with_secrets = secrets_for(&hosts);
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(hosts.len() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "scanning {bar:30} {pos}/{len} hosts  {msg}  [{elapsed_precise}, eta {eta}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = Arc::new(Bar(bar.clone(), Default::default()));
    let options = ScanOptions {
        parallel: args.parallel,
        host_timeout: Duration::from_secs(args.host_timeout),
        files: args.files,
        ..ScanOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let catalog = Arc::new(catalog);
    let connector = super::connect::connector(options.timeouts);
    let scans = runtime.block_on(scan_fleet_with(
        with_secrets.into(),
        catalog.clone(),
        options,
        progress,
        connector,
    ));
    bar.finish_and_clear();

    if let Some(repo) = &repo {
        hive::report::record_lastruns(
            repo,
            &catalog,
            &scans,
            &hive::time::utc_now(hive::time::StampFormat::IsoBasic),
        )?;
        let summary = hive::triage::record_scan(repo, &catalog, &scans)?;
        let tbe = repo.root().join(Triage::Tbe.folder());
        if let Some(line) = super::scan_notes::untriaged_line(&summary.tbe, &tbe) {
            eprintln!("{line}");
        }
    }
    // A table lists its unscanned hosts; the other formats are for scripts, whose callers still
    // need to see on stderr why the exit code says some hosts were not scanned.
    if args.output != Format::Table {
        for line in super::scan_notes::failure_lines(&scans) {
            eprintln!("{line}");
        }
    }
    match args.output {
        // The HTML page filters by the inventory's groups.
        Format::Html => {
            let groups = super::rollout::group_members(&hosts);
            let page =
                hive::report::html::scan::page(&catalog, &scans, &groups, hive::time::now_ms());
            print!("{}", hive::report::html::render(&page)?);
        }
        format => print!("{}", render(format, &catalog, &scans)),
    }
    Ok(Outcome::of_hosts(scans.iter().all(|s| s.result.is_ok())))
}
