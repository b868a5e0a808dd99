//! What the pre-deploy scan found on a host, patch by patch, journaled with the host's verdict:
//! a report made long after the run (or on another machine) can then show *why* a host was
//! worked on — the file version found against the one expected, the registry value, the build —
//! and what the re-scan after the install found, without scanning again.
//!
//! Only patches that apply to the host are kept (not-applicable ones would multiply the journal's
//! size by the catalog's); old journals have no evidence and read as before.

use serde::{Deserialize, Serialize};

use crate::scan::evaluate::{Status, Verdict};
use crate::scan::facts::HostFacts;

/// One host's scan, as the run saw it before deploying.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEvidence {
    /// The OS name the host reported (`ProductName`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os: String,
    /// major.minor.build(.UBR), when the host reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    pub patches: Vec<PatchEvidence>,
}

/// One patch on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchEvidence {
    pub patch: String,
    pub bulletins: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub product: String,
    /// The scan's verdict before the run worked on the host.
    pub status: Status,
    /// Why, in the scan's words (`idq.dll 5.0.2195.2779 < 5.0.2195.3645`).
    pub evidence: String,
    /// What the re-scan after this run's install found (`installed: idq.dll ...`), when the run
    /// got that far with this patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl HostEvidence {
    /// The evidence of a scan, without the patches that do not apply to the host.
    pub fn of_scan(facts: &HostFacts, verdicts: &[Verdict]) -> HostEvidence {
        HostEvidence {
            os: facts.os_name.clone(),
            build: facts.build.as_ref().map(ToString::to_string),
            patches: verdicts
                .iter()
                .filter(|v| v.status != Status::NotApplicable)
                .map(|v| PatchEvidence {
                    patch: v.patch.to_string(),
                    bulletins: v.bulletins.iter().map(|b| b.to_string()).collect(),
                    product: v.product.to_string(),
                    status: v.status,
                    evidence: v.evidence.clone(),
                    after: None,
                })
                .collect(),
        }
    }

    /// Record what the re-scan after the install said about `patch`.
    pub fn set_after(&mut self, patch: &str, after: &str) {
        if let Some(p) = self.patches.iter_mut().find(|p| p.patch == patch) {
            p.after = Some(after.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(patch: &str, status: Status) -> Verdict {
        Verdict {
            patch: patch.into(),
            bulletins: ["MS01-033".into()].into(),
            product: "IIS 5.0".into(),
            status,
            evidence: "idq.dll 5.0.2195.2779 < 5.0.2195.3645".into(),
        }
    }

    #[test]
    fn not_applicable_patches_are_left_out_and_the_rest_round_trips() {
        let facts = HostFacts {
            os_name: "Windows 2000".into(),
            ..Default::default()
        };
        let mut e = HostEvidence::of_scan(
            &facts,
            &[
                verdict("p1", Status::Missing),
                verdict("p2", Status::NotApplicable),
            ],
        );
        assert_eq!(e.patches.len(), 1);
        e.set_after("p1", "installed: idq.dll 5.0.2195.3645");
        e.set_after("p9", "ignored: not in the evidence");
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""status":"missing""#), "{json}");
        let back: HostEvidence = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        assert_eq!(
            back.patches[0].after.as_deref(),
            Some("installed: idq.dll 5.0.2195.3645")
        );
    }
}
