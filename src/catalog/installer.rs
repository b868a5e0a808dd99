//! How a patch's installer runs unattended, and what its exit codes mean.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How to run a patch's installer unattended on the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstallerRecipe {
    /// The installer technology.
    pub kind: InstallerKind,
    /// Arguments after the installer path (`-z -q -m` for a legacy hotfix.exe).
    #[serde(default)]
    pub arguments: Vec<String>,
    /// What each exit code means; codes not listed are failures.
    #[serde(default)]
    pub exit_codes: BTreeMap<u32, ExitMeaning>,
    /// Whether several of these can be installed one after the other before one reboot.
    pub chainable: bool,
    /// Whether qchain.exe must run after a chain of these (NT4/Windows 2000 hotfix.exe before
    /// Update.exe got qchain built in, May 2001): otherwise an OLDER file can win the queued
    /// replacement at reboot.
    pub needs_qchain: bool,
    /// For an `.msi`: the product code (`{GUID}`, from the package's Property table) that
    /// Windows Installer registers it under. `hive rollback` removes the product with
    /// `msiexec /x {ProductCode}`; without it an MSI cannot be taken off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_code: Option<String>,
    /// For a legacy hotfix: how `hive rollback` takes it off. `spuninst` (the default) runs the
    /// `spuninst.exe` the install left in `$NtUninstall<ID>$`; `package` runs the hotfix package
    /// itself with `-y -z -q`, which NT4/Windows 2000-era packages support (they put back the same
    /// folder's files) and which is the only way for those that left no `spuninst` folder.
    #[serde(default, skip_serializing_if = "UninstallVia::is_default")]
    pub uninstall: UninstallVia,
}

/// How a legacy hotfix comes off (see [`InstallerRecipe::uninstall`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UninstallVia {
    #[default]
    Spuninst,
    Package,
}

impl UninstallVia {
    fn is_default(&self) -> bool {
        *self == UninstallVia::Spuninst
    }
}

impl InstallerRecipe {
    /// The exit codes every Windows installer of the family shares (see patching notes).
    fn common_exit_codes() -> BTreeMap<u32, ExitMeaning> {
        BTreeMap::from([
            (0, ExitMeaning::Success),
            (3010, ExitMeaning::RebootRequired),
            (0x0024_0005, ExitMeaning::RebootRequired),
            (1641, ExitMeaning::RebootInitiated),
            (0x0024_0006, ExitMeaning::AlreadyInstalled),
            (0x8024_0017, ExitMeaning::NotApplicable),
            (1618, ExitMeaning::RetryLater),
        ])
    }

    /// NT4/Windows 2000 `hotfix.exe`: `-z` no reboot, `-q` quiet, `-m` unattended. Chained
    /// installs need qchain afterwards.
    pub fn legacy_hotfix() -> InstallerRecipe {
        InstallerRecipe {
            kind: InstallerKind::HotfixExe,
            arguments: vec!["-z".into(), "-q".into(), "-m".into()],
            exit_codes: Self::common_exit_codes(),
            chainable: true,
            needs_qchain: true,
            product_code: None,
            uninstall: UninstallVia::Spuninst,
        }
    }

    /// Windows 2000 `Update.exe` packages (`Q300972_W2K_SP3_x86_en.EXE`): `-u` unattended, `-q`
    /// quiet, `-z` no reboot. Packages after May 2001 chain safely (qchain built in).
    pub fn update_exe() -> InstallerRecipe {
        InstallerRecipe {
            kind: InstallerKind::UpdateExe,
            arguments: vec!["-u".into(), "-q".into(), "-z".into()],
            exit_codes: Self::common_exit_codes(),
            chainable: true,
            needs_qchain: false,
            product_code: None,
            uninstall: UninstallVia::Spuninst,
        }
    }

    /// Package Installer for Windows (Update.exe 6.x), the packages named
    /// `WindowsServer2003-KB958644-x86-ENU.exe` / `WindowsXP-KB958644-x86-ENU.exe` (Windows XP,
    /// Server 2003 and late Windows 2000 updates): `/quiet` no UI, `/norestart` (hive reboots once,
    /// after the chain). Qchain's fix is built in.
    pub fn update_exe_kb_package() -> InstallerRecipe {
        InstallerRecipe {
            arguments: vec!["/quiet".into(), "/norestart".into()],
            ..Self::update_exe()
        }
    }

    /// `.msu`: expanded and added with DISM (`wusa` fails over WinRM with 0x5); the arguments
    /// are DISM's.
    pub fn msu() -> InstallerRecipe {
        InstallerRecipe {
            kind: InstallerKind::Msu,
            arguments: vec!["/quiet".into(), "/norestart".into()],
            exit_codes: Self::common_exit_codes(),
            chainable: true,
            needs_qchain: false,
            product_code: None,
            uninstall: UninstallVia::Spuninst,
        }
    }

    /// `.msi`: `msiexec /i x.msi /qn /norestart`.
    pub fn msi() -> InstallerRecipe {
        InstallerRecipe {
            kind: InstallerKind::Msi,
            arguments: vec!["/qn".into(), "/norestart".into()],
            exit_codes: Self::common_exit_codes(),
            chainable: true,
            needs_qchain: false,
            product_code: None,
            uninstall: UninstallVia::Spuninst,
        }
    }

