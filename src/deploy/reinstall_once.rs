//! A patch still missing after its reboot: install it once more, reboot once more, and call it a
//! reboot loop when it is missing again.
//!
//! An installer that ended ok and a reboot that came back clean, followed by a re-scan that still
//! finds the patch missing, is what a servicing transaction undone at boot looks like (a pending
//! file rename that failed, CBS rolling the package back). An admin's answer is to run the
//! installer once more and reboot once more: the first run may have been undone by something
//! that is gone now. Missing again after that second reboot, the patch will not stay; installing
//! it a third time would go on forever, so the host ends [`DeployVerdict::RebootLoop`] with both
//! re-scans' findings as evidence, and the rollout withholds the patch from that host only
//! ([`crate::rollout::quarantine`]).
//!
//! Every install is an `Install` step in the journal, so a resumed run counts the installs an
//! earlier process already made ([`PriorWork::install_runs`]): it never runs a patch's installer
//! a third time and never forgets the first one.

use super::reboot;
use super::stage::Staged;
use super::verify::{self, Verified};
use super::{
    DeployVerdict, HostContext, HostPlan, PatchOutcome, PatchResult, PriorWork, RebootRecord,
    ScanInputs, Stop, install, reboot_loop, stage,
};

/// How many times one patch's installer runs in one run before a patch missing after its
/// reboot is a loop.
pub const MAX_INSTALL_RUNS: u32 = 2;

/// Verify after a reboot; a patch that the installers said they installed and that the re-scan
/// still misses is installed and rebooted once more, and missing again is a reboot loop.
/// `rebooted`: the host rebooted after its installs (without that reboot a missing patch proves
/// nothing and is `verify_failed` as before).
pub(crate) async fn verify_after_reboot(
    ctx: &mut HostContext<'_>,
    scan: &ScanInputs<'_>,
    plan: &HostPlan,
    patches: &mut [PatchResult],
    reboots: &mut Vec<RebootRecord>,
    prior: &PriorWork,
    rebooted: bool,
) -> Result<DeployVerdict, Stop> {
    let first = verify::verify_scan(ctx, scan, plan, patches).await?;
    if first.verdict != DeployVerdict::VerifyFailed || !rebooted {
        return first.into_result();
    }
    let runs = |i: usize, patches: &[PatchResult]| -> u32 {
        let earlier = prior
            .install_runs
            .get(&plan.installs[i].patch)
            .copied()
            .unwrap_or(0);
        earlier + u32::from(patches[i].attempts > 0)
    };
    // A patch whose installer already ran twice in this run (a resumed run after the second
    // install): missing now is the loop, whatever else is missing.
    let spent: Vec<usize> = first
        .missing
        .iter()
        .copied()
        .filter(|&i| runs(i, patches) >= MAX_INSTALL_RUNS)
        .collect();
    if !spent.is_empty() {
        let earlier = prior
            .missing_after_reboot
            .as_deref()
            .unwrap_or("(journaled by an earlier attempt of this run, before hive was restarted)");
        return Err(loop_stop(plan, &spent, earlier, &first));
    }
    let retry = first.missing.clone();
    let names: Vec<&str> = retry
        .iter()
        .map(|&i| plan.installs[i].patch.as_str())
        .collect();
    ctx.host_log(&format!(
        "run {}: {} still missing after the reboot; installing again once (a pending rename or \
         servicing may have undone it at boot) and rebooting again",
        ctx.run,
        names.join(", ")
    ));
    let staged: Staged = stage::stage_all(ctx, plan, &retry, None).await?;
    let mut boot = reboot::host_state(ctx).await?.boot;
    let mut restarted_itself = false;
    for &i in &retry {
        let Some(remote) = staged.installers.get(&i) else {
            continue;
        };
        let result =
            install::install_one(ctx, &plan.installs[i], i, plan.installs.len(), remote).await;
        let (r, stop) = match result {
            Ok(r) => (r, None),
            Err((r, stop)) => (r, Some(stop)),
        };
        patches[i].outcome = r.outcome;
        patches[i].exit_code = r.exit_code;
        patches[i].attempts += r.attempts;
        patches[i].detail = r.detail;
        if let Some(stop) = stop {
            return Err(stop);
        }
        if r.outcome == PatchOutcome::RebootInitiated {
            let record = reboot::wait_for_reboot(ctx, &boot, "installer").await?;
            boot = record.boot_after.clone().unwrap_or(boot);
            reboots.push(record);
            restarted_itself = true;
        }
    }
    // The second install proves itself only across a boot, whatever its exit code said.
    let state = reboot::host_state(ctx).await?;
    if !restarted_itself || !state.pending.is_empty() {
        reboot_loop::reboot_until_clear(ctx, &state.boot, reboots).await?;
    }
    let second = verify::verify_scan(ctx, scan, plan, patches).await?;
    let again: Vec<usize> = second
        .missing
        .iter()
        .copied()
        .filter(|i| retry.contains(i))
        .collect();
    if again.is_empty() {
        return second.into_result();
    }
    Err(loop_stop(plan, &again, &first.detail, &second))
}

