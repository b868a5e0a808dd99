//! `hive report <run>`: what a run did on each host, read back from its journal alone, so the
//! report can be made long after the run, on another machine, or after a crash.

use serde::Serialize;

use crate::events::{Step, StepOutcome};
use crate::journal::RunLog;

/// One host of a run, as the journal recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostReport {
    pub host: String,
    pub wave: String,
    /// `patched`, `failed`... or `not done` for a host without a final verdict.
    pub verdict: String,
    pub detail: String,
    /// Patches whose installer finished ok in this run, in order.
    pub installed: Vec<String>,
    /// Patches whose installer failed.
    pub failed_installs: Vec<String>,
    /// Time from the first reboot step starting to the last one finishing.
    pub reboot_ms: Option<u64>,
    /// Time from the host's first to its last record.
    pub total_ms: Option<u64>,
    /// The step the host was in when the journal ends, if it never finished.
    pub open_step: Option<String>,
}

/// Build the report of a run from its journal, hosts in wave order.
pub fn host_reports(log: &RunLog) -> Vec<HostReport> {
    let mut out = Vec::new();
    for wave in &log.header.waves {
        for host in &wave.hosts {
            let h = log.hosts.get(host).cloned().unwrap_or_default();
            let mut installed = Vec::new();
            let mut failed_installs = Vec::new();
            let (mut reboot_start, mut reboot_end) = (None, None);
            for s in &h.steps {
                match (&s.step, &s.finished) {
                    (Step::Install { patch, .. }, Some(end))
                        if end.ok && !installed.contains(patch) =>
                    {
                        installed.push(patch.clone());
                    }
                    (Step::Install { .. }, Some(end)) if end.ok => {}
                    // Settled after a crash ("did not complete, runs again"): not a failure.
                    (Step::Install { .. }, Some(end))
                        if end.outcome == StepOutcome::DidNotComplete => {}
                    (Step::Install { patch, .. }, Some(_)) => failed_installs.push(patch.clone()),
                    (Step::Reboot { .. }, end) => {
                        reboot_start.get_or_insert(s.started_ms);
                        if let Some(e) = end {
                            reboot_end = Some(e.at_ms);
                        }
                    }
                    _ => {}
                }
            }
            let (verdict, detail) = match &h.verdict {
                Some((v, d)) if h.done() => (v.word().to_string(), d.clone()),
                _ => ("not done".to_string(), String::new()),
            };
            out.push(HostReport {
                host: host.clone(),
                wave: wave.name.clone(),
                verdict,
                detail,
                installed,
                failed_installs,
                reboot_ms: reboot_start
                    .zip(reboot_end)
                    .map(|(a, b): (u64, u64)| b.saturating_sub(a)),
                total_ms: h.first_ms.zip(h.last_ms).map(|(a, b)| b.saturating_sub(a)),
                open_step: h
                    .last_step()
                    .filter(|s| s.finished.is_none())
                    .map(|s| format!("{:?}", s.step)),
            });
        }
    }
    out
}

/// The patches the run withheld and released, one line each, from the journal (and the release
/// markers `hive promote --patch` left that no run acted on yet).
pub fn withheld_lines(log: &RunLog) -> Vec<String> {
    let mut out: Vec<String> = log.withheld.iter().map(|w| w.line()).collect();
    for r in &log.released {
        out.push(format!("{} released: {}", r.patch, r.by));
    }
    for r in crate::rollout::quarantine::release_markers(&log.dir) {
        if !log.released.iter().any(|j| j.patch == r.patch) {
            out.push(format!(
                "{} released ({}); the run acts on it when it goes on",
                r.patch, r.by
            ));
        }
    }
    out
}

/// The report as CSV (RFC 4180 quoting), one row per host.
pub fn to_csv(reports: &[HostReport]) -> String {
    let mut s = String::from(
        "host,wave,verdict,installed,failed_installs,reboot_s,total_s,open_step,detail\n",
    );
    let secs = |ms: Option<u64>| {
        ms.map(|m| format!("{:.1}", m as f64 / 1000.0))
            .unwrap_or_default()
    };
    for r in reports {
        let row = [
            r.host.clone(),
            r.wave.clone(),
            r.verdict.clone(),
            r.installed.join(" "),
            r.failed_installs.join(" "),
            secs(r.reboot_ms),
            secs(r.total_ms),
            r.open_step.clone().unwrap_or_default(),
            r.detail.clone(),
        ];
        let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
        s.push_str(&cells.join(","));
        s.push('\n');
    }
    s
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The report as a plain table for a terminal.
pub fn to_table(reports: &[HostReport]) -> String {
    let mut s = format!(
        "{:<24} {:<8} {:<14} {:>8} {:<30} {}\n",
        "host", "wave", "verdict", "reboot", "installed", "detail"
    );
    for r in reports {
        s.push_str(&format!(
            "{:<24} {:<8} {:<14} {:>8} {:<30} {}\n",
            r.host,
            r.wave,
            r.verdict,
            r.reboot_ms
                .map(|m| format!("{:.1}s", m as f64 / 1000.0))
                .unwrap_or_default(),
            r.installed.join(" "),
            r.detail
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("plain"), "plain");
    }
}
