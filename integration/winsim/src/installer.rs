//! Simulated installer packages: files that say what installing them does.
//!
//! A test (or hive's own tests) builds a package with [`Package`], copies the file to a host's disk
//! (directly or over SMB), and runs it through the host's command interpreter like a real hotfix. The
//! file carries a JSON [`PackageManifest`] after a marker: a hotfix `.exe` is a real PE stub with the
//! manifest as its overlay (as self-extracting installers carry their cabinet), a `.msu`/`.cab`
//! starts with the `MSCF` cabinet signature, a `.msi` with the OLE compound-file signature. Only
//! winsim reads the manifest; hive treats the file as opaque bytes, exactly as it would a real one.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pe::{self, Machine, PeSpec, Version};
use crate::registry::RegValue;

/// Separates the carrier bytes from the manifest.
pub const PACKAGE_MARKER: &[u8] = b"\0WINSIM-PACKAGE/1\0";

/// How the package is run, which decides the switches it understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageKind {
    /// A legacy `hotfix.exe`/Update.exe package: `-z` no reboot, `-q` quiet, `-m` unattended.
    #[default]
    HotfixExe,
    /// A `.msu` (expanded with `expand -F:*`, its cabs added with `dism /online /add-package`;
    /// `wusa` refuses over WinRM).
    Msu,
    /// A servicing cabinet, as found inside a `.msu`.
    Cab,
    /// A Windows Installer package run with `msiexec /i`.
    Msi,
    /// `qchain.exe` (Q296861): rewrites `PendingFileRenameOperations` so the highest version wins.
    Qchain,
    /// `spuninst.exe` in a legacy hotfix's `$NtUninstall<ID>$` folder: takes hotfix `id` off
    /// (`-u` unattended, `-q`/`/quiet` quiet, `-z`/`/norestart` no reboot).
    Spuninst,
}

/// What installing a package changes and how it behaves. Field semantics are documented in
/// COMMANDS.md ("Installers").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PackageManifest {
    pub kind: PackageKind,
    /// The hotfix ID recorded as installed (`KB5035845`, `Q300972`); empty for none.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub files: Vec<FileChange>,
    #[serde(default)]
    pub registry: Vec<RegChange>,
    /// Exit code of the 1st, 2nd, ... run on one host; the last repeats. Empty means `[0]`.
    #[serde(default)]
    pub exit_codes: Vec<u32>,
    #[serde(default)]
    pub duration_ms: u64,
    /// The package replaces files in use / needs servicing at boot: a reboot completes it.
    #[serde(default)]
    pub reboot_required: bool,
    /// Whether `-z` / `/norestart` stops the package from rebooting the host itself.
    #[serde(default = "yes")]
    pub honours_no_reboot: bool,
    /// Never exits (a hung installer); only killing the command ends it.
    #[serde(default)]
    pub hangs: bool,
    /// Without a quiet switch (`-q`, `-m`, `/quiet`, `/passive`, `/qn`) the package waits for a
    /// click that never comes, as real installers show UI.
    #[serde(default = "yes")]
    pub needs_quiet_switch: bool,
    /// Free disk the install needs; less free space fails with 112 (ERROR_DISK_FULL).
    #[serde(default)]
    pub disk_bytes: u64,
    /// Build/UBR the host reports once the package is complete (after the reboot, if one is needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sets_build: Option<BuildChange>,
    /// The package rewrites the rename queue like Qchain after queueing its own files (Update.exe
    /// packages from May 2001 on), so chaining it cannot land an older file.
    #[serde(default)]
    pub chains_itself: bool,
    /// Hotfix IDs that must already be installed (e.g. a servicing stack update); otherwise the
    /// package fails with 0x800F0823 (CBS_E_NEW_SERVICING_STACK_REQUIRED).
    #[serde(default)]
    pub requires: Vec<String>,
    /// For a `.msu`: the cabinets `expand -F:*` extracts, in order.
    #[serde(default)]
    pub cabs: Vec<CabEntry>,
    /// For a `.msi`: the product code (`{GUID}`) Windows Installer registers it under, which
    /// `msiexec /x` takes to remove it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_code: Option<String>,
}

fn yes() -> bool {
    true
}

/// One file a package installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Windows path, e.g. `C:\Windows\system32\foo.dll`.
    pub path: String,
    pub version: Version,
    /// The file is loaded by a running process: it can only be replaced at the next boot, through
    /// `PendingFileRenameOperations`.
    #[serde(default)]
    pub in_use: bool,
}

