//! The importers never panic on damaged catalogs: proptest mutates the real fixtures (byte
//! flips to XML-significant characters, deletions, duplications, truncation) and every result
//! must be either a catalog that round-trips through the cache format or an error that names the
//! file.
//!
//! CI runs a modest number of cases. For a long run set `HIVE_FUZZ_CASES`, e.g.
//! `HIVE_FUZZ_CASES=20000 cargo test -p hive --test catalog_fuzz -- --nocapture`.

use std::path::PathBuf;

use hive::catalog::store;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn fixture(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(rel);
    std::fs::read_to_string(p).unwrap()
}

fn cases(default: u32) -> u32 {
    std::env::var("HIVE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One edit of the document.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the byte at a position with an XML-significant one.
    Set(usize, u8),
    /// Delete a range.
    Delete(usize, usize),
    /// Copy a range to another position.
    Duplicate(usize, usize, usize),
    /// Cut the document.
    Truncate(usize),
    /// Replace the next attribute value after a position with a hostile one: keeps the XML
    /// well-formed so the importers' own checks (ids, dates, versions, KBs) are exercised.
    Value(usize, usize),
    /// Replace the next element text after a position with a hostile value.
    Text(usize, usize),
}

/// Values that have broken importers elsewhere: empty, sentinels, huge numbers, odd versions.
const HOSTILE: [&str; 14] = [
    "",
    "0",
    "-",
    "na",
    "99999999999999999999",
    "Q",
    "KB",
    "1.2.3.4.5.6",
    "10.0.17763",
    "1998/13/45",
    "x",
    "&amp;",
    "-1",
    "CVE-",
];

fn replace_after(d: &mut Vec<u8>, from: usize, open: &[u8], close: u8, value: &str) {
    let Some(i) = d[from..].windows(open.len()).position(|w| w == open) else {
        return;
    };
    let start = from + i + open.len();
    let Some(j) = d[start..].iter().position(|&b| b == close) else {
        return;
    };
    d.splice(start..start + j, value.bytes());
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![
        b'<', b'>', b'&', b'"', b'/', b'=', b'0', b'9', b'.', b'-', b' ', b'\n', b';', b'#', b'x',
        0xC3,
    ]);
    prop_oneof![
        4 => (any::<usize>(), interesting).prop_map(|(p, b)| Mutation::Set(p, b)),
        2 => (any::<usize>(), 1usize..200).prop_map(|(p, n)| Mutation::Delete(p, n)),
        2 => (any::<usize>(), 1usize..400, any::<usize>()).prop_map(|(p, n, to)| Mutation::Duplicate(p, n, to)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        6 => (any::<usize>(), 0..HOSTILE.len()).prop_map(|(p, v)| Mutation::Value(p, v)),
        4 => (any::<usize>(), 0..HOSTILE.len()).prop_map(|(p, v)| Mutation::Text(p, v)),
    ]
}

fn apply(doc: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut d = doc.to_vec();
    for m in muts {
        if d.is_empty() {
            break;
        }
        let len = d.len();
        match *m {
            Mutation::Set(p, b) => d[p % len] = b,
            Mutation::Delete(p, n) => {
                let s = p % len;
                d.drain(s..(s + n).min(len));
            }
            Mutation::Duplicate(p, n, to) => {
                let s = p % len;
                let chunk = d[s..(s + n).min(len)].to_vec();
                let at = to % len;
                d.splice(at..at, chunk);
            }
            Mutation::Truncate(p) => d.truncate(p % len),
            Mutation::Value(p, v) => replace_after(&mut d, p % len, b"=\"", b'"', HOSTILE[v]),
            Mutation::Text(p, v) => replace_after(&mut d, p % len, b">", b'<', HOSTILE[v]),
        }
    }
    d
}

/// Returns whether the mutated document still imported.
fn check(name: &str, bytes: &[u8]) -> bool {
    match store::import_bytes(name, bytes) {
        Ok((catalog, _)) => {
            let json = serde_json::to_string(&catalog.to_file()).unwrap();
            let back: hive::catalog::CatalogFile = serde_json::from_str(&json).unwrap();
            assert_eq!(back.catalog, catalog);
            true
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "error does not name the file: {msg}");
            false
        }
    }
}

fn fuzz(name: &str, doc: &str, default_cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases: cases(default_cases),
        failure_persistence: None,
        ..Config::default()
    });
    let doc = doc.as_bytes().to_vec();
    let imported = std::sync::atomic::AtomicUsize::new(0);
    let started = std::time::Instant::now();
    let result = runner.run(&prop::collection::vec(mutation(), 1..8), |muts| {
        if check(name, &apply(&doc, &muts)) {
            imported.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    eprintln!(
        "{name}: {} cases without a panic in {:.0?} ({} still imported, the rest were refused with an error)",
        cases(default_cases),
        started.elapsed(),
        imported.into_inner()
    );
}

#[test]
fn cvrf_importer_survives_mutations() {
    fuzz("2017-Feb.xml", &fixture("catalogs/cvrf/2017-Feb.xml"), 200);
}

#[test]
fn mssecure_importer_survives_mutations() {
    fuzz(
        "mssecure.xml",
        &fixture("catalogs/mssecure-2001-10-04.xml"),
        16,
    );
}

#[test]
fn cvrf_march_survives_mutations() {
    fuzz("2024-Mar.xml", &fixture("catalogs/cvrf/2024-Mar.xml"), 4);
}
