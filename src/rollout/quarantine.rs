//! Promote only what passed: per-patch accounting across the waves of a run.
//!
//! A canary wave exists to prove patches, not hosts. When a host of a wave whose plan stage says
//! `quarantine_after=N` ends `failed`, the patches it was installing are the suspects, and each
//! suspect is charged with that host as evidence. A patch charged by `N` hosts is *quarantined*:
//! no later host of the run installs it, while the other patches go on. The failed hosts whose
//! every suspect is quarantined are *withheld* from the budgets: the patch, not the host or the
//! run, is what failed, and the run has already acted on it. `hive promote RUN --patch KB` lifts
//! a quarantine by hand; hosts started after that install the patch again.
//!
//! Who is a suspect, from the host's own install steps in this run (the events the journal
//! holds, so a resumed run rebuilds the same accounting):
//! - the patches whose installer failed, when one did (the host stops at the first failed
//!   installer, so that one is to blame);
//! - otherwise every patch whose installer started (a failed verification, reboot or health
//!   check after several installs cannot tell them apart: all of them are charged).
//!
//! A host in a reboot loop ([`HostVerdict::RebootLoop`]) withholds its suspects from itself
//! only: one host that cannot settle says little about the patch on the others.
//!
//! Every quarantine and every release is a journal record ([`super::journal::Record`]), written
//! by the engine, so `hive report` and a resumed run see which patch was withheld, on which
//! evidence, and who released it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::journal::{JournalError, RunLog, StepRecord};
use super::plan::Wave;
use super::verdict::{HostOutcome, HostVerdict};
use crate::catalog::model::Catalog;
use crate::deploy::plan::{ApprovedInstaller, HostPlan, PlannedInstall, plan_host_keeping};
use crate::events::{Event, EventSink, Step, StepOutcome, StepState};
use crate::scan::evaluate::Verdict;

/// The folder of a run where `hive promote RUN --patch KB` leaves one file per released patch,
/// for the engine (running now or resumed later) to journal and act on.
pub const RELEASE_DIR: &str = "release";

/// One host's verdict, held against a patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub host: String,
    pub wave: usize,
    pub verdict: HostVerdict,
    /// The host's verdict line (which step failed, and how).
    pub detail: String,
}

/// A patch withheld, from the whole fleet or from one host, and the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withheld {
    pub patch: String,
    /// `None`: withheld from every host the run has yet to start; `Some(host)`: from that host
    /// only (a reboot loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub evidence: Vec<Evidence>,
}

impl Withheld {
    /// "KB5200002 withheld after failed on C1, C2" — the summary's and the report's line.
    pub fn line(&self) -> String {
        let hosts: Vec<String> = self
            .evidence
            .iter()
            .map(|e| format!("{} on {}", e.verdict.word(), e.host))
            .collect();
        match &self.host {
            None => format!(
                "{} withheld from the fleet: {}",
                self.patch,
                hosts.join(", ")
            ),
            Some(h) => format!("{} withheld from {h}: {}", self.patch, hosts.join(", ")),
        }
    }
}

/// A quarantine lifted by hand (`hive promote RUN --patch KB`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub patch: String,
    /// Who released it and when, as the marker file says.
    pub by: String,
}

/// What the engine learns from one host's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judgement {
    /// Quarantines this verdict completed: the engine journals each.
    pub new: Vec<Withheld>,
    /// Every suspect of the host is quarantined from the fleet: the host is withheld from the
    /// budgets.
    pub absorbed: bool,
}

/// How an install step of a host ended, as far as the ledger is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Install {
    Started,
    Ok,
    Failed,
}

#[derive(Debug, Default)]
struct State {
    /// host → patch → how its installer ended (in this run).
    installs: BTreeMap<String, BTreeMap<String, Install>>,
    /// patch → hosts charged with it (since its last release).
    charges: BTreeMap<String, Vec<Evidence>>,
    /// Quarantined from the fleet, by patch.
    fleet: BTreeMap<String, Withheld>,
    /// Withheld from single hosts: host → patch → why.
    hosts: BTreeMap<String, BTreeMap<String, Withheld>>,
    /// Releases already acted on (and journaled).
    released: Vec<Release>,
    /// host → patches whose installer started again after it had ended ok: deploy installs a
    /// patch a second time only when its re-scan after the reboot still missed it, so in a
    /// reboot loop these, not the host's other patches, are the ones that do not stay.
    installed_again: BTreeMap<String, BTreeSet<String>>,
}