/// One registry value a package writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegChange {
    pub key: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default = "reg_sz")]
    pub kind: String,
    pub value: serde_json::Value,
}

fn reg_sz() -> String {
    "REG_SZ".to_string()
}

impl RegChange {
    pub fn new(key: &str, name: &str, value: &RegValue) -> Self {
        let json = match value {
            RegValue::Sz(s) | RegValue::ExpandSz(s) => serde_json::Value::from(s.as_str()),
            RegValue::MultiSz(v) => serde_json::Value::from(v.clone()),
            RegValue::Dword(v) => serde_json::Value::from(*v),
            RegValue::Qword(v) => serde_json::Value::from(*v),
            RegValue::Binary(b) => {
                serde_json::Value::from(b.iter().map(|x| format!("{x:02X}")).collect::<String>())
            }
        };
        RegChange {
            key: key.into(),
            name: name.into(),
            kind: value.type_name().into(),
            value: json,
        }
    }

    /// The typed value, or why the declared type and the data disagree.
    pub fn to_value(&self) -> Result<RegValue, String> {
        reg_value_from_json(&self.kind, &self.value)
    }
}

/// Converts a (type name, JSON/TOML data) pair into a typed registry value. Shared with the fleet
/// file, which writes registry values the same way.
pub fn reg_value_from_json(kind: &str, value: &serde_json::Value) -> Result<RegValue, String> {
    use serde_json::Value as J;
    let bad = || format!("{kind} value {value} has the wrong shape");
    Ok(match (kind.to_ascii_uppercase().as_str(), value) {
        ("REG_SZ", J::String(s)) => RegValue::Sz(s.clone()),
        ("REG_SZ", J::Number(n)) => RegValue::Sz(n.to_string()),
        ("REG_EXPAND_SZ", J::String(s)) => RegValue::ExpandSz(s.clone()),
        ("REG_MULTI_SZ", J::Array(items)) => RegValue::MultiSz(
            items
                .iter()
                .map(|i| i.as_str().map(str::to_string).ok_or_else(bad))
                .collect::<Result<_, _>>()?,
        ),
        ("REG_DWORD", J::Number(n)) => RegValue::Dword(
            n.as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(bad)?,
        ),
        ("REG_QWORD", J::Number(n)) => RegValue::Qword(n.as_u64().ok_or_else(bad)?),
        ("REG_BINARY", J::String(hex)) => RegValue::Binary(parse_hex(hex).ok_or_else(bad)?),
        _ => return Err(bad()),
    })
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ',')
        .collect();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Build and revision a cumulative update brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildChange {
    pub build: u32,
    pub ubr: u32,
}

/// One cabinet inside a `.msu`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CabEntry {
    /// File name `expand` writes, e.g. `Windows10.0-KB5035845-x64.cab`.
    pub name: String,
    pub manifest: PackageManifest,
}

/// Builds simulated installer files.
///
/// ```
/// use winsim::installer::Package;
/// let bytes = Package::hotfix("Q300972")
///     .file_in_use(r"C:\Windows\system32\foo.dll", "5.0.2195.4000".parse().unwrap())
///     .reboot_required(true)
///     .bytes();
/// assert!(winsim::installer::read_manifest(&bytes).is_some());
/// ```
#[derive(Debug, Clone)]
pub struct Package {
    pub manifest: PackageManifest,
    pub machine: Machine,
    /// Filler bytes before the manifest: real installers are megabytes, and a copy that breaks
    /// in the middle needs a middle.
    pub padding: usize,
}

