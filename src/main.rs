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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Catalog(c) => cli::catalog::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hive: {e}");
            ExitCode::FAILURE
        }
    }
}
