//! Running installers: hotfix `.exe` files, `qchain.exe`, `expand`/`dism` for `.msu`, `msiexec`.
//!
//! The package file on the host's disk says what it does ([`PackageManifest`]); this module does
//! it the way Windows would: replaces files that are not in use, queues the ones that are in
//! `PendingFileRenameOperations` (last writer wins at boot — the Qchain hazard), writes registry
//! keys, records the hotfix, sets the pending-reboot markers, and reboots the host itself when the
//! package wants a reboot and was not told (or does not honour) "no reboot".

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Ctx, Out};
use crate::installer::{self, PackageKind, PackageManifest};
use crate::model::{self, State, WinHost};
use crate::pe::{self, ImageKind, PeSpec, Version};
use crate::registry::RegValue;

/// Exit codes that mean "installed" (changes applied).
const SUCCESS: [u32; 4] = [0, 3010, 1641, 0x0024_0005];

/// How long after an installer initiates a restart (1641) the host stops answering.
const INSTALLER_RESTART_GRACE: Duration = Duration::from_secs(1);
const ERROR_INSTALL_ALREADY_RUNNING: u32 = 1618;
const ERROR_DISK_FULL: u32 = 112;
const CBS_E_NEW_SERVICING_STACK_REQUIRED: u32 = 0x800F_0823;

