//! How each installer technology is taken off, and what the uninstaller's exit code means.
//!
//! Decided from the recipe the patch was approved with:
//! - legacy `hotfix.exe` and `Update.exe` packages: their own uninstaller,
//!   `<SystemRoot>\$NtUninstall<ID>$\spuninst\spuninst.exe -u -q -z` (unattended, quiet, no
//!   reboot: the switches every Update.exe-era spuninst takes). The folder is what the install kept
//!   of the replaced files; without it Windows cannot put them back, and hive says so instead of
//!   trying anything else. A hotfix whose recipe says `uninstall = "package"` is instead run
//!   itself with `-y -z -q` (uninstall, no reboot, quiet), staged again for the purpose: the
//!   NT4/Windows 2000-era packages that support it restore from the same folder.
//! - `.msu`/`.cab`: `dism /Online /Remove-Package /PackageName:<identity> /Quiet /NoRestart`, the
//!   identity found in `dism /Online /Get-Packages` (`Package_for_KB5000002~31bf3856ad364e35~…`).
//!   Never `wusa /uninstall`: wusa fails over WinRM (0x5, KB2773898), as it does for installs.
//! - `.msi`: `msiexec /x {ProductCode} /qn /norestart`, the product code from the recipe.

use crate::catalog::model::{ExitMeaning, InstallerKind, InstallerRecipe, UninstallVia};
use crate::deploy::quote::{QuoteError, command_line};

/// msiexec: the product is not installed (ERROR_UNKNOWN_PRODUCT).
pub const MSI_UNKNOWN_PRODUCT: u32 = 1605;
/// DISM: no such package on the image.
pub const DISM_UNKNOWN_PACKAGE: u32 = 0x800F_080C;
/// DISM: the package is permanent and cannot be removed (CBS_E_CANNOT_UNINSTALL).
pub const DISM_PERMANENT: u32 = 0x800F_0825;

/// Which uninstaller a patch needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `spuninst.exe` in the hotfix's `$NtUninstall<ID>$` folder under the host's SystemRoot.
    Spuninst { id: String },
    /// The hotfix package itself, `-y -z -q`.
    HotfixPackage { id: String },
    /// DISM, the package identity looked up on the host.
    Dism { kb: String },
    /// Windows Installer, by product code.
    Msi { product_code: String },
}

/// Why a patch has no uninstaller hive can run, from its recipe alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoMethod {
    #[error(
        "no installer recipe: neither an approved bulletin nor the catalog says how it was installed"
    )]
    NoRecipe,
    #[error(
        "the MSI recipe has no product_code: add `product_code = \"{{GUID}}\"` to its recipe.toml (msiexec /x needs it)"
    )]
    NoProductCode,
    #[error("a vendor .exe installer has no uninstaller hive knows")]
    VendorExe,
}

/// The uninstaller for `patch` (its KB or Q number, `KB5000002`/`Q300972`) under `recipe`.
pub fn method(patch: &str, recipe: Option<&InstallerRecipe>) -> Result<Method, NoMethod> {
    let recipe = recipe.ok_or(NoMethod::NoRecipe)?;
    match recipe.kind {
        // A hiveexec.cmd runs the bulletin's legacy hotfix, which leaves its own uninstaller.
        InstallerKind::HotfixExe | InstallerKind::UpdateExe
            if recipe.uninstall == UninstallVia::Package =>
        {
            Ok(Method::HotfixPackage {
                id: patch.to_ascii_uppercase(),
            })
        }
        InstallerKind::HotfixExe | InstallerKind::UpdateExe | InstallerKind::HiveExec => {
            Ok(Method::Spuninst {
                id: patch.to_ascii_uppercase(),
            })
        }
        InstallerKind::Msu => Ok(Method::Dism {
            kb: patch.to_ascii_uppercase(),
        }),
        InstallerKind::Msi => recipe
            .product_code
            .clone()
            .filter(|c| !c.trim().is_empty())
            .map(|product_code| Method::Msi { product_code })
            .ok_or(NoMethod::NoProductCode),
        InstallerKind::Exe => Err(NoMethod::VendorExe),
    }
}

