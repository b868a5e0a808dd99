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
    missing_by_bulletin_except(scans, &Default::default())
}

/// [`missing_by_bulletin`], leaving out the verdicts of the patches in `covered`.
fn missing_by_bulletin_except(
    scans: &[HostScan],
    covered: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in scans {
        let Ok(r) = &s.result else { continue };
        let open = |v: &&crate::scan::evaluate::Verdict| {
            v.status == Status::Missing && !covered.contains_key(&*v.patch)
        };
        for v in r.verdicts.iter().filter(open) {
            for b in v.bulletins.iter() {
                let hosts = out.entry(b.to_string()).or_default();
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
    // A KB approved under its own id (an MSRC month's .msu) covers every CVE it fixes on the
    // hosts that miss it: those CVEs are decided, not "to be engineered".
    let mut by_kb: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in scans {
        let Ok(r) = &s.result else { continue };
        for v in r.verdicts.iter().filter(|v| v.status == Status::Missing) {
            let approved = crate::repo::validate_bulletin_id(&v.patch).is_ok()
                && repo.state_of(&v.patch)? == Some(Triage::Hotfix);
            if approved {
                let hosts = by_kb.entry(v.patch.to_string()).or_default();
                if !hosts.contains(&s.host) {
                    hosts.push(s.host.clone());
                }
            }
        }
    }
    for (bulletin, hosts) in missing_by_bulletin_except(scans, &by_kb) {
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
    summary.approved.extend(by_kb);
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
                        patch: format!("{b}/p").into(),
                        bulletins: [b.to_string().into()].into(),
                        product: "p".into(),
                        status: Status::Missing,
                        evidence: "e".into(),
                    })
                    .chain([Verdict {
                        patch: "x".into(),
                        bulletins: ["MS01-999".into()].into(),
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
    #[test]
    fn a_kb_approved_by_its_id_covers_its_cves_and_leaves_the_others_tbe() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let inst = dir.path().join("windows10.0-kb5035849-x64.msu");
        std::fs::write(&inst, b"MSCF").unwrap();
        repo.approve(
            "KB5035849",
            &inst,
            &crate::catalog::model::InstallerRecipe::msu(),
        )
        .unwrap();
        let verdict = |patch: &str, cves: &[&str]| Verdict {
            patch: patch.into(),
            bulletins: cves.iter().map(|c| (*c).into()).collect(),
            product: "Windows Server 2019".into(),
            status: Status::Missing,
            evidence: "e".into(),
        };
        let scans = vec![HostScan {
            host: "srv2019".into(),
            result: Ok(HostResult {
                facts: Default::default(),
                verdicts: vec![
                    verdict("KB5035849", &["CVE-2024-1", "CVE-2024-2"]),
                    verdict("KB5036896", &["CVE-2024-2"]),
                ],
            }),
        }];
        let s = record_scan(&repo, &Catalog::default(), &scans).unwrap();
        assert_eq!(s.approved["KB5035849"], ["srv2019"]);
        assert!(
            !s.tbe.contains_key("CVE-2024-1"),
            "covered by the approved KB"
        );
        assert_eq!(
            s.tbe["CVE-2024-2"],
            ["srv2019"],
            "still missing through a KB nobody approved"
        );
    }
}
