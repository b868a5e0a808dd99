//! Replay: what one host already went through in a run, read from its steps, so a resumed run
//! continues without repeating an installer and knows whether a reboot in flight happened.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::reader::{HostLog, StepRecord};
use crate::events::{HookPoint, RebootPhase, Step, StepOutcome};

/// What an earlier attempt in this run already did on a host. Deploy reads it to never run an
/// installer twice: a patch in `installed_ok` is not installed again; an install left open in
/// `open_steps` (started, never finished: the orchestrator died during it) is settled from the
/// host's own evidence before anything else runs, because the installer may or may not have
/// completed — it may even still be running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeState {
    /// Any step was journaled for this host in this run.
    pub attempted: bool,
    pub staged_ok: BTreeSet<String>,
    pub hash_verified: BTreeSet<String>,
    /// Patches whose installer was started in this run (finished or not).
    pub install_started: BTreeSet<String>,
    /// How many times each patch's installer was started in this run (a patch still missing
    /// after its reboot is installed a second time, never a third).
    #[serde(default)]
    pub install_runs: BTreeMap<String, u32>,
    /// The detail of the last verification that found a patch still missing.
    #[serde(default)]
    pub verify_failed: Option<String>,
    /// The service start types recorded before the host's first install (`None` in journals
    /// written before they were journaled, or when no health check names a service).
    #[serde(default)]
    pub start_types: Option<BTreeMap<String, String>>,
    pub installed_ok: BTreeSet<String>,
    /// Patches whose uninstaller was started in this run (a rollback), finished or not.
    pub uninstall_started: BTreeSet<String>,
    /// Patches whose uninstaller finished and took them off: never run again on resume.
    pub uninstalled_ok: BTreeSet<String>,
    pub qchain_done: bool,
    /// An installer said a reboot is needed (3010, 1641) or qchain ran, and no reboot completed
    /// since.
    pub reboot_required: bool,
    /// A reboot started after the last install (the reboot command may have been sent).
    pub reboot_started: bool,
    /// That reboot's last phase finished ok: the host came back, settled, nothing pending.
    pub reboot_done: bool,
    /// The boot time the host had before that reboot, when the journal saw one.
    pub boot_before_reboot: Option<String>,
    /// The re-scan after the last install proved every patch.
    pub verified: bool,
    /// The host's last step, if it started and never finished (the crash happened during it).
    pub interrupted: Option<Step>,
    /// Every step that started and never finished, in order (one per crash at most).
    pub open_steps: Vec<Step>,
    /// Pre-host hooks in effect: finished ok (`true`) or cut off by a crash (`false`), with no
    /// post hook finished since. The host may be drained: a resumed run must run their post
    /// hooks, whatever else happens.
    pub hooks_in_effect: BTreeMap<HookPoint, bool>,
}

impl ResumeState {
    /// A reboot was under way when the orchestrator stopped.
    pub fn reboot_in_flight(&self) -> bool {
        self.reboot_started && !self.reboot_done
    }

    /// An installer or uninstaller was started on the host in this run.
    pub fn changed_the_host(&self) -> bool {
        !self.install_started.is_empty() || !self.uninstall_started.is_empty()
    }

    /// Install steps left open by a crash, oldest first.
    pub fn open_installs(&self) -> impl Iterator<Item = &Step> {
        self.open_steps
            .iter()
            .filter(|s| matches!(s, Step::Install { .. }))
    }
}

