//! Targets from the repository's `machines/` folder, as HIVE had them: "to add a target machine,
//! add a subfolder named for its NetBIOS name". An admin who ran HIVE keeps doing exactly that.
//!
//! How to reach the machines comes from an optional `machines/defaults.toml` — the keys of an
//! inventory's `[defaults]` (`transport`, `credential`, `user`, `port`, `smb_*`), plus `groups`
//! for every machine and the inventory's `[group.NAME]` / `[group_defaults]` tables — and, for
//! the exceptions, a `host.toml` in a machine's folder beside its `lastrun.log`, with the keys of
//! an inventory `[[host]]` (its `groups` replace the default ones; its name is the folder's).
//!
//! ```toml
//! # machines/defaults.toml
//! credential = "env:HIVE_PASSWORD"
//! groups = ["web"]
//!
//! # machines/WEB01/host.toml
//! address = "web01.corp.example"
//! groups = ["canary", "web"]
//! ```
//!
//! A folder whose name is no valid host name (`WEB 03`, `old!`) is reported, never guessed at: it
//! is left out of the run and named, so the admin renames it. Every file is checked as an
//! inventory is (inline passwords refused, unknown keys named), and an error names the file.

use std::path::{Path, PathBuf};

use super::{Origin, TargetError, Targets};
use crate::inventory::{InventoryError, InventoryFile};

/// What the machines folder gives a run.
#[derive(Debug, Clone)]
pub struct MachineTargets {
    /// The folder's hosts as an inventory (its group settings included).
    pub file: InventoryFile,
    pub targets: Targets,
    /// Folders left out, and why.
    pub refused: Vec<(PathBuf, String)>,
}

/// Keys of `defaults.toml` that are not `[defaults]` keys.
const INVENTORY_KEYS: [&str; 2] = ["group", "group_defaults"];

fn read_table(path: &Path) -> Result<Option<toml::Table>, InventoryError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .parse::<toml::Table>()
            .map(Some)
            .map_err(|e| InventoryError::Syntax {
                path: path.to_path_buf(),
                message: e.message().trim_end().to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(InventoryError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Read the machines folder (`machines`, `Machines`, any case) of a repository.
pub fn from_machines(machines: &Path) -> Result<MachineTargets, TargetError> {
    let defaults_path = crate::folders::child(machines, "defaults.toml");
    let mut defaults = read_table(&defaults_path)?.unwrap_or_default();
    let mut inventory = toml::Table::new();
    for key in INVENTORY_KEYS {
        if let Some(v) = defaults.remove(key) {
            inventory.insert(key.to_string(), v);
        }
    }
    let groups = defaults.remove("groups");
    inventory.insert("defaults".into(), toml::Value::Table(defaults));

    let mut names = Vec::new();
    let entries = std::fs::read_dir(machines).map_err(|source| InventoryError::Read {
        path: machines.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| InventoryError::Read {
            path: machines.to_path_buf(),
            source,
        })?;
        if entry.path().is_dir() {
            names.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            ));
        }
    }
    names.sort();

    let mut refused = Vec::new();
    let mut hosts = Vec::new();
    let mut origins = Vec::new();
    for (name, dir) in names {
        if let Err(why) = crate::inventory::validate_host_name(&name) {
            refused.push((dir, why));
            continue;
        }
        let host_path = crate::folders::child(&dir, "host.toml");
        let mut host = read_table(&host_path)?.unwrap_or_default();
        if host.contains_key("name") {
            return Err(InventoryError::Host {
                path: host_path,
                host: name,
                message: "`name` comes from the folder's name; remove it".into(),
            }
            .into());
        }
        host.insert("name".into(), toml::Value::String(name.clone()));
        if !host.contains_key("groups")
            && let Some(g) = &groups
        {
            host.insert("groups".into(), g.clone());
        }
        // Checked alone first, so an error names the file that holds the mistake.
        let mut one = inventory.clone();
        one.insert(
            "host".into(),
            toml::Value::Array(vec![toml::Value::Table(host.clone())]),
        );
        let checked_in = if host_path.is_file() {
            &host_path
        } else {
            &defaults_path
        };
        InventoryFile::parse(&one.to_string(), checked_in)?;
        hosts.push(toml::Value::Table(host));
        origins.push(dir);
    }
    inventory.insert("host".into(), toml::Value::Array(hosts));
    let file = InventoryFile::parse(&inventory.to_string(), &defaults_path)?;
    let mut targets = Targets::default();
    for (host, dir) in file.inventory.hosts.iter().zip(origins) {
        targets.add(host.clone(), Origin::Machines(dir))?;
    }
    Ok(MachineTargets {
        file,
        targets,
        refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Transport;

    fn write(root: &Path, path: &str, text: &str) {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn machine_folders_are_the_hosts_with_defaults_and_exceptions() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("Machines");
        write(
            &m,
            "defaults.toml",
            "credential = \"env:HIVE_PASSWORD\"\ngroups = [\"web\"]\n\
             [group.canary]\n",
        );
        write(&m, "WEB01/lastrun.log", "");
        write(
            &m,
            "WEB02/HOST.TOML",
            "address = \"10.0.0.2\"\ntransport = \"ssh\"\ngroups = [\"canary\"]\n",
        );
        write(&m, "WEB 03/lastrun.log", "");
        write(&m, "notes.txt", "not a machine");
        let got = from_machines(&m).unwrap();
        let hosts: Vec<_> = got.targets.hosts.iter().map(|(h, _)| h).collect();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].name, "WEB01");
        assert_eq!(hosts[0].address, "WEB01");
        assert!(hosts[0].groups.contains("web"));
        assert_eq!(hosts[1].address, "10.0.0.2");
        assert_eq!(hosts[1].transport, Transport::Ssh);
        assert_eq!(
            hosts[1].groups.iter().collect::<Vec<_>>(),
            ["canary"],
            "a host.toml's groups replace the defaults"
        );
        assert_eq!(got.refused.len(), 1);
        assert!(got.refused[0].0.ends_with("WEB 03"));
        assert!(
            got.targets.from_sources(),
            "a run journals its machine list"
        );
        assert!(got.file.inventory.policy.groups.contains_key("canary"));
        assert!(
            got.targets.hosts[0]
                .1
                .to_string()
                .contains("Machines/WEB01"),
            "{}",
            got.targets.hosts[0].1
        );
    }

    #[test]
    fn a_bad_host_toml_is_named_and_inline_passwords_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("machines");
        write(&m, "defaults.toml", "credential = \"env:X\"\n");
        write(&m, "WEB01/host.toml", "adress = \"x\"\n");
        let err = from_machines(&m).unwrap_err().to_string();
        assert!(err.contains("WEB01/host.toml"), "{err}");
        assert!(err.contains("adress"), "{err}");
        write(&m, "WEB01/host.toml", "password = \"hunter2\"\n");
        let err = from_machines(&m).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        write(&m, "WEB01/host.toml", "");
        std::fs::remove_file(m.join("defaults.toml")).unwrap();
        let err = from_machines(&m).unwrap_err().to_string();
        assert!(err.contains("no credential reference"), "{err}");
    }
}
