//! `hive adopt HIVE-FOLDER [--into DIR]`: take over the 2001 HIVE scripts' folder with its
//! decisions, and the machines folder as the target list when a command gets no `-i`.

use std::path::{Path, PathBuf};

use clap::Args;

use hive::adopt::{Place, adopt, render};
use hive::targets::machines::{MachineTargets, from_machines};

use super::exit::Outcome;

/// `hive adopt`.
#[derive(Args)]
pub struct AdoptArgs {
    /// The HIVE folder (Hotfixes, Ignore, TBE, Machines, Installs, Logs, Archive; any letter
    /// case). Nothing in it is deleted, renamed or rewritten.
    pub path: PathBuf,
    /// Copy it into this new (or empty) folder in hive's spelling instead of adopting it in place.
    #[arg(long, value_name = "DIR")]
    pub into: Option<PathBuf>,
    /// Print what was found as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: AdoptArgs) -> Result<Outcome, Box<dyn std::error::Error>> {
    let place = match &args.into {
        Some(dest) => Place::Beside(dest),
        None => Place::InPlace,
    };
    let (survey, repo) = adopt(&args.path, place)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&survey)?);
    } else {
        print!("{}", render(&survey));
        println!(
            "repository: {} (scan and deploy with -r {0}; without -i the machine folders are the hosts)",
            repo.root().display()
        );
    }
    Ok(Outcome::Done)
}

/// The repository's machine folders as targets; folders that are no host name are said on
/// stderr and left out.
pub fn machine_targets(repo: &Path) -> Result<MachineTargets, Box<dyn std::error::Error>> {
    let machines = hive::folders::child(repo, "machines");
    if !machines.is_dir() {
        return Err(format!(
            "no inventory (-i) and no machines folder in {}: add a folder per target machine, \
             or name an inventory",
            repo.display()
        )
        .into());
    }
    let found = from_machines(&machines)?;
    for (dir, why) in &found.refused {
        eprintln!("left out {}: {why}", dir.display());
    }
    Ok(found)
}
