//! What a run installed, and where: read from its journal, then narrowed by `--hosts` and
//! `--patch`.
//!
//! A patch counts as installed by the run on a host when its `Install` step finished with an
//! outcome that says the installer changed the host (`ok`, `reboot_required`,
//! `reboot_initiated`, or `landed_before_crash` on resume). "Already installed" and "not
//! applicable" do not count: the run found them there, so taking them off would leave the host
//! worse than the first scan found it. A host whose verification failed still counts — the
//! installer changed it, and the rollback's own scan says what is really there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::events::{Step, StepOutcome};
use crate::rollout::journal::{JournalError, RollbackOf, RunLog, list_runs, runs_dir};

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("run `{run}` not found under {runs} ({known})")]
    NoSuchRun {
        run: String,
        runs: PathBuf,
        known: String,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(
        "run `{run}` installed nothing (journal {journal}: no install changed a host), so there is nothing to roll back{why}"
    )]
    NothingInstalled {
        run: String,
        journal: PathBuf,
        why: String,
    },
    #[error("--hosts {host}: run `{run}` installed nothing there (it installed on: {hosts})")]
    HostNotInRun {
        run: String,
        host: String,
        hosts: String,
    },
    #[error(
        "--patch {patch}: run `{run}` did not install it on {scope} (it installed: {installed})"
    )]
    PatchNotInRun {
        run: String,
        patch: String,
        scope: String,
        installed: String,
    },
}

/// Install outcomes that mean the installer changed the host.
fn changed_the_host(outcome: StepOutcome) -> bool {
    matches!(
        outcome,
        StepOutcome::Ok
            | StepOutcome::RebootRequired
            | StepOutcome::RebootInitiated
            | StepOutcome::LandedBeforeCrash
    )
}

/// Per host, the patches `log`'s run installed, in the order they went on.
pub fn installed_by(log: &RunLog) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (host, h) in &log.hosts {
        for s in &h.steps {
            let (Step::Install { patch, .. }, Some(end)) = (&s.step, &s.finished) else {
                continue;
            };
            if !end.ok || !changed_the_host(end.outcome) {
                continue;
            }
            let list = out.entry(host.clone()).or_default();
            if !list.contains(patch) {
                list.push(patch.clone());
            }
        }
    }
    out
}

