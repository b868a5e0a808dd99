//! Settling what a crash left in doubt, the way an admin picking up after a dead console would:
//! ask the host, not the memory of what was about to happen.
//!
//! - An install the journal shows started and never finished may have completed, failed, or may
//!   still be running (a WinRS shell outlives the client that opened it, and so does its
//!   installer). Running it again blindly is how a hotfix gets installed twice. So: wait while
//!   its process is still running (`tasklist`), then look for evidence on the host — the re-scan's
//!   verdict, and the hotfix list (`Get-HotFix`/the `Hotfix` registry keys), which names a KB as
//!   soon as its installer is done even while its files wait in `PendingFileRenameOperations`
//!   for the reboot. Only with no such evidence is the installer run again.
//! - A reboot the journal shows under way may be scheduled, in progress or long done: the boot
//!   time the journal saw before it tells which. Hive waits for the host to answer, and continues
//!   with the settle phases when the boot time moved, or lets the normal path reboot it when it
//!   did not (`shutdown` answers 1190 when one is already scheduled).

use std::time::{Duration, Instant};

use super::reboot::{self, HostState};
use super::{
    DeployVerdict, HostContext, PlannedInstall, RebootRecord, ScanInputs, Stop, elapsed_ms,
};
use crate::catalog::model::InstallerKind;
use crate::events::{RebootPhase, Step, StepOutcome};
use crate::remote::Command;
use crate::scan::evaluate::Status;

/// What the host says about an install a crash interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The installer finished before (or after) the crash: evidence on the host.
    Landed(String),
    /// No evidence of it on the host and no installer running: it may run again.
    NotInstalled(String),
}

/// The process names an install shows in `tasklist` while it runs.
pub fn installer_images(install: &PlannedInstall) -> Vec<String> {
    match install.installer.recipe.kind {
        InstallerKind::Msu => vec!["expand.exe".into(), "dism.exe".into(), "wusa.exe".into()],
        InstallerKind::Msi => vec!["msiexec.exe".into()],
        InstallerKind::HotfixExe | InstallerKind::UpdateExe | InstallerKind::Exe => {
            vec![install.installer.file_name.clone()]
        }
        // The script's cmd.exe, and any program of its folder it is running.
        InstallerKind::HiveExec => std::iter::once("cmd.exe".to_string())
            .chain(
                install
                    .installer
                    .companions
                    .iter()
                    .filter(|c| c.file_name.to_ascii_lowercase().ends_with(".exe"))
                    .map(|c| c.file_name.clone()),
            )
            .collect(),
    }
}

/// The image names `tasklist /FO CSV /NH` lists (its first column).
pub fn tasklist_images(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix('"')?;
            let end = rest.find('"')?;
            Some(rest[..end].to_string())
        })
        .collect()
}

/// Which of `images` is running on the host now; `Ok(None)` also when the host cannot say
/// (Windows 2000 has no `tasklist`: there only the evidence decides).
async fn running(ctx: &mut HostContext<'_>, images: &[String]) -> Result<Option<String>, Stop> {
    let out = ctx
        .target
        .exec(
            &Command::Cmd("tasklist /FO CSV /NH".into()),
            ctx.options.command_timeout,
        )
        .await
        .map_err(|e| Stop::remote(&e))?;
    if out.exit_code != 0 {
        return Ok(None);
    }
    Ok(tasklist_images(&out.stdout)
        .into_iter()
        .find(|name| images.iter().any(|i| i.eq_ignore_ascii_case(name))))
}

/// The host's evidence about one patch: the re-scan's verdict, then the hotfix list.
async fn evidence(
    ctx: &mut HostContext<'_>,
    scan: &ScanInputs<'_>,
    install: &PlannedInstall,
) -> Result<Settled, Stop> {
    let result = super::verify::rescan(ctx, scan).await?;
    let verdict = result.verdicts.iter().find(|v| *v.patch == *install.patch);
    if let Some(v) = verdict
        && matches!(v.status, Status::Installed | Status::Superseded)
    {
        return Ok(Settled::Landed(format!(
            "the re-scan says {}: {}",
            v.status, v.evidence
        )));
    }
    let kb = scan.catalog.patches.get(&install.patch).and_then(|p| p.kb);
    if let Some(kb) = kb
        && result.facts.kbs.contains(&kb)
    {
        let pending = if result.facts.pending_reboot.is_empty() {
            String::new()
        } else {
            format!(
                "; reboot pending ({})",
                result.facts.pending_reboot.join(", ")
            )
        };
        return Ok(Settled::Landed(format!(
            "{kb} is in the host's hotfix list{pending}"
        )));
    }
    let seen = verdict
        .map(|v| format!("{}: {}", v.status, v.evidence))
        .unwrap_or_else(|| "no verdict".into());
    Ok(Settled::NotInstalled(format!(
        "not on the host ({seen}) and no installer running"
    )))
}

