//! The one line a host's deployment ends with (the rollout summary, the journal's host record,
//! `hive report`): the verdict, then each patch once — a failed patch by its evidence, which
//! already names it, the others by their outcome word. Nesting the evidence inside the patch list
//! inside the verdict said every failure two or three times.

use super::outcome::{DeployOutcome, PatchOutcome};

/// `install_timed_out: MS01-033/Q300972.EXE: the installer was killed: 127.0.0.1: command `...` did not finish within 5 s
/// and was terminated` — or `patched: KB1 installed, KB2 installed`.
pub fn host_detail(out: &DeployOutcome) -> String {
    let evidence = out.evidence.first();
    let others: Vec<String> = out
        .patches
        .iter()
        .filter(|p| !evidence.is_some_and(|e| e.contains(&p.patch)))
        .map(|p| format!("{} {}", p.patch, word(p.outcome)))
        .collect();
    let mut parts: Vec<String> = evidence.cloned().into_iter().collect();
    parts.extend(others);
    // The verdict's stable word (`install_timed_out`): scripts and the fault matrix grep for it.
    let verdict = out.verdict.to_string();
    if parts.is_empty() {
        return verdict;
    }
    format!("{verdict}: {}", parts.join("; "))
}

/// A patch's outcome in words.
fn word(o: PatchOutcome) -> &'static str {
    match o {
        PatchOutcome::NotRun => "not run",
        PatchOutcome::DoneEarlier => "installed earlier in this run",
        PatchOutcome::Installed => "installed",
        PatchOutcome::RebootRequired => "installed, reboot required",
        PatchOutcome::RebootInitiated => "installed, reboot started by the installer",
        PatchOutcome::AlreadyInstalled => "already installed",
        PatchOutcome::NotApplicable => "not applicable",
        PatchOutcome::Failed => "failed",
        PatchOutcome::TimedOut => "timed out",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::outcome::{DeployVerdict, PatchResult};

    fn outcome(
        verdict: DeployVerdict,
        patches: &[(&str, PatchOutcome)],
        evidence: &[&str],
    ) -> DeployOutcome {
        DeployOutcome {
            host: "WEB013".into(),
            verdict,
            patches: patches
                .iter()
                .map(|(p, o)| PatchResult {
                    patch: p.to_string(),
                    bulletin: String::new(),
                    file: String::new(),
                    outcome: *o,
                    exit_code: None,
                    attempts: 1,
                    verified: None,
                    detail: String::new(),
                })
                .collect(),
            reboots: vec![],
            evidence: evidence.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_timed_out_install_is_said_once_with_its_evidence() {
        let patch = "MS01-033/Q300972_W2K_SP3_x86_en.EXE";
        let why = format!(
            "{patch}: 127.0.0.1: command `C:\\Windows\\Temp\\hive\\r\\Q300972_W2K_SP3_x86_en.EXE -u -q -z` did not finish within 5 s and was terminated"
        );
        let o = outcome(
            DeployVerdict::InstallTimedOut,
            &[
                (patch, PatchOutcome::TimedOut),
                ("MS01-044/q301625.exe", PatchOutcome::NotRun),
            ],
            &[&why],
        );
        let line = host_detail(&o);
        assert_eq!(
            line,
            format!("install_timed_out: {why}; MS01-044/q301625.exe not run")
        );
        assert_eq!(line.matches(patch).count(), 1, "{line}");
        assert_eq!(line.matches("5 s").count(), 1, "{line}");
        assert!(!line.contains("TimedOut"), "no Rust names: {line}");
    }

    #[test]
    fn a_patched_host_lists_its_patches() {
        let o = outcome(
            DeployVerdict::Patched,
            &[
                ("KB1", PatchOutcome::Installed),
                ("KB2", PatchOutcome::RebootRequired),
            ],
            &[],
        );
        assert_eq!(
            host_detail(&o),
            "patched: KB1 installed; KB2 installed, reboot required"
        );
    }
}