    /// An administrator's `hiveexec.cmd` (the 2001 HIVE convention): the bulletin's whole folder
    /// is staged and `cmd /c hiveexec.cmd` runs from it, so whatever switches and extra steps
    /// that hotfix needed stay the admin's. Its exit code is the last command's, read like an
    /// installer's; it is chained like the legacy hotfixes it wraps (Qchain after more than one,
    /// as HIVE's `installs\<machine>.cmd` did), and the reboot stays hive's.
    pub fn hiveexec() -> InstallerRecipe {
        InstallerRecipe {
            kind: InstallerKind::HiveExec,
            arguments: vec![],
            exit_codes: Self::common_exit_codes(),
            chainable: true,
            needs_qchain: true,
            product_code: None,
            uninstall: UninstallVia::Spuninst,
        }
    }

    /// A guess from the installer's file name, for catalogs that do not say: `.msu`, `.msi`,
    /// `*_W2K_SP*` Update.exe packages, `PRODUCT-KBnnnnnn-ARCH-LANG.exe` Update.exe 6.x packages,
    /// other `.exe` as legacy hotfix.exe. `None` when the name says nothing (no extension hive
    /// knows).
    pub fn guess_from_file_name(name: &str) -> Option<InstallerRecipe> {
        let lower = name.trim().to_ascii_lowercase();
        if lower.ends_with(".msu") {
            Some(Self::msu())
        } else if lower.ends_with(".msi") {
            Some(Self::msi())
        } else if lower.ends_with(".exe") {
            if is_kb_package_name(&lower) {
                Some(Self::update_exe_kb_package())
            } else if lower.contains("_w2k_sp") || lower.contains("_wxp_sp") {
                Some(Self::update_exe())
            } else {
                Some(Self::legacy_hotfix())
            }
        } else {
            None
        }
    }

    /// What an exit code means under this recipe.
    pub fn exit_meaning(&self, code: u32) -> ExitMeaning {
        self.exit_codes
            .get(&code)
            .copied()
            .unwrap_or(ExitMeaning::Failed)
    }
}

/// Whether a lowercase `.exe` name is Update.exe 6.x's `PRODUCT-KBnnnnnn-ARCH-LANG.exe`: a
/// `kb` + digits part and a processor part among its `-`-separated parts.
fn is_kb_package_name(lower: &str) -> bool {
    let stem = lower.strip_suffix(".exe").unwrap_or(lower);
    let parts: Vec<&str> = stem.split('-').collect();
    let kb = parts.iter().any(|p| {
        p.strip_prefix("kb")
            .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
    });
    let arch = parts.iter().any(|p| matches!(*p, "x86" | "x64" | "ia64"));
    kb && arch
}

/// Installer technologies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallerKind {
    /// NT4/Windows 2000 `hotfix.exe` package (`-z -q -m`).
    HotfixExe,
    /// Windows 2000 `Update.exe` package (`-u -q -z`), qchain built in.
    UpdateExe,
    /// Windows Update standalone package (expanded and fed to DISM over WinRM).
    Msu,
    /// Windows Installer package (`msiexec /i … /qn /norestart`).
    Msi,
    /// Any other self-contained installer, with vendor-specific switches.
    Exe,
    /// The bulletin folder's `hiveexec.cmd`, run with `cmd /c` from the staged folder.
    #[serde(rename = "hiveexec")]
    HiveExec,
}

/// What an installer's exit code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitMeaning {
    /// Installed.
    Success,
    /// Installed; a reboot is needed to finish (3010, 0x240005).
    RebootRequired,
    /// Installed; the installer started a reboot itself (1641).
    RebootInitiated,
    /// Already installed (0x240006).
    AlreadyInstalled,
    /// Does not apply to this host (0x80240017).
    NotApplicable,
    /// Another installation is running; try again later (1618).
    RetryLater,
    /// Failed.
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_default_to_failure() {
        let r = InstallerRecipe {
            kind: InstallerKind::Msu,
            arguments: vec![],
            exit_codes: BTreeMap::from([(3010, ExitMeaning::RebootRequired)]),
            chainable: true,
            needs_qchain: false,
            product_code: None,
            uninstall: UninstallVia::Spuninst,
        };
        assert_eq!(r.exit_meaning(3010), ExitMeaning::RebootRequired);
        assert_eq!(r.exit_meaning(1603), ExitMeaning::Failed);
    }

    #[test]
    fn file_names_say_which_update_exe_switches_apply() {
        let args = |name: &str| {
            InstallerRecipe::guess_from_file_name(name)
                .map(|r| (r.kind, r.arguments.join(" ")))
                .unwrap()
        };
        for name in [
            "WindowsServer2003-KB958644-x86-ENU.exe",
            "WindowsXP-KB958687-x86-ENU.exe",
            "WindowsServer2003.WindowsXP-KB958644-x64-ENU.exe",
        ] {
            assert_eq!(
                args(name),
                (InstallerKind::UpdateExe, "/quiet /norestart".into()),
                "{name}"
            );
        }
        assert_eq!(
            args("Q300972_W2K_SP3_x86_en.EXE"),
            (InstallerKind::UpdateExe, "-u -q -z".into())
        );
        assert_eq!(
            args("Q300972i.exe"),
            (InstallerKind::HotfixExe, "-z -q -m".into())
        );
        // A KB in the name is not enough: a 2001 hotfix named after its article keeps -z -q -m.
        assert_eq!(args("kb300972-enu.exe").0, InstallerKind::HotfixExe);
    }
}
