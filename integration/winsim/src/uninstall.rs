//! What uninstalling a package puts back, and where Windows keeps what it needs to do so.
//!
//! Windows can only take a patch off because the install kept what it replaced: a legacy hotfix
//! copies the files it replaces into `%windir%\$NtUninstall<ID>$\` beside `spuninst\spuninst.exe`
//! (delete that folder and the hotfix can no longer be removed); a servicing package keeps its
//! superseded components in the component store and is known to DISM by a package identity
//! (`Package_for_KB5000002~31bf3856ad364e35~amd64~~10.0.1.0`), unless it is permanent; an MSI is
//! known to Windows Installer by its product code. An `Undo` is taken right before a package's
//! changes land and holds exactly that: the files' previous bytes, the registry values' previous
//! data, whether the hotfix ID was already listed, the build before a cumulative update. Putting
//! it back restores the host as the first scan found it — files in use are put back at the next
//! boot through `PendingFileRenameOperations`, as an uninstall on a live server does.

use std::collections::BTreeMap;

use crate::installer::{BuildChange, Package, PackageKind, PackageManifest};
use crate::model::{self, State, WinHost};
use crate::pe;
use crate::registry::RegValue;

/// The DISM package identity's fixed part: Microsoft's public key token.
const PUBLIC_KEY_TOKEN: &str = "31bf3856ad364e35";

/// One file as it was before a package replaced it.
#[derive(Debug, Clone)]
pub(crate) struct FileBackup {
    pub path: String,
    /// `None`: the package created the file.
    pub before: Option<Vec<u8>>,
    /// The file is loaded by a running process: putting it back waits for the next boot.
    pub in_use: bool,
}

/// One registry value as it was before a package wrote it.
#[derive(Debug, Clone)]
pub(crate) struct ValueBackup {
    pub key: String,
    pub name: String,
    pub before: Option<RegValue>,
    /// The package created the key itself (removed again with the value).
    pub key_created: bool,
}

/// Everything needed to take one installed package off again.
#[derive(Debug, Clone)]
pub(crate) struct Undo {
    pub id: String,
    pub kind: PackageKind,
    pub files: Vec<FileBackup>,
    pub registry: Vec<ValueBackup>,
    /// The hotfix ID was listed before this package (another package or the image had it).
    pub had_id: bool,
    /// Build and UBR before a cumulative update set new ones.
    pub build_before: Option<BuildChange>,
    pub reboot_required: bool,
    /// DISM's name for a servicing package.
    pub package_name: Option<String>,
    /// Windows Installer's name for an MSI product.
    pub product_code: Option<String>,
}

impl Undo {
    /// What `m` is about to change on the host, as it is now. Taken just before the changes are
    /// applied, under the same lock.
    pub(crate) fn before(host: &WinHost, st: &State, m: &PackageManifest) -> Undo {
        let mut files: Vec<FileBackup> = Vec::new();
        for f in &m.files {
            if WinHost::foreign_drive(&f.path) || files.iter().any(|b| b.path == f.path) {
                continue;
            }
            let bytes = std::fs::read(host.host_path(&f.path)).ok();
            let current = bytes
                .as_deref()
                .and_then(|b| pe::read_version(b).ok())
                .map(|v| v.file_version);
            // The install leaves a file at this version or newer alone: nothing to put back.
            if current.is_some_and(|c| c >= f.version) {
                continue;
            }
            files.push(FileBackup {
                path: f.path.clone(),
                in_use: f.in_use && bytes.is_some(),
                before: bytes,
            });
        }
        let registry = m
            .registry
            .iter()
            .map(|r| ValueBackup {
                key: r.key.clone(),
                name: r.name.clone(),
                before: st.registry.get(&r.key, &r.name).cloned(),
                key_created: !st.registry.key_exists(&r.key),
            })
            .collect();
        Undo {
            id: m.id.to_ascii_uppercase(),
            kind: m.kind,
            files,
            registry,
            had_id: st.kbs.contains(&m.id.to_ascii_uppercase()),
            build_before: m.sets_build.and_then(|_| current_build(st)),
            reboot_required: m.reboot_required,
            package_name: (m.kind == PackageKind::Cab).then(|| package_name(host, &m.id)),
            product_code: m
                .product_code
                .clone()
                .filter(|_| m.kind == PackageKind::Msi),
        }
    }
}

/// The build and UBR the registry reports now.
fn current_build(st: &State) -> Option<BuildChange> {
    let build = match st.registry.get(model::CURRENT_VERSION, "CurrentBuild") {
        Some(RegValue::Sz(s)) => s.parse().ok()?,
        _ => return None,
    };
    let ubr = match st.registry.get(model::CURRENT_VERSION, "UBR") {
        Some(RegValue::Dword(u)) => *u,
        _ => 0,
    };
    Some(BuildChange { build, ubr })
}

/// `Package_for_<ID>~31bf3856ad364e35~<arch>~~10.0.1.0`, as `dism /Get-Packages` lists it.
pub(crate) fn package_name(host: &WinHost, id: &str) -> String {
    let arch = match host.machine {
        pe::Machine::Amd64 => "amd64",
        pe::Machine::I386 => "x86",
    };
    format!("Package_for_{id}~{PUBLIC_KEY_TOKEN}~{arch}~~10.0.1.0")
}

