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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Catalog(c) => cli::catalog::run(c),
        Command::Init { path } => cli::scan::init(&path),
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
