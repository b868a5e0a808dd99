//! Taking packages off: `spuninst.exe` (and a legacy `hotfix.exe -y`), `dism /online
//! /get-packages` and `/remove-package /packagename:X`, `msiexec /x {ProductCode}`.
//!
//! Each puts back what the install kept ([`crate::uninstall`]) and answers with the exit codes
//! Windows uses: 0 removed, 3010 removed once the host restarts, 1641 the uninstaller restarted it,
//! 1618 another installation is running, 1605 (msiexec) no such product, 0x800F080C (DISM) no such
//! package, 0x800F0825 (DISM) the package is permanent.

use std::time::Duration;

use super::{Ctx, Out};
use crate::model::WinHost;
use crate::uninstall::{self, Removed, Undo};

const ERROR_INSTALL_ALREADY_RUNNING: u32 = 1618;
/// msiexec: "This action is only valid for products that are currently installed."
const ERROR_UNKNOWN_PRODUCT: u32 = 1605;
/// DISM: the package identity is not installed on the image.
const CBS_E_UNKNOWN_PACKAGE: u32 = 0x800F_080C;
/// DISM: the package is permanent and cannot be removed.
const CBS_E_PERMANENT: u32 = 0x800F_0825;
/// How long after an uninstaller restarts the host it stops answering.
const RESTART_GRACE: Duration = Duration::from_secs(1);

const DISM_BANNER: &str =
    "\r\nDeployment Image Servicing and Management tool\r\nVersion: 10.0.17763.1\r\n\r\n";

/// The core of every uninstaller: wait for quiet, refuse while busy, put back, maybe restart.
/// `None` when the host has no record of `id`.
async fn take_off(
    ctx: &Ctx<'_>,
    program: &str,
    find: impl Fn(&Undo) -> bool,
    quiet: bool,
    no_reboot: bool,
) -> Option<u32> {
    let host = ctx.host;
    if !quiet || host.faults.installers_hang {
        // An uninstaller without its quiet switch shows a dialog nobody will click.
        std::future::pending::<()>().await;
    }
    let mut st = host.settled();
    if st.installing || st.configuring_until.is_some() {
        return Some(ERROR_INSTALL_ALREADY_RUNNING);
    }
    let undo = st.undo.values().find(|u| find(u)).cloned()?;
    let removed = uninstall::put_back(host, &mut st, &undo);
    st.undo.remove(&undo.id);
    let mut code = match removed {
        Removed::Done => 0,
        Removed::AtNextBoot => 3010,
    };
    if code == 3010 && !no_reboot {
        let _ = host.schedule_reboot(&mut st, RESTART_GRACE);
        code = 1641;
    }
    let at = host.wall_now();
    st.uninstalls.push(crate::model::InstallRecord {
        package: undo.id.clone(),
        program: program.to_string(),
        attempt: 0,
        at,
        exit_code: code,
    });
    tracing::info!(host = %host.name, package = %undo.id, code, "uninstaller finished");
    Some(code)
}

/// `%windir%\$NtUninstall<ID>$\spuninst\spuninst.exe [-u] [-q] [-z]`, or the hotfix package run
/// with `-y`: both restore from the `$NtUninstall<ID>$` folder, and fail when it is gone.
pub(super) async fn legacy(ctx: &Ctx<'_>, shown: &str, id: &str, args: &[String]) -> Out {
    let dir = uninstall::nt_uninstall_dir(ctx.host, id);
    if !ctx.host.host_path(&dir).is_dir() {
        return Out::err(
            format!(
                "{shown}: the uninstall folder {dir} does not exist; {id} cannot be removed.\r\n"
            ),
            1,
        );
    }
    let (quiet, no_reboot) = super::packages::hotfix_switches(args);
    let id = id.to_ascii_uppercase();
    match take_off(ctx, shown, |u| u.id == id, quiet, no_reboot).await {
        Some(code) => Out {
            code,
            ..Out::default()
        },
        None => Out::err(format!("{shown}: {id} is not installed.\r\n"), 1),
    }
}

/// `dism /online /get-packages`: the servicing packages installed through DISM.
pub(super) fn get_packages(host: &WinHost) -> Out {
    let st = host.settled();
    let mut s = format!("{DISM_BANNER}Image Version: 10.0\r\n\r\nPackages listing:\r\n\r\n");
    for name in uninstall::dism_packages(&st).keys() {
        s.push_str(&format!(
            "Package Identity : {name}\r\nState : Installed\r\nRelease Type : Security Update\r\n\r\n"
        ));
    }
    s.push_str("The operation completed successfully.\r\n");
    Out::ok(s)
}

/// `dism /online /remove-package /packagename:X [/quiet] [/norestart]`.
pub(super) async fn remove_package(ctx: &Ctx<'_>, args: &[String]) -> Out {
    let Some(name) = args.iter().find_map(|a| {
        a.to_ascii_lowercase()
            .starts_with("/packagename:")
            .then(|| a["/packagename:".len()..].to_string())
    }) else {
        return Out::err(
            format!(
                "{DISM_BANNER}Error: 87\r\n\r\nwinsim: only /remove-package /packagename:X is simulated.\r\n"
            ),
            87,
        );
    };
    let no_reboot = args.iter().any(|a| a.eq_ignore_ascii_case("/norestart"));
    let permanent = {
        let st = ctx.host.settled();
        uninstall::dism_packages(&st)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
            .is_some_and(|(_, u)| ctx.host.permanent.contains(&u.id))
    };
    let mut s = format!(
        "{DISM_BANNER}Image Version: 10.0\r\n\r\nProcessing 1 of 1 - Removing package {name}\r\n"
    );
    if permanent {
        s.push_str(&format!(
            "\r\nError: 0x{CBS_E_PERMANENT:x}\r\n\r\nPackage {name} is permanent and cannot be removed.\r\n"
        ));
        return Out {
            stdout: s,
            stderr: String::new(),
            code: CBS_E_PERMANENT,
        };
    }
    let find = |u: &Undo| {
        u.package_name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(&name))
    };
    let code = take_off(ctx, "dism", find, true, no_reboot)
        .await
        .unwrap_or(CBS_E_UNKNOWN_PACKAGE);
    let bar = "[==========================100.0%==========================]\r\n";
    match code {
        0 => s.push_str(&format!("{bar}The operation completed successfully.\r\n")),
        3010 => s.push_str(&format!(
            "{bar}The operation completed successfully.\r\nRestart Windows to complete this operation.\r\n"
        )),
        1641 => s.push_str(&format!(
            "{bar}The operation completed successfully.\r\nRestarting Windows.\r\n"
        )),
        CBS_E_UNKNOWN_PACKAGE => s.push_str(&format!(
            "\r\nError: 0x{code:x}\r\n\r\nThe package {name} is not installed.\r\n"
        )),
        c => s.push_str(&format!(
            "\r\nError: 0x{c:x}\r\n\r\nThe package could not be removed.\r\n"
        )),
    }
    Out {
        stdout: s,
        stderr: String::new(),
        code,
    }
}

/// `msiexec /x {ProductCode} /qn [/norestart]`.
pub(super) async fn msiexec_remove(
    ctx: &Ctx<'_>,
    product: &str,
    quiet: bool,
    no_reboot: bool,
) -> Out {
    let find = |u: &Undo| {
        u.product_code
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(product))
    };
    let code = take_off(ctx, "msiexec", find, quiet, no_reboot)
        .await
        .unwrap_or(ERROR_UNKNOWN_PRODUCT);
    Out {
        code,
        ..Out::default()
    }
}