/// The per-patch accounting of one run. It watches the run's step events (it is one of the
/// engine's event sinks) and judges each host's verdict as it comes in.
#[derive(Debug, Default)]
pub struct Ledger {
    state: Mutex<State>,
}

impl Ledger {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A panic while holding the lock leaves plain data behind: keep using it.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// The ledger of a resumed run: its install steps, quarantines and releases as journaled.
    pub fn restore(log: &RunLog) -> Ledger {
        let ledger = Ledger::default();
        for (host, h) in &log.hosts {
            ledger.replay_steps(host, &h.steps);
        }
        ledger.with(|s| {
            for w in &log.withheld {
                for e in &w.evidence {
                    let charged = s.charges.entry(w.patch.clone()).or_default();
                    if !charged.iter().any(|c| c.host == e.host) {
                        charged.push(e.clone());
                    }
                }
                match &w.host {
                    None => {
                        s.fleet.insert(w.patch.clone(), w.clone());
                    }
                    Some(h) => {
                        s.hosts
                            .entry(h.clone())
                            .or_default()
                            .insert(w.patch.clone(), w.clone());
                    }
                }
            }
            for r in &log.released {
                release_in(s, r);
            }
        });
        ledger
    }

    fn replay_steps(&self, host: &str, steps: &[StepRecord]) {
        self.with(|s| {
            for step in steps {
                let Step::Install { patch, .. } = &step.step else {
                    continue;
                };
                let state = match &step.finished {
                    None => Some(Install::Started),
                    Some(end) => install_end(end.ok, end.outcome),
                };
                note_install(s, host, patch, state);
            }
        });
    }

    /// Patches no host started after now may install: the fleet's quarantine and the host's own.
    pub fn withheld_for(&self, host: &str) -> BTreeSet<String> {
        self.with(|s| {
            let mut out: BTreeSet<String> = s.fleet.keys().cloned().collect();
            if let Some(own) = s.hosts.get(host) {
                out.extend(own.keys().cloned());
            }
            out
        })
    }

    /// Whether every suspect of `host` is quarantined from the fleet (and it has one).
    pub fn absorbs(&self, host: &str) -> bool {
        self.with(|s| absorbed(s, host))
    }

    /// Judge one host's verdict in `wave`: charge its suspects, and quarantine those that
    /// reached the wave's threshold.
    pub fn judge(&self, host: &str, wave: &Wave, outcome: &HostOutcome) -> Judgement {
        self.with(|s| {
            let mut new = Vec::new();
            if !outcome.verdict.against_patches() {
                return Judgement::default();
            }
            let evidence = Evidence {
                host: host.to_string(),
                wave: wave.index,
                verdict: outcome.verdict,
                detail: outcome.detail.clone(),
            };
            let suspects = suspects(s, host);
            if outcome.verdict == HostVerdict::RebootLoop {
                let suspects = match s.installed_again.get(host) {
                    Some(again) if !again.is_empty() => again.iter().cloned().collect(),
                    _ => suspects,
                };
                let own = s.hosts.entry(host.to_string()).or_default();
                for patch in suspects {
                    if own.contains_key(&patch) {
                        continue;
                    }
                    let w = Withheld {
                        patch: patch.clone(),
                        host: Some(host.to_string()),
                        evidence: vec![evidence.clone()],
                    };
                    own.insert(patch, w.clone());
                    new.push(w);
                }
                return Judgement {
                    new,
                    absorbed: false,
                };
            }
            let Some(after) = wave.quarantine_after else {
                return Judgement::default();
            };
            for patch in suspects {
                let charged = s.charges.entry(patch.clone()).or_default();
                if !charged.iter().any(|e| e.host == host) {
                    charged.push(evidence.clone());
                }
                // Hosts failing with a patch already quarantined add to its evidence.
                if let Some(w) = s.fleet.get_mut(&patch)
                    && !w.evidence.iter().any(|e| e.host == host)
                {
                    w.evidence.push(evidence.clone());
                }
                if charged.len() >= after.max(1) as usize && !s.fleet.contains_key(&patch) {
                    let w = Withheld {
                        patch: patch.clone(),
                        host: None,
                        evidence: charged.clone(),
                    };
                    s.fleet.insert(patch, w.clone());
                    new.push(w);
                }
            }
            Judgement {
                new,
                absorbed: absorbed(s, host),
            }
        })
    }

