//! The `hive` command line: parse, call the library, print.
use clap::Parser;

/// Agentless patching of Windows server fleets over WinRM, SSH and SMB.
#[derive(Parser)]
#[command(name = "hive", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
