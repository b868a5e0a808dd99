//! `hive catalog import|show|diff` as an admin runs them, offline, on the real fixtures.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(rel)
        .display()
        .to_string()
}

fn hive(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hive"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn import_then_show_then_diff() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.json").display().to_string();
    let ms = fixture("catalogs/mssecure-2001-10-04.xml");
    let feb = fixture("catalogs/cvrf/2017-Feb.xml");

    let out = hive(&["catalog", "import", &ms, &feb, "--cache", &cache]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("231 bulletins, 393 patches"), "{text}");
    assert!(text.contains("236 new bulletins"), "{text}");

    let out = hive(&["catalog", "show", "--cache", &cache]);
    let text = stdout(&out);
    assert!(text.contains("236 bulletins"), "{text}");
    assert!(
        text.contains("1.0.1.148") && text.contains("2017-Feb"),
        "{text}"
    );

    let out = hive(&["catalog", "show", "MS01-033", "--cache", &cache]);
    let text = stdout(&out);
    assert!(
        text.contains("Unchecked Buffer in Index Server ISAPI Extension"),
        "{text}"
    );
    assert!(
        text.to_lowercase()
            .contains("superseded by ms01-044/q301625_w2k_sp3_x86_en.exe"),
        "{text}"
    );

    let out = hive(&[
        "catalog",
        "show",
        "KB4010250",
        "-o",
        "json",
        "--cache",
        &cache,
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["kb"], "KB4010250");
    // The old spelling still works for existing scripts, with a note on stderr.
    let old = hive(&["catalog", "show", "KB4010250", "--json", "--cache", &cache]);
    assert_eq!(old.stdout, out.stdout);
    assert!(
        String::from_utf8_lossy(&old.stderr).contains("--json is deprecated; use -o json"),
        "{}",
        String::from_utf8_lossy(&old.stderr)
    );

    let out = hive(&["catalog", "diff", &ms, &cache]);
    let text = stdout(&out);
    assert!(text.contains("new bulletins (5):"), "{text}");
    assert!(text.contains("CVE-"), "{text}");
    let out = hive(&["catalog", "diff", &ms, &cache, "--output", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["new_bulletins"].as_array().map(Vec::len), Some(5));

    // An error outside a run exits 1 (2 is for usage errors).
    let out = hive(&["catalog", "show", "MS99-999", "--cache", &cache]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MS99-999"));
}

#[test]
fn a_broken_file_names_its_line_and_leaves_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.json").display().to_string();
    let feb = fixture("catalogs/cvrf/2017-Feb.xml");
    assert!(
        hive(&["catalog", "import", &feb, "--cache", &cache])
            .status
            .success()
    );
    let before = std::fs::read(&cache).unwrap();
    let broken = dir.path().join("broken.xml");
    let text = std::fs::read_to_string(&feb).unwrap();
    std::fs::write(&broken, text.replacen("</vuln:CVE>", "</vuln:CVX>", 1)).unwrap();
    let out = hive(&[
        "catalog",
        "import",
        &broken.display().to_string(),
        "--cache",
        &cache,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.xml:") && err.contains("Vulnerability/CVE"),
        "{err}"
    );
    assert_eq!(std::fs::read(&cache).unwrap(), before);
}

#[test]
fn concurrent_imports_into_one_cache_keep_both_months() {
    let feb = fixture("catalogs/cvrf/2017-Feb.xml");
    let mar = fixture("catalogs/cvrf/2024-Mar.xml");
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("c.json").display().to_string();
        let spawn = |file: &str| {
            Command::new(env!("CARGO_BIN_EXE_hive"))
                .args(["catalog", "import", file, "--cache", &cache])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let a = spawn(&feb);
        let b = spawn(&mar);
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = stdout(&hive(&["catalog", "show", "--cache", &cache]));
        assert!(
            text.contains("2017-Feb") && text.contains("2024-Mar"),
            "round {round}: a month was lost:\n{text}"
        );
    }
}

#[test]
fn an_import_waits_for_the_lock_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.json");
    let lock = std::fs::File::create(dir.path().join("c.json.lock")).unwrap();
    lock.lock().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hive"))
        .args(["catalog", "import", &fixture("catalogs/cvrf/2017-Feb.xml")])
        .arg("--cache")
        .arg(&cache)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the import did not wait for the lock"
    );
    assert!(!cache.exists());
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("waiting for another hive"), "{err}");
    assert!(cache.exists());
}

#[test]
fn show_speaks_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.json").display().to_string();
    let mar = fixture("catalogs/cvrf/2024-Mar.xml");
    assert!(
        hive(&["catalog", "import", &mar, "--cache", &cache])
            .status
            .success()
    );
    let text = stdout(&hive(&["catalog", "show", "--cache", &cache]));
    assert!(
        text.contains("source MSRC CVRF 2024-Mar revision 235, released 2026-06-28T01:41:24"),
        "{text}"
    );
    let text = stdout(&hive(&["catalog", "show", "KB5035845", "--cache", &cache]));
    assert!(
        text.contains("patch KB5035845 (Security Update), restart required"),
        "{text}"
    );
    let text = stdout(&hive(&[
        "catalog",
        "show",
        "CVE-2024-21407",
        "--cache",
        &cache,
    ]));
    assert!(text.contains("severity: Critical"), "{text}");
    for debug_word in ["Some(", "MsrcCvrf", "Mssecure"] {
        assert!(!text.contains(debug_word), "{text}");
    }
}

#[test]
fn diff_lists_patches_and_product_changes() {
    let dir = tempfile::tempdir().unwrap();
    let feb = fixture("catalogs/cvrf/2017-Feb.xml");
    let mar = fixture("catalogs/cvrf/2024-Mar.xml");
    let out = hive(&["catalog", "diff", &feb, &mar]);
    let text = stdout(&out);
    assert!(text.contains("new patches (43):"), "{text}");
    assert!(text.contains("removed patches ("), "{text}");
    assert!(text.contains("new products ("), "{text}");
    // The same product id with another build range: a changed product, line by line.
    let cache = dir.path().join("c.json").display().to_string();
    assert!(
        hive(&["catalog", "import", &mar, "--cache", &cache])
            .status
            .success()
    );
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    json["catalog"]["products"]["msrc:11931"]["applicability"]["build_range"]["min"] =
        "10.0.19041.0".into();
    let older = dir.path().join("older.json");
    std::fs::write(&older, serde_json::to_vec(&json).unwrap()).unwrap();
    let text = stdout(&hive(&[
        "catalog",
        "diff",
        &older.display().to_string(),
        &cache,
    ]));
    assert!(text.contains("changed products (1):"), "{text}");
    assert!(
        text.contains("build range 10.0.19041.0 ..< 10.0.19045.0 -> 10.0.19044.0 ..< 10.0.19045.0"),
        "{text}"
    );
}

#[test]
fn months_imported_forwards_and_backwards_give_the_same_cache() {
    let dir = tempfile::tempdir().unwrap();
    let feb = fixture("catalogs/cvrf/2017-Feb.xml");
    let mar = fixture("catalogs/cvrf/2024-Mar.xml");
    let ms = fixture("catalogs/mssecure-2001-10-04.xml");
    let mut caches = Vec::new();
    for (name, order) in [
        ("fwd.json", [&ms, &feb, &mar]),
        ("bwd.json", [&mar, &feb, &ms]),
    ] {
        let cache = dir.path().join(name).display().to_string();
        for file in order {
            let out = hive(&["catalog", "import", file, "--cache", &cache]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        caches.push(std::fs::read(&cache).unwrap());
    }
    assert!(caches[0] == caches[1], "import order changed the cache");
}
