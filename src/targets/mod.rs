//! Targets as the administrator already has them: hosts from Active Directory, address ranges and
//! host list files, besides the inventory's own `[[host]]` entries.
//!
//! An inventory names its sources as `[[source]]` entries; `hive scan`, `deploy` and `rollout`
//! resolve them once, at start, with the inventory's `[defaults]` for transport and credentials,
//! and a rollout journals the resolved list so that `hive resume` works on the same hosts even if
//! the directory changed in between.
//!
//! ```toml
//! [defaults]
//! credential = "env:HIVE_PASSWORD"
//!
//! [[source]]
//! kind = "ad"
//! ldap = "ldaps://dc01.corp.example"
//! base = "OU=Servers,DC=corp,DC=example"
//! bind_dn = "svc-hive@corp.example"
//! bind_credential = "env:HIVE_AD_PASSWORD"
//! ca_file = "/etc/hive/corp-ca.pem"
//! os = "Windows Server*"
//! rule = [{ ou = "Web", group = "web" }, { member_of = "Patch-Canary", group = "canary" }]
//!
//! [[source]]
//! kind = "range"
//! range = "10.1.2.0/24"
//! groups = ["lab"]
//!
//! [[source]]
//! kind = "hosts-file"
//! path = "hosts.txt"               # relative to the inventory file
//! ```

pub mod ad;
pub mod list;
pub mod listen;
pub mod machines;
pub mod range;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::inventory::{
    CredentialRef, Host, InventoryError, InventoryFile, SecretSource, resolve_reference,
};

pub use crate::inventory::sources::{HostsFileSource, RangeSource, SourceSpec};

/// Targets given on the command line (`--range`, `--hosts-file`): they stand instead of the
/// inventory's hosts and sources, whose `[defaults]` they take.
#[derive(Debug, Clone, Default)]
pub struct CommandLineTargets {
    pub ranges: Vec<String>,
    pub hosts_files: Vec<PathBuf>,
    /// Raises the range limit ([`range::DEFAULT_MAX_HOSTS`]).
    pub max_hosts: Option<usize>,
}

impl CommandLineTargets {
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.hosts_files.is_empty()
    }
}

/// Where a host came from: said in errors (a duplicate names both places) and in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Inventory(PathBuf),
    /// A computer object: its DN and the OS the directory records for it.
    Directory {
        url: String,
        dn: String,
        os: String,
    },
    Range(String),
    HostsFile {
        path: PathBuf,
        line: usize,
    },
    /// A folder of the repository's `machines/` (HIVE's list of targets).
    Machines(PathBuf),
}

impl Origin {
    /// Hosts of an address range may simply not exist: those are probed before any work.
    pub fn is_range(&self) -> bool {
        matches!(self, Origin::Range(_))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Inventory(p) => write!(f, "[[host]] of {}", p.display()),
            Origin::Directory { url, dn, os } if os.trim().is_empty() => {
                write!(f, "directory {url} ({dn})")
            }
            Origin::Directory { url, dn, os } => write!(f, "directory {url} ({dn}; {os})"),
            Origin::Range(r) => write!(f, "range {r}"),
            Origin::HostsFile { path, line } => write!(f, "{} line {line}", path.display()),
            Origin::Machines(dir) => write!(f, "machine folder {}", dir.display()),
        }
    }
}

/// Why the targets could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Directory(#[from] ad::AdError),
    #[error(transparent)]
    Range(#[from] range::RangeError),
    #[error(transparent)]
    List(#[from] list::ListError),
    #[error("host `{host}` from {origin}: {message}")]
    Host {
        host: String,
        origin: String,
        message: String,
    },
    #[error(
        "host `{host}` comes from two places: {first} and {second} (host names are \
         case-insensitive; remove one, or narrow a source)"
    )]
    Duplicate {
        host: String,
        first: String,
        second: String,
    },
    #[error(
        "inventory {}: no [[host]] entries and no source found a host (or name the targets with \
         --range or --hosts-file)",
        .0.display()
    )]
    Empty(PathBuf),
}

/// The hosts of a run, each with where it came from, in order: the inventory's `[[host]]`s, then
/// each source in file order.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub hosts: Vec<(Host, Origin)>,
}

impl Targets {
    fn add(&mut self, host: Host, origin: Origin) -> Result<(), TargetError> {
        if let Some((_, first)) = self
            .hosts
            .iter()
            .find(|(h, _)| h.name.eq_ignore_ascii_case(&host.name))
        {
            return Err(TargetError::Duplicate {
                host: host.name,
                first: first.to_string(),
                second: origin.to_string(),
            });
        }
        self.hosts.push((host, origin));
        Ok(())
    }

    /// A host a source found, with the inventory's defaults; a bad one names its origin.
    fn add_found(
        &mut self,
        file: &InventoryFile,
        name: &str,
        address: &str,
        groups: &[String],
        origin: Origin,
    ) -> Result<(), TargetError> {
        let host = file
            .source_host(name, address, groups.iter().cloned())
            .map_err(|message| TargetError::Host {
                host: name.to_string(),
                origin: origin.to_string(),
                message,
            })?;
        self.add(host, origin)
    }

