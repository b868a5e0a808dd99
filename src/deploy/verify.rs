//! Verify: re-scan the host after the reboot — the installer's exit code says what the installer
//! believes, the re-scan says what the host now is (a servicing rollback at boot shows here) —
//! and remove what was staged.

use super::stage::Staged;
use super::{DeployVerdict, HostContext, HostPlan, PatchOutcome, PatchResult, ScanInputs, Stop};
use crate::events::{Step, StepOutcome};
use crate::scan::evaluate::Status;
use crate::scan::run::scan_target;

/// What one verification found: the verdict, its detail, and the plan indexes of the patches an
/// installer said it installed that the re-scan still finds missing.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub verdict: DeployVerdict,
    pub detail: String,
    pub missing: Vec<usize>,
}

impl Verified {
    /// `Ok(Patched)`, or the verdict as the host's stop.
    pub fn into_result(self) -> Result<DeployVerdict, Stop> {
        if self.verdict == DeployVerdict::Patched {
            Ok(self.verdict)
        } else {
            Err(Stop::new(self.verdict, self.detail))
        }
    }
}

/// Re-scan and judge every planned patch, journaled as one `Verify` step; a re-scan that
/// cannot be made stops the host.
pub(crate) async fn verify_scan(
    ctx: &mut HostContext<'_>,
    scan: &ScanInputs<'_>,
    plan: &HostPlan,
    patches: &mut [PatchResult],
) -> Result<Verified, Stop> {
    let step = Step::Verify;
    ctx.started(&step)?;
    let result = match scan_target(
        &mut *ctx.target,
        scan.catalog,
        scan.probe,
        ctx.options.verify_timeout,
        crate::scan::run::FileSource::Probe,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            let why = format!("the re-scan failed: {e}");
            let _ = ctx.finished(&step, false, StepOutcome::Failed, &why);
            return Err(Stop::new(DeployVerdict::Unreachable, why));
        }
    };
    let mut failed = Vec::new();
    let mut missing = Vec::new();
    let mut review = Vec::new();
    for (i, (install, p)) in plan.installs.iter().zip(patches.iter_mut()).enumerate() {
        let Some(v) = result.verdicts.iter().find(|v| *v.patch == *install.patch) else {
            p.verified = Some("not in the catalog any more".into());
            review.push(format!("{}: not in the catalog any more", install.patch));
            continue;
        };
        p.verified = Some(format!("{}: {}", v.status, v.evidence));
        let landed = matches!(
            v.status,
            Status::Installed | Status::Superseded | Status::NotApplicable
        );
        if landed {
            continue;
        }
        let line = format!(
            "{} still {} after install: {}",
            install.patch, v.status, v.evidence
        );
        if matches!(
            p.outcome,
            PatchOutcome::AlreadyInstalled | PatchOutcome::NotApplicable
        ) {
            review.push(format!("{line} (the installer said {})", p.outcome.word()));
        } else {
            failed.push(line);
            missing.push(i);
        }
    }
    let (verdict, detail) = if !failed.is_empty() {
        (DeployVerdict::VerifyFailed, failed.join("; "))
    } else if !review.is_empty() {
        (DeployVerdict::NeedsReview, review.join("; "))
    } else {
        (DeployVerdict::Patched, String::new())
    };
    let outcome = match verdict {
        DeployVerdict::VerifyFailed => StepOutcome::VerifyFailed,
        DeployVerdict::NeedsReview => StepOutcome::NeedsReview,
        _ => StepOutcome::Patched,
    };
    ctx.finished(&step, verdict == DeployVerdict::Patched, outcome, &detail)?;
    if verdict != DeployVerdict::Patched {
        ctx.host_log(&format!("run {}: {}: {detail}", ctx.run, verdict.word()));
    }
    Ok(Verified {
        verdict,
        detail,
        missing,
    })
}

/// Re-scan the host with the scan's catalog detection; a re-scan that fails leaves the host's
/// state unknown, which stops it as unreachable.
pub(crate) async fn rescan(
    ctx: &mut HostContext<'_>,
    scan: &ScanInputs<'_>,
) -> Result<crate::scan::HostResult, Stop> {
    scan_target(
        &mut *ctx.target,
        scan.catalog,
        scan.probe,
        ctx.options.verify_timeout,
        scan.files,
    )
    .await
    .map_err(|e| {
        Stop::new(
            DeployVerdict::Unreachable,
            format!("the re-scan failed: {e}"),
        )
    })
}

