//! Argument groups several commands share (`#[command(flatten)]`), declared once so a flag means
//! the same thing, with the same help and environment variable, wherever it appears; and the
//! value parsers that refuse a bad number at parse time. clap names the flag in the message and
//! exits with the usage code, so `--parallel 0` never becomes a silent 1.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::Args;

use hive::catalog::model::Catalog;
use hive::catalog::store;
use hive::inventory::{Host, InventoryFile};
use hive::rollout::Limit;
use hive::targets::{self, CommandLineTargets, TargetRecord};

/// The HIVE repository a command works in.
#[derive(Args, Clone)]
pub struct RepoArg {
    /// The HIVE repository (hotfixes/ holds the approved installers, runs/ the journals).
    #[arg(long, short = 'r', env = "HIVE_REPO", value_name = "DIR")]
    pub repo: PathBuf,
}

/// The repository of `hive scan`, which also works without one.
#[derive(Args, Clone)]
pub struct OptionalRepoArg {
    /// The HIVE repository: missing, untriaged bulletins are recorded in its tbe/ folder and each
    /// host's result in machines/<host>/lastrun.log.
    #[arg(long, short = 'r', env = "HIVE_REPO", value_name = "DIR")]
    pub repo: Option<PathBuf>,
}

/// Which hosts of the inventory a command works on.
#[derive(Args, Clone)]
pub struct HostSelection {
    /// The inventory file (TOML): its hosts and sources, and the defaults (transport,
    /// credentials) for hosts found by --range and --hosts-file. Without it, the repository's
    /// machines/ folders are the hosts (HIVE's way; see machines/defaults.toml).
    #[arg(long, short = 'i', env = "HIVE_INVENTORY", value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Only these hosts (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub hosts: Vec<String>,
    /// Only the hosts of this group.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// The addresses of a range instead of the inventory's hosts: 10.1.2.0/24 or
    /// 10.1.2.10-10.1.2.60 (repeatable). Addresses with no WinRM/SSH listener are left out.
    #[arg(long = "range", value_name = "RANGE")]
    pub ranges: Vec<String>,
    /// The hosts of a list file instead of the inventory's: one name or address a line, `#`
    /// comments (repeatable).
    #[arg(long = "hosts-file", value_name = "FILE")]
    pub hosts_files: Vec<PathBuf>,
    /// Allow ranges of more addresses than 256 (a /24).
    #[arg(long, value_parser = at_least_one, value_name = "N")]
    pub max_hosts: Option<usize>,
}

/// The hosts a command works on, and (when a source found them) what a run journals.
pub struct Selected {
    pub hosts: Vec<Host>,
    /// Set when some host came from a source (directory, range, list).
    pub records: Option<Vec<TargetRecord>>,
    /// The inventory file's per-group settings.
    pub policy: hive::inventory::GroupPolicy,
}

impl HostSelection {
    /// The selected hosts, in inventory order; unknown names are an error, not a silent skip.
    pub fn select(&self, repo: Option<&Path>) -> Result<Vec<Host>, Box<dyn std::error::Error>> {
        Ok(self.select_targets(repo)?.hosts)
    }

    /// Resolve the inventory's sources (or the command line's targets), apply --hosts and
    /// --group, and leave out range addresses where nothing listens (said once, on stderr).
    pub fn select_targets(
        &self,
        repo: Option<&Path>,
    ) -> Result<Selected, Box<dyn std::error::Error>> {
        let (file, machines) = match (&self.inventory, repo) {
            (Some(path), _) => (InventoryFile::load(path)?, None),
            (None, Some(repo)) => {
                let found = super::adopt::machine_targets(repo)?;
                (found.file.clone(), Some(found))
            }
            (None, None) => {
                return Err(
                    "no inventory: name one with -i FILE (or HIVE_INVENTORY), or a \
                            repository whose machines/ folders are the hosts with -r DIR"
                        .into(),
                );
            }
        };
        let cli = CommandLineTargets {
            ranges: self.ranges.clone(),
            hosts_files: self.hosts_files.clone(),
            max_hosts: self.max_hosts,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut prompt = super::scan::TerminalPrompt;
        let resolved = match machines {
            Some(found) if cli.is_empty() => found.targets,
            _ => runtime.block_on(targets::resolve(&file, &cli, &mut prompt))?,
        };
        let from = if cli.is_empty() {
            file.path.display().to_string()
        } else {
            "the --range/--hosts-file targets".to_string()
        };
        for name in &self.hosts {
            if !resolved
                .hosts
                .iter()
                .any(|(h, _)| h.name.eq_ignore_ascii_case(name))
            {
                return Err(format!("host `{name}` is not in {from}").into());
            }
        }
        let mut chosen = targets::Targets {
            hosts: resolved
                .hosts
                .into_iter()
                .filter(|(h, _)| {
                    self.hosts.is_empty()
                        || self.hosts.iter().any(|n| n.eq_ignore_ascii_case(&h.name))
                })
                .filter(|(h, _)| self.group.as_ref().is_none_or(|g| h.groups.contains(g)))
                .collect(),
        };
        let in_ranges: Vec<Host> = chosen
            .hosts
            .iter()
            .filter(|(_, o)| o.is_range())
            .map(|(h, _)| h.clone())
            .collect();
        if !in_ranges.is_empty() {
            let (_, silent) = runtime.block_on(targets::listen::sweep(
                in_ranges,
                targets::listen::CONNECT_TIMEOUT,
                256,
            ));
            if let Some(line) = targets::listen::report(&silent) {
                eprintln!("{line}");
            }
            chosen
                .hosts
                .retain(|(h, _)| !silent.iter().any(|s| s.name == h.name));
        }
        if chosen.hosts.is_empty() {
            return Err(format!("no host of {from} matches the selection").into());
        }
        let records = chosen.from_sources().then(|| chosen.records());
        Ok(Selected {
            hosts: chosen.hosts.into_iter().map(|(h, _)| h).collect(),
            records,
            policy: file.inventory.policy.clone(),
        })
    }
}

/// Where the cached catalog lives.
#[derive(Args, Clone)]
pub struct CacheArg {
    /// The cached catalog file [default: $XDG_CACHE_HOME/hive/catalog.json].
    #[arg(long, env = "HIVE_CATALOG", value_name = "FILE")]
    cache: Option<PathBuf>,
}

impl CacheArg {
    pub fn path(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(default_cache)
    }
}

fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("hive").join("catalog.json")
}