/// Settle an install the journal left open: wait for a still-running installer, then decide
/// from the host's evidence. Journals the open step's end, so the journal holds no open install
/// once the host has moved on.
pub(crate) async fn interrupted_install(
    ctx: &mut HostContext<'_>,
    scan: &ScanInputs<'_>,
    install: &PlannedInstall,
    step: &Step,
) -> Result<Settled, Stop> {
    let images = installer_images(install);
    let deadline = Instant::now() + ctx.options.install_timeout;
    let mut waited = false;
    while let Some(name) = running(ctx, &images).await? {
        if Instant::now() >= deadline {
            let why = format!(
                "{}: {name} is still running {:?} after hive resumed (hung installer?)",
                install.patch, ctx.options.install_timeout
            );
            let _ = ctx.finished(step, false, StepOutcome::TimedOut, &why);
            return Err(Stop::new(DeployVerdict::InstallTimedOut, why));
        }
        waited = true;
        tokio::time::sleep(ctx.options.poll_interval).await;
    }
    let settled = evidence(ctx, scan, install).await?;
    let waited = if waited {
        " (waited for the installer still running from before the crash)"
    } else {
        ""
    };
    match &settled {
        Settled::Landed(why) => ctx.finished(
            step,
            true,
            StepOutcome::LandedBeforeCrash,
            &format!("{why}{waited}"),
        )?,
        Settled::NotInstalled(why) => ctx.finished(
            step,
            false,
            StepOutcome::DidNotComplete,
            &format!("{why}{waited}; it runs again"),
        )?,
    }
    Ok(settled)
}

