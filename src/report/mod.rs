//! Reports of a scan: a fleet summary table for people, JSON and CSV for tools, hfnetchk's tab
//! format for the scripts that grew up around it, and an HTML page ([`html`]) to look at or mail.
//!
//! Rendering is pure (scan results in, text out) so each format is tested byte for byte;
//! [`record_lastruns`] stores each host's report in the HIVE repository, as HIVE did after every
//! run.

pub mod html;

use std::fmt::Write as _;

use serde::Serialize;

use crate::catalog::model::Catalog;
use crate::repo::{RepoError, Repository};
use crate::scan::evaluate::{Status, Verdict};
use crate::scan::{HostFailure, HostScan};

/// The output formats of `hive scan --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A fleet summary table, then one line per host that needs action.
    Table,
    /// The whole result as one JSON document (its shape: docs/json.md).
    Json,
    /// One row per host × patch that is not "not applicable".
    Csv,
    /// hfnetchk's `-o tab` columns: machine, product, bulletin, title, Q number, reason, status.
    Tab,
    /// One self-contained HTML page: headline, hosts needing attention, host × bulletin matrix.
    Html,
}

/// Render scan results in a format.
pub fn render(format: Format, catalog: &Catalog, scans: &[HostScan]) -> String {
    match format {
        Format::Table => table(scans),
        Format::Json => json(scans),
        Format::Csv => csv(catalog, scans),
        Format::Tab => tab(catalog, scans),
        Format::Html => html::to_html(&html::scan::page(
            catalog,
            scans,
            &Default::default(),
            crate::time::now_ms(),
        )),
    }
}

/// Counts of one host's verdicts, for the summary table and the one-line recap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub missing: usize,
    pub warning: usize,
    pub note: usize,
    pub installed: usize,
    pub superseded: usize,
    pub not_applicable: usize,
}

impl Counts {
    pub fn of(verdicts: &[Verdict]) -> Counts {
        let mut c = Counts::default();
        for v in verdicts {
            match v.status {
                Status::Missing => c.missing += 1,
                Status::Warning => c.warning += 1,
                Status::Note => c.note += 1,
                Status::Installed => c.installed += 1,
                Status::Superseded => c.superseded += 1,
                Status::NotApplicable => c.not_applicable += 1,
            }
        }
        c
    }
}

