//! The importers never panic on damaged catalogs: proptest mutates the real fixtures (byte
//! flips to XML-significant characters, deletions, duplications, truncation, hostile attribute
//! values and element texts that keep the XML well-formed, so the importers' own checks of ids,
//! dates, versions and KBs are exercised; elements nested up to 200,000 levels deep) and every
//! result must be either a catalog that round-trips through the cache format or an error that
//! names the file in a message of one readable line.
//!
//! Budgets (see tests/fuzz_support): CI runs a few hundred cases; `HIVE_FUZZ_SECONDS=600 cargo
//! test -p hive --test catalog_fuzz -- --nocapture --test-threads 1` runs each target for ten
//! minutes and prints its count.

mod fuzz_support;

use fuzz_support::{Grammar, Outcome, apply, fixture, mutations};
use hive::catalog::store;

/// Values that have broken importers elsewhere: empty, sentinels, huge numbers, odd versions.
const XML: Grammar = Grammar {
    bytes: &[
        b'<', b'>', b'&', b'"', b'/', b'=', b'0', b'9', b'.', b'-', b' ', b'\n', b';', b'#', b'x',
        0xC3,
    ],
    tokens: &["<a>", "<!--", "]]>", "&#0;", "&#xD800;", "<x xmlns:p=\"\">"],
    values: &[
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
        "../../etc/passwd",
        "MS01-033&del",
    ],
    slots: &[(b"=\"", b'"'), (b">", b'<')],
    nests: &[
        (
            "<prod:Branch Type=\"Product Family\" Name=\"Windows\">",
            "</prod:Branch>",
        ),
        ("<a>", "</a>"),
        ("<Bulletin BulletinID=\"MS01-033\">", "</Bulletin>"),
    ],
};

/// Returns whether the mutated document still imported.
fn check(name: &str, bytes: &[u8]) -> Outcome {
    match store::import_bytes(name, bytes) {
        Ok((catalog, _)) => {
            let json = serde_json::to_string(&catalog.to_file()).unwrap();
            let back: hive::catalog::CatalogFile = serde_json::from_str(&json).unwrap();
            assert_eq!(back.catalog, catalog);
            Outcome::Accepted
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "error does not name the file: {msg}");
            assert!(msg.len() < 2_000, "a {} byte error message", msg.len());
            Outcome::Refused
        }
    }
}

fn fuzz(name: &str, rel: &str, ci_cases: u64) {
    let doc = fixture(rel);
    fuzz_support::run(
        &format!("catalog {name}"),
        ci_cases,
        mutations(&XML, 0),
        |muts| check(name, &apply(&XML, &doc, &[], &muts)),
    );
}

#[test]
fn cvrf_importer_survives_mutations() {
    fuzz("2017-Feb.xml", "catalogs/cvrf/2017-Feb.xml", 200);
}

#[test]
fn mssecure_importer_survives_mutations() {
    fuzz("mssecure.xml", "catalogs/mssecure-2001-10-04.xml", 16);
}

#[test]
fn cvrf_march_survives_mutations() {
    fuzz("2024-Mar.xml", "catalogs/cvrf/2024-Mar.xml", 4);
}
