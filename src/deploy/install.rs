//! Running one installer with its recipe: the command line, the exit code's meaning, the 1618
//! back-off and the per-installer timeout.
//!
//! .msu files are never given to `wusa` (it fails over WinRM with 0x5, KB2773898): they are
//! expanded and each cabinet is added with DISM, in the order `expand` lists them.

use std::time::Duration;

use super::quote::command_line;
use super::{DeployVerdict, HostContext, PatchOutcome, PlannedInstall, Stop};
use crate::catalog::model::{ExitMeaning, InstallerKind, InstallerRecipe};
use crate::events::Step;
use crate::remote::{Command, ExecOutput, RemoteError};

/// How one installer ended.
#[derive(Debug, Clone)]
pub(crate) struct InstallRun {
    pub outcome: PatchOutcome,
    pub exit_code: Option<u32>,
    pub attempts: u32,
    pub detail: String,
}

/// The command lines that install `remote` under `recipe`, for the kinds that are one command.
/// `.msu` needs the `expand` output first: see [`expand_line`] and [`dism_line`].
pub fn installer_line(
    recipe: &InstallerRecipe,
    remote: &str,
    msi_log: &str,
) -> Result<String, super::quote::QuoteError> {
    let mut words: Vec<String> = Vec::new();
    match recipe.kind {
        InstallerKind::Msi => {
            words.extend(["msiexec".into(), "/i".into(), remote.to_string()]);
            words.extend(recipe.arguments.iter().cloned());
            words.extend(["/L*V".into(), msi_log.to_string()]);
        }
        _ => {
            words.push(remote.to_string());
            words.extend(recipe.arguments.iter().cloned());
        }
    }
    command_line(&words)
}

/// `cd /d <staged folder> && cmd /c hiveexec.cmd`: the script runs from its own folder, as it
/// did from the HIVE share, so the files it names without a path are the ones staged beside it.
pub fn hiveexec_line(remote: &str) -> Result<String, super::quote::QuoteError> {
    let (folder, script) = remote.rsplit_once('\\').unwrap_or((".", remote));
    Ok(format!(
        "cd /d {} && {}",
        super::quote::quote_arg(folder)?,
        command_line(&["cmd", "/c", script])?
    ))
}

/// `expand -F:* x.msu dir`.
pub fn expand_line(remote: &str, dir: &str) -> Result<String, super::quote::QuoteError> {
    command_line(&["expand", "-F:*", remote, dir])
}

/// `dism /online /add-package /packagepath:x.cab` + the recipe's arguments (`/quiet /norestart`).
pub fn dism_line(recipe: &InstallerRecipe, cab: &str) -> Result<String, super::quote::QuoteError> {
    let mut words = vec![
        "dism".to_string(),
        "/online".into(),
        "/add-package".into(),
        format!("/packagepath:{cab}"),
    ];
    words.extend(recipe.arguments.iter().cloned());
    command_line(&words)
}

/// The cabinets `expand` wrote, in its order (`Adding DEST\name to Extraction Queue`). Only
/// `.cab` files go to DISM (an .msu also holds a `WSUSSCAN.cab`-style metadata cab on real
/// systems; it is skipped by name).
pub fn cabs_from_expand(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("Adding ")?;
            let path = rest.strip_suffix(" to Extraction Queue")?;
            let lower = path.to_ascii_lowercase();
            (lower.ends_with(".cab") && !lower.ends_with("wsusscan.cab")).then(|| path.to_string())
        })
        .collect()
}

fn outcome_of(m: ExitMeaning) -> PatchOutcome {
    match m {
        ExitMeaning::Success => PatchOutcome::Installed,
        ExitMeaning::RebootRequired => PatchOutcome::RebootRequired,
        ExitMeaning::RebootInitiated => PatchOutcome::RebootInitiated,
        ExitMeaning::AlreadyInstalled => PatchOutcome::AlreadyInstalled,
        ExitMeaning::NotApplicable => PatchOutcome::NotApplicable,
        ExitMeaning::RetryLater | ExitMeaning::Failed => PatchOutcome::Failed,
    }
}

