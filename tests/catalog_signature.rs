//! A signature made by an independent tool (OpenSSL's ed25519) verifies with hive's check, and a
//! one-byte change of the document does not: the publishing recipe in docs/catalog.md works.

use std::path::PathBuf;
use std::process::Command;

use hive::catalog::fetch::check_signature;

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn openssl_ed25519_signatures_verify() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let doc = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/catalogs/cvrf/2017-Feb.xml");
    let doc_s = doc.display().to_string();
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", &p("key.pem")]);
    openssl(&[
        "pkeyutl",
        "-sign",
        "-inkey",
        &p("key.pem"),
        "-rawin",
        "-in",
        &doc_s,
        "-out",
        &p("doc.sig"),
    ]);
    openssl(&[
        "pkey",
        "-in",
        &p("key.pem"),
        "-pubout",
        "-outform",
        "DER",
        "-out",
        &p("pub.der"),
    ]);
    let der = std::fs::read(p("pub.der")).unwrap();
    let key: [u8; 32] = der[der.len() - 32..].try_into().unwrap();
    let body = std::fs::read(&doc).unwrap();
    let sig = std::fs::read(p("doc.sig")).unwrap();
    check_signature(&key, &body, &sig).unwrap();

    let mut tampered = body.clone();
    tampered[100] ^= 1;
    let err = check_signature(&key, &tampered, &sig).unwrap_err();
    assert!(err.contains("does not match"), "{err}");
}
