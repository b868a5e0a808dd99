//! What `hive scan` says on stderr besides the report: hosts not scanned (for the formats a script
//! reads, whose failures would otherwise sit only inside the document) and the bulletins waiting
//! in tbe/, summarised rather than listed by the hundred.

use std::collections::BTreeMap;
use std::path::Path;

use hive::scan::HostScan;

/// How many untriaged bulletins the summary names.
const NAMED: usize = 5;

/// One line per host that was not scanned; the host named once.
pub fn failure_lines(scans: &[HostScan]) -> Vec<String> {
    scans
        .iter()
        .filter_map(|s| {
            let e = s.result.as_ref().err()?.to_string();
            Some(if e.contains(&format!("`{}`", s.host)) {
                format!("not scanned: {e}")
            } else {
                format!("not scanned: {}: {e}", s.host)
            })
        })
        .collect()
}

/// `N missing bulletin(s) await triage in DIR: A (on 12 hosts), B (3), ... and M more` — the
/// bulletins missing on the most hosts first.
pub fn untriaged_line(tbe: &BTreeMap<String, Vec<String>>, folder: &Path) -> Option<String> {
    if tbe.is_empty() {
        return None;
    }
    let mut by_hosts: Vec<(&String, usize)> = tbe.iter().map(|(b, h)| (b, h.len())).collect();
    by_hosts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let named: Vec<String> = by_hosts
        .iter()
        .take(NAMED)
        .map(|(b, n)| format!("{b} ({n} host{})", if *n == 1 { "" } else { "s" }))
        .collect();
    let more = tbe.len().saturating_sub(NAMED);
    Some(format!(
        "{} missing bulletin(s) await triage in {}/ (a folder each, with the hosts that miss it): {}{}",
        tbe.len(),
        folder.display(),
        named.join(", "),
        if more > 0 {
            format!(" and {more} more (`hive triage list`)")
        } else {
            String::new()
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive::scan::HostFailure;

    #[test]
    fn many_untriaged_bulletins_are_summarised_most_missed_first() {
        let mut tbe = BTreeMap::new();
        for i in 0..133 {
            let hosts = (0..(i % 7 + 1)).map(|h| format!("H{h}")).collect();
            tbe.insert(format!("MS01-{i:03}"), hosts);
        }
        let line = untriaged_line(&tbe, Path::new("repo/tbe")).expect("a line");
        assert!(
            line.starts_with("133 missing bulletin(s) await triage in repo/tbe/"),
            "{line}"
        );
        assert!(
            line.contains("MS01-006 (7 hosts), MS01-013 (7 hosts)"),
            "{line}"
        );
        assert!(
            line.ends_with("and 128 more (`hive triage list`)"),
            "{line}"
        );
        assert_eq!(line.matches("MS01-").count(), 5);
        let one = BTreeMap::from([("MS01-033".to_string(), vec!["A".to_string()])]);
        assert_eq!(
            untriaged_line(&one, Path::new("t")).expect("a line"),
            "1 missing bulletin(s) await triage in t/ (a folder each, with the hosts that miss it): MS01-033 (1 host)"
        );
        assert_eq!(untriaged_line(&BTreeMap::new(), Path::new("t")), None);
    }

    #[test]
    fn each_failed_host_is_named_once() {
        let scans = vec![
            HostScan {
                host: "S25-B".into(),
                result: Err(HostFailure::Credential(
                    "credential env:HIVE_PASSWORD for host `S25-B`: the environment variable is not set".into(),
                )),
            },
            HostScan {
                host: "WEB01".into(),
                result: Err(HostFailure::Unreachable("connection refused".into())),
            },
        ];
        assert_eq!(
            failure_lines(&scans),
            [
                "not scanned: credential env:HIVE_PASSWORD for host `S25-B`: the environment variable is not set",
                "not scanned: WEB01: unreachable: connection refused",
            ]
        );
    }
}
