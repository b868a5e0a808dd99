//! The `hive` command line: parse, call the library, print.
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cli;

use cli::exit::{EXIT_CODES, Outcome};

/// mimalloc rather than glibc's malloc: a fleet scan allocates and frees buffers of tens of
/// kilobytes per host (envelopes, sealed bodies, answers) on every worker thread, and glibc's
/// consolidation of such chunks was about a tenth of a scan's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Agentless patching of Windows server fleets over WinRM, SSH and SMB.
#[derive(Parser)]
#[command(name = "hive", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The patch catalog: fetch, import, show, diff.
    #[command(subcommand)]
    Catalog(cli::catalog::CatalogCommand),
    /// Inventories from what the admin already has: `from-ad` writes one from Active Directory.
    #[command(subcommand)]
    Inventory(cli::inventory::InventoryCommand),
    /// Create a HIVE repository (hotfixes/, ignore/, tbe/, machines/, logs/).
    Init {
        /// Where.
        path: std::path::PathBuf,
    },
    /// Take over a folder of the 2001 HIVE scripts as it is (in place, or copied with --into).
    Adopt(cli::adopt::AdoptArgs),
    /// Find which patches each host lacks, with evidence; untriaged ones land in tbe/.
    #[command(after_help = EXIT_CODES)]
    Scan(cli::scan::ScanArgs),
    /// Sort bulletins into hotfixes/ (approved), ignore/ or tbe/.
    #[command(subcommand)]
    Triage(cli::scan::TriageCommand),
    /// Install approved patches on the selected hosts (one wave), or --dry-run for the plan.
    #[command(after_help = EXIT_CODES)]
    Deploy(cli::rollout::DeployArgs),
    /// Canary first, then the fleet in waves; a wave's failure budget or the canary gate stops it.
    #[command(after_help = EXIT_CODES)]
    Rollout(cli::rollout::RolloutArgs),
    /// Patch the hosts of one site in a run whose state is shared (`hive rollout --state`).
    #[command(after_help = EXIT_CODES)]
    Worker(cli::state::WorkerArgs),
    /// Continue a run after Ctrl-C, a crash or kill -9: nothing done is done twice.
    #[command(after_help = EXIT_CODES)]
    Resume(cli::rollout::ResumeArgs),
    /// Take off what a run installed (uninstallers per recipe), in waves, verified by re-scan.
    #[command(after_help = EXIT_CODES)]
    Rollback(cli::rollback::RollbackArgs),
    /// Release a run paused after its canaries.
    Promote(cli::rollout::PromoteArgs),
    /// What a run did on each host, step by step, from its journal.
    Report(cli::rollout::ReportArgs),
    /// A simulated fleet in a process of its own, to try every command of the README on.
    #[cfg(feature = "demo")]
    #[command(subcommand)]
    Lab(cli::lab::LabCommand),
    /// Shell completion script on stdout: `hive completions bash > /etc/bash_completion.d/hive`.
    Completions {
        #[arg(value_enum)]
        shell: cli::shell::Shell,
    },
    /// The man page (roff) on stdout: `hive man > hive.1; man ./hive.1`.
    Man,
    /// The whole job on a simulated fleet started in this process: scan, triage, canary, waves.
    #[cfg(feature = "demo")]
    Demo {
        /// Hosts besides the canaries.
        #[arg(long, default_value_t = 60)]
        hosts: usize,
        /// Canaries (by default one per Windows Server version of the fleet).
        #[arg(long, default_value_t = 3)]
        canaries: usize,
        /// Leave out the faulty hosts.
        #[arg(long)]
        no_faults: bool,
        /// Keep the temporary repository (journal, logs) for a look afterwards.
        #[arg(long)]
        keep: bool,
        /// Hosts in flight at once.
        #[arg(long, default_value_t = 24, value_parser = cli::args::at_least_one, value_name = "N")]
        parallel: usize,
        /// How long each simulated host stays down when it reboots, in milliseconds.
        #[arg(long, default_value_t = 1500)]
        reboot_ms: u64,
        /// The seed era's story instead: Windows Server 2003 SP2 and XP SP3 hosts with WinRM
        /// 1.1, an mssecure.xml catalog, Update.exe packages, cmd.exe only.
        #[arg(long)]
        legacy: bool,
    },
}

fn main() -> ExitCode {
    // `hive report ... | head` must end quietly like any Unix tool, not panic on a closed pipe.
    // SAFETY: setting a signal disposition to the default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version end here too, on stdout and successfully.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Outcome::Usage.code()
            } else {
                Outcome::Done.code()
            });
        }
    };
    let result = match cli.command {
        Command::Catalog(c) => cli::catalog::run(c).map(|()| Outcome::Done),
        Command::Inventory(c) => cli::inventory::run(c).map(|()| Outcome::Done),
        Command::Adopt(args) => cli::adopt::run(args),
        Command::Init { path } => cli::scan::init(&path).map(|()| Outcome::Done),
        Command::Deploy(args) => cli::rollout::deploy(args),
        Command::Rollout(args) => cli::rollout::rollout(args),
        Command::Resume(args) => cli::rollout::resume(args),
        Command::Worker(args) => cli::state::worker(args),
        Command::Rollback(args) => cli::rollback::rollback(args),
        Command::Promote(args) => cli::rollout::promote(args),
        Command::Report(args) => cli::rollout::report(args),
        #[cfg(feature = "demo")]
        Command::Demo {
            hosts,
            canaries,
            no_faults,
            keep,
            parallel,
            reboot_ms,
            legacy,
        } => {
            let opts = cli::demo::DemoOptions {
                hosts,
                canaries,
                faults: !no_faults,
                keep,
                parallel,
                reboot_ms,
                legacy,
            };
            tokio::runtime::Runtime::new()
                .map_err(Into::into)
                .and_then(|rt| rt.block_on(cli::demo::run(opts)))
                .map(|_| Outcome::Done)
        }
        #[cfg(feature = "demo")]
        Command::Lab(c) => cli::lab::run(c).map(|()| Outcome::Done),
        Command::Completions { shell } => {
            cli::shell::completions(shell, Cli::command(), &mut std::io::stdout());
            Ok(Outcome::Done)
        }
        Command::Man => cli::shell::man_page(Cli::command(), &mut std::io::stdout())
            .map(|()| Outcome::Done)
            .map_err(Into::into),
        Command::Triage(c) => cli::scan::triage(c).map(|()| Outcome::Done),
        Command::Scan(args) => cli::scan::scan(args),
    };
    match result {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(e) => {
            eprintln!("hive: {e}");
            ExitCode::from(Outcome::Error.code())
        }
    }
}