/// The host's end when `missing` were missing after two installs and two reboots: both
/// re-scans' findings are the evidence.
fn loop_stop(plan: &HostPlan, missing: &[usize], first: &str, second: &Verified) -> Stop {
    let names: Vec<&str> = missing
        .iter()
        .map(|&i| plan.installs[i].patch.as_str())
        .collect();
    Stop::new(
        DeployVerdict::RebootLoop,
        format!(
            "{} still missing after {MAX_INSTALL_RUNS} installs, each followed by a reboot: the \
             patch does not stay (undone at boot); not installed again. First re-scan: {first}. \
             Second re-scan: {}",
            names.join(", "),
            second.detail
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::deploy_host;
    use crate::deploy::test_support::{
        Bench, ScanFixture, plan_of, registry_catalog, registry_facts,
    };
    use crate::fake::{FakeTarget, RebootScript, Reply};

    const BYTES: &[u8] = b"MZ the installer";

    fn sha(bytes: &[u8]) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(bytes))
    }

    fn installer() -> (tempfile::TempDir, HostPlan) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("Q300972.exe");
        std::fs::write(&path, BYTES).expect("write installer");
        let sha = sha(BYTES);
        let plan = plan_of(&path, BYTES, &sha);
        (dir, plan)
    }

    /// A host whose installer asks for a reboot and whose patch shows missing (`0`) unless the
    /// probe is told otherwise for a boot.
    fn host() -> FakeTarget {
        let sha = sha(BYTES);
        FakeTarget::new("H1", "B0")
            .on(
                "certutil",
                [Reply::exit(0, &format!("SHA256 hash:\r\n{sha}\r\n"))],
            )
            .on(r"Q300972.exe -u", [Reply::exit(3010, "")])
            .reboots(RebootScript::quick("B1"))
            .probe_facts(registry_facts("0"))
    }

    fn installs(b: &Bench) -> usize {
        b.fake.commands_with("Q300972.exe -u").len()
    }

    async fn deploy(
        b: &mut Bench,
        plan: &HostPlan,
        prior: &PriorWork,
    ) -> super::super::DeployOutcome {
        let fixture = ScanFixture::new(registry_catalog());
        let scan = fixture.inputs();
        deploy_host(&mut b.ctx(), plan, &scan, prior).await
    }

    #[tokio::test]
    async fn a_patch_missing_after_two_installs_and_two_reboots_is_a_loop() {
        let (_dir, plan) = installer();
        let mut b = Bench::new(host());
        let out = deploy(&mut b, &plan, &PriorWork::default()).await;
        assert_eq!(out.verdict, DeployVerdict::RebootLoop, "{:?}", out.evidence);
        assert_eq!(installs(&b), 2, "{:?}", b.fake.calls());
        assert_eq!(b.fake.commands_with("shutdown /r").len(), 2);
        let why = out.evidence.join("\n");
        assert!(
            why.contains("MS01-033 still missing after 2 installs")
                && why.contains("First re-scan: MS01-033 still missing")
                && why.contains("Second re-scan: MS01-033 still missing"),
            "{why}"
        );
        assert!(b.all_closed());
    }

    #[tokio::test]
    async fn a_patch_that_stays_after_its_second_install_is_patched_not_a_loop() {
        let (_dir, plan) = installer();
        // The first boot undid it; the second install's boot keeps it.
        let mut b = Bench::new(host().probe_facts_at_boot("B1+", registry_facts("1")));
        let out = deploy(&mut b, &plan, &PriorWork::default()).await;
        assert_eq!(out.verdict, DeployVerdict::Patched, "{:?}", out.evidence);
        assert_eq!(installs(&b), 2);
        assert_eq!(out.reboots.len(), 2);
    }

    #[tokio::test]
    async fn a_patch_that_shows_after_its_first_reboot_is_installed_once() {
        let (_dir, plan) = installer();
        let mut b = Bench::new(host().probe_facts_at_boot("B1", registry_facts("1")));
        let out = deploy(&mut b, &plan, &PriorWork::default()).await;
        assert_eq!(out.verdict, DeployVerdict::Patched, "{:?}", out.evidence);
        assert_eq!((installs(&b), out.reboots.len()), (1, 1));
    }

    #[tokio::test]
    async fn without_a_reboot_a_missing_patch_is_not_retried() {
        let (_dir, plan) = installer();
        let mut b = Bench::new(host());
        b.options.reboot = crate::deploy::RebootPolicy::Never;
        let out = deploy(&mut b, &plan, &PriorWork::default()).await;
        assert_eq!(
            out.verdict,
            DeployVerdict::RebootPending,
            "{:?}",
            out.evidence
        );
        assert_eq!(installs(&b), 1);
    }

    /// A resumed run after the first install and its reboot (hive killed before or after the
    /// first re-scan): one more install, one more reboot.
    #[tokio::test]
    async fn a_resumed_run_remembers_the_first_install() {
        let (_dir, plan) = installer();
        let mut b = Bench::new(host());
        let prior = PriorWork {
            installed: ["MS01-033".to_string()].into(),
            rebooted: true,
            install_runs: [("MS01-033".to_string(), 1)].into(),
            ..PriorWork::default()
        };
        let out = deploy(&mut b, &plan, &prior).await;
        assert_eq!(out.verdict, DeployVerdict::RebootLoop, "{:?}", out.evidence);
        assert_eq!((installs(&b), out.reboots.len()), (1, 1));
    }

    /// A resumed run after the second install: never a third.
    #[tokio::test]
    async fn a_resumed_run_after_the_second_install_never_installs_a_third_time() {
        let (_dir, plan) = installer();
        let mut b = Bench::new(host());
        let prior = PriorWork {
            installed: ["MS01-033".to_string()].into(),
            rebooted: true,
            install_runs: [("MS01-033".to_string(), 2)].into(),
            missing_after_reboot: Some("MS01-033 still missing after install: first".into()),
            ..PriorWork::default()
        };
        let out = deploy(&mut b, &plan, &prior).await;
        assert_eq!(out.verdict, DeployVerdict::RebootLoop, "{:?}", out.evidence);
        assert_eq!((installs(&b), out.reboots.len()), (0, 0));
        let why = out.evidence.join("\n");
        assert!(
            why.contains("First re-scan: MS01-033 still missing after install: first"),
            "{why}"
        );
    }
}