impl HostLog {
    /// What the per-host work needs to continue on this host without repeating itself.
    ///
    /// Steps are read in the order they started. An install starts a new "reboot cycle": the
    /// reboot that completes it is the one whose last phase ([`RebootPhase::Pending`]) finished
    /// ok after it. The boot time the host had before that reboot is the last one the journal saw
    /// before the cycle's first reboot phase (a scan's or a reboot phase's), so a resumed run can
    /// tell "rebooted while hive was down" from "not rebooted yet".
    pub fn resume_state(&self) -> ResumeState {
        let mut state = ResumeState::default();
        let mut last_boot: Option<String> = None;
        for s in &self.steps {
            let ok = matches!(&s.finished, Some(e) if e.ok);
            let outcome = s.finished.as_ref().map(|e| e.outcome);
            match &s.step {
                Step::Stage { patch, .. } if ok => {
                    state.staged_ok.insert(patch.clone());
                }
                Step::VerifyHash { patch } if ok => {
                    state.hash_verified.insert(patch.clone());
                }
                Step::Install { patch, .. } => {
                    state.install_started.insert(patch.clone());
                    *state.install_runs.entry(patch.clone()).or_default() += 1;
                    // An installer ran after any earlier reboot: that reboot does not complete it.
                    state.reboot_started = false;
                    state.reboot_done = false;
                    state.boot_before_reboot = None;
                    state.verified = false;
                    if ok {
                        state.installed_ok.insert(patch.clone());
                        if matches!(
                            outcome,
                            Some(StepOutcome::RebootRequired | StepOutcome::RebootInitiated)
                        ) {
                            state.reboot_required = true;
                        }
                    }
                }
                Step::Uninstall { patch, .. } => {
                    state.uninstall_started.insert(patch.clone());
                    if ok
                        && matches!(
                            outcome,
                            Some(
                                StepOutcome::Removed
                                    | StepOutcome::RebootRequired
                                    | StepOutcome::RebootInitiated
                            )
                        )
                    {
                        state.uninstalled_ok.insert(patch.clone());
                    }
                }
                Step::Qchain if ok => {
                    state.qchain_done = true;
                    state.reboot_required = true;
                }
                Step::Reboot { phase } => {
                    if !state.reboot_started || state.reboot_done {
                        // The first phase of a new reboot.
                        state.reboot_started = true;
                        state.reboot_done = false;
                        state.boot_before_reboot = last_boot.clone();
                    }
                    if ok && *phase == RebootPhase::Pending {
                        state.reboot_done = true;
                        state.reboot_required = false;
                    }
                }
                Step::Verify if ok => state.verified = true,
                Step::Baseline { start_types } if ok => {
                    state.start_types = Some(start_types.clone());
                }
                Step::Verify if outcome == Some(StepOutcome::VerifyFailed) => {
                    state.verify_failed = s.finished.as_ref().map(|e| e.detail.clone());
                }
                Step::Hook { hook } if hook.is_pre() => match &s.finished {
                    None => {
                        state.hooks_in_effect.insert(*hook, false);
                    }
                    Some(e) if e.ok => {
                        state.hooks_in_effect.insert(*hook, true);
                    }
                    Some(_) => {
                        state.hooks_in_effect.remove(hook);
                    }
                },
                Step::Hook { hook } => {
                    if let (Some(pre), Some(_)) = (hook.undoes(), &s.finished) {
                        state.hooks_in_effect.remove(&pre);
                    }
                }
                _ => {}
            }
            if matches!(s.step, Step::Scan | Step::Reboot { .. })
                && let Some(boot) = boot_time_of(s)
            {
                last_boot = Some(boot);
            }
        }
        state.open_steps = self
            .steps
            .iter()
            .filter(|s| s.finished.is_none())
            .map(|s| s.step.clone())
            .collect();
        // The last step is the one the crash happened in; earlier open ones were left by earlier
        // crashes and are listed in `open_steps` for the resumed run to settle.
        state.interrupted = self
            .steps
            .last()
            .filter(|s| s.finished.is_none())
            .map(|s| s.step.clone());
        state.attempted = !self.steps.is_empty();
        state
    }
}

/// The boot time a finished step saw: its `boot_time` field, or, for a record written before
/// that field existed, the `boot time X` the detail of an ok step names (hive wrote it there
/// only on ok scans and reboot logons; failed steps' details say "boot time" in prose). Records
/// written since never name a boot time in an ok step's detail without the field.
fn boot_time_of(s: &StepRecord) -> Option<String> {
    let end = s.finished.as_ref()?;
    match &end.boot_time {
        Some(boot) => Some(boot.clone()),
        None if end.ok => legacy_boot_time_in(&end.detail).map(str::to_string),
        None => None,
    }
}

