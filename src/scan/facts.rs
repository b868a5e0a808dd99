//! What a scan learned about one host: the facts every detection rule is evaluated against.
//!
//! Facts are gathered in one round trip (see `probe`) and then evaluated offline, so the same facts
//! can be re-evaluated against a newer catalog, stored in a report, or built by hand in a test.
//!
//! Every lookup distinguishes "asked and absent" from "never asked": a registry key the probe looked
//! for and did not find means *patch not found*, but a key the probe was never asked about means
//! *cannot tell*. Confusing the two is how detection lies.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::catalog::model::{Kb, Version};

/// A product the host runs, as the probe identified it (the OS itself, IIS, IE, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledProduct {
    /// The product's name as Windows reports it (`Windows 2000 Server`, `Internet Information
    /// Services 5.0`, `Windows Server 2019 Datacenter`).
    pub name: String,
    /// Its service pack level (0 for none / "Gold").
    #[serde(default)]
    pub service_pack: u32,
}

/// One file the probe was asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFact {
    /// The VS_FIXEDFILEINFO file version; `None` when the file has no version resource.
    pub version: Option<Version>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// SHA-256, lowercase hex, when it was asked for.
    pub sha256: Option<String>,
}

/// Everything a scan knows about one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// The computer name the host reported (it may differ from the inventory name).
    pub computer_name: String,
    /// `ProductName` from `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion`.
    pub os_name: String,
    /// `EditionID` (`ServerDatacenter`), when Windows has one.
    pub edition: Option<String>,
    /// `InstallationType` (`Server`, `Server Core`), when Windows has one.
    pub installation_type: Option<String>,
    /// major.minor.build.UBR, e.g. `10.0.17763.5458`, or `5.0.2195` on Windows 2000.
    pub build: Option<Version>,
    /// The OS and the other products the probe recognised.
    pub products: Vec<InstalledProduct>,
    /// KBs reported installed (Get-HotFix cross-checked with the registry hotfix keys).
    pub kbs: BTreeSet<Kb>,
    /// Registry keys asked for, by path as the catalog names it (matched case-insensitively):
    /// `None` when the key does not exist, else its values by name.
    pub registry: BTreeMap<String, Option<BTreeMap<String, String>>>,
    /// Files asked for, by path as the catalog names it (`%windir%\system32\idq.dll`, matched
    /// case-insensitively): `None` when the file does not exist.
    pub files: BTreeMap<String, Option<FileFact>>,
    /// Which pending-reboot indicators are set (`CBS RebootPending`, `PendingFileRenameOperations`...).
    #[serde(default)]
    pub pending_reboot: Vec<String>,
    /// Last boot time as the host reported it (UTC, RFC 3339), used to prove a reboot happened.
    pub last_boot: Option<String>,
    /// How file versions were read: `probe` (by the remote command) or `smb` (PE header pulled
    /// over SMB and parsed locally).
    #[serde(default)]
    pub file_source: String,
}

impl HostFacts {
    /// The registry key, if it was asked for: `Some(None)` = asked, absent.
    pub fn registry_key(&self, key: &str) -> Option<Option<&BTreeMap<String, String>>> {
        self.registry
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_ref())
    }

    /// A registry value's data inside a key that exists, matched case-insensitively by name.
    pub fn registry_value<'a>(values: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
        values
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, d)| d.as_str())
    }

    /// The file fact, if it was asked for: `Some(None)` = asked, absent.
    pub fn file(&self, path: &str) -> Option<Option<&FileFact>> {
        self.files
            .iter()
            .find(|(p, _)| p.eq_ignore_ascii_case(path))
            .map(|(_, v)| v.as_ref())
    }

    /// Whether any pending-reboot indicator is set: a patch installed but waiting for a reboot
    /// must not be reported as done.
    pub fn reboot_pending(&self) -> bool {
        !self.pending_reboot.is_empty()
    }
}