/// Finds the file a command names: a path, or a bare name looked up in the working directory
/// (the profile folder), `%SystemRoot%\system32` and `%SystemRoot%`, as cmd.exe searches.
pub(super) fn find_program(host: &WinHost, token: &str) -> Option<PathBuf> {
    if WinHost::foreign_drive(token) {
        return None;
    }
    let has_ext = Path::new(token).extension().is_some();
    let candidates: Vec<String> = if token.contains(['\\', '/', ':']) {
        vec![token.to_string()]
    } else {
        let dirs = [
            host.profile_dir(),
            format!(r"{}\system32", host.system_root),
            host.system_root.clone(),
        ];
        dirs.iter().map(|d| format!(r"{d}\{token}")).collect()
    };
    for c in candidates {
        let names = if has_ext {
            vec![c.clone()]
        } else {
            vec![format!("{c}.exe"), format!("{c}.com")]
        };
        for n in names {
            let p = host.host_path(&n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs a program file: a simulated package or qchain; anything else is refused loudly.
pub(super) async fn run_program(ctx: &Ctx<'_>, shown: &str, path: &Path, args: &[String]) -> Out {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return Out::err(format!("winsim: cannot read {shown}: {e}\r\n"), 5),
    };
    let Some(manifest) = installer::read_manifest(&bytes) else {
        return if pe::read_version(&bytes).is_ok() {
            Out::err(
                format!(
                    "winsim: {shown} is a PE file but not a simulated program (no winsim manifest)\r\n"
                ),
                1,
            )
        } else {
            Out::err(
                format!(
                    "The system cannot execute the specified program: {shown} is not a valid Win32 application.\r\n"
                ),
                193,
            )
        };
    };
    match manifest.kind {
        PackageKind::Qchain => qchain(ctx.host),
        PackageKind::Spuninst => super::uninstall::legacy(ctx, shown, &manifest.id, args).await,
        PackageKind::HotfixExe
            if args
                .iter()
                .any(|a| a.eq_ignore_ascii_case("-y") || a.eq_ignore_ascii_case("/y")) =>
        {
            super::uninstall::legacy(ctx, shown, &manifest.id, args).await
        }
        PackageKind::HotfixExe => {
            let (quiet, no_reboot) = hotfix_switches(args);
            let key = format!("{}|{}", path.display(), manifest.id);
            let code = install(ctx, &key, &manifest, quiet, no_reboot).await;
            Out {
                stdout: String::new(),
                stderr: String::new(),
                code,
            }
        }
        _ => Out::err(
            format!(
                "The system cannot execute the specified program: {shown} is not a valid Win32 application.\r\n"
            ),
            193,
        ),
    }
}

/// What a hotfix `.exe` (or its spuninst.exe) makes of its switches: (quiet, no reboot).
pub(super) fn hotfix_switches(args: &[String]) -> (bool, bool) {
    let has = |opts: &[&str]| {
        args.iter()
            .any(|a| opts.iter().any(|o| a.eq_ignore_ascii_case(o)))
    };
    let quiet = has(&[
        "-q", "/q", "-m", "/m", "-u", "/u", "/quiet", "-quiet", "/passive", "-passive",
    ]);
    let no_reboot = has(&["-z", "/z", "/norestart", "-norestart"]);
    (quiet, no_reboot)
}

/// The core of every installer: wait, decide the exit code, apply, maybe reboot.
async fn install(
    ctx: &Ctx<'_>,
    key: &str,
    m: &PackageManifest,
    quiet: bool,
    no_reboot: bool,
) -> u32 {
    let host = ctx.host;
    if (m.needs_quiet_switch && !quiet) || m.hangs || host.faults.installers_hang {
        // Waiting for a click, or hung: only killing the command (dropping this future) ends it.
        std::future::pending::<()>().await;
    }
    let attempt = {
        let mut st = host.settled();
        if st.installing || st.configuring_until.is_some() {
            return ERROR_INSTALL_ALREADY_RUNNING;
        }
        st.installing = true;
        let slot = st.attempts.entry(key.to_string()).or_insert(0);
        *slot += 1;
        *slot - 1
    };
    let _busy = InstallingFlag(host);
    tokio::time::sleep(Duration::from_millis(m.duration_ms)).await;
    if let Some(code) = host.faults.installers_fail_with {
        tracing::info!(host = %host.name, package = %m.id, code, "installer failed (fault plan)");
        return code;
    }
    let mut st = host.settled();
    let mut code = m
        .exit_codes
        .get(attempt)
        .or(m.exit_codes.last())
        .copied()
        .unwrap_or(0);
    if SUCCESS.contains(&code) {
        if let Some(missing) = m
            .requires
            .iter()
            .find(|r| !st.kbs.contains(&r.to_ascii_uppercase()))
        {
            let _ = missing;
            return CBS_E_NEW_SERVICING_STACK_REQUIRED;
        }
        if st.free_disk < m.disk_bytes {
            return ERROR_DISK_FULL;
        }
        let undo = crate::uninstall::Undo::before(host, &st, m);
        apply(host, &mut st, m);
        crate::uninstall::keep(host, &mut st, undo);
        st.installs.push(model::InstallRecord {
            package: m.id.clone(),
            program: key.split('|').next().unwrap_or(key).to_string(),
            attempt,
            at: host.wall_now(),
            exit_code: code,
        });
        // What the package unpacked stays on disk (backup folders, $NtUninstall$, WinSxS).
        st.free_disk = st.free_disk.saturating_sub(m.disk_bytes);
        crate::services::installed(host, &mut st, m, code);
        let reboots_itself =
            code == 1641 || (m.reboot_required && (!no_reboot || !m.honours_no_reboot));
        if reboots_itself {
            // Windows takes a moment between an installer's restart call and the network going
            // down: the installer's exit code still reaches the client, as it does on a real host.
            let _ = host.schedule_reboot(&mut st, INSTALLER_RESTART_GRACE);
            if code == 3010 {
                code = 1641;
            }
        }
    }
    tracing::info!(host = %host.name, package = %m.id, attempt, code, "installer finished");
    code
}

/// Clears the "an installation is running" flag however the install ends (even when killed).
struct InstallingFlag<'a>(&'a WinHost);
impl Drop for InstallingFlag<'_> {
    fn drop(&mut self) {
        self.0.lock().installing = false;
    }
}

/// Applies a package's changes to the host.
fn apply(host: &WinHost, st: &mut State, m: &PackageManifest) {
    for f in &m.files {
        if WinHost::foreign_drive(&f.path) {
            continue; // only C: exists; a real installer would fail to create the folder
        }
        let target = host.host_path(&f.path);
        let current = std::fs::read(&target)
            .ok()
            .and_then(|b| pe::read_version(&b).ok())
            .map(|v| v.file_version);
        // Hotfix installers never downgrade the file they see on disk. With the file in use they
        // see the OLD file (the new one is only queued), so two chained installs both queue.
        if current.is_some_and(|c| c >= f.version) {
            continue;
        }
        let bytes = file_image(host, &target, f.version);
        if f.in_use && current.is_some() {
            st.temp_serial += 1;
            let temp_windows = format!("{}.{}-{}.new", f.path, sanitize(&m.id), st.temp_serial);
            let temp = host.host_path(&temp_windows);
            if std::fs::write(&temp, bytes).is_ok() {
                crate::uninstall::queue_rename(st, &temp_windows, &f.path);
            }
        } else {
            if let Some(dir) = target.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = std::fs::write(&target, bytes);
        }
    }
    if m.chains_itself {
        // Update.exe packages from May 2001 on carry Qchain's logic themselves.
        let _ = rewrite_queue(host, st);
    }
    for r in &m.registry {
        if let Ok(v) = r.to_value() {
            let _ = st.registry.set(&r.key, &r.name, v);
        }
    }
    if !m.id.is_empty() {
        st.kbs.insert(m.id.to_ascii_uppercase());
    }
    if m.reboot_required {
        crate::uninstall::mark_reboot_pending(st, m.kind);
    }
    if let Some(b) = m.sets_build {
        if m.reboot_required {
            st.pending_build = Some(b);
        } else {
            model::set_build(&mut st.registry, b);
        }
    }
}

fn sanitize(id: &str) -> String {
    let s: String = id.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    if s.is_empty() { "pkg".into() } else { s }
}

/// A PE image of `version` named like `target`.
fn file_image(host: &WinHost, target: &Path, version: Version) -> Vec<u8> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut spec = PeSpec::dll(version, host.machine, &name);
    if name.to_ascii_lowercase().ends_with(".exe") {
        spec.kind = ImageKind::Exe;
    }
    pe::build(&spec)
}