/// Read-side compatibility with journals written before the boot time had a field: there the
/// scan and the reboot phases wrote it only as `boot time 2026-11-25T13:27:00.000Z` in the
/// detail. Never used on records that have the field.
fn legacy_boot_time_in(detail: &str) -> Option<&str> {
    let at = detail.find("boot time ")? + "boot time ".len();
    let rest = &detail[at..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == ')')
        .unwrap_or(rest.len());
    let boot = &rest[..end];
    (!boot.is_empty()).then_some(boot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, StepState};

    fn ev(step: Step, state: StepState) -> Event {
        Event::new("r", "h", step, state)
    }

    fn done(step: Step, ok: bool, outcome: StepOutcome, detail: &str) -> Event {
        ev(
            step,
            StepState::Finished {
                ok,
                outcome,
                detail: detail.into(),
                boot_time: None,
            },
        )
    }

    fn done_at_boot(step: Step, outcome: StepOutcome, boot: &str) -> Event {
        ev(
            step,
            StepState::Finished {
                ok: true,
                outcome,
                detail: String::new(),
                boot_time: Some(boot.into()),
            },
        )
    }

    fn install(patch: &str) -> Step {
        Step::Install {
            patch: patch.into(),
            index: 1,
            total: 2,
        }
    }

    fn phase(phase: RebootPhase) -> Step {
        Step::Reboot { phase }
    }

    fn log_of(events: &[Event]) -> HostLog {
        let mut h = HostLog::default();
        for e in events {
            h.add(e);
        }
        h
    }

    #[test]
    fn a_reboot_is_done_only_when_its_last_phase_is_and_no_install_came_after() {
        use RebootPhase::*;
        let mut events = vec![
            ev(Step::Scan, StepState::Started),
            done_at_boot(Step::Scan, StepOutcome::Ok, "T0"),
            ev(install("KB1"), StepState::Started),
            done(
                install("KB1"),
                true,
                StepOutcome::RebootRequired,
                "exit 3010",
            ),
            ev(phase(Shutdown), StepState::Started),
            done(phase(Shutdown), true, StepOutcome::Ok, "exit 0"),
            ev(phase(Down), StepState::Started),
        ];
        let s = log_of(&events).resume_state();
        assert!(s.reboot_in_flight() && !s.reboot_done && s.reboot_required);
        assert_eq!(s.boot_before_reboot.as_deref(), Some("T0"));
        assert_eq!(s.interrupted, Some(phase(Down)));
        assert_eq!(s.installed_ok, BTreeSet::from(["KB1".to_string()]));

        // The resumed run found it rebooted: login and the last phases end ok.
        events.extend([
            done(phase(Down), false, StepOutcome::Interrupted, ""),
            ev(phase(Resume), StepState::Started),
            done_at_boot(phase(Resume), StepOutcome::Rebooted, "T1"),
            ev(phase(Settled), StepState::Started),
            done(phase(Settled), true, StepOutcome::Ok, ""),
            ev(phase(Pending), StepState::Started),
            done(phase(Pending), true, StepOutcome::NothingPending, ""),
        ]);
        let s = log_of(&events).resume_state();
        assert!(s.reboot_done && !s.reboot_in_flight() && !s.reboot_required);
        assert!(s.open_steps.is_empty());

        // An installer after that reboot (e.g. after an installer's own restart) needs another.
        events.push(ev(install("KB2"), StepState::Started));
        let s = log_of(&events).resume_state();
        assert!(!s.reboot_done && !s.reboot_started);
        assert_eq!(s.open_installs().collect::<Vec<_>>(), [&install("KB2")]);
        assert_eq!(
            s.install_started,
            BTreeSet::from(["KB1".to_string(), "KB2".to_string()])
        );
        // The next reboot compares with the boot time seen last (the resumed phase's).
        events.extend([
            done(
                install("KB2"),
                true,
                StepOutcome::LandedBeforeCrash,
                "KB2 in the hotfix list",
            ),
            ev(phase(Shutdown), StepState::Started),
        ]);
        let s = log_of(&events).resume_state();
        assert_eq!(s.boot_before_reboot.as_deref(), Some("T1"));
    }

    #[test]
    fn a_pending_phase_that_failed_does_not_complete_the_reboot() {
        use RebootPhase::*;
        let events = vec![
            done_at_boot(Step::Scan, StepOutcome::Ok, "T0"),
            done(install("KB1"), true, StepOutcome::RebootRequired, ""),
            done(phase(Shutdown), true, StepOutcome::Ok, ""),
            done(phase(Settled), true, StepOutcome::Ok, ""),
            done(phase(Pending), false, StepOutcome::StillPending, "PFRO"),
        ];
        let s = log_of(&events).resume_state();
        assert!(!s.reboot_done && s.reboot_required);
    }

    #[test]
    fn installs_are_counted_and_the_start_types_kept() {
        let baseline = Step::Baseline {
            start_types: [("w3svc".to_string(), "2 AUTO_START".to_string())].into(),
        };
        let events = vec![
            done_at_boot(Step::Scan, StepOutcome::Ok, "T0"),
            ev(baseline.clone(), StepState::Started),
            done(baseline, true, StepOutcome::Ok, ""),
            done(install("KB1"), true, StepOutcome::RebootRequired, ""),
            done(
                phase(RebootPhase::Pending),
                true,
                StepOutcome::NothingPending,
                "",
            ),
            done(
                Step::Verify,
                false,
                StepOutcome::VerifyFailed,
                "KB1 still missing",
            ),
            ev(install("KB1"), StepState::Started),
        ];
        let s = log_of(&events).resume_state();
        assert_eq!(s.install_runs.get("KB1"), Some(&2));
        assert_eq!(s.verify_failed.as_deref(), Some("KB1 still missing"));
        assert_eq!(
            s.start_types
                .and_then(|t| t.get("w3svc").cloned())
                .as_deref(),
            Some("2 AUTO_START")
        );
        // A journal from before either was recorded.
        let s = log_of(&[done(install("KB1"), true, StepOutcome::Ok, "")]).resume_state();
        assert_eq!((s.start_types, s.verify_failed), (None, None));
    }

    #[test]
    fn open_steps_of_several_crashes_are_all_listed() {
        let events = vec![
            ev(install("KB1"), StepState::Started),
            ev(Step::Scan, StepState::Started),
        ];
        let s = log_of(&events).resume_state();
        assert_eq!(s.open_steps, [install("KB1"), Step::Scan]);
        assert_eq!(s.interrupted, Some(Step::Scan));
        assert_eq!(s.open_installs().count(), 1);
    }

    #[test]
    fn the_boot_time_field_wins_over_detail_text() {
        let events = vec![
            ev(
                Step::Scan,
                StepState::Finished {
                    ok: true,
                    outcome: StepOutcome::Ok,
                    detail: "boot time OLD".into(),
                    boot_time: Some("NEW".into()),
                },
            ),
            done(phase(RebootPhase::Shutdown), true, StepOutcome::Ok, ""),
        ];
        let s = log_of(&events).resume_state();
        assert_eq!(s.boot_before_reboot.as_deref(), Some("NEW"));
    }

    #[test]
    fn old_records_name_their_boot_time_in_the_detail() {
        assert_eq!(
            legacy_boot_time_in("3 missing; boot time 2026-11-25T13:27:00.000Z"),
            Some("2026-11-25T13:27:00.000Z")
        );
        assert_eq!(
            legacy_boot_time_in("boot time X, unchanged: rebooting"),
            Some("X")
        );
        assert_eq!(legacy_boot_time_in("exit 0"), None);
    }
}