/// The fleet summary: one row per host, failures listed apart so an unreachable host is never
/// mistaken for a clean one.
pub fn table(scans: &[HostScan]) -> String {
    let width = scans.iter().map(|s| s.host.len()).max().unwrap_or(4).max(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>7}  {:>7}  {:>4}  {:>9}  {:>10}  {:>5}  files",
        "HOST", "MISSING", "WARNING", "NOTE", "INSTALLED", "SUPERSEDED", "N/A"
    );
    let (mut ok, mut clean, mut failed) = (0, 0, 0);
    for s in scans {
        match &s.result {
            Ok(r) => {
                ok += 1;
                let c = Counts::of(&r.verdicts);
                if c.missing == 0 {
                    clean += 1;
                }
                let _ = writeln!(
                    out,
                    "{:<width$}  {:>7}  {:>7}  {:>4}  {:>9}  {:>10}  {:>5}  {}",
                    s.host,
                    c.missing,
                    c.warning,
                    c.note,
                    c.installed,
                    c.superseded,
                    c.not_applicable,
                    r.facts.file_source
                );
            }
            Err(_) => failed += 1,
        }
    }
    if failed > 0 {
        let _ = writeln!(out, "\nNOT SCANNED");
        for s in scans {
            if let Err(f) = &s.result {
                let _ = writeln!(out, "{:<width$}  {}", s.host, f);
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{} hosts: {ok} scanned ({clean} with nothing missing), {failed} not scanned",
        scans.len()
    );
    out
}

/// The documented shape (docs/json.md), not serde's view of the internal types.
fn json(scans: &[HostScan]) -> String {
    crate::scan::json::to_json(scans).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(catalog: &Catalog, scans: &[HostScan]) -> String {
    let mut out = String::from("host,product,bulletin,title,kb,patch,status,evidence\n");
    for s in scans {
        match &s.result {
            Ok(r) => {
                for v in r
                    .verdicts
                    .iter()
                    .filter(|v| v.status != Status::NotApplicable)
                {
                    for b in bulletins_of(v) {
                        let (title, kb) = bulletin_info(catalog, v, b);
                        let row = [
                            s.host.as_str(),
                            &v.product,
                            b,
                            &title,
                            &kb,
                            &v.patch,
                            &v.status.to_string(),
                            &v.evidence,
                        ];
                        let line: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
                        let _ = writeln!(out, "{}", line.join(","));
                    }
                }
            }
            Err(f) => {
                let row = [
                    s.host.as_str(),
                    "",
                    "",
                    "",
                    "",
                    "",
                    f.kind(),
                    &f.to_string(),
                ];
                let line: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
                let _ = writeln!(out, "{}", line.join(","));
            }
        }
    }
    out
}

fn bulletins_of(v: &Verdict) -> Vec<&str> {
    if v.bulletins.is_empty() {
        vec![""]
    } else {
        v.bulletins.iter().map(|b| &**b).collect()
    }
}

fn bulletin_info(catalog: &Catalog, v: &Verdict, bulletin: &str) -> (String, String) {
    let title = catalog
        .bulletin(bulletin)
        .map(|b| b.title.clone())
        .unwrap_or_default();
    let kb = catalog
        .patch(&v.patch)
        .and_then(|p| p.kb)
        .map(|kb| match catalog.bulletin(bulletin).map(|b| b.source) {
            Some(crate::catalog::model::SourceKind::Mssecure) => kb.q_number(),
            _ => kb.to_string(),
        })
        .unwrap_or_default();
    (title, kb)
}

/// A tab-format field: tabs and line breaks would break the columns, so they become spaces.
fn tab_field(s: &str) -> String {
    s.replace(['\t', '\r', '\n'], " ")
}

/// hfnetchk's `-o tab`: one line per host × bulletin that needs action, with a header line.
fn tab(catalog: &Catalog, scans: &[HostScan]) -> String {
    let mut out =
        String::from("Machine Name\tProduct\tBulletin\tTitle\tQ Number\tReason\tStatus\n");
    for s in scans {
        match &s.result {
            Ok(r) => {
                for v in r.verdicts.iter().filter(|v| v.status.needs_action()) {
                    for b in bulletins_of(v) {
                        let (title, kb) = bulletin_info(catalog, v, b);
                        let fields = [
                            s.host.as_str(),
                            &v.product,
                            b,
                            &title,
                            &kb,
                            &v.evidence,
                            v.status.hfnetchk_word(),
                        ];
                        let line: Vec<String> = fields.iter().map(|f| tab_field(f)).collect();
                        let _ = writeln!(out, "{}", line.join("\t"));
                    }
                }
            }
            Err(f) => {
                let fields = [
                    s.host.as_str(),
                    "",
                    "",
                    "",
                    "",
                    &f.to_string(),
                    "NOT SCANNED",
                ];
                let line: Vec<String> = fields.iter().map(|f| tab_field(f)).collect();
                let _ = writeln!(out, "{}", line.join("\t"));
            }
        }
    }
    out
}

impl HostFailure {
    /// A short machine-readable word for the failure class.
    pub fn kind(&self) -> &'static str {
        match self {
            HostFailure::Unreachable(_) => "unreachable",
            HostFailure::AuthFailed(_) => "auth-failed",
            HostFailure::TimedOut(_) => "timed-out",
            HostFailure::ProbeFailed(_) => "probe-failed",
            HostFailure::Credential(_) => "credential",
        }
    }
}

/// What `machines/<host>/lastrun.log` holds: hfnetchk's tab columns and how file versions were
/// read, or why the host was not scanned.
pub fn lastrun(catalog: &Catalog, scan: &HostScan) -> String {
    match &scan.result {
        Ok(r) => {
            tab(catalog, std::slice::from_ref(scan))
                + &format!("\nfile versions read by: {}\n", r.facts.file_source)
        }
        Err(e) => format!("not scanned: {e}\n"),
    }
}

/// One host's scan in a line of its log (`logs/<host>.log`).
pub fn log_line(scan: &HostScan) -> String {
    match &scan.result {
        Ok(r) => {
            let c = Counts::of(&r.verdicts);
            format!(
                "{} missing, {} warning, {} note, {} installed",
                c.missing, c.warning, c.note, c.installed
            )
        }
        Err(e) => format!("not scanned: {e}"),
    }
}

/// Store a scan in the repository: each host's [`lastrun`] (the previous one is archived) and a
/// `<stamp> scan: ...` line in its log.
pub fn record_lastruns(
    repo: &Repository,
    catalog: &Catalog,
    scans: &[HostScan],
    stamp: &str,
) -> Result<(), RepoError> {
    for s in scans {
        repo.write_lastrun(&s.host, stamp, &lastrun(catalog, s))?;
        repo.append_host_log(&s.host, &format!("{stamp} scan: {}", log_line(s)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::HostResult;
    use crate::scan::facts::HostFacts;

    fn verdict(patch: &str, bulletin: &str, status: Status, evidence: &str) -> Verdict {
        Verdict {
            patch: patch.into(),
            bulletins: [bulletin.into()].into(),
            product: "Internet Information Services 5.0".into(),
            status,
            evidence: evidence.into(),
        }
    }

    fn scans() -> Vec<HostScan> {
        vec![
            HostScan {
                host: "web01".into(),
                result: Ok(HostResult {
                    facts: HostFacts {
                        file_source: "probe".into(),
                        ..Default::default()
                    },
                    verdicts: vec![
                        verdict(
                            "p1",
                            "MS01-033",
                            Status::Missing,
                            "idq.dll 5.0.2195.2779 < 5.0.2195.3645",
                        ),
                        verdict("p2", "MS01-044", Status::Warning, "a, b\tc"),
                        verdict("p3", "MS01-026", Status::Installed, "ok"),
                        verdict("p4", "MS01-025", Status::NotApplicable, "n/a"),
                    ],
                }),
            },
            HostScan {
                host: "web02".into(),
                result: Err(HostFailure::Unreachable("connection refused".into())),
            },
        ]
    }

    #[test]
    fn table_separates_failures_and_recaps() {
        let t = table(&scans());
        assert!(
            t.contains("web01        1        1     0          1           0      1  probe"),
            "{t}"
        );
        assert!(
            t.contains("NOT SCANNED\nweb02  unreachable: connection refused"),
            "{t}"
        );
        assert!(
            t.ends_with("2 hosts: 1 scanned (0 with nothing missing), 1 not scanned\n"),
            "{t}"
        );
    }

    #[test]
    fn tab_has_hfnetchk_columns_and_no_stray_tabs() {
        let t = tab(&Catalog::default(), &scans());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "Machine Name\tProduct\tBulletin\tTitle\tQ Number\tReason\tStatus"
        );
        assert_eq!(lines.len(), 4);
        for l in &lines {
            assert_eq!(l.split('\t').count(), 7, "{l}");
        }
        assert!(lines[1].starts_with("web01\tInternet Information Services 5.0\tMS01-033\t"));
        assert!(lines[1].ends_with("\tNOT FOUND"));
        assert!(lines[2].contains("a, b c\tWARNING"));
        assert!(lines[3].ends_with("NOT SCANNED"));
    }

    #[test]
    fn csv_quotes_fields() {
        let c = csv(&Catalog::default(), &scans());
        assert!(c.contains("\"a, b\tc\""), "{c}");
        assert!(
            c.contains("web02,,,,,,unreachable,unreachable: connection refused"),
            "{c}"
        );
        assert!(!c.contains("MS01-025"), "not-applicable rows are left out");
    }

    #[test]
    fn json_round_trips() {
        let j = json(&scans());
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v[0]["host"], "web01");
        assert_eq!(v[0]["status"], "scanned");
        assert_eq!(v[0]["verdicts"][0]["status"], "missing");
        assert_eq!(v[1]["status"], "unreachable");
        assert_eq!(v[1]["error"], "unreachable: connection refused");
    }

    #[test]
    fn a_scan_is_stored_as_each_hosts_lastrun_and_log_line() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let catalog = Catalog::default();
        record_lastruns(&repo, &catalog, &scans(), "20261204T220000Z").unwrap();
        let read = |rel: &str| std::fs::read_to_string(dir.path().join(rel)).unwrap();
        let web01 = read("machines/web01/lastrun.log");
        assert_eq!(
            web01,
            tab(&catalog, &scans()[..1]) + "\nfile versions read by: probe\n"
        );
        assert_eq!(
            read("machines/web02/lastrun.log"),
            "not scanned: unreachable: connection refused\n"
        );
        assert_eq!(
            read("logs/web01.log"),
            "20261204T220000Z scan: 1 missing, 1 warning, 0 note, 1 installed\n"
        );
        assert_eq!(
            read("logs/web02.log"),
            "20261204T220000Z scan: not scanned: unreachable: connection refused\n"
        );
    }
}
