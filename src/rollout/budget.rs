//! Failure budgets and the canary gate: pure functions of the verdicts so far.

use std::collections::BTreeMap;

use super::options::RolloutOptions;
use super::plan::{Limit, Wave};
use super::stop::StopReason;
use super::summary::HostLine;
use super::verdict::HostCounts;

pub(crate) fn count_in<'a>(
    hosts: impl Iterator<Item = &'a String>,
    lines: &BTreeMap<String, HostLine>,
) -> HostCounts {
    let mut c = HostCounts::default();
    for h in hosts {
        match lines.get(h) {
            Some(l) => c.add_judged(l.verdict, l.withheld),
            None => c.add(None),
        }
    }
    c
}

fn over(limit: Option<Limit>, count: usize, of: usize) -> Option<usize> {
    let allowed = limit?.allowed(of);
    (count > allowed).then_some(allowed)
}

pub(crate) fn wave_budget(wave: &Wave, lines: &BTreeMap<String, HostLine>) -> Option<StopReason> {
    wave_budget_of(wave, &count_in(wave.hosts.iter(), lines))
}

pub(crate) fn wave_budget_of(wave: &Wave, c: &HostCounts) -> Option<StopReason> {
    let n = wave.hosts.len();
    let hit = |kind: &str, count: usize, allowed: usize| {
        Some(if wave.canary {
            StopReason::CanaryGate {
                wave: wave.name.clone(),
                detail: format!("{count} of {n} canaries {kind} (allowed: {allowed})"),
            }
        } else {
            StopReason::WaveBudget {
                wave: wave.name.clone(),
                kind: kind.to_string(),
                count,
                allowed,
            }
        })
    };
    if let Some(allowed) = over(wave.max_failed, c.failed_for_budget(), n) {
        return hit(failed_kind(c), c.failed_for_budget(), allowed);
    }
    if let Some(allowed) = over(wave.max_unreachable, c.unreachable, n) {
        return hit("unreachable", c.unreachable, allowed);
    }
    None
}

/// How the failed budget names what it counted: unhealthy hosts weigh like failed ones.
fn failed_kind(c: &HostCounts) -> &'static str {
    match (c.unhealthy > 0, c.reboot_loop > 0) {
        (false, false) => "failed",
        (true, false) => "failed or unhealthy",
        (false, true) => "failed or in a reboot loop",
        (true, true) => "failed, unhealthy or in a reboot loop",
    }
}

pub(crate) fn total_budget(
    options: &RolloutOptions,
    lines: &BTreeMap<String, HostLine>,
    total: usize,
) -> Option<StopReason> {
    total_budget_of(options, &count_in(lines.keys(), lines), total)
}

pub(crate) fn total_budget_of(
    options: &RolloutOptions,
    c: &HostCounts,
    total: usize,
) -> Option<StopReason> {
    if let Some(allowed) = over(options.max_failed_total, c.failed_for_budget(), total) {
        return Some(StopReason::TotalBudget {
            kind: failed_kind(c).into(),
            count: c.failed_for_budget(),
            allowed,
        });
    }
    if let Some(allowed) = over(options.max_unreachable_total, c.unreachable, total) {
        return Some(StopReason::TotalBudget {
            kind: "unreachable".into(),
            count: c.unreachable,
            allowed,
        });
    }
    None
}

/// A canary wave passes only when every canary ended, none was interrupted, and at least one
/// is verified good (a wave of skipped canaries proves nothing). Budgets were checked already.
pub(crate) fn canary_gate(wave: &Wave, lines: &BTreeMap<String, HostLine>) -> Option<String> {
    if !wave.canary {
        return None;
    }
    let c = count_in(wave.hosts.iter(), lines);
    if c.not_started + c.interrupted > 0 {
        return Some(format!(
            "{} canaries did not finish",
            c.not_started + c.interrupted
        ));
    }
    // A canary whose failure a quarantined patch explains proved that patch bad; the patches
    // that go on were installed beside it.
    if c.patched + c.nothing_to_do + c.withheld == 0 {
        return Some("no canary was verified".into());
    }
    None
}