    /// Whether any host came from a source rather than a `[[host]]` (and so belongs in a run's
    /// journal, since asking the source again may give another answer).
    pub fn from_sources(&self) -> bool {
        self.hosts
            .iter()
            .any(|(_, o)| !matches!(o, Origin::Inventory(_)))
    }

    pub fn records(&self) -> Vec<TargetRecord> {
        self.hosts
            .iter()
            .map(|(h, o)| TargetRecord::of(h, o))
            .collect()
    }
}

/// Resolve an inventory's hosts and sources, or the command line's targets instead.
pub async fn resolve(
    file: &InventoryFile,
    cli: &CommandLineTargets,
    prompter: &mut dyn SecretSource,
) -> Result<Targets, TargetError> {
    let mut targets = Targets::default();
    if !cli.is_empty() {
        let limit = cli.max_hosts.unwrap_or(range::DEFAULT_MAX_HOSTS);
        for r in &cli.ranges {
            add_range(&mut targets, file, r, limit, &[])?;
        }
        for path in &cli.hosts_files {
            add_list(&mut targets, file, path, &[])?;
        }
        return Ok(targets);
    }
    for h in &file.inventory.hosts {
        targets.add(h.clone(), Origin::Inventory(file.path.clone()))?;
    }
    let folder = file.path.parent().unwrap_or(Path::new("."));
    for source in &file.sources {
        match source {
            SourceSpec::Range(r) => add_range(
                &mut targets,
                file,
                &r.range,
                r.max_hosts.unwrap_or(range::DEFAULT_MAX_HOSTS),
                &r.groups,
            )?,
            SourceSpec::HostsFile(l) => {
                add_list(&mut targets, file, &folder.join(&l.path), &l.groups)?
            }
            SourceSpec::Ad(a) => add_directory(&mut targets, file, a, prompter).await?,
        }
    }
    if targets.hosts.is_empty() {
        return Err(TargetError::Empty(file.path.clone()));
    }
    Ok(targets)
}

fn add_range(
    targets: &mut Targets,
    file: &InventoryFile,
    text: &str,
    limit: usize,
    groups: &[String],
) -> Result<(), TargetError> {
    for addr in range::expand(text, limit)? {
        let name = addr.to_string();
        let origin = Origin::Range(text.trim().to_string());
        targets.add_found(file, &name, &name, groups, origin)?;
    }
    Ok(())
}

fn add_list(
    targets: &mut Targets,
    file: &InventoryFile,
    path: &Path,
    groups: &[String],
) -> Result<(), TargetError> {
    for (line, name) in list::read(path)? {
        let origin = Origin::HostsFile {
            path: path.to_path_buf(),
            line,
        };
        targets.add_found(file, &name, &name, groups, origin)?;
    }
    Ok(())
}

async fn add_directory(
    targets: &mut Targets,
    file: &InventoryFile,
    source: &ad::AdSource,
    prompter: &mut dyn SecretSource,
) -> Result<(), TargetError> {
    for c in query_directory(source, prompter).await? {
        let origin = Origin::Directory {
            url: source.ldap.clone(),
            dn: c.dn.clone(),
            os: format!("{} {}", c.os, c.os_version).trim().to_string(),
        };
        let groups: Vec<String> = c.groups.iter().cloned().collect();
        targets.add_found(file, &c.name, &c.dns_host_name, &groups, origin)?;
    }
    Ok(())
}

/// Read the bind password and ask the directory for its computers.
pub async fn query_directory(
    source: &ad::AdSource,
    prompter: &mut dyn SecretSource,
) -> Result<Vec<ad::Computer>, ad::AdError> {
    source.check()?;
    let credential = |message: String| ad::AdError::Credential {
        bind_dn: source.bind_dn.clone(),
        reference: source.bind_credential.clone(),
        message,
    };
    let reference = CredentialRef::parse(&source.bind_credential).map_err(credential)?;
    if matches!(
        reference,
        CredentialRef::SshKey(_)
            | CredentialRef::SshAgent
            | CredentialRef::Kerberos(_)
            | CredentialRef::Certificate(_)
    ) {
        return Err(credential(
            "an SSH key, a Kerberos logon or a client certificate is not a bind password: use \
             env:VAR, file:/path or prompt"
                .into(),
        ));
    }
    let label = format!("bind password for {}", source.bind_dn);
    let password = resolve_reference(&reference, &label, prompter).map_err(credential)?;
    source.computers(&password).await
}

/// A resolved host as a run's journal keeps it: everything but the secret, which is only ever a
/// reference here too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecord {
    #[serde(flatten)]
    pub host: Host,
    /// Where it came from (a directory DN, a range, a list line).
    pub origin: String,
}

impl TargetRecord {
    pub fn of(h: &Host, origin: &Origin) -> TargetRecord {
        TargetRecord {
            host: h.clone(),
            origin: origin.to_string(),
        }
    }

