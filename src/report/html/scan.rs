//! A scan's report page (`hive scan -o html`): the headline, the host × bulletin matrix with the
//! evidence of each verdict, and the hosts that need attention (not scanned, then missing
//! patches).

use std::collections::{BTreeMap, BTreeSet};

use super::{
    ATTENTION_SHOWN, Attention, CellData, Count, Data, HostData, Page, Texts, bulletin_columns,
    utc_text,
};
use crate::catalog::model::Catalog;
use crate::scan::HostScan;
use crate::scan::evaluate::{Status, Verdict};

/// The report page of a scan; `groups` is group → hosts (from the inventory).
pub fn page(
    catalog: &Catalog,
    scans: &[HostScan],
    groups: &BTreeMap<String, Vec<String>>,
    now_ms: u64,
) -> Page {
    let group_names: Vec<String> = groups.keys().cloned().collect();
    let mut host_groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, members) in groups.values().enumerate() {
        for h in members {
            host_groups.entry(h.as_str()).or_default().push(i);
        }
    }
    let shown = |v: &&Verdict| v.status != Status::NotApplicable;
    let bulletin_ids: Vec<String> = scans
        .iter()
        .filter_map(|s| s.result.as_ref().ok())
        .flat_map(|r| r.verdicts.iter().filter(shown))
        .flat_map(|v| v.bulletins.iter().map(|b| b.to_string()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let bulletin_map: BTreeMap<&str, usize> = bulletin_ids
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let bulletin_index = &bulletin_map;

    let (mut not_scanned, mut missing_hosts, mut clean) = (0, 0, 0);
    let mut texts = Texts::default();
    let mut hosts: Vec<(u8, HostData)> = Vec::with_capacity(scans.len());
    let mut attention = Vec::new();
    for s in scans {
        let g = host_groups
            .get(s.host.as_str())
            .cloned()
            .unwrap_or_default();
        let host = match &s.result {
            Err(f) => {
                not_scanned += 1;
                let reason = format!("Not scanned: {f}");
                (
                    0,
                    HostData {
                        n: s.host.clone(),
                        w: None,
                        g,
                        v: "not scanned".into(),
                        c: "bad",
                        r: reason,
                        o: String::new(),
                        s: vec![],
                        m: vec![],
                    },
                )
            }
            Ok(r) => {
                let missing: Vec<&Verdict> = r
                    .verdicts
                    .iter()
                    .filter(|v| v.status == Status::Missing)
                    .collect();
                let review = r
                    .verdicts
                    .iter()
                    .filter(|v| v.status.needs_action())
                    .count()
                    - missing.len();
                let (rank, verdict, class, reason) = if !missing.is_empty() {
                    missing_hosts += 1;
                    let ids: BTreeSet<&str> = missing
                        .iter()
                        .flat_map(|v| v.bulletins.iter().map(|b| &**b))
                        .collect();
                    (
                        1,
                        "missing patches".to_string(),
                        "bad",
                        format!(
                            "Missing {} patch(es): {}",
                            missing.len(),
                            ids.into_iter().collect::<Vec<_>>().join(", ")
                        ),
                    )
                } else if review > 0 {
                    clean += 1;
                    (
                        2,
                        "to review".to_string(),
                        "warn",
                        format!("{review} warning(s) or note(s) to review"),
                    )
                } else {
                    clean += 1;
                    (4, "clean".to_string(), "good", String::new())
                };
                let facts = &r.facts;
                (
                    rank,
                    HostData {
                        n: s.host.clone(),
                        w: None,
                        g,
                        v: verdict,
                        c: class,
                        r: reason,
                        o: match &facts.build {
                            Some(b) => format!("{} (build {b})", facts.os_name),
                            None => facts.os_name.clone(),
                        },
                        s: vec![],
                        m: r.verdicts
                            .iter()
                            .filter(shown)
                            .flat_map(|v| {
                                v.bulletins
                                    .iter()
                                    .filter_map(move |b| bulletin_index.get(&**b).map(|&i| (i, v)))
                            })
                            .map(|(i, v)| cell(i, v, &mut texts))
                            .collect(),
                    },
                )
            }
        };
        if host.0 < 4 {
            attention.push((
                host.0,
                Attention {
                    host: host.1.n.clone(),
                    verdict: host.1.v.clone(),
                    class: host.1.c,
                    reason: host.1.r.clone(),
                },
            ));
        }
        hosts.push(host);
    }
    hosts.sort_by_key(|(rank, _)| *rank);
    attention.sort_by_key(|(rank, _)| *rank);
    let attention_more = attention.len().saturating_sub(ATTENTION_SHOWN);
    attention.truncate(ATTENTION_SHOWN);

    let mut notes = Vec::new();
    if catalog.bulletins.is_empty() {
        notes.push(
            "The catalog is empty: bulletin titles, CVEs and severities are not shown.".into(),
        );
    }
    Page {
        kind: "scan",
        title: format!("hive scan of {} hosts", scans.len()),
        generated: utc_text(now_ms),
        facts: vec![
            ("Scanned at".to_string(), utc_text(now_ms)),
            ("Hosts".to_string(), scans.len().to_string()),
            (
                "Bulletins that apply".to_string(),
                bulletin_ids.len().to_string(),
            ),
        ],
        counts: vec![
            Count {
                label: "missing patches".into(),
                n: missing_hosts,
                class: "bad",
            },
            Count {
                label: "not scanned".into(),
                n: not_scanned,
                class: "bad",
            },
            Count {
                label: "nothing missing".into(),
                n: clean,
                class: "good",
            },
        ],
        attention: attention.into_iter().map(|(_, a)| a).collect(),
        attention_more,
        notes,
        data: Data {
            t0: 0,
            t1: 0,
            waves: vec![],
            bulletins: bulletin_columns(Some(catalog), &bulletin_ids),
            groups: group_names,
            hosts: hosts.into_iter().map(|(_, h)| h).collect(),
            x: texts.into_list(),
        },
        compliance: None,
    }
}

fn cell(bulletin: usize, v: &Verdict, texts: &mut Texts) -> CellData {
    let class = match v.status {
        Status::Missing => "missing",
        Status::Warning => "warning",
        Status::Note => "note",
        Status::Installed | Status::Superseded => "installed",
        Status::NotApplicable => "na",
    };
    let mut evidence = format!("{} ({}): {}", v.patch, v.status, v.evidence);
    if !v.product.is_empty() {
        evidence = format!("{evidence} [{}]", v.product);
    }
    (bulletin, class, texts.id(evidence))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::facts::HostFacts;
    use crate::scan::{HostFailure, HostResult};

    fn host(name: &str, statuses: &[(&str, Status)]) -> HostScan {
        HostScan {
            host: name.into(),
            result: Ok(HostResult {
                facts: HostFacts {
                    os_name: "Windows 2000".into(),
                    ..Default::default()
                },
                verdicts: statuses
                    .iter()
                    .map(|(b, s)| Verdict {
                        patch: format!("{b}/fix.exe").into(),
                        bulletins: [b.to_string().into()].into(),
                        product: "IIS 5.0".into(),
                        status: *s,
                        evidence: format!("{b}: idq.dll 1 < 2"),
                    })
                    .collect(),
            }),
        }
    }

    #[test]
    fn not_scanned_then_missing_hosts_come_first_with_their_evidence() {
        let scans = vec![
            host("clean", &[("MS01-033", Status::Installed)]),
            host(
                "web01",
                &[
                    ("MS01-033", Status::Missing),
                    ("MS01-025", Status::NotApplicable),
                ],
            ),
            HostScan {
                host: "web02".into(),
                result: Err(HostFailure::Unreachable("connection refused".into())),
            },
        ];
        let groups = BTreeMap::from([("web".to_string(), vec!["web01".to_string()])]);
        let page = page(&Catalog::default(), &scans, &groups, 0);
        let counts: Vec<(&str, usize)> = page
            .counts
            .iter()
            .map(|c| (c.label.as_str(), c.n))
            .collect();
        assert_eq!(
            counts,
            [
                ("missing patches", 1),
                ("not scanned", 1),
                ("nothing missing", 1)
            ]
        );
        let order: Vec<&str> = page.data.hosts.iter().map(|h| h.n.as_str()).collect();
        assert_eq!(order, ["web02", "web01", "clean"]);
        assert_eq!(page.attention.len(), 2);
        assert_eq!(
            page.attention[0].reason,
            "Not scanned: unreachable: connection refused"
        );
        assert_eq!(page.attention[1].reason, "Missing 1 patch(es): MS01-033");
        // Not-applicable bulletins get no column; the missing one holds its evidence.
        let ids: Vec<&str> = page.data.bulletins.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["MS01-033"]);
        let web01 = &page.data.hosts[1];
        assert_eq!(web01.g, [0]);
        let (b, class, text) = web01.m[0];
        assert_eq!((b, class), (0, "missing"));
        assert_eq!(
            page.data.x[text],
            "MS01-033/fix.exe (missing): MS01-033: idq.dll 1 < 2 [IIS 5.0]"
        );
    }
}
