//! Compliance across runs (`hive report --since 30d --output html`): how the fleet's count of
//! missing patches moved over the runs of a period, read from the repository's journals alone,
//! and each host's latest known state.
//!
//! Each run's journal keeps what its scan found on every host it reached (missing before) and
//! what its re-scan found after installing. The fleet's count after a run is the sum, over every
//! host seen so far in the period, of the patches still missing at that host's latest run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::run::cell;
use super::{
    ATTENTION_SHOWN, Attention, Count, Data, HostData, Page, Texts, bulletin_columns, utc_text,
};
use crate::catalog::model::Catalog;
use crate::journal::{JournalError, RunLog, list_runs, runs_dir};
use crate::rollout::evidence::HostEvidence;
use crate::rollout::report::host_reports;
use crate::scan::evaluate::Status;

/// The chart and table of the period.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    pub points: Vec<Point>,
    /// The chart's polyline (`x,y x,y ...`) in a 720 × 200 box.
    pub line: String,
    pub max: usize,
}

/// One run of the period.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub run: String,
    pub when: String,
    pub plan: String,
    pub hosts: usize,
    /// Hosts whose scan the journal kept.
    pub scanned: usize,
    pub missing_before: usize,
    pub fixed: usize,
    pub missing_after: usize,
    /// The fleet's missing patches after this run (every host seen so far, at its latest run).
    pub fleet_missing: usize,
    pub failed: usize,
    pub x: f64,
    pub y: f64,
}

/// `30d`, `2w`, `12h`, or anything `parse_duration` reads (`90m`).
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let unit = |suffix: char, secs: u64| {
        t.strip_suffix(suffix)
            .and_then(|n| n.parse::<u64>().ok())
            .map(|n| Duration::from_secs(n * secs))
    };
    unit('d', 86_400)
        .or_else(|| unit('w', 7 * 86_400))
        .map(Ok)
        .unwrap_or_else(|| {
            crate::rollout::parse_duration(t)
                .map_err(|_| format!("`{text}` is not a period (e.g. 30d, 2w, 12h)"))
        })
}

/// Patches still missing on a host after its run: missing before, minus what the run fixed.
fn still_missing(e: &HostEvidence, failed_installs: &[String]) -> Vec<(String, Vec<String>)> {
    e.patches
        .iter()
        .filter(|p| p.status == Status::Missing)
        .filter(|p| cell(0, p, failed_installs.contains(&p.patch)).1 != "fixed")
        .map(|p| (p.patch.clone(), p.bulletins.clone()))
        .collect()
}