/// Several DISM runs make one outcome: the strongest reboot need wins; "already installed" or
/// "not applicable" only when every cabinet said so.
fn combine(parts: &[PatchOutcome]) -> PatchOutcome {
    use PatchOutcome as P;
    if parts.contains(&P::RebootInitiated) {
        P::RebootInitiated
    } else if parts.contains(&P::RebootRequired) {
        P::RebootRequired
    } else if !parts.is_empty() && parts.iter().all(|p| *p == P::AlreadyInstalled) {
        P::AlreadyInstalled
    } else if !parts.is_empty() && parts.iter().all(|p| *p == P::NotApplicable) {
        P::NotApplicable
    } else {
        P::Installed
    }
}

/// Run one planned installer, announcing it as `Install { index+1 of total }`.
pub(crate) async fn install_one(
    ctx: &mut HostContext<'_>,
    install: &PlannedInstall,
    index: usize,
    total: usize,
    remote: &str,
) -> Result<InstallRun, (InstallRun, Stop)> {
    let step = Step::Install {
        patch: install.patch.clone(),
        index: index as u32 + 1,
        total: total as u32,
    };
    let not_run = InstallRun {
        outcome: PatchOutcome::NotRun,
        exit_code: None,
        attempts: 0,
        detail: String::new(),
    };
    if let Err(stop) = ctx.started(&step) {
        return Err((not_run, stop));
    }
    let result = run_installer(ctx, install, remote).await;
    let (run, stop) = match result {
        Ok(run) => (run, None),
        Err((run, stop)) => (run, Some(stop)),
    };
    let ok = run.outcome.is_ok();
    let detail = match run.exit_code {
        Some(c) => format!(
            "exit {c} (0x{c:08X}) after {} attempt(s); {}",
            run.attempts, run.detail
        ),
        None => run.detail.clone(),
    };
    if let Err(journal) = ctx.finished(&step, ok, run.outcome.step_outcome(), &detail) {
        return Err((run, stop.unwrap_or(journal)));
    }
    match stop {
        Some(stop) => Err((run, stop)),
        None => Ok(run),
    }
}

async fn run_installer(
    ctx: &mut HostContext<'_>,
    install: &PlannedInstall,
    remote: &str,
) -> Result<InstallRun, (InstallRun, Stop)> {
    let recipe = &install.installer.recipe;
    let bad_line = |e: super::quote::QuoteError| {
        (
            InstallRun {
                outcome: PatchOutcome::Failed,
                exit_code: None,
                attempts: 0,
                detail: e.to_string(),
            },
            Stop::new(
                DeployVerdict::InstallFailed,
                format!("{}: {e}", install.patch),
            ),
        )
    };
    let msi_log = format!("{remote}.log");
    if recipe.kind == InstallerKind::HiveExec {
        let line = hiveexec_line(remote).map_err(bad_line)?;
        return run_with_retry(ctx, install, &line, None).await;
    }
    if recipe.kind != InstallerKind::Msu {
        let line = installer_line(recipe, remote, &msi_log).map_err(bad_line)?;
        let log = (recipe.kind == InstallerKind::Msi).then_some(msi_log.as_str());
        return run_with_retry(ctx, install, &line, log).await;
    }
    let dir = remote
        .rsplit_once('.')
        .map(|(stem, _)| stem.to_string())
        .unwrap_or_else(|| format!("{remote}.d"));
    let expand = expand_line(remote, &dir).map_err(bad_line)?;
    let out = exec(ctx, install, &expand, ctx.options.command_timeout, 1).await?;
    let cabs = cabs_from_expand(&out.stdout);
    if out.exit_code != 0 || cabs.is_empty() {
        let detail = format!(
            "expand exited {} with no cabinet to add: {}",
            out.exit_code,
            tail(&format!("{}{}", out.stdout, out.stderr))
        );
        ctx.host_log(&format!("{}: {detail}", install.patch));
        return Err((
            InstallRun {
                outcome: PatchOutcome::Failed,
                exit_code: Some(out.exit_code),
                attempts: 1,
                detail: detail.clone(),
            },
            Stop::new(
                DeployVerdict::InstallFailed,
                format!("{}: {detail}", install.patch),
            ),
        ));
    }
    ctx.created_files.extend(cabs.iter().cloned());
    ctx.created_dirs.push(dir.clone());
    let mut parts = Vec::new();
    let mut last = None;
    let mut attempts = 0;
    for cab in &cabs {
        let line = dism_line(recipe, cab).map_err(bad_line)?;
        let run = run_with_retry(ctx, install, &line, None).await?;
        attempts += run.attempts;
        last = run.exit_code;
        parts.push(run.outcome);
    }
    Ok(InstallRun {
        outcome: combine(&parts),
        exit_code: last,
        attempts,
        detail: format!("{} cabinet(s) added with DISM", cabs.len()),
    })
}