impl Package {
    fn of(kind: PackageKind, id: &str) -> Self {
        Package {
            manifest: PackageManifest {
                kind,
                id: id.to_string(),
                honours_no_reboot: true,
                needs_quiet_switch: true,
                ..PackageManifest::default()
            },
            machine: Machine::I386,
            padding: 0,
        }
    }
    /// A legacy hotfix `.exe` (e.g. `Q300972_W2K_SP3_x86_en.exe`).
    pub fn hotfix(id: &str) -> Self {
        Self::of(PackageKind::HotfixExe, id)
    }
    /// A `.msu`; add its cabinets with [`Package::cab`].
    pub fn msu(id: &str) -> Self {
        Self::of(PackageKind::Msu, id)
    }
    /// A bare servicing cabinet.
    pub fn cab_file(id: &str) -> Self {
        Self::of(PackageKind::Cab, id)
    }
    pub fn msi(id: &str) -> Self {
        Self::of(PackageKind::Msi, id)
    }
    /// `qchain.exe` itself.
    pub fn qchain() -> Self {
        Self::of(PackageKind::Qchain, "")
    }
    /// The `spuninst.exe` a legacy hotfix `id` leaves in its `$NtUninstall<ID>$` folder.
    pub fn spuninst(id: &str) -> Self {
        Self::of(PackageKind::Spuninst, id)
    }
    /// An MSI's product code (`{GUID}`), what `msiexec /x` removes it by.
    pub fn product_code(mut self, code: &str) -> Self {
        self.manifest.product_code = Some(code.to_string());
        self
    }
    pub fn machine(mut self, machine: Machine) -> Self {
        self.machine = machine;
        self
    }
    pub fn file(mut self, path: &str, version: Version) -> Self {
        self.manifest.files.push(FileChange {
            path: path.into(),
            version,
            in_use: false,
        });
        self
    }
    pub fn file_in_use(mut self, path: &str, version: Version) -> Self {
        self.manifest.files.push(FileChange {
            path: path.into(),
            version,
            in_use: true,
        });
        self
    }
    pub fn registry(mut self, key: &str, name: &str, value: RegValue) -> Self {
        self.manifest
            .registry
            .push(RegChange::new(key, name, &value));
        self
    }
    /// The legacy detection key `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\<id>`
    /// with `Installed=1`, as hfnetchk checks it.
    pub fn hotfix_key(self) -> Self {
        let key = format!(
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\{}",
            self.manifest.id
        );
        self.registry(&key, "Installed", RegValue::Dword(1))
    }
    /// What an Update.exe 6.x package (the Windows XP SP2 / Server 2003 era) leaves in the
    /// registry, the key Microsoft's bulletins tell admins to verify:
    /// `HKLM\SOFTWARE\Microsoft\Updates\<product>\<SP folder>\<id>` (Description, InstalledBy,
    /// Type) with one `Filelist\N` subkey per file (FileName, Version, Location). The SP folder is
    /// the *next* service pack: updates for Server 2003 SP2 file under `SP3`, for XP SP3 under
    /// `SP4`. Call it after the package's [`Package::file`]s.
    pub fn updates_key(mut self, product: &str, sp_folder: &str) -> Self {
        let id = self.manifest.id.clone();
        let key = format!(r"HKLM\SOFTWARE\Microsoft\Updates\{product}\{sp_folder}\{id}");
        let sz = |s: String| RegValue::Sz(s);
        self = self
            .registry(
                &key,
                "Description",
                sz(format!("Security Update for {product} ({id})")),
            )
            .registry(&key, "InstalledBy", sz("Administrator".into()))
            .registry(&key, "Type", sz("Update".into()));
        let files = self.manifest.files.clone();
        for (n, f) in files.iter().enumerate() {
            let entry = format!(r"{key}\Filelist\{n}");
            let (dir, name) = f.path.rsplit_once('\\').unwrap_or(("", f.path.as_str()));
            self = self
                .registry(&entry, "FileName", sz(name.into()))
                .registry(&entry, "Version", sz(f.version.to_string()))
                .registry(&entry, "Location", sz(dir.into()));
        }
        self
    }
    pub fn exit_code(self, code: u32) -> Self {
        self.exit_codes(&[code])
    }
    pub fn exit_codes(mut self, codes: &[u32]) -> Self {
        self.manifest.exit_codes = codes.to_vec();
        self
    }
    pub fn duration(mut self, d: Duration) -> Self {
        self.manifest.duration_ms = d.as_millis() as u64;
        self
    }
    pub fn reboot_required(mut self, yes: bool) -> Self {
        self.manifest.reboot_required = yes;
        self
    }
    pub fn honours_no_reboot(mut self, yes: bool) -> Self {
        self.manifest.honours_no_reboot = yes;
        self
    }
    pub fn hangs(mut self) -> Self {
        self.manifest.hangs = true;
        self
    }
    pub fn needs_quiet_switch(mut self, yes: bool) -> Self {
        self.manifest.needs_quiet_switch = yes;
        self
    }
    pub fn disk_bytes(mut self, n: u64) -> Self {
        self.manifest.disk_bytes = n;
        self
    }
    pub fn sets_build(mut self, build: u32, ubr: u32) -> Self {
        self.manifest.sets_build = Some(BuildChange { build, ubr });
        self
    }
    pub fn chains_itself(mut self) -> Self {
        self.manifest.chains_itself = true;
        self
    }
    pub fn requires(mut self, id: &str) -> Self {
        self.manifest.requires.push(id.to_string());
        self
    }
    /// Makes the file about `bytes` long (filler that does not compress, before the manifest).
    pub fn size(mut self, bytes: usize) -> Self {
        self.padding = bytes;
        self
    }
    /// Adds a cabinet to a `.msu`.
    pub fn cab(mut self, name: &str, cab: Package) -> Self {
        self.manifest.cabs.push(CabEntry {
            name: name.into(),
            manifest: cab.manifest,
        });
        self
    }

