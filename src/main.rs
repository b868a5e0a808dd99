//! The `hive` command line: parse, call the library, print.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// Agentless patching of Windows server fleets over WinRM, SSH and SMB.
#[derive(Parser)]
#[command(name = "hive", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The patch catalog: fetch, import, show, diff.
    #[command(subcommand)]
    Catalog(cli::catalog::CatalogCommand),
    /// Create a HIVE repository (hotfixes/, ignore/, tbe/, machines/, logs/).
    Init {
        /// Where.
        path: std::path::PathBuf,
    },
    /// Find which patches each host lacks, with evidence; untriaged ones land in tbe/.
    Scan(cli::scan::ScanArgs),
    /// Sort bulletins into hotfixes/ (approved), ignore/ or tbe/.
    #[command(subcommand)]
    Triage(cli::scan::TriageCommand),
    /// Install approved patches on the selected hosts (one wave), or --dry-run for the plan.
    Deploy(cli::rollout::DeployArgs),
    /// Canary first, then the fleet in waves, with health gates and failure budgets.
    Rollout(cli::rollout::RolloutArgs),
    /// Continue a run after Ctrl-C, a crash or kill -9: nothing done is done twice.
    Resume {
        run: String,
        #[command(flatten)]
        work: cli::rollout::WorkArgs,
        /// Try hosts that failed or were unreachable again.
        #[arg(long)]
        retry_failed: bool,
    },
    /// Release a run paused after its canaries.
    Promote {
        run: String,
        #[arg(long, short = 'r', env = "HIVE_REPO")]
        repo: std::path::PathBuf,
    },
    /// What a run did on each host, step by step, from its journal.
    Report {
        run: String,
        #[arg(long, short = 'r', env = "HIVE_REPO")]
        repo: std::path::PathBuf,
        #[arg(long, short = 'o', value_enum, default_value_t = cli::rollout::ReportFormat::Table)]
        output: cli::rollout::ReportFormat,
        /// Every step of every host, with its evidence.
        #[arg(long)]
        steps: bool,
    },
    /// The whole job on a simulated fleet started in this process: scan, triage, canary, waves.
    #[cfg(feature = "demo")]
    Demo {
        /// Hosts besides the canaries.
        #[arg(long, default_value_t = 60)]
        hosts: usize,
        #[arg(long, default_value_t = 2)]
        canaries: usize,
        /// Leave out the faulty hosts.
        #[arg(long)]
        no_faults: bool,
        /// Keep the temporary repository (journal, logs) for a look afterwards.
        #[arg(long)]
        keep: bool,
        /// Hosts in flight at once.
        #[arg(long, default_value_t = 24)]
        parallel: usize,
        /// How long each simulated host stays down when it reboots, in milliseconds.
        #[arg(long, default_value_t = 1500)]
        reboot_ms: u64,
    },
}

/// A run that did not reach its end (a budget, a gate, a failed host) exits 2 after its summary.
fn finished(r: Result<bool, Box<dyn std::error::Error>>) -> Result<(), Box<dyn std::error::Error>> {
    match r {
        Ok(true) => Ok(()),
        Ok(false) => std::process::exit(2),
        Err(e) => Err(e),
    }
}

fn main() -> ExitCode {
    // `hive report ... | head` must end quietly like any Unix tool, not panic on a closed pipe.
    // SAFETY: setting a signal disposition to the default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Catalog(c) => cli::catalog::run(c),
        Command::Init { path } => cli::scan::init(&path),
        Command::Deploy(args) => finished(cli::rollout::deploy(args)),
        Command::Rollout(args) => finished(cli::rollout::rollout(args)),
        Command::Resume {
            run,
            work,
            retry_failed,
        } => finished(cli::rollout::resume(&run, work, retry_failed)),
        Command::Promote { run, repo } => finished(cli::rollout::promote(&repo, &run)),
        Command::Report {
            run,
            repo,
            output,
            steps,
        } => finished(cli::rollout::report(&repo, &run, output, steps)),
        #[cfg(feature = "demo")]
        Command::Demo {
            hosts,
            canaries,
            no_faults,
            keep,
            parallel,
            reboot_ms,
        } => {
            let opts = cli::demo::DemoOptions {
                hosts,
                canaries,
                faults: !no_faults,
                keep,
                parallel: parallel.max(1),
                reboot_ms,
            };
            tokio::runtime::Runtime::new()
                .map_err(Into::into)
                .and_then(|rt| rt.block_on(cli::demo::run(opts)))
                .map(|_| ())
        }
        Command::Triage(c) => cli::scan::triage(c),
        Command::Scan(args) => match cli::scan::scan(args) {
            // Some hosts could not be scanned: the report says which; the exit code says so too.
            Ok(false) => return ExitCode::from(2),
            other => other.map(|_| ()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hive: {e}");
            ExitCode::FAILURE
        }
    }
}