/// The compliance page of the runs created at or after `since_ms`.
pub fn page(
    repo_root: &Path,
    since_ms: u64,
    now_ms: u64,
    catalog: Option<&Catalog>,
) -> Result<Page, JournalError> {
    let mut notes = Vec::new();
    let mut logs = Vec::new();
    for listing in list_runs(repo_root)? {
        if let Some(e) = listing.error {
            notes.push(format!("Run {} is left out: {e}", listing.run));
            continue;
        }
        if listing.created_ms < since_ms {
            continue;
        }
        logs.push(RunLog::load_dir(&runs_dir(repo_root).join(&listing.run))?);
    }
    logs.sort_by_key(|l| l.header.created_ms);

    // host → (run, evidence, failed installs, verdict) at its latest run.
    type Latest = (String, HostEvidence, Vec<String>, String);
    let mut latest: BTreeMap<String, Latest> = BTreeMap::new();
    let mut points = Vec::new();
    for log in &logs {
        let reports = host_reports(log);
        let (mut scanned, mut before, mut fixed) = (0, 0, 0);
        for r in &reports {
            let Some(e) = log.hosts.get(&r.host).and_then(|h| h.evidence.clone()) else {
                continue;
            };
            scanned += 1;
            let was = e
                .patches
                .iter()
                .filter(|p| p.status == Status::Missing)
                .count();
            before += was;
            fixed += was - still_missing(&e, &r.failed_installs).len();
            latest.insert(
                r.host.clone(),
                (
                    log.header.run.clone(),
                    e,
                    r.failed_installs.clone(),
                    r.verdict.clone(),
                ),
            );
        }
        let fleet_missing = latest
            .values()
            .map(|(_, e, f, _)| still_missing(e, f).len())
            .sum();
        points.push(Point {
            run: log.header.run.clone(),
            when: utc_text(log.header.created_ms),
            plan: log.header.plan.clone(),
            hosts: reports.len(),
            scanned,
            missing_before: before,
            fixed,
            missing_after: before - fixed,
            fleet_missing,
            failed: reports.iter().filter(|r| r.verdict == "failed").count(),
            x: 0.0,
            y: 0.0,
        });
    }
    let max = points
        .iter()
        .map(|p| p.fleet_missing.max(p.missing_before))
        .max()
        .unwrap_or(0)
        .max(1);
    let n = points.len();
    for (i, p) in points.iter_mut().enumerate() {
        p.x = if n > 1 {
            20.0 + 680.0 * i as f64 / (n - 1) as f64
        } else {
            360.0
        };
        p.y = 190.0 - 170.0 * p.fleet_missing as f64 / max as f64;
    }
    let line = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", p.x, p.y))
        .collect::<Vec<_>>()
        .join(" ");

    // Each host's latest known state: the matrix and the attention list.
    let bulletin_ids: Vec<String> = latest
        .values()
        .flat_map(|(_, e, ..)| e.patches.iter().flat_map(|p| p.bulletins.iter().cloned()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let index_map: BTreeMap<&str, usize> = bulletin_ids
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let index = &index_map;
    let mut texts = Texts::default();
    let mut hosts = Vec::new();
    let mut attention = Vec::new();
    for (host, (run, e, failed, verdict)) in &latest {
        let left = still_missing(e, failed);
        let (v, c, r) = if left.is_empty() {
            ("nothing missing".to_string(), "good", String::new())
        } else {
            let ids: BTreeSet<&str> = left
                .iter()
                .flat_map(|(_, b)| b.iter().map(String::as_str))
                .collect();
            let r = format!(
                "Still missing {} patch(es) after run {run} ({verdict}): {}",
                left.len(),
                ids.into_iter().collect::<Vec<_>>().join(", ")
            );
            attention.push((
                usize::MAX - left.len(),
                Attention {
                    host: host.clone(),
                    verdict: format!("{} missing", left.len()),
                    class: "bad",
                    reason: r.clone(),
                },
            ));
            (format!("{} missing", left.len()), "bad", r)
        };
        hosts.push((
            left.is_empty(),
            HostData {
                n: host.clone(),
                w: None,
                g: vec![],
                v,
                c,
                r,
                o: match &e.build {
                    Some(b) => format!("{} (build {b})", e.os),
                    None => e.os.clone(),
                },
                s: vec![],
                m: e.patches
                    .iter()
                    .flat_map(|p| {
                        let f = failed.contains(&p.patch);
                        p.bulletins
                            .iter()
                            .filter_map(move |b| index.get(b.as_str()).map(|&i| cell(i, p, f)))
                    })
                    .map(|(b, class, evidence)| (b, class, texts.id(evidence)))
                    .collect(),
            },
        ));
    }
    hosts.sort_by_key(|(clean, _)| *clean);
    attention.sort_by_key(|(k, _)| *k);
    let attention_more = attention.len().saturating_sub(ATTENTION_SHOWN);
    attention.truncate(ATTENTION_SHOWN);

    if catalog.is_none() {
        notes.push(
            "No catalog was loaded: bulletin titles, CVEs and severities are not shown (pass --catalog FILE)."
                .to_string(),
        );
    }
    if logs.is_empty() {
        notes.push(format!(
            "No run in {} was created in this period.",
            runs_dir(repo_root).display()
        ));
    }
    let now_missing = points.last().map(|p| p.fleet_missing).unwrap_or(0);
    let fixed_total: usize = points.iter().map(|p| p.fixed).sum();
    Ok(Page {
        kind: "compliance",
        title: "hive compliance".to_string(),
        generated: utc_text(now_ms),
        facts: vec![
            (
                "Period".to_string(),
                format!("{} to {}", utc_text(since_ms), utc_text(now_ms)),
            ),
            ("Runs".to_string(), logs.len().to_string()),
            ("Hosts seen".to_string(), latest.len().to_string()),
        ],
        counts: vec![
            Count {
                label: "patches missing now".into(),
                n: now_missing,
                class: if now_missing == 0 { "good" } else { "bad" },
            },
            Count {
                label: "patched in the period".into(),
                n: fixed_total,
                class: "good",
            },
            Count {
                label: "runs".into(),
                n: logs.len(),
                class: "off",
            },
        ],
        attention: attention.into_iter().map(|(_, a)| a).collect(),
        attention_more,
        notes,
        data: Data {
            bulletins: bulletin_columns(catalog, &bulletin_ids),
            hosts: hosts.into_iter().map(|(_, h)| h).collect(),
            x: texts.into_list(),
            ..Data::default()
        },
        compliance: Some(Trend { points, line, max }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Record, RunHeader};
    use crate::rollout::evidence::PatchEvidence;
    use crate::rollout::{HostVerdict, RolloutOptions, Wave};

    fn patch(id: &str, status: Status, after: Option<&str>) -> PatchEvidence {
        PatchEvidence {
            patch: id.into(),
            bulletins: vec![format!("B-{id}")],
            product: String::new(),
            status,
            evidence: "file 1 < 2".into(),
            after: after.map(str::to_string),
        }
    }

    /// A finished run journal: each host with its verdict and evidence.
    fn write_run(
        repo: &Path,
        run: &str,
        at: u64,
        hosts: &[(&str, HostVerdict, Vec<PatchEvidence>)],
    ) {
        let header = RunHeader {
            run: run.into(),
            created_ms: at,
            plan: "100%".into(),
            waves: vec![Wave {
                index: 0,
                name: "100%".into(),
                canary: false,
                hosts: hosts.iter().map(|h| h.0.to_string()).collect(),
                soak_ms: 0,
                max_failed: None,
                max_unreachable: None,
                quarantine_after: None,
            }],
            options: RolloutOptions::default(),
            targets: vec![],
            operator: None,
            groups: BTreeMap::new(),
            rollback: None,
        };
        let mut text = serde_json::to_string(&Record::Header(header)).unwrap() + "\n";
        for (host, verdict, patches) in hosts {
            let r = Record::Host {
                host: host.to_string(),
                wave: 0,
                verdict: *verdict,
                detail: String::new(),
                at_ms: at + 1000,
                evidence: Some(HostEvidence {
                    os: String::new(),
                    build: None,
                    patches: patches.clone(),
                }),
            };
            text += &(serde_json::to_string(&r).unwrap() + "\n");
        }
        let dir = runs_dir(repo).join(run);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("journal.ndjson"), text).unwrap();
    }

    #[test]
    fn the_fleet_count_follows_each_hosts_latest_run() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        let installed = Some("installed: file 2 = 2");
        // Too old for the period: left out.
        write_run(
            repo,
            "r0",
            1_000,
            &[(
                "a",
                HostVerdict::Failed,
                vec![patch("p1", Status::Missing, None)],
            )],
        );
        // a: p1 fixed, p2 left; b: p1 failed.
        write_run(
            repo,
            "r1",
            10_000,
            &[
                (
                    "a",
                    HostVerdict::Patched,
                    vec![
                        patch("p1", Status::Missing, installed),
                        patch("p2", Status::Missing, None),
                    ],
                ),
                (
                    "b",
                    HostVerdict::Failed,
                    vec![patch("p1", Status::Missing, Some("missing: file 1 < 2"))],
                ),
            ],
        );
        // b again: fixed; a is not in this run and keeps its p2.
        write_run(
            repo,
            "r2",
            20_000,
            &[(
                "b",
                HostVerdict::Patched,
                vec![patch("p1", Status::Missing, installed)],
            )],
        );
        let page = page(repo, 5_000, 30_000, None).unwrap();
        let trend = page.compliance.unwrap();
        let got: Vec<(&str, usize, usize, usize, usize)> = trend
            .points
            .iter()
            .map(|p| {
                (
                    p.run.as_str(),
                    p.missing_before,
                    p.fixed,
                    p.missing_after,
                    p.fleet_missing,
                )
            })
            .collect();
        assert_eq!(got, [("r1", 3, 1, 2, 2), ("r2", 1, 1, 0, 1)]);
        assert_eq!(trend.max, 3);
        assert_eq!(page.data.hosts.len(), 2);
        assert_eq!(page.attention.len(), 1);
        assert!(
            page.attention[0].reason.contains("B-p2"),
            "{:?}",
            page.attention
        );
    }

    #[test]
    fn periods_read_in_days_weeks_and_hours() {
        assert_eq!(parse_since("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_since("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_since("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert!(parse_since("soon").unwrap_err().contains("soon"));
    }
}