/// A reboot was under way when hive stopped. Wait until the host answers, then: its boot time
/// moved → the reboot happened, run the settle phases; unchanged → reboot now (as decided before
/// the crash). Returns the reboot's record once the host is back and settled; `None` only when
/// the journal had no boot time to compare and nothing is pending (nothing left to reboot for).
pub(crate) async fn reboot_in_flight(
    ctx: &mut HostContext<'_>,
    boot_before: Option<&str>,
) -> Result<Option<RebootRecord>, Stop> {
    let start = Instant::now();
    let step = Step::Reboot {
        phase: RebootPhase::Resume,
    };
    ctx.started(&step)?;
    let o = ctx.options.clone();
    let deadline = Instant::now() + o.down_timeout + o.port_timeout + o.login_timeout;
    let state: HostState = loop {
        ctx.target.disconnect();
        let last =
            match reboot::try_state(ctx, o.command_timeout.min(Duration::from_secs(10))).await {
                Ok(s) => break s,
                Err(e) => e,
            };
        if Instant::now() >= deadline {
            let why = format!(
                "the host did not answer after hive resumed during its reboot ({:?}): {last}",
                deadline.saturating_duration_since(start)
            );
            let _ = ctx.finished(&step, false, StepOutcome::TimedOut, &why);
            return Err(Stop::new(DeployVerdict::NeverReturned, why));
        }
        tokio::time::sleep(o.poll_interval).await;
    };
    match boot_before {
        Some(before) if crate::scan::facts::boot_time_moved(before, &state.boot) => {
            ctx.finished_at_boot(
                &step,
                StepOutcome::Rebooted,
                &format!("boot time {} (was {before})", state.boot),
                &state.boot,
            )?;
            let boot_after = state.boot.clone();
            reboot::settle_phases(ctx, state).await?;
            Ok(Some(RebootRecord {
                by: "hive".into(),
                boot_before: before.to_string(),
                boot_after: Some(boot_after),
                duration_ms: elapsed_ms(start),
            }))
        }
        Some(_) => {
            // Not rebooted (the command never went out, or it is scheduled): reboot now, as
            // was decided before the crash; `shutdown` answers 1190 if one is scheduled.
            ctx.finished_at_boot(
                &step,
                StepOutcome::NotRebooted,
                &format!("boot time {}, unchanged: rebooting", state.boot),
                &state.boot,
            )?;
            Ok(Some(reboot::reboot(ctx, &state.boot).await?))
        }
        None if !state.pending.is_empty() => {
            ctx.finished_at_boot(
                &step,
                StepOutcome::Pending,
                &format!(
                    "boot time {}, reboot pending ({}); the journal has no boot time from before: rebooting",
                    state.boot,
                    state.pending.join(", ")
                ),
                &state.boot,
            )?;
            Ok(Some(reboot::reboot(ctx, &state.boot).await?))
        }
        None => {
            ctx.finished_at_boot(
                &step,
                StepOutcome::Answering,
                &format!(
                    "boot time {}, nothing pending (the journal has no boot time from before the reboot)",
                    state.boot
                ),
                &state.boot,
            )?;
            reboot::settle_phases(ctx, state).await?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::test_support::{
        Bench, ScanFixture, plan_without_installer, registry_catalog, registry_facts,
    };
    use crate::fake::{FakeTarget, RebootScript, Reply};
    use hive_probe::PendingReboot;

    const RUNNING: &str = "\"Q300972.exe\",\"1012\",\"Services\",\"0\",\"4,096 K\"\r\n";
    const NONE_RUNNING: &str = "INFO: No tasks are running which match the specified criteria.\r\n";

    /// Settle the install of the test plan's one patch, left open by a crash, on `fake`.
    async fn settle_open_install(
        fake: FakeTarget,
        kb_known: bool,
    ) -> (Result<Settled, Stop>, Bench) {
        let mut catalog = registry_catalog();
        if kb_known && let Some(p) = catalog.patches.get_mut("MS01-033") {
            p.kb = "Q300972".parse().ok();
        }
        let fixture = ScanFixture::new(catalog);
        let scan = fixture.inputs();
        let plan = plan_without_installer();
        let step = Step::Install {
            patch: "MS01-033".into(),
            index: 1,
            total: 1,
        };
        let mut b = Bench::new(fake);
        let settled = interrupted_install(&mut b.ctx(), &scan, &plan.installs[0], &step).await;
        (settled, b)
    }

    fn install_end(b: &Bench) -> Option<(bool, StepOutcome)> {
        b.ends()
            .into_iter()
            .find(|(s, ..)| matches!(s, Step::Install { .. }))
            .map(|(_, ok, outcome, _)| (ok, outcome))
    }

    #[tokio::test]
    async fn an_installer_still_running_is_waited_for_then_its_evidence_decides() {
        let fake = FakeTarget::new("H1", "B0")
            .on(
                "tasklist",
                [
                    Reply::exit(0, RUNNING),
                    Reply::exit(0, RUNNING),
                    Reply::exit(0, NONE_RUNNING),
                ],
            )
            .probe_facts(registry_facts("1"));
        let (settled, b) = settle_open_install(fake, false).await;
        assert!(matches!(settled, Ok(Settled::Landed(_))), "{settled:?}");
        assert_eq!(b.fake.commands_with("tasklist").len(), 3);
        assert_eq!(
            install_end(&b),
            Some((true, StepOutcome::LandedBeforeCrash))
        );
        assert!(
            b.fake.commands_with("Q300972.exe -u").is_empty(),
            "never run again here"
        );
    }

    #[tokio::test]
    async fn no_evidence_and_no_installer_running_lets_it_run_again() {
        let fake = FakeTarget::new("H1", "B0")
            .on("tasklist", [Reply::exit(0, NONE_RUNNING)])
            .probe_facts(registry_facts("0"));
        let (settled, b) = settle_open_install(fake, false).await;
        assert!(
            matches!(settled, Ok(Settled::NotInstalled(_))),
            "{settled:?}"
        );
        assert_eq!(install_end(&b), Some((false, StepOutcome::DidNotComplete)));
    }

    #[tokio::test]
    async fn a_kb_in_the_hotfix_list_is_evidence_before_the_reboot() {
        // The scan still says missing (its file waits for the reboot), but the hotfix list
        // names the KB: the installer finished.
        let fake = FakeTarget::new("H1", "B0")
            .on("tasklist", [Reply::exit(0, NONE_RUNNING)])
            .probe_facts(hive_probe::ProbeFacts {
                installed_kbs: vec!["Q300972".into()],
                ..registry_facts("0")
            });
        let (settled, _) = settle_open_install(fake, true).await;
        match settled {
            Ok(Settled::Landed(why)) => assert!(why.contains("hotfix list"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_installer_that_never_ends_is_a_hung_install() {
        let fake = FakeTarget::new("H1", "B0").on("tasklist", [Reply::exit(0, RUNNING)]);
        let (settled, b) = settle_open_install(fake, false).await;
        let stop = settled.expect_err("hung");
        assert_eq!(stop.verdict, DeployVerdict::InstallTimedOut, "{}", stop.why);
        assert_eq!(install_end(&b), Some((false, StepOutcome::TimedOut)));
    }

    fn resume_phase(b: &Bench) -> Option<(StepOutcome, Option<String>)> {
        b.ends().into_iter().find_map(|(step, _, outcome, boot)| {
            (step
                == Step::Reboot {
                    phase: RebootPhase::Resume,
                })
            .then_some((outcome, boot))
        })
    }

    #[tokio::test]
    async fn a_reboot_that_happened_while_hive_was_down_is_settled_not_repeated() {
        let mut b = Bench::new(FakeTarget::new("H1", "B1"));
        let record = reboot_in_flight(&mut b.ctx(), Some("B0"))
            .await
            .expect("settled")
            .expect("a reboot record");
        assert_eq!(
            (record.boot_before.as_str(), record.boot_after.as_deref()),
            ("B0", Some("B1"))
        );
        assert_eq!(
            resume_phase(&b),
            Some((StepOutcome::Rebooted, Some("B1".into())))
        );
        assert!(
            b.fake.commands_with("shutdown").is_empty(),
            "no second reboot"
        );
        assert!(b.all_closed());
    }

    #[tokio::test]
    async fn a_host_still_down_at_resume_is_waited_for() {
        let fake = FakeTarget::new("H1", "B0").down_now(Some(4), RebootScript::quick("B1"));
        let mut b = Bench::new(fake);
        reboot_in_flight(&mut b.ctx(), Some("B0"))
            .await
            .expect("settled");
        assert_eq!(resume_phase(&b).map(|r| r.0), Some(StepOutcome::Rebooted));
        assert!(b.fake.commands_with("shutdown").is_empty());
    }

    #[tokio::test]
    async fn a_reboot_that_never_happened_is_done_now_once() {
        let fake = FakeTarget::new("H1", "B0").reboots(RebootScript::quick("B1"));
        let mut b = Bench::new(fake);
        let record = reboot_in_flight(&mut b.ctx(), Some("B0"))
            .await
            .expect("rebooted")
            .expect("a reboot record");
        assert_eq!(record.boot_after.as_deref(), Some("B1"));
        assert_eq!(
            resume_phase(&b).map(|r| r.0),
            Some(StepOutcome::NotRebooted)
        );
        assert_eq!(b.fake.commands_with("shutdown /r").len(), 1);
    }

    #[tokio::test]
    async fn without_a_boot_time_from_before_the_pending_markers_decide() {
        let fake = FakeTarget::new("H1", "B0")
            .pending(PendingReboot {
                pending_file_renames: true,
                ..PendingReboot::default()
            })
            .reboots(RebootScript::quick("B1"));
        let mut b = Bench::new(fake);
        let record = reboot_in_flight(&mut b.ctx(), None)
            .await
            .expect("rebooted");
        assert!(record.is_some());
        assert_eq!(resume_phase(&b).map(|r| r.0), Some(StepOutcome::Pending));
        assert_eq!(b.fake.commands_with("shutdown /r").len(), 1);

        let mut b = Bench::new(FakeTarget::new("H1", "B0"));
        let record = reboot_in_flight(&mut b.ctx(), None).await.expect("settled");
        assert!(record.is_none());
        assert_eq!(resume_phase(&b).map(|r| r.0), Some(StepOutcome::Answering));
        assert!(b.fake.commands_with("shutdown").is_empty());
    }

    #[tokio::test]
    async fn a_host_that_never_answers_after_resume_never_returned() {
        let fake = FakeTarget::new("H1", "B0").down_now(None, RebootScript::quick("B1"));
        let mut b = Bench::new(fake);
        let stop = reboot_in_flight(&mut b.ctx(), Some("B0"))
            .await
            .expect_err("down for good");
        assert_eq!(stop.verdict, DeployVerdict::NeverReturned, "{}", stop.why);
        assert!(b.all_closed());
    }

    #[test]
    fn tasklist_csv_gives_image_names() {
        let out = "\"System\",\"4\",\"Services\",\"0\",\"4,096 K\"\r\n\"KB5000003.exe\",\"1012\",\"Services\",\"0\",\"4,096 K\"\r\n";
        assert_eq!(tasklist_images(out), ["System", "KB5000003.exe"]);
        assert!(
            tasklist_images("INFO: No tasks are running which match the specified criteria.\r\n")
                .is_empty()
        );
    }
}
