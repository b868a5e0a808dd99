//! `logs/<host>.log`, one line per action, as HIVE's `Logs\<machine>.log` was: the admin who
//! asks "what did it do on WEB01 last night" reads it without the journal's JSON.
//!
//! `2026-12-05 01:02:03Z run 20261205-010000 install MS01-033 1/2: ok reboot_required exit 3010 ...`

use crate::events::{Step, StepOutcome};

/// The line of one finished step (without a line break; details stay on the line).
pub fn line(run: &str, step: &Step, ok: bool, outcome: StepOutcome, detail: &str) -> String {
    let at = crate::time::utc_now(crate::time::StampFormat::LogLine);
    let what = match step {
        Step::Scan => "scan".to_string(),
        Step::Stage { patch, file, .. } => format!("stage {patch} {file}"),
        Step::VerifyHash { patch } => format!("hash {patch}"),
        Step::Install {
            patch,
            index,
            total,
        } => format!("install {patch} {index}/{total}"),
        Step::Reboot { phase } => format!("reboot {phase}"),
        // Steps without fields go by their journal name (scan, qchain, verify, cleanup, ...).
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.get("step")?.as_str().map(str::to_string))
            .unwrap_or_default(),
    };
    let detail: String = detail
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    format!(
        "{at} run {run} {what}: {} {outcome}{}{}",
        if ok { "ok" } else { "FAILED" },
        if detail.trim().is_empty() { "" } else { " " },
        detail.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_action_even_with_a_multi_line_detail() {
        let l = line(
            "r1",
            &Step::Install {
                patch: "MS01-033".into(),
                index: 1,
                total: 2,
            },
            false,
            StepOutcome::Failed,
            "exit 1603\r\nlog tail",
        );
        assert!(!l.contains('\n'));
        assert!(
            l.ends_with("run r1 install MS01-033 1/2: FAILED failed exit 1603  log tail"),
            "{l}"
        );
    }
}