/// Read run `run` and decide what a rollback of it takes off: every patch it installed, on every
/// host, unless `hosts` / `patches` narrow it (each name must be one the run installed on / installed).
/// The lists come out in removal order: last installed, first removed.
pub fn plan(
    repo_root: &Path,
    run: &str,
    hosts: &[String],
    patches: &[String],
) -> Result<RollbackOf, SourceError> {
    let log = RunLog::load(repo_root, run).map_err(|e| match e {
        JournalError::NoSuchRun { run, runs } => SourceError::NoSuchRun {
            known: known_runs(repo_root),
            run,
            runs,
        },
        other => SourceError::Journal(other),
    })?;
    let installed = installed_by(&log);
    if installed.is_empty() {
        let why = match &log.header.rollback {
            Some(of) => format!(
                ": it is itself a rollback of `{}` (run a rollout to put patches back)",
                of.run
            ),
            None => String::new(),
        };
        return Err(SourceError::NothingInstalled {
            run: run.to_string(),
            journal: log.dir.join(crate::rollout::journal::JOURNAL_FILE),
            why,
        });
    }
    let all_hosts = || installed.keys().cloned().collect::<Vec<_>>().join(", ");
    let mut chosen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in hosts {
        let Some((host, list)) = installed.iter().find(|(h, _)| h.eq_ignore_ascii_case(name))
        else {
            return Err(SourceError::HostNotInRun {
                run: run.to_string(),
                host: name.clone(),
                hosts: all_hosts(),
            });
        };
        chosen.insert(host.clone(), list.clone());
    }
    if hosts.is_empty() {
        chosen = installed.clone();
    }
    if !patches.is_empty() {
        for p in patches {
            if !chosen
                .values()
                .any(|l| l.iter().any(|x| x.eq_ignore_ascii_case(p)))
            {
                let mut all: Vec<&String> = chosen.values().flatten().collect();
                all.sort();
                all.dedup();
                return Err(SourceError::PatchNotInRun {
                    run: run.to_string(),
                    patch: p.clone(),
                    scope: if hosts.is_empty() {
                        "any host".into()
                    } else {
                        hosts.join(", ")
                    },
                    installed: all
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        for list in chosen.values_mut() {
            list.retain(|x| patches.iter().any(|p| p.eq_ignore_ascii_case(x)));
        }
        chosen.retain(|_, l| !l.is_empty());
    }
    for list in chosen.values_mut() {
        list.reverse();
    }
    Ok(RollbackOf {
        run: run.to_string(),
        remove: chosen,
    })
}

/// The newest runs of the repository, for an error naming a run that is not there.
fn known_runs(repo_root: &Path) -> String {
    let mut runs: Vec<String> = list_runs(repo_root)
        .map(|l| l.into_iter().map(|r| r.run).collect())
        .unwrap_or_default();
    if runs.is_empty() {
        return format!(
            "no run there: {} is empty or missing",
            runs_dir(repo_root).display()
        );
    }
    runs.sort();
    let newest: Vec<String> = runs.iter().rev().take(5).cloned().collect();
    format!("runs there, newest first: {}", newest.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, StepState};
    use crate::rollout::journal::{Journal, RunHeader};
    use crate::rollout::{RolloutOptions, Wave};

    fn install(run: &str, host: &str, patch: &str, outcome: StepOutcome) -> [Event; 2] {
        let step = Step::Install {
            patch: patch.into(),
            index: 1,
            total: 1,
        };
        [
            Event::new(run, host, step.clone(), StepState::Started),
            Event::new(
                run,
                host,
                step,
                StepState::finished(true, outcome, "", None),
            ),
        ]
    }

    fn journal(repo: &Path, run: &str, events: &[Event]) {
        let header = RunHeader {
            run: run.into(),
            created_ms: 0,
            plan: "100%".into(),
            waves: vec![Wave {
                index: 0,
                name: "100%".into(),
                canary: false,
                hosts: vec!["H1".into(), "H2".into()],
                max_failed: None,
                max_unreachable: None,
                soak_ms: 0,
                quarantine_after: None,
            }],
            options: RolloutOptions::default(),
            targets: vec![],
            operator: None,
            groups: Default::default(),
            rollback: None,
        };
        let j = Journal::create(repo, &header).unwrap();
        for e in events {
            j.append(&crate::rollout::journal::Record::Step(e.clone()))
                .unwrap();
        }
    }

    #[test]
    fn only_installs_that_changed_a_host_count_and_come_off_last_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut ev = Vec::new();
        ev.extend(install("r1", "H1", "KB1", StepOutcome::Ok));
        ev.extend(install("r1", "H1", "KB2", StepOutcome::RebootRequired));
        ev.extend(install("r1", "H2", "KB1", StepOutcome::AlreadyInstalled));
        journal(dir.path(), "r1", &ev);
        let of = plan(dir.path(), "r1", &[], &[]).unwrap();
        assert_eq!(of.remove.len(), 1, "{of:?}");
        assert_eq!(of.remove["H1"], ["KB2", "KB1"]);
        let only = plan(dir.path(), "r1", &["h1".into()], &["kb1".into()]).unwrap();
        assert_eq!(only.remove["H1"], ["KB1"]);
    }

    #[test]
    fn bad_input_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = plan(dir.path(), "nope", &[], &[]).unwrap_err().to_string();
        assert!(
            e.contains("`nope` not found under") && e.contains("runs"),
            "{e}"
        );
        journal(
            dir.path(),
            "empty",
            &install("empty", "H1", "KB1", StepOutcome::NotApplicable),
        );
        let e = plan(dir.path(), "empty", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("installed nothing"), "{e}");
        let e = plan(dir.path(), "nope", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("newest first: empty"), "{e}");
        journal(
            dir.path(),
            "r2",
            &install("r2", "H1", "KB1", StepOutcome::Ok),
        );
        let e = plan(dir.path(), "r2", &["H2".into()], &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--hosts H2") && e.contains("installed on: H1"),
            "{e}"
        );
        let e = plan(dir.path(), "r2", &[], &["KB9".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--patch KB9") && e.contains("it installed: KB1"),
            "{e}"
        );
    }
}
