//! Reboot loops: a host that keeps asking for reboots must stop being rebooted.
//!
//! After hive's reboot a host may come back with a reboot still pending. Once is common (a
//! servicing stack update, a second rename queue): hive reboots again. The *same* markers pending
//! after two reboots in a row, or more reboots of one host than [`DeployOptions::max_reboots`]
//! allows, is a loop: rebooting again would go on forever, so the host ends
//! [`DeployVerdict::RebootLoop`] and the rollout withholds its patches from it
//! ([`crate::rollout::quarantine`]) while the rest of the fleet goes on. A patch that comes back
//! from its reboot missing is the other kind of loop ([`super::reinstall_once`]).
//!
//! [`DeployOptions::max_reboots`]: super::DeployOptions::max_reboots

use super::reboot::{self, HostState};
use super::{DeployVerdict, HostContext, RebootRecord, Stop};

/// Reboot (hive's `shutdown /r`) until nothing is pending, within the host's reboot allowance.
/// `reboots` holds the reboots this deploy already saw (an installer's 1641 counts) and gets the
/// new ones.
pub(crate) async fn reboot_until_clear(
    ctx: &mut HostContext<'_>,
    boot_before: &str,
    reboots: &mut Vec<RebootRecord>,
) -> Result<(), Stop> {
    let allowed = ctx.options.max_reboots.max(1) as usize;
    let mut boot = boot_before.to_string();
    let mut last_pending: Option<Vec<String>> = None;
    loop {
        if reboots.len() >= allowed {
            let still = last_pending.as_deref().unwrap_or_default().join(", ");
            return Err(Stop::new(
                DeployVerdict::RebootLoop,
                format!(
                    "rebooted {} time(s), the most allowed, and a reboot is still pending ({still})",
                    reboots.len()
                ),
            ));
        }
        match reboot::reboot(ctx, &boot).await {
            Ok(record) => {
                reboots.push(record);
                return Ok(());
            }
            Err(stop) if stop.verdict == DeployVerdict::RebootStillPending => {
                let state: HostState = reboot::host_state(ctx).await?;
                reboots.push(RebootRecord {
                    by: "hive".into(),
                    boot_before: boot.clone(),
                    boot_after: Some(state.boot.clone()),
                    duration_ms: 0,
                });
                let mut pending = state.pending.clone();
                pending.sort();
                if last_pending.as_ref() == Some(&pending) {
                    return Err(Stop::new(
                        DeployVerdict::RebootLoop,
                        format!(
                            "the same reboot is still pending after {} reboots in a row: {}",
                            reboots.len(),
                            pending.join(", ")
                        ),
                    ));
                }
                ctx.host_log(&format!(
                    "run {}: back from a reboot with a reboot still pending ({}); rebooting again",
                    ctx.run,
                    pending.join(", ")
                ));
                last_pending = Some(pending);
                boot = state.boot;
            }
            Err(stop) => return Err(stop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::test_support::Bench;
    use crate::fake::{FakeTarget, RebootScript};
    use hive_probe::PendingReboot;

    #[tokio::test]
    async fn the_same_reboot_pending_twice_is_a_loop_after_two_reboots() {
        let fake = FakeTarget::new("H1", "B0").reboots(RebootScript {
            pending_after: PendingReboot {
                pending_file_renames: true,
                ..PendingReboot::default()
            },
            ..RebootScript::quick("B1")
        });
        let mut b = Bench::new(fake);
        let mut reboots = Vec::new();
        let stop = reboot_until_clear(&mut b.ctx(), "B0", &mut reboots)
            .await
            .expect_err("a loop");
        assert_eq!(stop.verdict, DeployVerdict::RebootLoop, "{}", stop.why);
        assert!(stop.why.contains("same reboot"), "{}", stop.why);
        assert_eq!(reboots.len(), 2);
        assert_eq!(b.fake.commands_with("shutdown /r").len(), 2);
    }

    #[tokio::test]
    async fn a_clean_reboot_is_one_reboot_and_the_allowance_is_kept() {
        let mut b = Bench::new(FakeTarget::new("H1", "B0").reboots(RebootScript::quick("B1")));
        let mut reboots = Vec::new();
        reboot_until_clear(&mut b.ctx(), "B0", &mut reboots)
            .await
            .expect("rebooted");
        assert_eq!(reboots.len(), 1);

        // An installer already rebooted the host as often as allowed: no more reboots.
        let mut b = Bench::new(FakeTarget::new("H1", "B0").reboots(RebootScript::quick("B1")));
        b.options.max_reboots = 1;
        let mut reboots = vec![RebootRecord {
            by: "installer".into(),
            boot_before: "A".into(),
            boot_after: Some("B0".into()),
            duration_ms: 0,
        }];
        let stop = reboot_until_clear(&mut b.ctx(), "B0", &mut reboots)
            .await
            .expect_err("over the allowance");
        assert_eq!(stop.verdict, DeployVerdict::RebootLoop, "{}", stop.why);
        assert!(b.fake.commands_with("shutdown /r").is_empty());
    }
}