    /// The host again, as the run saw it when it started.
    pub fn host(&self) -> Result<Host, String> {
        crate::inventory::validate_host_name(&self.host.name)?;
        Ok(self.host.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Transport;

    struct NoPrompt;
    impl SecretSource for NoPrompt {
        fn prompt(&mut self, _: &str) -> Result<crate::inventory::Secret, String> {
            Err("no terminal".into())
        }
    }

    fn resolve_text(text: &str, dir: &Path) -> Result<Targets, TargetError> {
        let path = dir.join("inv.toml");
        let file = InventoryFile::parse(text, &path)?;
        futures::executor::block_on(resolve(
            &file,
            &CommandLineTargets::default(),
            &mut NoPrompt,
        ))
    }

    #[test]
    fn ranges_and_lists_take_the_inventory_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts.txt"), "# lab\nweb09\n10.9.9.9\n").unwrap();
        let t = resolve_text(
            "[defaults]\ntransport = \"ssh\"\nuser = \"admin\"\ncredential = \"env:PW\"\n\
             [[host]]\nname = \"db01\"\ntransport = \"winrm-http\"\n\
             [[source]]\nkind = \"range\"\nrange = \"10.1.2.4/30\"\ngroups = [\"lab\"]\n\
             [[source]]\nkind = \"hosts-file\"\npath = \"hosts.txt\"\n",
            dir.path(),
        )
        .unwrap();
        let names: Vec<&str> = t.hosts.iter().map(|(h, _)| h.name.as_str()).collect();
        assert_eq!(names, ["db01", "10.1.2.5", "10.1.2.6", "web09", "10.9.9.9"]);
        let (h, o) = &t.hosts[1];
        assert_eq!(
            (h.transport, h.port, h.user.as_str(), h.address.as_str()),
            (Transport::Ssh, 22, "admin", "10.1.2.5")
        );
        assert!(h.groups.contains("lab") && o.is_range());
        assert!(t.hosts[3].1.to_string().ends_with("hosts.txt line 2"));
        assert!(t.from_sources());
        let back = t.records()[1].host().unwrap();
        assert_eq!(&back, h);
    }

    #[test]
    fn duplicate_names_across_sources_name_both_places() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts.txt"), "WEB01\n").unwrap();
        let err = resolve_text(
            "[defaults]\ncredential = \"prompt\"\n[[host]]\nname = \"web01\"\n\
             [[source]]\nkind = \"hosts-file\"\npath = \"hosts.txt\"\n",
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`WEB01` comes from two places")
                && err.contains("[[host]] of")
                && err.contains("hosts.txt line 1"),
            "{err}"
        );
    }

    #[test]
    fn a_too_large_range_source_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[defaults]\ncredential = \"prompt\"\n[[source]]\nkind = \"range\"\nrange = \"10.1.0.0/22\"\n";
        let err = resolve_text(text, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("1022 addresses") && err.contains("limit of 256"),
            "{err}"
        );
        let allowed = text.replace("/22\"\n", "/22\"\nmax_hosts = 1022\n");
        assert_eq!(
            resolve_text(&allowed, dir.path()).unwrap().hosts.len(),
            1022
        );
    }

    #[test]
    fn command_line_targets_replace_the_inventory_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let file = InventoryFile::parse(
            "[defaults]\ncredential = \"prompt\"\n[[host]]\nname = \"web01\"\n",
            &dir.path().join("inv.toml"),
        )
        .unwrap();
        let cli = CommandLineTargets {
            ranges: vec!["10.1.2.10-10.1.2.12".into()],
            ..Default::default()
        };
        let t = futures::executor::block_on(resolve(&file, &cli, &mut NoPrompt)).unwrap();
        let names: Vec<&str> = t.hosts.iter().map(|(h, _)| h.name.as_str()).collect();
        assert_eq!(names, ["10.1.2.10", "10.1.2.11", "10.1.2.12"]);
        let cli = CommandLineTargets {
            ranges: vec!["10.1.0.0/16".into()],
            ..Default::default()
        };
        let err = futures::executor::block_on(resolve(&file, &cli, &mut NoPrompt))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--max-hosts 65534"), "{err}");
    }

    #[test]
    fn an_inventory_of_defaults_alone_needs_command_line_targets() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_text("[defaults]\ncredential = \"prompt\"\n", dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no [[host]] entries") && err.contains("--range"),
            "{err}"
        );
    }

    #[test]
    fn sources_are_checked_when_the_inventory_is_read() {
        let dir = tempfile::tempdir().unwrap();
        for (text, why) in [
            ("[[source]]\nkind = \"dns\"\n", "dns"),
            (
                "[[source]]\nkind = \"range\"\nrange = \"10.0.0.0/30\"\ncolour = 1\n",
                "colour",
            ),
        ] {
            let err = resolve_text(text, dir.path()).unwrap_err().to_string();
            assert!(err.contains(why) && err.contains("inv.toml"), "{err}");
        }
    }
}