    /// Lift a quarantine. Returns false when the patch was not withheld (nothing to journal).
    pub fn release(&self, release: &Release) -> bool {
        self.with(|s| {
            if s.released.iter().any(|r| r.patch == release.patch) {
                return false;
            }
            release_in(s, release)
        })
    }

    /// Everything withheld now (fleet first, then per host), for the summary.
    pub fn withheld(&self) -> Vec<Withheld> {
        self.with(|s| {
            let mut out: Vec<Withheld> = s.fleet.values().cloned().collect();
            out.extend(s.hosts.values().flat_map(|m| m.values().cloned()));
            out
        })
    }

    /// The releases acted on in this run.
    pub fn released(&self) -> Vec<Release> {
        self.with(|s| s.released.clone())
    }
}

fn release_in(s: &mut State, release: &Release) -> bool {
    let mut found = s.fleet.remove(&release.patch).is_some();
    for own in s.hosts.values_mut() {
        found |= own.remove(&release.patch).is_some();
    }
    // New evidence counts afresh: the old hosts already had their say.
    s.charges.remove(&release.patch);
    s.released.push(release.clone());
    found
}

fn install_end(ok: bool, outcome: StepOutcome) -> Option<Install> {
    match outcome {
        // Settled after a crash: the installer did not run to an end, it runs again.
        StepOutcome::DidNotComplete => Some(Install::Started),
        // The re-scan no longer plans it: nothing was done with it.
        StepOutcome::NotPlanned | StepOutcome::NotRun => None,
        _ if ok => Some(Install::Ok),
        _ => Some(Install::Failed),
    }
}

fn note_install(s: &mut State, host: &str, patch: &str, state: Option<Install>) {
    let ended_ok = s.installs.get(host).and_then(|m| m.get(patch)) == Some(&Install::Ok);
    if ended_ok && state == Some(Install::Started) {
        s.installed_again
            .entry(host.to_string())
            .or_default()
            .insert(patch.to_string());
    }
    let seen = s.installs.entry(host.to_string()).or_default();
    match state {
        Some(st) => {
            seen.insert(patch.to_string(), st);
        }
        None => {
            if seen.get(patch) == Some(&Install::Started) {
                seen.remove(patch);
            }
        }
    }
}

fn suspects(s: &State, host: &str) -> Vec<String> {
    let Some(seen) = s.installs.get(host) else {
        return Vec::new();
    };
    let failed: Vec<String> = seen
        .iter()
        .filter(|(_, st)| **st == Install::Failed)
        .map(|(p, _)| p.clone())
        .collect();
    if !failed.is_empty() {
        return failed;
    }
    seen.keys().cloned().collect()
}

fn absorbed(s: &State, host: &str) -> bool {
    let suspects = suspects(s, host);
    !suspects.is_empty() && suspects.iter().all(|p| s.fleet.contains_key(p))
}

impl EventSink for Ledger {
    fn emit(&self, event: &Event) -> Result<(), String> {
        let Step::Install { patch, .. } = &event.step else {
            return Ok(());
        };
        let state = match &event.state {
            StepState::Started => Some(Install::Started),
            StepState::Finished { ok, outcome, .. } => install_end(*ok, *outcome),
            StepState::Progress { .. } => return Ok(()),
        };
        self.with(|s| note_install(s, &event.host, patch, state));
        Ok(())
    }
}