/// `qchain.exe`: for each destination keep only the queued source with the highest file version.
fn qchain(host: &WinHost) -> Out {
    let mut st = host.settled();
    match rewrite_queue(host, &mut st) {
        Some(report) => Out::ok(format!(
            "{report}Qchain.exe: the file rename queue was rewritten; the highest file versions will be installed at the next reboot.\r\n"
        )),
        None => Out::ok("Qchain.exe: no pending file rename operations; nothing to do.\r\n"),
    }
}

/// The Qchain rewrite, shared by `qchain.exe` and packages with chaining built in. `None` when
/// nothing is queued; otherwise what was replaced.
fn rewrite_queue(host: &WinHost, st: &mut State) -> Option<String> {
    let items = match st.registry.get(model::SESSION_MANAGER, model::PFRO) {
        Some(RegValue::MultiSz(v)) => v.clone(),
        _ => return None,
    };
    let version_of = |win: &str| {
        let p = host.host_path(win.trim_start_matches('!').trim_start_matches(r"\??\"));
        std::fs::read(p)
            .ok()
            .and_then(|b| pe::read_version(&b).ok())
            .map(|v| v.file_version)
    };
    let pairs: Vec<(String, String)> = items
        .chunks(2)
        .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
        .collect();
    let mut keep: Vec<(String, String)> = Vec::new();
    let mut report = String::new();
    for (src, dst) in pairs {
        let norm = |d: &str| d.trim_start_matches('!').to_ascii_lowercase();
        if dst.is_empty() {
            keep.push((src, dst));
            continue;
        }
        match keep
            .iter_mut()
            .find(|(_, d)| !d.is_empty() && norm(d) == norm(&dst))
        {
            Some(existing) => {
                let (old, new) = (version_of(&existing.0), version_of(&src));
                if new > old {
                    report.push_str(&format!(
                        "Replaced queued {} with {} for {}\r\n",
                        existing.0,
                        src,
                        norm(&dst)
                    ));
                    let _ = std::fs::remove_file(
                        host.host_path(existing.0.trim_start_matches(r"\??\")),
                    );
                    *existing = (src, dst);
                } else {
                    let _ = std::fs::remove_file(host.host_path(src.trim_start_matches(r"\??\")));
                }
            }
            None => keep.push((src, dst)),
        }
    }
    let flat: Vec<String> = keep.into_iter().flat_map(|(s, d)| [s, d]).collect();
    let _ = st
        .registry
        .set(model::SESSION_MANAGER, model::PFRO, RegValue::MultiSz(flat));
    Some(report)
}

/// `expand -F:* SOURCE.msu DEST`: writes the cabinets the .msu holds.
pub(super) fn expand(host: &WinHost, args: &[String]) -> Out {
    let banner = "Microsoft (R) File Expansion Utility\r\nCopyright (c) Microsoft Corporation. All rights reserved.\r\n\r\n";
    let rest: Vec<&String> = args
        .iter()
        .filter(|a| {
            !a.to_ascii_lowercase().starts_with("-f:") && !a.to_ascii_lowercase().starts_with("/f:")
        })
        .collect();
    let (Some(src), Some(dest)) = (rest.first(), rest.get(1)) else {
        return Out::err(
            format!("{banner}winsim: expand needs SOURCE and DESTINATION\r\n"),
            1,
        );
    };
    let bytes = match std::fs::read(host.host_path(src)) {
        Ok(b) if !WinHost::foreign_drive(src) => b,
        _ => return Out::err(format!("{banner}Can't open input file: {src}.\r\n"), 1),
    };
    let Some(m) = installer::read_manifest(&bytes).filter(|m| m.kind == PackageKind::Msu) else {
        return Out::err(format!("{banner}{src}: not a cabinet file.\r\n"), 1);
    };
    let files: Vec<(String, Vec<u8>)> = m
        .cabs
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                installer::package_bytes(&c.manifest, host.machine),
            )
        })
        .collect();
    let total: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    if host.free_disk_bytes() < total {
        return Out::err(
            format!("{banner}Not enough disk space to expand {src}. (112)\r\n"),
            1,
        );
    }
    let dest_dir = host.host_path(dest);
    if std::fs::create_dir_all(&dest_dir).is_err() {
        return Out::err(
            format!("{banner}Can't create output directory {dest}.\r\n"),
            1,
        );
    }
    let mut s = banner.to_string();
    let dest_win = dest.trim_end_matches('\\');
    for (name, _) in &files {
        s.push_str(&format!(
            "Adding {dest_win}\\{name} to Extraction Queue\r\n"
        ));
    }
    s.push_str("\r\nExpanding Files ....\r\n\r\n");
    for (name, b) in &files {
        if std::fs::write(dest_dir.join(name), b).is_err() {
            return Out::err(format!("{s}Can't write {dest_win}\\{name}.\r\n"), 1);
        }
    }
    {
        let mut st = host.lock();
        st.free_disk = st.free_disk.saturating_sub(total);
    }
    s.push_str(&format!(
        "Expanding Files Complete ...\r\n{} files total.\r\n",
        files.len()
    ));
    Out::ok(s)
}

/// `dism /online /add-package /packagepath:X.cab [/quiet] [/norestart]`.
pub(super) async fn dism(ctx: &Ctx<'_>, args: &[String]) -> Out {
    let lower: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
    let has = |o: &str| lower.iter().any(|a| a == o);
    let banner =
        "\r\nDeployment Image Servicing and Management tool\r\nVersion: 10.0.17763.1\r\n\r\n";
    if has("/online") && has("/get-packages") {
        return super::uninstall::get_packages(ctx.host);
    }
    if has("/online") && has("/remove-package") {
        return super::uninstall::remove_package(ctx, args).await;
    }
    if !has("/online") || !has("/add-package") {
        return Out::err(
            format!(
                "{banner}winsim: only dism /online /add-package /packagepath:X is simulated\r\n"
            ),
            87,
        );
    }
    let Some(path) = args.iter().find_map(|a| {
        let l = a.to_ascii_lowercase();
        l.starts_with("/packagepath:")
            .then(|| a["/packagepath:".len()..].to_string())
    }) else {
        return Out::err(
            format!("{banner}Error: 87\r\n\r\nThe add-package option requires /PackagePath.\r\n"),
            87,
        );
    };
    let host = ctx.host;
    let manifest = std::fs::read(host.host_path(&path))
        .ok()
        .filter(|_| !WinHost::foreign_drive(&path))
        .and_then(|b| installer::read_manifest(&b))
        .filter(|m| m.kind == PackageKind::Cab);
    let Some(m) = manifest else {
        return Out::err(
            format!(
                "{banner}Error: 0x800f0805\r\n\r\nThe specified package is not valid Windows package.\r\n"
            ),
            0x800F_0805,
        );
    };
    let key = format!("{}|{}", host.host_path(&path).display(), m.id);
    let code = install(ctx, &key, &m, true, has("/norestart")).await;
    let mut s = format!(
        "{banner}Image Version: 10.0\r\n\r\nProcessing 1 of 1 - Adding package {}\r\n",
        m.id
    );
    match code {
        0 => s.push_str("[==========================100.0%==========================]\r\nThe operation completed successfully.\r\n"),
        3010 => s.push_str("[==========================100.0%==========================]\r\nThe operation completed successfully.\r\nRestart Windows to complete this operation.\r\n"),
        1641 => s.push_str("[==========================100.0%==========================]\r\nThe operation completed successfully.\r\nRestarting Windows.\r\n"),
        c => s.push_str(&format!("\r\nError: 0x{c:x}\r\n\r\nThe package could not be added.\r\n")),
    }
    Out {
        stdout: s,
        stderr: String::new(),
        code,
    }
}

/// `msiexec /i X.msi /qn [/norestart] [/L*V log]`.
pub(super) async fn msiexec(ctx: &Ctx<'_>, args: &[String]) -> Out {
    let mut package = None;
    let mut quiet = false;
    let mut no_reboot = false;
    let mut log = None;
    let mut remove = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_ascii_lowercase();
        match a.as_str() {
            "/i" | "-i" | "/package" => {
                package = args.get(i + 1).cloned();
                i += 1;
            }
            "/x" | "-x" | "/uninstall" => {
                remove = args.get(i + 1).cloned();
                i += 1;
            }
            "/qn" | "/quiet" | "/qb" | "/passive" | "/q" | "/qn+" | "/qb-" => quiet = true,
            "/norestart" => no_reboot = true,
            l if l.starts_with("/l") => {
                log = args.get(i + 1).cloned();
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    let host = ctx.host;
    if let Some(product) = remove {
        return super::uninstall::msiexec_remove(ctx, &product, quiet, no_reboot).await;
    }
    let Some(package) = package else {
        return Out::err(
            "winsim: only msiexec /i PACKAGE and /x {ProductCode} are simulated\r\n",
            1639,
        );
    };
    let manifest = std::fs::read(host.host_path(&package))
        .ok()
        .filter(|_| !WinHost::foreign_drive(&package))
        .and_then(|b| installer::read_manifest(&b))
        .filter(|m| m.kind == PackageKind::Msi);
    let Some(m) = manifest else {
        // ERROR_INSTALL_PACKAGE_OPEN_FAILED, as msiexec answers for a missing or invalid package.
        return Out {
            code: 1619,
            ..Out::default()
        };
    };
    let key = format!("{}|{}", host.host_path(&package).display(), m.id);
    let code = install(ctx, &key, &m, quiet, no_reboot).await;
    if let Some(log) = log {
        let text = format!(
            "=== Verbose logging started by winsim ===\r\nMSI (s): Product: {id} -- Installation completed with status: {code}.\r\nMSI (s): MainEngineThread is returning {code}\r\n=== Verbose logging stopped ===\r\n",
            id = m.id
        );
        let bytes: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let _ = std::fs::write(host.host_path(&log), bytes);
    }
    Out {
        code,
        ..Out::default()
    }
}

/// `wusa.exe`: refuses over a remote session with 0x5 (KB2773898), as on real hosts.
pub(super) fn wusa(_host: &WinHost, _args: &[String]) -> Out {
    Out {
        code: 5,
        ..Out::default()
    }
}