/// `<system_root>\$NtUninstall<ID>$\spuninst\spuninst.exe`.
pub fn spuninst_path(system_root: &str, id: &str) -> String {
    format!(
        r"{}\$NtUninstall{id}$\spuninst\spuninst.exe",
        system_root.trim_end_matches('\\')
    )
}

/// `<spuninst> -u -q -z`.
pub fn spuninst_line(path: &str) -> Result<String, QuoteError> {
    command_line(&[path, "-u", "-q", "-z"])
}

/// `<hotfix package> -y -z -q`: the package takes itself off, quietly, without restarting.
pub fn hotfix_uninstall_line(package: &str) -> Result<String, QuoteError> {
    command_line(&[package, "-y", "-z", "-q"])
}

/// `dism /Online /Get-Packages`.
pub const GET_PACKAGES: &str = "dism /Online /Get-Packages";

/// `dism /Online /Remove-Package /PackageName:<name> /Quiet /NoRestart`.
pub fn dism_remove_line(package: &str) -> Result<String, QuoteError> {
    command_line(&[
        "dism",
        "/Online",
        "/Remove-Package",
        &format!("/PackageName:{package}"),
        "/Quiet",
        "/NoRestart",
    ])
}

/// `msiexec /x {ProductCode} /qn /norestart`.
pub fn msiexec_remove_line(product_code: &str) -> Result<String, QuoteError> {
    command_line(&["msiexec", "/x", product_code, "/qn", "/norestart"])
}

/// The package identities of `dism /Get-Packages` output that belong to `kb`
/// (`Package_for_KB5000002~…`). Cumulative updates named `Package_for_RollupFix~…` carry no KB
/// in their name and are not matched: guessing which rollup is which KB would be a guess.
pub fn packages_for(get_packages_stdout: &str, kb: &str) -> Vec<String> {
    let prefix = format!("package_for_{}~", kb.to_ascii_lowercase());
    get_packages_stdout
        .lines()
        .filter_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim().eq_ignore_ascii_case("Package Identity")).then(|| value.trim().to_string())
        })
        .filter(|name| name.to_ascii_lowercase().starts_with(&prefix))
        .collect()
}

/// `SystemRoot` from `reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion" /v SystemRoot`.
pub const SYSTEM_ROOT_QUERY: &str =
    r#"reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion" /v SystemRoot"#;

pub fn parse_system_root(stdout: &str) -> Option<String> {
    stdout.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next()?.eq_ignore_ascii_case("SystemRoot") && words.next()?.starts_with("REG_"))
            .then(|| words.collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty())
    })
}

/// What an uninstaller's exit said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitSaid {
    Removed,
    /// Removed; the host must restart to finish (3010, 0x240005).
    RebootRequired,
    /// Removed; the uninstaller restarted the host (1641).
    RebootInitiated,
    /// The host does not have it (msiexec 1605, DISM 0x800F080C).
    NotInstalled,
    /// Windows keeps it for good (DISM 0x800F0825).
    Permanent,
    /// Another installation is running (1618): try again later.
    RetryLater,
    Failed,
}

