//! The stable JSON shape of a scan (`hive scan -o json`), documented in docs/json.md.
//!
//! Scripts read this, so it is a contract of its own, not whatever serde makes of the internal
//! types: every host is one object with the same four keys whether it was scanned or not —
//! `status` (`scanned`, or why not: `unreachable`, `auth_failed`, `timed_out`, `probe_failed`,
//! `credential`), `error` (the reason in words, `null` when scanned), `facts` and `verdicts`
//! (`null` and `[]` when not scanned) — instead of Rust's `{"result":{"Ok":...}}`.

use serde::Serialize;

use super::evaluate::Verdict;
use super::facts::HostFacts;
use super::{HostFailure, HostScan};

/// One host's entry.
#[derive(Debug, Serialize)]
pub struct HostEntry<'a> {
    pub host: &'a str,
    pub status: &'static str,
    pub error: Option<String>,
    pub facts: Option<&'a HostFacts>,
    pub verdicts: &'a [Verdict],
}

/// The `status` word of a host that could not be scanned.
pub fn failure_status(f: &HostFailure) -> &'static str {
    match f {
        HostFailure::Unreachable(_) => "unreachable",
        HostFailure::AuthFailed(_) => "auth_failed",
        HostFailure::TimedOut(_) => "timed_out",
        HostFailure::ProbeFailed(_) => "probe_failed",
        HostFailure::Credential(_) => "credential",
    }
}

impl<'a> From<&'a HostScan> for HostEntry<'a> {
    fn from(s: &'a HostScan) -> Self {
        match &s.result {
            Ok(r) => HostEntry {
                host: &s.host,
                status: "scanned",
                error: None,
                facts: Some(&r.facts),
                verdicts: &r.verdicts,
            },
            Err(f) => HostEntry {
                host: &s.host,
                status: failure_status(f),
                error: Some(f.to_string()),
                facts: None,
                verdicts: &[],
            },
        }
    }
}

/// The scan as a JSON array of [`HostEntry`], pretty-printed.
pub fn to_json(scans: &[HostScan]) -> Result<String, serde_json::Error> {
    let entries: Vec<HostEntry<'_>> = scans.iter().map(HostEntry::from).collect();
    serde_json::to_string_pretty(&entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::HostResult;

    #[test]
    fn scanned_and_failed_hosts_have_the_same_four_keys() {
        let scans = vec![
            HostScan {
                host: "web01".into(),
                result: Ok(HostResult {
                    facts: HostFacts::default(),
                    verdicts: vec![],
                }),
            },
            HostScan {
                host: "web02".into(),
                result: Err(HostFailure::Credential(
                    "credential env:HIVE_PASSWORD for host `web02`: not set".into(),
                )),
            },
        ];
        let v: serde_json::Value =
            serde_json::from_str(&to_json(&scans).expect("serialises")).expect("JSON");
        for e in v.as_array().expect("an array") {
            let keys: Vec<&str> = e
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys.len(), 5, "{e}");
            for k in ["host", "status", "error", "facts", "verdicts"] {
                assert!(keys.contains(&k), "{k} in {e}");
            }
            assert!(e.get("result").is_none());
        }
        assert_eq!(v[0]["status"], "scanned");
        assert!(v[0]["error"].is_null());
        assert!(v[0]["facts"].is_object());
        assert_eq!(v[1]["status"], "credential");
        assert!(v[1]["facts"].is_null());
        assert_eq!(v[1]["verdicts"], serde_json::json!([]));
        assert!(
            v[1]["error"]
                .as_str()
                .expect("error text")
                .contains("host `web02`")
        );
    }
}