/// Plan a host without the patches withheld from it (a patch whose installer this run already
/// started on the host stays: its reboot and verification are owed). Returns the plan and the
/// withheld patches the host is missing, for its verdict line.
pub fn plan_without_withheld(
    host: &str,
    verdicts: &[Verdict],
    catalog: &Catalog,
    approved: &[ApprovedInstaller],
    keep: &BTreeSet<String>,
    withheld: &BTreeSet<String>,
) -> (HostPlan, Vec<String>) {
    let full = plan_host_keeping(host, verdicts, catalog, approved, keep);
    let held: Vec<&PlannedInstall> = full
        .installs
        .iter()
        .filter(|i| withheld.contains(&i.patch) && !keep.contains(&i.patch))
        .collect();
    if held.is_empty() {
        return (full, Vec::new());
    }
    let patches: Vec<String> = held.iter().map(|i| i.patch.clone()).collect();
    let files: BTreeSet<&str> = held.iter().map(|i| i.installer.sha256.as_str()).collect();
    let allowed: Vec<ApprovedInstaller> = approved
        .iter()
        .filter(|a| !files.contains(a.sha256.as_str()))
        .cloned()
        .collect();
    (
        plan_host_keeping(host, verdicts, catalog, &allowed, keep),
        patches,
    )
}

