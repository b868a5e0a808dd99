//! Triage: sort each missing bulletin into Hotfixes, Ignore or TBE, as HIVE did.
//!
//! A scan never decides what gets installed. It only makes sure every bulletin missing somewhere
//! is *seen*: a missing bulletin that is neither approved nor ignored gets a `tbe/<bulletin>/`
//! folder listing the hosts that miss it, for an engineer to test and then approve or ignore.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::catalog::model::Catalog;
use crate::repo::{RepoError, Repository, Triage};
use crate::scan::HostScan;
use crate::scan::evaluate::Status;

/// What a scan means for triage, per bulletin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TriageSummary {
    /// Missing bulletins already approved: ready to deploy (bulletin → hosts).
    pub approved: BTreeMap<String, Vec<String>>,
    /// Missing bulletins deliberately ignored (bulletin → hosts).
    pub ignored: BTreeMap<String, Vec<String>>,
    /// Missing bulletins nobody has decided on yet; each has a `tbe/` folder (bulletin → hosts).
    pub tbe: BTreeMap<String, Vec<String>>,
}

/// Hosts missing each bulletin, from scan results.
pub fn missing_by_bulletin(scans: &[HostScan]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in scans {
        let Ok(r) = &s.result else { continue };
        for v in r.verdicts.iter().filter(|v| v.status == Status::Missing) {
            for b in &v.bulletins {
                let hosts = out.entry(b.clone()).or_default();
                if !hosts.contains(&s.host) {
                    hosts.push(s.host.clone());
                }
            }
        }
    }
    out
}

/// Record a scan in the repository: untriaged missing bulletins land in `tbe/`.
pub fn record_scan(
    repo: &Repository,
    catalog: &Catalog,
    scans: &[HostScan],
) -> Result<TriageSummary, RepoError> {
    let mut summary = TriageSummary::default();
    for (bulletin, hosts) in missing_by_bulletin(scans) {
        match repo.state_of(&bulletin)? {
            Some(Triage::Hotfix) => {
                summary.approved.insert(bulletin, hosts);
            }
            Some(Triage::Ignore) => {
                summary.ignored.insert(bulletin, hosts);
            }
            Some(Triage::Tbe) | None => {
                let title = catalog
                    .bulletin(&bulletin)
                    .map(|b| b.title.as_str())
                    .unwrap_or("");
                repo.record_tbe(&bulletin, title, &hosts)?;
                summary.tbe.insert(bulletin, hosts);
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::IgnoreReason;
    use crate::scan::evaluate::Verdict;
    use crate::scan::{HostFailure, HostResult};

    fn scan(host: &str, missing: &[&str]) -> HostScan {
        HostScan {
            host: host.into(),
            result: Ok(HostResult {
                facts: Default::default(),
                verdicts: missing
                    .iter()
                    .map(|b| Verdict {
                        patch: format!("{b}/p"),
                        bulletins: vec![b.to_string()],
                        product: "p".into(),
                        status: Status::Missing,
                        evidence: "e".into(),
                    })
                    .chain([Verdict {
                        patch: "x".into(),
                        bulletins: vec!["MS01-999".into()],
                        product: "p".into(),
                        status: Status::Installed,
                        evidence: "ok".into(),
                    }])
                    .collect(),
            }),
        }
    }

    #[test]
    fn tbe_folders_for_exactly_the_untriaged_missing_bulletins() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        repo.ignore(
            "MS01-026",
            &IgnoreReason {
                reason: "no FTP".into(),
                owner: "ops".into(),
                expires: None,
            },
        )
        .unwrap();
        let inst = dir.path().join("Q300972.exe");
        std::fs::write(&inst, b"MZ").unwrap();
        repo.approve(
            "MS01-033",
            &inst,
            &crate::catalog::model::InstallerRecipe::legacy_hotfix(),
        )
        .unwrap();
        let scans = vec![
            scan("web01", &["MS01-033", "MS01-044"]),
            scan("web02", &["MS01-044", "MS01-026"]),
            HostScan {
                host: "web03".into(),
                result: Err(HostFailure::Unreachable("down".into())),
            },
        ];
        let s = record_scan(&repo, &Catalog::default(), &scans).unwrap();
        assert_eq!(s.approved["MS01-033"], ["web01"]);
        assert_eq!(s.ignored["MS01-026"], ["web02"]);
        assert_eq!(s.tbe["MS01-044"], ["web01", "web02"]);
        assert_eq!(s.tbe.len(), 1);
        let listed = repo.list().unwrap();
        assert!(listed.contains(&(Triage::Tbe, "MS01-044".to_string())));
        assert!(!dir.path().join("tbe/MS01-033").exists());
        assert!(!dir.path().join("tbe/MS01-026").exists());
        assert!(
            !dir.path().join("tbe/MS01-999").exists(),
            "installed bulletins are not TBE"
        );
    }
}