async fn exec(
    ctx: &mut HostContext<'_>,
    install: &PlannedInstall,
    line: &str,
    timeout: Duration,
    attempt: u32,
) -> Result<ExecOutput, (InstallRun, Stop)> {
    match ctx
        .target
        .exec(&Command::Cmd(line.to_string()), timeout)
        .await
    {
        Ok(out) => Ok(out),
        Err(RemoteError::TimedOut(m)) => {
            // The transport's message names the host, the command and the limit: the evidence,
            // said once.
            let detail = if m.is_empty() {
                format!(
                    "no exit within {} s: the installer was killed",
                    timeout.as_secs()
                )
            } else {
                format!("the installer was killed: {m}")
            };
            ctx.host_log(&format!("{}: {detail}", install.patch));
            Err((
                InstallRun {
                    outcome: PatchOutcome::TimedOut,
                    exit_code: None,
                    attempts: attempt,
                    detail: detail.clone(),
                },
                Stop::new(
                    DeployVerdict::InstallTimedOut,
                    format!("{}: {detail}", install.patch),
                ),
            ))
        }
        Err(e) => {
            // A host that answered but refused the command (a SOAP fault, HTTP 413) is reachable:
            // the install failed there. Only a lost or refused connection is "unreachable".
            let stop = match &e {
                RemoteError::Failed(m) => Stop::new(
                    DeployVerdict::InstallFailed,
                    format!("{}: {m}", install.patch),
                ),
                _ => Stop::remote(&e),
            };
            Err((
                InstallRun {
                    outcome: PatchOutcome::Failed,
                    exit_code: None,
                    attempts: attempt,
                    detail: e.to_string(),
                },
                stop,
            ))
        }
    }
}

/// Run one command line; a 1618 ("another installation is in progress", also while the host is
/// still configuring updates) is retried with a doubling wait.
async fn run_with_retry(
    ctx: &mut HostContext<'_>,
    install: &PlannedInstall,
    line: &str,
    msi_log: Option<&str>,
) -> Result<InstallRun, (InstallRun, Stop)> {
    let recipe = &install.installer.recipe;
    let mut wait = ctx.options.busy_backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let out = exec(ctx, install, line, ctx.options.install_timeout, attempt).await?;
        let meaning = recipe.exit_meaning(out.exit_code);
        if meaning == ExitMeaning::RetryLater && attempt < ctx.options.busy_attempts.max(1) {
            ctx.host_log(&format!(
                "{}: exit {} (busy), attempt {attempt}, trying again in {wait:?}",
                install.patch, out.exit_code
            ));
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
            continue;
        }
        if matches!(meaning, ExitMeaning::RetryLater | ExitMeaning::Failed) {
            let mut log_tail = tail(&format!("{}{}", out.stdout, out.stderr));
            if let Some(log) = msi_log
                && let Some(t) = read_log_tail(ctx, log).await
            {
                log_tail = t;
            }
            let what = if meaning == ExitMeaning::RetryLater {
                format!(
                    "still busy (exit {}) after {attempt} attempt(s)",
                    out.exit_code
                )
            } else {
                format!(
                    "failed with exit {} (0x{:08X})",
                    out.exit_code, out.exit_code
                )
            };
            ctx.host_log(&format!("{}: {what}; log tail:\n{log_tail}", install.patch));
            return Err((
                InstallRun {
                    outcome: PatchOutcome::Failed,
                    exit_code: Some(out.exit_code),
                    attempts: attempt,
                    detail: format!("{what}; {}", log_tail.replace('\n', " | ")),
                },
                Stop::new(
                    DeployVerdict::InstallFailed,
                    format!(
                        "{} ({}): {what}",
                        install.patch, install.installer.file_name
                    ),
                ),
            ));
        }
        return Ok(InstallRun {
            outcome: outcome_of(meaning),
            exit_code: Some(out.exit_code),
            attempts: attempt,
            detail: String::new(),
        });
    }
}