    /// The file's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        padded_package_bytes(&self.manifest, self.machine, self.padding)
    }

    /// Writes the file (creating parent folders).
    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.bytes())
    }
}

/// Serialises a manifest into its carrier (PE stub, cabinet or OLE signature).
pub fn package_bytes(manifest: &PackageManifest, machine: Machine) -> Vec<u8> {
    padded_package_bytes(manifest, machine, 0)
}

/// [`package_bytes`] with `padding` filler bytes before the manifest ([`read_manifest`] finds
/// the last marker, so filler never hides it).
pub fn padded_package_bytes(
    manifest: &PackageManifest,
    machine: Machine,
    padding: usize,
) -> Vec<u8> {
    let mut payload = filler(padding);
    payload.extend_from_slice(PACKAGE_MARKER);
    payload.extend(serde_json::to_vec(manifest).unwrap_or_default());
    match manifest.kind {
        PackageKind::HotfixExe | PackageKind::Qchain | PackageKind::Spuninst => {
            let version = Version::new(6, 3, 4, 0);
            let spec = PeSpec {
                machine,
                kind: pe::ImageKind::Exe,
                file_version: version,
                product_version: version,
                strings: vec![
                    ("CompanyName".into(), "Microsoft Corporation".into()),
                    ("FileDescription".into(), description(manifest)),
                ],
                overlay: payload,
            };
            pe::build(&spec)
        }
        PackageKind::Msu | PackageKind::Cab => [b"MSCF\0\0\0\0".as_slice(), &payload].concat(),
        PackageKind::Msi => [
            [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1].as_slice(),
            &payload,
        ]
        .concat(),
    }
}

/// Deterministic bytes that no transport can compress away (xorshift).
fn filler(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn description(m: &PackageManifest) -> String {
    match m.kind {
        PackageKind::Qchain => "Hotfix Chaining Tool".into(),
        PackageKind::Spuninst => format!("Hotfix Uninstall ({})", m.id),
        _ => format!("Hotfix for Windows ({})", m.id),
    }
}

/// The manifest a package file carries, if it is one.
pub fn read_manifest(bytes: &[u8]) -> Option<PackageManifest> {
    let at = bytes
        .windows(PACKAGE_MARKER.len())
        .rposition(|w| w == PACKAGE_MARKER)?;
    serde_json::from_slice(&bytes[at + PACKAGE_MARKER.len()..]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_carrier_round_trips_its_manifest() {
        for p in [
            Package::hotfix("Q1"),
            Package::msu("KB2"),
            Package::msi("KB3"),
            Package::qchain(),
        ] {
            let p = p
                .registry(r"HKLM\SOFTWARE\x", "B", RegValue::Binary(vec![1, 0xAB]))
                .exit_codes(&[1618, 0]);
            let m = read_manifest(&p.bytes()).unwrap();
            assert_eq!(m, p.manifest);
            assert_eq!(
                m.registry[0].to_value().unwrap(),
                RegValue::Binary(vec![1, 0xAB])
            );
        }
        let exe = Package::hotfix("Q1").bytes();
        assert!(pe::read_version(&exe).is_ok(), "a hotfix exe is a real PE");
        let big = Package::hotfix("Q1").exit_code(3010).size(1 << 20);
        let bytes = big.bytes();
        assert!(bytes.len() > 1 << 20 && pe::read_version(&bytes).is_ok());
        assert_eq!(read_manifest(&bytes).unwrap(), big.manifest);
        assert_eq!(read_manifest(b"MZ just a file"), None);
    }

    #[test]
    fn registry_json_must_match_the_declared_type() {
        let j = serde_json::json!("x");
        assert!(reg_value_from_json("REG_DWORD", &j).is_err());
        assert_eq!(
            reg_value_from_json("reg_sz", &j).unwrap(),
            RegValue::Sz("x".into())
        );
        assert!(reg_value_from_json("REG_DWORD", &serde_json::json!(1u64 << 40)).is_err());
    }
}