/// The meaning of `code` from an uninstaller run for `recipe`: the uninstall-only codes first,
/// then the recipe's own table (0, 3010, 0x240005, 1641, 1618), anything else a failure.
pub fn exit_said(recipe: &InstallerRecipe, code: u32) -> ExitSaid {
    match code {
        MSI_UNKNOWN_PRODUCT if recipe.kind == InstallerKind::Msi => ExitSaid::NotInstalled,
        DISM_UNKNOWN_PACKAGE => ExitSaid::NotInstalled,
        DISM_PERMANENT => ExitSaid::Permanent,
        _ => match recipe.exit_meaning(code) {
            ExitMeaning::Success => ExitSaid::Removed,
            ExitMeaning::RebootRequired => ExitSaid::RebootRequired,
            ExitMeaning::RebootInitiated => ExitSaid::RebootInitiated,
            ExitMeaning::RetryLater => ExitSaid::RetryLater,
            ExitMeaning::AlreadyInstalled | ExitMeaning::NotApplicable | ExitMeaning::Failed => {
                ExitSaid::Failed
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_technology_gets_its_own_uninstaller_line() {
        assert_eq!(
            method("q300972", Some(&InstallerRecipe::legacy_hotfix())),
            Ok(Method::Spuninst {
                id: "Q300972".into()
            })
        );
        let path = spuninst_path(r"C:\WINNT\", "Q300972");
        assert_eq!(path, r"C:\WINNT\$NtUninstallQ300972$\spuninst\spuninst.exe");
        assert_eq!(
            spuninst_line(&path).unwrap(),
            r"C:\WINNT\$NtUninstallQ300972$\spuninst\spuninst.exe -u -q -z"
        );
        assert_eq!(
            dism_remove_line("Package_for_KB5000002~31bf3856ad364e35~amd64~~10.0.1.0").unwrap(),
            "dism /Online /Remove-Package /PackageName:Package_for_KB5000002~31bf3856ad364e35~amd64~~10.0.1.0 /Quiet /NoRestart"
        );
        assert_eq!(
            msiexec_remove_line("{6A1D0C4E-0000-4000-8000-000000000010}").unwrap(),
            "msiexec /x {6A1D0C4E-0000-4000-8000-000000000010} /qn /norestart"
        );
        assert_eq!(
            method("KB1", Some(&InstallerRecipe::msi())),
            Err(NoMethod::NoProductCode)
        );
        assert_eq!(method("KB1", None), Err(NoMethod::NoRecipe));
        let mut self_removing = InstallerRecipe::legacy_hotfix();
        self_removing.uninstall = UninstallVia::Package;
        assert_eq!(
            method("q300972", Some(&self_removing)),
            Ok(Method::HotfixPackage {
                id: "Q300972".into()
            })
        );
        assert_eq!(
            hotfix_uninstall_line(r"C:\Windows\Temp\hive\r1\Q300972_W2K.exe").unwrap(),
            r"C:\Windows\Temp\hive\r1\Q300972_W2K.exe -y -z -q"
        );
    }

    #[test]
    fn dism_packages_match_the_kb_only() {
        let out = "Packages listing:\r\n\r\nPackage Identity : Package_for_KB5000002~31bf3856ad364e35~amd64~~10.0.1.0\r\nState : Installed\r\n\r\nPackage Identity : Package_for_KB50000021~31bf3856ad364e35~amd64~~10.0.1.0\r\nPackage Identity : Package_for_RollupFix~31bf3856ad364e35~amd64~~17763.5576.1.4\r\n";
        assert_eq!(
            packages_for(out, "kb5000002"),
            ["Package_for_KB5000002~31bf3856ad364e35~amd64~~10.0.1.0"]
        );
        assert!(packages_for(out, "KB9").is_empty());
    }

    #[test]
    fn system_root_is_read_from_reg_output() {
        let out = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\r\n    SystemRoot    REG_SZ    C:\\WINNT\r\n\r\n";
        assert_eq!(parse_system_root(out).as_deref(), Some(r"C:\WINNT"));
        assert_eq!(parse_system_root("ERROR: not found"), None);
    }

    #[test]
    fn exit_codes_mean_what_windows_says() {
        let msi = InstallerRecipe::msi();
        let msu = InstallerRecipe::msu();
        let hotfix = InstallerRecipe::legacy_hotfix();
        assert_eq!(exit_said(&hotfix, 0), ExitSaid::Removed);
        assert_eq!(exit_said(&hotfix, 3010), ExitSaid::RebootRequired);
        assert_eq!(exit_said(&msu, 0x0024_0005), ExitSaid::RebootRequired);
        assert_eq!(exit_said(&msi, 1641), ExitSaid::RebootInitiated);
        assert_eq!(exit_said(&msi, 1605), ExitSaid::NotInstalled);
        assert_eq!(exit_said(&hotfix, 1605), ExitSaid::Failed);
        assert_eq!(
            exit_said(&msu, DISM_UNKNOWN_PACKAGE),
            ExitSaid::NotInstalled
        );
        assert_eq!(exit_said(&msu, DISM_PERMANENT), ExitSaid::Permanent);
        assert_eq!(exit_said(&msu, 1618), ExitSaid::RetryLater);
        assert_eq!(exit_said(&msu, 1603), ExitSaid::Failed);
        assert_eq!(exit_said(&msu, 0x0024_0006), ExitSaid::Failed);
    }
}