/// `%windir%\$NtUninstall<ID>$`: the uninstall folder of a legacy hotfix.
pub fn nt_uninstall_dir(host: &WinHost, id: &str) -> String {
    format!(r"{}\$NtUninstall{id}$", host.system_root)
}

/// Keeps `undo` for a package whose changes just landed. A legacy hotfix also gets its
/// `$NtUninstall<ID>$` folder: the replaced files and `spuninst\spuninst.exe`.
pub(crate) fn keep(host: &WinHost, st: &mut State, undo: Undo) {
    if undo.id.is_empty() {
        return;
    }
    if undo.kind == PackageKind::HotfixExe {
        let dir = nt_uninstall_dir(host, &undo.id);
        let spuninst = Package::spuninst(&undo.id).machine(host.machine);
        let _ = spuninst.write_to(&host.host_path(&format!(r"{dir}\spuninst\spuninst.exe")));
        for f in &undo.files {
            let (Some(before), Some(name)) = (&f.before, f.path.rsplit('\\').next()) else {
                continue;
            };
            let _ = std::fs::write(host.host_path(&format!(r"{dir}\{name}")), before);
        }
    }
    if let Some(code) = &undo.product_code {
        let _ = st.registry.set(
            &format!(r"{MSI_UNINSTALL}\{code}"),
            "DisplayName",
            RegValue::Sz(undo.id.clone()),
        );
    }
    st.undo.insert(undo.id.clone(), undo);
}

/// Where Windows Installer lists installed products, one key per product code.
const MSI_UNINSTALL: &str = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall";

/// How taking a package off ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removed {
    /// Everything is back.
    Done,
    /// Files in use (or servicing) are put back at the next boot.
    AtNextBoot,
}

/// Puts back what `undo` kept: files (in use ones at the next boot), registry values, the hotfix
/// list, the build; removes the `$NtUninstall$` folder of a legacy hotfix.
pub(crate) fn put_back(host: &WinHost, st: &mut State, undo: &Undo) -> Removed {
    let mut at_boot = undo.reboot_required;
    for f in undo.files.iter().rev() {
        let target = host.host_path(&f.path);
        match (&f.before, f.in_use) {
            (Some(bytes), true) => {
                st.temp_serial += 1;
                let temp = format!("{}.uninstall-{}.old", f.path, st.temp_serial);
                if std::fs::write(host.host_path(&temp), bytes).is_ok() {
                    queue_rename(st, &temp, &f.path);
                    at_boot = true;
                }
            }
            (Some(bytes), false) => {
                let _ = std::fs::write(&target, bytes);
            }
            (None, _) => {
                let _ = std::fs::remove_file(&target);
            }
        }
    }
    for r in undo.registry.iter().rev() {
        match &r.before {
            Some(v) => {
                let _ = st.registry.set(&r.key, &r.name, v.clone());
            }
            None => {
                st.registry.delete_value(&r.key, &r.name);
                if r.key_created && st.registry.values(&r.key).is_none_or(<[_]>::is_empty) {
                    st.registry.delete_key(&r.key);
                }
            }
        }
    }
    if !undo.had_id {
        st.kbs.remove(&undo.id);
    }
    if let Some(b) = undo.build_before {
        if at_boot {
            st.pending_build = Some(b);
        } else {
            model::set_build(&mut st.registry, b);
        }
    }
    if at_boot {
        mark_reboot_pending(st, undo.kind);
    }
    if let Some(code) = &undo.product_code {
        st.registry.delete_key(&format!(r"{MSI_UNINSTALL}\{code}"));
    }
    if undo.kind == PackageKind::HotfixExe {
        let _ = std::fs::remove_dir_all(host.host_path(&nt_uninstall_dir(host, &undo.id)));
    }
    if at_boot {
        Removed::AtNextBoot
    } else {
        Removed::Done
    }
}

/// The pending-reboot marker a package of `kind` leaves when it needs the boot to finish:
/// servicing packages CBS `RebootPending`, hotfix `.exe` `UpdateExeVolatile=1`.
pub(crate) fn mark_reboot_pending(st: &mut State, kind: PackageKind) {
    match kind {
        PackageKind::Cab | PackageKind::Msu => {
            let _ = st.registry.create_key(model::CBS_REBOOT_PENDING);
        }
        PackageKind::HotfixExe => {
            let _ = st
                .registry
                .set(model::UPDATES, "UpdateExeVolatile", RegValue::Dword(1));
        }
        _ => {}
    }
}

/// Appends one rename to `PendingFileRenameOperations` (`\??\source`, `!\??\destination`).
pub(crate) fn queue_rename(st: &mut State, source: &str, destination: &str) {
    let mut items = match st.registry.get(model::SESSION_MANAGER, model::PFRO) {
        Some(RegValue::MultiSz(v)) => v.clone(),
        _ => Vec::new(),
    };
    items.push(format!(r"\??\{source}"));
    items.push(format!(r"!\??\{destination}"));
    let _ = st.registry.set(
        model::SESSION_MANAGER,
        model::PFRO,
        RegValue::MultiSz(items),
    );
}

/// The servicing packages DISM lists, by package name (installed through `/add-package`).
pub(crate) fn dism_packages(st: &State) -> BTreeMap<String, &Undo> {
    st.undo
        .values()
        .filter_map(|u| u.package_name.clone().map(|n| (n, u)))
        .collect()
}
