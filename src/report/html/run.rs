//! A run's report page, from its journal alone: the headline, the waves' timeline with every
//! host's steps, the host × bulletin matrix from the journaled scan evidence, and the hosts that
//! need attention, worst first, with the reason in plain words.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    ATTENTION_SHOWN, Attention, Count, Data, HostData, Page, StepData, Texts, WaveData,
    bulletin_columns, duration_text, utc_text,
};
use crate::catalog::model::Catalog;
use crate::events::{RebootPhase, Step, StepOutcome};
use crate::journal::{HostLog, RunLog, RunState};
use crate::rollout::evidence::PatchEvidence;
use crate::rollout::report::{HostReport, host_reports};
use crate::scan::evaluate::Status;

/// The report page of one run.
pub fn page(log: &RunLog, catalog: Option<&Catalog>, now_ms: u64) -> Page {
    let header = &log.header;
    let reports = host_reports(log);
    let empty = HostLog::default();
    let t0 = header.created_ms;
    let t1 = log
        .hosts
        .values()
        .filter_map(|h| h.last_ms)
        .max()
        .unwrap_or(t0)
        .max(t0 + 1);

    let groups: Vec<String> = header.groups.keys().cloned().collect();
    let mut host_groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, members) in header.groups.values().enumerate() {
        for h in members {
            host_groups.entry(h.as_str()).or_default().push(i);
        }
    }
    let bulletin_ids: Vec<String> = log
        .hosts
        .values()
        .filter_map(|h| h.evidence.as_ref())
        .flat_map(|e| e.patches.iter().flat_map(|p| p.bulletins.iter().cloned()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let bulletin_index_map: BTreeMap<&str, usize> = bulletin_ids
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let bulletin_index = &bulletin_index_map;

    let mut texts = Texts::default();
    let mut hosts: Vec<(u8, HostData)> = Vec::with_capacity(reports.len());
    let mut attention = Vec::new();
    for r in &reports {
        let h = log.hosts.get(&r.host).unwrap_or(&empty);
        let (rank, class) = rank_of(&r.verdict);
        let why = reason(h, r);
        if rank < 4 {
            attention.push((
                rank,
                Attention {
                    host: r.host.clone(),
                    verdict: r.verdict.clone(),
                    class,
                    reason: why.clone(),
                },
            ));
        }
        hosts.push((
            rank,
            HostData {
                n: r.host.clone(),
                w: header.waves.iter().position(|w| w.name == r.wave),
                g: host_groups
                    .get(r.host.as_str())
                    .cloned()
                    .unwrap_or_default(),
                v: r.verdict.clone(),
                c: class,
                r: why,
                o: h.evidence
                    .as_ref()
                    .map(|e| match &e.build {
                        Some(b) => format!("{} (build {b})", e.os),
                        None => e.os.clone(),
                    })
                    .unwrap_or_default(),
                s: h.steps
                    .iter()
                    .map(|s| step_data(s, t0, t1, &mut texts))
                    .collect(),
                m: h.evidence
                    .iter()
                    .flat_map(|e| e.patches.iter())
                    .flat_map(|p| {
                        let failed = r.failed_installs.contains(&p.patch);
                        p.bulletins.iter().filter_map(move |b| {
                            bulletin_index.get(b.as_str()).map(|&i| cell(i, p, failed))
                        })
                    })
                    .map(|(b, class, evidence)| (b, class, texts.id(evidence)))
                    .collect(),
            },
        ));
    }
    // Attention first (worst first), then the rest in wave order; the sort is stable.
    hosts.sort_by_key(|(rank, _)| *rank);
    attention.sort_by_key(|(rank, _)| *rank);
    let attention_more = attention.len().saturating_sub(ATTENTION_SHOWN);
    attention.truncate(ATTENTION_SHOWN);

    let count = |word: &str| reports.iter().filter(|r| r.verdict == word).count();
    let counts = vec![
        Count {
            label: "patched".into(),
            n: count("patched"),
            class: "good",
        },
        Count {
            label: "failed".into(),
            n: count("failed"),
            class: "bad",
        },
        Count {
            label: "unreachable".into(),
            n: count("unreachable"),
            class: "bad",
        },
        Count {
            label: "skipped".into(),
            n: count("skipped"),
            class: "off",
        },
        Count {
            label: "nothing to do".into(),
            n: count("nothing to do"),
            class: "good",
        },
        Count {
            label: "not done".into(),
            n: count("not done") + count("interrupted"),
            class: "warn",
        },
    ];

    let state = match &log.state {
        Some((s, reason)) => {
            let word = match s {
                RunState::Running => "running (or stopped without a word: a crash?)",
                RunState::Paused => "paused, waiting for promote",
                RunState::Stopped => "stopped",
                RunState::Finished => "finished",
            };
            if reason.is_empty() {
                word.to_string()
            } else {
                format!("{word}: {reason}")
            }
        }
        None => "no state recorded".to_string(),
    };
    let facts = vec![
        ("Run".to_string(), header.run.clone()),
        ("Plan".to_string(), header.plan.clone()),
        (
            "Run by".to_string(),
            header.operator.clone().unwrap_or_else(|| {
                "not recorded (no USER in hive's environment, or an older journal)".into()
            }),
        ),
        ("Started".to_string(), utc_text(t0)),
        ("Duration".to_string(), duration_text(t1 - t0)),
        ("State".to_string(), state),
        ("Hosts".to_string(), reports.len().to_string()),
    ];

    let mut notes = Vec::new();
    if catalog.is_none() {
        notes.push(
            "No catalog was loaded: bulletin titles, CVEs and severities are not shown (pass --catalog FILE)."
                .to_string(),
        );
    }
    if log.hosts.values().all(|h| h.evidence.is_none()) {
        notes.push(
            "This journal holds no scan evidence (written by an older hive, or no host was scanned): the matrix is empty."
                .to_string(),
        );
    }
    if let Some(line) = log.torn_line {
        notes.push(format!(
            "The journal's last line ({line}) was torn by a crash and is left out."
        ));
    }

    Page {
        kind: "run",
        title: format!("hive run {}", header.run),
        generated: utc_text(now_ms),
        facts,
        counts,
        attention: attention.into_iter().map(|(_, a)| a).collect(),
        attention_more,
        notes,
        data: Data {
            t0,
            t1,
            waves: header
                .waves
                .iter()
                .map(|w| WaveData {
                    name: w.name.clone(),
                    state: log
                        .waves
                        .iter()
                        .rev()
                        .find(|(i, ..)| *i == w.index)
                        .map(|(_, s, d)| {
                            if d.is_empty() || d == s.word() {
                                s.word().to_string()
                            } else {
                                format!("{}: {d}", s.word())
                            }
                        })
                        .unwrap_or_else(|| "not started".into()),
                })
                .collect(),
            bulletins: bulletin_columns(catalog, &bulletin_ids),
            groups,
            hosts: hosts.into_iter().map(|(_, h)| h).collect(),
            x: texts.into_list(),
        },
        compliance: None,
    }
}

/// Attention rank (0 worst; 4 needs none) and colour class of a verdict word.
fn rank_of(verdict: &str) -> (u8, &'static str) {
    match verdict {
        "failed" => (0, "bad"),
        "unreachable" => (1, "bad"),
        "not done" | "interrupted" => (2, "warn"),
        "skipped" => (3, "off"),
        _ => (4, "good"),
    }
}

/// A step's kind (its journal word) and a label an admin reads.
fn step_words(step: &Step) -> (String, String) {
    let kind = serde_json::to_value(step)
        .ok()
        .and_then(|v| v.get("step").and_then(|s| s.as_str()).map(str::to_string))
        .unwrap_or_else(|| "step".into());
    let label = match step {
        Step::Stage { file, .. } => format!("copy {file}"),
        Step::VerifyHash { patch } => format!("check hash {patch}"),
        Step::Install { patch, .. } => format!("install {patch}"),
        Step::Reboot { phase } => format!("reboot: {}", phase.word()),
        _ => kind.clone(),
    };
    (kind, label)
}

fn step_data(s: &crate::journal::StepRecord, t0: u64, t1: u64, texts: &mut Texts) -> StepData {
    let (kind, label) = step_words(&s.step);
    let label = texts.id(label);
    let start = s.started_ms.saturating_sub(t0);
    match &s.finished {
        Some(end) => (
            label,
            kind,
            start,
            end.at_ms.saturating_sub(s.started_ms),
            if end.ok { "ok" } else { "bad" },
            texts.id(if end.detail.is_empty() {
                end.outcome.as_str().to_string()
            } else {
                format!("{}: {}", end.outcome.as_str(), end.detail)
            }),
        ),
        None => (
            label,
            kind,
            start,
            t1.saturating_sub(s.started_ms),
            "open",
            texts.id("never finished (the journal ends here)".into()),
        ),
    }
}

/// One matrix cell: what the scan found before the run and what became of it (bulletin index,
/// class, evidence).
pub(super) fn cell(
    bulletin: usize,
    p: &PatchEvidence,
    install_failed: bool,
) -> (usize, &'static str, String) {
    let landed = |after: &str| {
        ["installed", "superseded", "not applicable"]
            .iter()
            .any(|w| after.starts_with(w))
    };
    let class = match (&p.after, p.status) {
        (Some(after), _) if landed(after) => "fixed",
        (Some(_), _) => "failed",
        (None, _) if install_failed => "failed",
        (None, Status::Missing) => "missing",
        (None, Status::Warning) => "warning",
        (None, Status::Note) => "note",
        (None, Status::Installed | Status::Superseded) => "installed",
        (None, Status::NotApplicable) => "na",
    };
    let mut evidence = format!("{} ({}): {}", p.patch, p.status, p.evidence);
    if !p.product.is_empty() {
        evidence = format!("{evidence} [{}]", p.product);
    }
    if let Some(after) = &p.after {
        evidence.push_str(&format!(" | after the install: {after}"));
    }
    if install_failed && p.after.is_none() {
        evidence.push_str(" | the install failed");
    }
    (bulletin, class, evidence)
}

fn phase_words(phase: RebootPhase) -> &'static str {
    match phase {
        RebootPhase::Shutdown => "the restart command",
        RebootPhase::Down => "the host to go down",
        RebootPhase::Port => "its WinRM port to open again",
        RebootPhase::Login => "a logon showing a new boot time",
        RebootPhase::Resume => "a reboot in flight when hive stopped",
        RebootPhase::Settled => "Windows to finish configuring updates",
        RebootPhase::Pending => "no further reboot to be pending",
    }
}