/// The last lines of a text, for the host's log.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(10);
    lines[start..].join("\n")
}

/// The end of an msiexec log (UTF-16LE, as msiexec writes it), read over the file channel.
async fn read_log_tail(ctx: &mut HostContext<'_>, path: &str) -> Option<String> {
    let bytes = ctx.target.read_file_range(path, 0, 1 << 20).await.ok()?;
    let start = bytes.len().saturating_sub(8192) & !1;
    let units: Vec<u16> = bytes[start..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let text = String::from_utf16_lossy(&units);
    Some(tail(text.trim_start_matches('\u{feff}')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_hotfix_gets_exactly_its_switches() {
        let line = installer_line(
            &InstallerRecipe::legacy_hotfix(),
            r"C:\Windows\Temp\hive\r1\Q300972.exe",
            "",
        )
        .unwrap();
        assert_eq!(line, r"C:\Windows\Temp\hive\r1\Q300972.exe -z -q -m");
    }

    #[test]
    fn hiveexec_runs_from_its_staged_folder() {
        assert_eq!(
            hiveexec_line(r"C:\Windows\Temp\hive\r1\MS01-033\hiveexec.cmd").unwrap(),
            r"cd /d C:\Windows\Temp\hive\r1\MS01-033 && cmd /c hiveexec.cmd"
        );
    }

    #[test]
    fn msi_and_msu_lines() {
        let line =
            installer_line(&InstallerRecipe::msi(), r"C:\T\x.msi", r"C:\T\x.msi.log").unwrap();
        assert_eq!(
            line,
            r"msiexec /i C:\T\x.msi /qn /norestart /L*V C:\T\x.msi.log"
        );
        assert_eq!(
            expand_line(r"C:\T\a.msu", r"C:\T\a").unwrap(),
            r"expand -F:* C:\T\a.msu C:\T\a"
        );
        assert_eq!(
            dism_line(&InstallerRecipe::msu(), r"C:\T\a\x.cab").unwrap(),
            r"dism /online /add-package /packagepath:C:\T\a\x.cab /quiet /norestart"
        );
    }

    #[test]
    fn expand_output_lists_cabs_in_order() {
        let out = "Microsoft (R) File Expansion Utility\r\nAdding C:\\T\\a\\SSU.cab to Extraction Queue\r\nAdding C:\\T\\a\\WSUSSCAN.cab to Extraction Queue\r\nAdding C:\\T\\a\\LCU.cab to Extraction Queue\r\nAdding C:\\T\\a\\x.xml to Extraction Queue\r\n";
        assert_eq!(
            cabs_from_expand(out),
            [r"C:\T\a\SSU.cab", r"C:\T\a\LCU.cab"]
        );
    }

    #[test]
    fn outcomes_combine() {
        use PatchOutcome as P;
        assert_eq!(
            combine(&[P::Installed, P::RebootRequired]),
            P::RebootRequired
        );
        assert_eq!(
            combine(&[P::AlreadyInstalled, P::AlreadyInstalled]),
            P::AlreadyInstalled
        );
        assert_eq!(combine(&[P::AlreadyInstalled, P::Installed]), P::Installed);
    }
}