/// The catalog a scan or a deployment judges hosts against.
#[derive(Args, Clone)]
pub struct CatalogArgs {
    /// A catalog to use instead of the cached one: a cached JSON file or an mssecure/CVRF document
    /// (hfnetchk's -x).
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    #[command(flatten)]
    pub cache: CacheArg,
}

impl CatalogArgs {
    /// An explicit file (cached JSON or a source document), else the cache.
    pub fn load(&self) -> Result<Catalog, Box<dyn std::error::Error>> {
        match self.catalog.as_deref() {
            Some(path) => load_explicit(path),
            None => {
                let path = self.cache.path();
                store::load(&path).map_err(|e| {
                    format!(
                        "{e}\n  (no catalog yet? run `hive catalog fetch` or `hive catalog import FILE`, or pass --catalog FILE)"
                    )
                    .into()
                })
            }
        }
    }
}

fn load_explicit(path: &Path) -> Result<Catalog, Box<dyn std::error::Error>> {
    match store::load(path) {
        Ok(c) => Ok(c),
        Err(_) => Ok(store::import_file(path)?.0),
    }
}

/// A whole number in `min..=max`; the message says what was expected (clap prefixes the flag).
fn number<T>(text: &str, min: T, max: T, unit: &str) -> Result<T, String>
where
    T: FromStr + PartialOrd + std::fmt::Display,
{
    let n: T = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number"))?;
    if n < min {
        return Err(format!("must be at least {min}{unit}"));
    }
    if n > max {
        return Err(format!("must be at most {max}{unit}"));
    }
    Ok(n)
}

/// Hosts in flight (and other counts of things): at least one, or nothing would ever run.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    number(text, 1, usize::MAX, "")
}

/// A timeout in seconds: at least 1, at most a week (beyond that a host is not coming back).
pub fn timeout_secs(text: &str) -> Result<u64, String> {
    number(text, 1, 7 * 24 * 3600, " s")
}

/// Milliseconds between two looks at a host: under 50 the looks would only load the host.
pub fn poll_ms(text: &str) -> Result<u64, String> {
    number(text, 50, 3_600_000, " ms")
}

/// The `shutdown /r /t N` delay: Windows XP and Server 2003 refuse more than 600 seconds.
pub fn shutdown_delay(text: &str) -> Result<u32, String> {
    number(text, 0, 600, " s")
}

/// A failure budget: a host count (`2`) or a percentage of the wave (`5%`, at most 100%).
pub fn limit(text: &str) -> Result<Limit, String> {
    Limit::parse(text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_range_pass_and_others_say_why() {
        assert_eq!(at_least_one("16"), Ok(16));
        assert_eq!(at_least_one(" 3 "), Ok(3));
        assert_eq!(at_least_one("0"), Err("must be at least 1".into()));
        assert_eq!(at_least_one("-1"), Err("`-1` is not a whole number".into()));
        assert_eq!(timeout_secs("1"), Ok(1));
        assert_eq!(timeout_secs("0"), Err("must be at least 1 s".into()));
        assert_eq!(
            timeout_secs("604801"),
            Err("must be at most 604800 s".into())
        );
        assert_eq!(
            timeout_secs("1e3"),
            Err("`1e3` is not a whole number".into())
        );
        assert_eq!(poll_ms("49"), Err("must be at least 50 ms".into()));
        assert_eq!(poll_ms("100"), Ok(100));
        assert_eq!(shutdown_delay("0"), Ok(0));
        assert_eq!(shutdown_delay("601"), Err("must be at most 600 s".into()));
    }

    #[test]
    fn budgets_are_counts_or_percentages_up_to_100() {
        assert_eq!(limit("2"), Ok(Limit::Count(2)));
        assert_eq!(limit("5%"), Ok(Limit::Percent(5)));
        assert_eq!(limit(" 100% "), Ok(Limit::Percent(100)));
        assert!(limit("101%").unwrap_err().contains("more than 100%"));
        assert!(limit("-1").unwrap_err().contains("not a host count"));
        assert!(limit("x%").unwrap_err().contains("not a percentage"));
    }
}