/// Why a host needs attention, in plain words, from the first step that failed.
fn reason(h: &HostLog, r: &HostReport) -> String {
    let failed = h.steps.iter().find_map(|s| {
        s.finished
            .as_ref()
            .filter(|e| {
                !e.ok
                    && !matches!(
                        e.outcome,
                        StepOutcome::Interrupted | StepOutcome::DidNotComplete
                    )
            })
            .map(|e| (&s.step, e))
    });
    let plain = |detail: &str| {
        if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        }
    };
    match r.verdict.as_str() {
        "patched" | "nothing to do" => String::new(),
        "not done" | "interrupted" => match &r.open_step {
            Some(_) => {
                let label = h
                    .last_step()
                    .map(|s| step_words(&s.step).1)
                    .unwrap_or_default();
                format!(
                    "Not finished: the journal ends while it was in `{label}`; `hive resume` settles it"
                )
            }
            None if h.steps.is_empty() => {
                "Not started: the run stopped before this host's wave".to_string()
            }
            None => format!("Not finished{}", plain(&r.detail)),
        },
        "unreachable" => match failed {
            Some((Step::Reboot { phase }, e)) => format!(
                "Did not come back from its reboot (waiting for {}){}",
                phase_words(*phase),
                plain(&e.detail)
            ),
            _ => format!("Could not be reached{}", plain(&r.detail)),
        },
        "skipped" => format!("Skipped{}", plain(&r.detail)),
        _ => match failed {
            Some((step, e)) => {
                let d = plain(&e.detail);
                match step {
                    Step::Scan => format!("The scan failed{d}"),
                    Step::Stage { file, .. } => format!("Copying {file} failed{d}"),
                    Step::VerifyHash { patch } => {
                        format!("The copied installer of {patch} did not match its SHA-256{d}")
                    }
                    Step::Install { patch, .. } => format!(
                        "The installer of {patch} failed ({}){d}",
                        e.outcome.as_str().replace('_', " ")
                    ),
                    Step::Qchain => format!("qchain.exe failed{d}"),
                    Step::Reboot { phase } => format!(
                        "The reboot did not complete (waiting for {}){d}",
                        phase_words(*phase)
                    ),
                    Step::Verify => format!("The re-scan after the install still finds it{d}"),
                    Step::Cleanup => format!("Removing the staged files failed{d}"),
                    other => format!("The step `{}` failed{d}", step_words(other).1),
                }
            }
            None => format!("Failed{}", plain(&r.detail)),
        },
    }
}
