//! `installs/<host>.cmd`: the plan of one host written the way HIVE wrote its install scripts —
//! each bulletin's command in order, Qchain last when more than one legacy hotfix is chained,
//! then the reboot — so the people who read HIVE's scripts for years can read hive's plan.
//!
//! It is a record, not a program: hive never runs it (hive stages, hashes, runs each line itself
//! and watches the reboot), and its first lines say so. `hive deploy --dry-run` writes it for the
//! plan it prints, a rollout for the plan it is about to carry out; the previous one is replaced,
//! since the journal keeps every run's steps.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::install::{dism_line, expand_line, hiveexec_line, installer_line};
use super::plan::HostPlan;
use crate::catalog::model::{InstallerKind, Restart};
use crate::repo::{RepoError, Repository};

/// The text of `installs/<host>.cmd` for a plan staged under `stage_dir`
/// (`C:\Windows\Temp\hive\<run>`), with `shutdown_delay_s` for the reboot line.
pub fn render(plan: &HostPlan, run: &str, stage_dir: &str, shutdown_delay_s: u32) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "@echo off");
    let _ = writeln!(
        s,
        "rem hive plan for {} (run {run}): a record of what hive runs there, in this order.",
        plan.host
    );
    let _ = writeln!(
        s,
        "rem hive stages the files to {stage_dir}, checks their SHA-256 on the host, runs each \
         line and reboots once; this file itself is never run."
    );
    if plan.installs.is_empty() {
        let _ = writeln!(s, "rem nothing to install");
    }
    for (n, i) in plan.installs.iter().enumerate() {
        let _ = writeln!(
            s,
            "rem {}/{} {} ({}): {}",
            n + 1,
            plan.installs.len(),
            i.bulletin,
            i.patch,
            i.installer.file_name
        );
        let remote = if i.installer.recipe.kind == InstallerKind::HiveExec {
            format!(r"{stage_dir}\{}\{}", i.bulletin, i.installer.file_name)
        } else {
            format!(r"{stage_dir}\{}", i.installer.file_name)
        };
        let line = match i.installer.recipe.kind {
            InstallerKind::HiveExec => hiveexec_line(&remote),
            InstallerKind::Msu => {
                let dir = remote
                    .rsplit_once('.')
                    .map(|(stem, _)| stem.to_string())
                    .unwrap_or_else(|| format!("{remote}.d"));
                expand_line(&remote, &dir).and_then(|e| {
                    dism_line(&i.installer.recipe, &format!(r"{dir}\<each cabinet>.cab"))
                        .map(|d| format!("{e}\r\n{d}"))
                })
            }
            _ => installer_line(&i.installer.recipe, &remote, &format!("{remote}.log")),
        };
        match line {
            Ok(l) => {
                let _ = writeln!(s, "{l}");
            }
            Err(e) => {
                let _ = writeln!(s, "rem cannot be run: {e}");
            }
        }
    }
    for u in &plan.unplanned {
        let _ = writeln!(s, "rem not planned: {}: {}", u.patch, u.why);
    }
    if plan.qchain {
        let _ = writeln!(
            s,
            "rem Qchain (Q296861): the highest file version wins at the reboot"
        );
        let _ = writeln!(s, r"{stage_dir}\qchain.exe");
    }
    if !plan.installs.is_empty() {
        match plan.expected_reboot {
            Restart::No => {
                let _ = writeln!(s, "rem no reboot expected");
            }
            Restart::Yes | Restart::Maybe => {
                if plan.expected_reboot == Restart::Maybe {
                    let _ = writeln!(s, "rem reboot when an installer or the host asks for it");
                }
                let _ = writeln!(
                    s,
                    "shutdown /r /t {shutdown_delay_s} /c \"hive run {run} installed updates\""
                );
            }
        }
    }
    s.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// Write `installs/<host>.cmd` (CRLF, as Windows admins read it).
pub fn write(
    repo: &Repository,
    plan: &HostPlan,
    run: &str,
    stage_dir: &str,
    shutdown_delay_s: u32,
) -> Result<PathBuf, RepoError> {
    crate::inventory::validate_host_name(&plan.host).map_err(|message| RepoError::BadFile {
        path: PathBuf::from(&plan.host),
        message,
    })?;
    let dir = repo.folder("installs");
    std::fs::create_dir_all(&dir).map_err(|source| RepoError::Io {
        path: dir.clone(),
        source,
    })?;
    let path = crate::folders::child(&dir, &format!("{}.cmd", plan.host));
    crate::repo::write_atomic(
        &path,
        render(plan, run, stage_dir, shutdown_delay_s).as_bytes(),
    )?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::model::InstallerRecipe;
    use crate::deploy::plan::{ApprovedInstaller, PlannedInstall};

    fn install(bulletin: &str, file: &str, recipe: InstallerRecipe) -> PlannedInstall {
        PlannedInstall {
            patch: format!("{bulletin}-p"),
            bulletin: bulletin.into(),
            installer: ApprovedInstaller {
                bulletin: bulletin.into(),
                path: PathBuf::from(file),
                file_name: file.into(),
                recipe,
                bytes: 1,
                sha256: "aa".into(),
                companions: vec![],
            },
            expected_sha256: "aa".into(),
            servicing_stack: false,
            restart: None,
        }
    }

    #[test]
    fn the_record_lists_each_script_in_order_then_qchain_then_the_reboot() {
        let plan = HostPlan {
            host: "WEB01".into(),
            installs: vec![
                install("MS01-033", "hiveexec.cmd", InstallerRecipe::hiveexec()),
                install("MS01-044", "Q301625.exe", InstallerRecipe::legacy_hotfix()),
            ],
            unplanned: vec![],
            qchain: true,
            expected_reboot: Restart::Maybe,
            bytes: 2,
        };
        let text = render(&plan, "r1", r"C:\Windows\Temp\hive\r1", 5);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("rem")).collect();
        assert_eq!(
            lines,
            [
                "@echo off",
                r"cd /d C:\Windows\Temp\hive\r1\MS01-033 && cmd /c hiveexec.cmd",
                r"C:\Windows\Temp\hive\r1\Q301625.exe -z -q -m",
                r"C:\Windows\Temp\hive\r1\qchain.exe",
                "shutdown /r /t 5 /c \"hive run r1 installed updates\"",
            ]
        );
        assert!(text.contains("never run"), "{text}");
        assert!(text.contains("\r\n") && !text.replace("\r\n", "").contains('\n'));
    }
}