/// Leave the marker that releases `patch` in `run` (`hive promote RUN --patch KB`). A file, like
/// the promote marker, so it works while the run is going (its engine journals the release
/// before its next wave) or after it ended (a resume journals it first).
pub fn release_marker(
    repo_root: &Path,
    run: &str,
    patch: &str,
    by: &str,
) -> Result<PathBuf, JournalError> {
    let patch = patch.trim();
    if patch.is_empty()
        || !patch
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        || patch.starts_with('.')
    {
        return Err(JournalError::Invalid {
            path: PathBuf::from(patch),
            message: format!(
                "`{patch}` is not a patch id (KB5035845, MS01-033: letters, digits, '-', '_', '.')"
            ),
        });
    }
    let dir = super::journal::run_dir(repo_root, run)?.join(RELEASE_DIR);
    std::fs::create_dir_all(&dir).map_err(super::journal::io(&dir))?;
    let path = dir.join(patch);
    let text = format!(
        "released by {by} at {}\n",
        crate::time::utc_now(crate::time::StampFormat::RunId)
    );
    crate::repo::write_atomic(&path, text.as_bytes()).map_err(|e| JournalError::Invalid {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(path)
}

/// The release markers of a run's folder, by patch (a missing folder: none).
pub fn release_markers(run_dir: &Path) -> Vec<Release> {
    let Ok(entries) = std::fs::read_dir(run_dir.join(RELEASE_DIR)) else {
        return Vec::new();
    };
    let mut out: Vec<Release> = entries
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            let by = std::fs::read_to_string(e.path())
                .map(|t| t.trim().to_string())
                .unwrap_or_default();
            Release {
                patch: e.file_name().to_string_lossy().to_string(),
                by,
            }
        })
        .collect();
    out.sort_by(|a, b| a.patch.cmp(&b.patch));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(after: Option<u32>) -> Wave {
        Wave {
            index: 0,
            name: "canary".into(),
            canary: true,
            hosts: vec!["C1".into(), "C2".into()],
            soak_ms: 0,
            max_failed: None,
            max_unreachable: None,
            quarantine_after: after,
        }
    }

    fn install(l: &Ledger, host: &str, patch: &str, ok: bool) {
        let step = Step::Install {
            patch: patch.into(),
            index: 1,
            total: 2,
        };
        l.emit(&Event::new("r", host, step.clone(), StepState::Started))
            .unwrap();
        let outcome = if ok {
            StepOutcome::Ok
        } else {
            StepOutcome::Failed
        };
        l.emit(&Event::new(
            "r",
            host,
            step,
            StepState::finished(ok, outcome, "", None),
        ))
        .unwrap();
    }

    fn failed(detail: &str) -> HostOutcome {
        HostOutcome::new(HostVerdict::Failed, detail)
    }

    #[test]
    fn the_failed_installer_is_the_suspect_and_the_threshold_counts_hosts() {
        let l = Ledger::default();
        install(&l, "C1", "KB1", true);
        install(&l, "C1", "KB2", false);
        let j = l.judge("C1", &wave(Some(2)), &failed("KB2 exit 1603"));
        assert!(j.new.is_empty() && !j.absorbed, "one host of two: {j:?}");
        assert!(l.withheld_for("X").is_empty());

        install(&l, "C2", "KB2", false);
        let j = l.judge("C2", &wave(Some(2)), &failed("KB2 exit 1603"));
        assert_eq!(j.new.len(), 1);
        assert_eq!(j.new[0].patch, "KB2");
        assert_eq!(j.new[0].evidence.len(), 2);
        assert!(j.absorbed);
        assert!(l.absorbs("C1"), "C1's only suspect is quarantined now");
        assert_eq!(l.withheld_for("X"), BTreeSet::from(["KB2".to_string()]));
    }

    #[test]
    fn without_a_failed_installer_every_installed_patch_is_charged() {
        let l = Ledger::default();
        install(&l, "C1", "KB1", true);
        install(&l, "C1", "KB2", true);
        let j = l.judge("C1", &wave(Some(1)), &failed("verify: KB2 missing"));
        let patches: Vec<&str> = j.new.iter().map(|w| w.patch.as_str()).collect();
        assert_eq!(patches, ["KB1", "KB2"]);
        assert!(j.absorbed);
    }

    #[test]
    fn no_threshold_no_quarantine_and_good_hosts_charge_nothing() {
        let l = Ledger::default();
        install(&l, "C1", "KB1", false);
        assert_eq!(
            l.judge("C1", &wave(None), &failed("x")),
            Judgement::default()
        );
        install(&l, "C2", "KB1", true);
        let ok = HostOutcome::new(HostVerdict::Patched, "");
        assert_eq!(l.judge("C2", &wave(Some(1)), &ok), Judgement::default());
        assert!(l.withheld_for("C3").is_empty());
    }

    #[test]
    fn a_reboot_loop_withholds_from_its_host_only() {
        let l = Ledger::default();
        install(&l, "H7", "KB1", true);
        let lp = HostOutcome::new(HostVerdict::RebootLoop, "pending twice");
        let j = l.judge("H7", &wave(Some(1)), &lp);
        assert_eq!(j.new.len(), 1);
        assert_eq!(j.new[0].host.as_deref(), Some("H7"));
        assert!(!j.absorbed);
        assert_eq!(l.withheld_for("H7"), BTreeSet::from(["KB1".to_string()]));
        assert!(l.withheld_for("H8").is_empty());
    }

    #[test]
    fn a_loop_of_a_patch_installed_twice_withholds_that_patch_only() {
        let l = Ledger::default();
        install(&l, "H7", "KB1", true);
        install(&l, "H7", "KB2", true);
        // The re-scan after the reboot missed KB2: installed once more.
        install(&l, "H7", "KB2", true);
        let lp = HostOutcome::new(
            HostVerdict::RebootLoop,
            "KB2 still missing after 2 installs",
        );
        let j = l.judge("H7", &wave(Some(1)), &lp);
        let patches: Vec<&str> = j.new.iter().map(|w| w.patch.as_str()).collect();
        assert_eq!(patches, ["KB2"]);
        assert_eq!(l.withheld_for("H7"), BTreeSet::from(["KB2".to_string()]));
    }

    #[test]
    fn a_release_lifts_the_quarantine_and_old_evidence_does_not_return() {
        let l = Ledger::default();
        install(&l, "C1", "KB2", false);
        l.judge("C1", &wave(Some(1)), &failed("x"));
        let r = Release {
            patch: "KB2".into(),
            by: "ops".into(),
        };
        assert!(l.release(&r));
        assert!(
            !l.release(&r),
            "a second release of the same patch is nothing new"
        );
        assert!(l.withheld_for("X").is_empty());
        assert!(l.withheld().is_empty());
        assert_eq!(l.released(), vec![r]);
    }

    #[test]
    fn release_markers_refuse_paths_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("runs").join("r1");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join(super::super::journal::JOURNAL_FILE), "").unwrap();
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(
                release_marker(dir.path(), "r1", bad, "me").is_err(),
                "{bad}"
            );
        }
        release_marker(dir.path(), "r1", "KB2", "me").unwrap();
        let got = release_markers(&run);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].patch, "KB2");
        assert!(got[0].by.starts_with("released by me"), "{}", got[0].by);
    }
}