/// Remove the staged files and folders (best effort: a leftover file in Temp is not worth
/// failing a patched host over; the event says what was left).
pub(crate) async fn cleanup(ctx: &mut HostContext<'_>, staged: &Staged) {
    if !ctx.options.cleanup {
        return;
    }
    let step = Step::Cleanup;
    if ctx.started(&step).is_err() {
        return;
    }
    let mut files: Vec<String> = staged.installers.values().cloned().collect();
    files.extend(staged.companions.values().flatten().cloned());
    files.extend(staged.qchain.iter().cloned());
    files.extend(ctx.created_files.iter().cloned());
    let mut left = Vec::new();
    for f in &files {
        if let Err(e) = ctx.target.remove_file(f).await
            && !matches!(e, crate::remote::RemoteError::NotFound(_))
        {
            left.push(format!("{f}: {e}"));
        }
    }
    let mut dirs: Vec<String> = ctx.created_dirs.clone();
    dirs.extend(staged.subdirs.iter().cloned());
    dirs.push(staged.dir.clone());
    for d in &dirs {
        if let Err(e) = ctx.target.remove_dir(d).await
            && !matches!(e, crate::remote::RemoteError::NotFound(_))
        {
            left.push(format!("{d}: {e}"));
        }
    }
    let _ = if left.is_empty() {
        ctx.finished(
            &step,
            true,
            StepOutcome::Ok,
            &format!("{} file(s) removed", files.len()),
        )
    } else {
        ctx.finished(&step, false, StepOutcome::LeftBehind, &left.join("; "))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::test_support::{
        Bench, ScanFixture, plan_without_installer, registry_catalog, registry_facts,
    };
    use crate::fake::FakeTarget;

    async fn verify_with(data: &str, said: PatchOutcome) -> (Result<DeployVerdict, Stop>, Bench) {
        let catalog = registry_catalog();
        let fixture = ScanFixture::new(catalog);
        let scan = fixture.inputs();
        let plan = plan_without_installer();
        let mut patches = vec![PatchResult {
            patch: "MS01-033".into(),
            bulletin: "MS01-033".into(),
            file: "Q300972.exe".into(),
            outcome: said,
            exit_code: Some(0),
            attempts: 1,
            verified: None,
            detail: String::new(),
        }];
        let mut b = Bench::new(FakeTarget::new("H1", "B1").probe_facts(registry_facts(data)));
        let result = verify_scan(&mut b.ctx(), &scan, &plan, &mut patches)
            .await
            .and_then(Verified::into_result);
        (result, b)
    }

    fn verify_end(b: &Bench) -> Option<(bool, StepOutcome)> {
        b.ends()
            .into_iter()
            .find(|(s, ..)| *s == Step::Verify)
            .map(|(_, ok, outcome, _)| (ok, outcome))
    }

    #[tokio::test]
    async fn the_re_scan_proves_the_patch() {
        let (result, b) = verify_with("1", PatchOutcome::Installed).await;
        assert_eq!(result.map_err(|s| s.why).unwrap(), DeployVerdict::Patched);
        assert_eq!(verify_end(&b), Some((true, StepOutcome::Patched)));
    }

    #[tokio::test]
    async fn a_patch_the_re_scan_still_misses_fails_verification() {
        let (result, b) = verify_with("0", PatchOutcome::Installed).await;
        let stop = result.expect_err("still missing");
        assert_eq!(stop.verdict, DeployVerdict::VerifyFailed, "{}", stop.why);
        assert_eq!(verify_end(&b), Some((false, StepOutcome::VerifyFailed)));
    }

    #[tokio::test]
    async fn an_installer_that_said_already_installed_against_the_scan_needs_review() {
        let (result, b) = verify_with("0", PatchOutcome::AlreadyInstalled).await;
        let stop = result.expect_err("disagreement");
        assert_eq!(stop.verdict, DeployVerdict::NeedsReview, "{}", stop.why);
        assert_eq!(verify_end(&b), Some((false, StepOutcome::NeedsReview)));
    }
}
