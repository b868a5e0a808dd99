//! The real 2001 hfnetchk catalog imports completely and maps onto the model as hfnetchk meant.

use std::path::PathBuf;

use hive::catalog::{
    DetectionRule, FileChecksum, InstallerKind, Kb, Restart, VersionOp, WhenMissing, mssecure,
};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(rel)
}

fn import() -> (hive::catalog::Catalog, hive::catalog::ImportReport) {
    let path = fixture("catalogs/mssecure-2001-10-04.xml");
    let text = std::fs::read_to_string(&path).unwrap();
    mssecure::import(&path.display().to_string(), &text).unwrap()
}

#[test]
fn the_whole_2001_catalog_imports() {
    let (catalog, report) = import();
    assert_eq!(report.bulletins, 231);
    assert_eq!(report.patches, 393);
    assert_eq!(catalog.bulletins.len(), 231);
    assert_eq!(catalog.patches.len(), 393);
    assert_eq!(report.products, 104);
    // SOURCES.md: 171 of 393 patches have neither file nor registry data (hfnetchk's NOTE).
    assert_eq!(report.no_data, 171);
    // Two more carry only file changes without a version ("na"): hive cannot tell either.
    assert_eq!(report.cannot_tell, 173);
    // Every join resolves (the one dangling SupercededBy entry, SBID 1, is used by no patch).
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(catalog.sources[0].id, "1.0.1.148");
}

#[test]
fn ms01_033_patch_detection_and_supersedence() {
    let (catalog, _) = import();
    let b = catalog.bulletin("MS01-033").unwrap();
    assert_eq!(
        b.title,
        "Unchecked Buffer in Index Server ISAPI Extension Could Enable Web Server Compromise"
    );
    assert_eq!(b.kbs, vec![Kb(300972)]);
    assert_eq!(b.posted.unwrap().to_string(), "2001-06-18");
    assert_eq!(b.patches.len(), 2);

    let p = catalog
        .patch("MS01-033/Q300972_W2K_SP3_x86_en.EXE")
        .unwrap();
    assert_eq!(p.kb, Some(Kb(300972)));
    assert_eq!(p.restart, Some(Restart::Yes));
    assert_eq!(
        p.download_url.as_deref(),
        Some("http://www.microsoft.com/Downloads/Release.asp?ReleaseID=30800")
    );
    assert_eq!(p.installer.as_ref().unwrap().kind, InstallerKind::UpdateExe);
    let products: Vec<&str> = p.targets.iter().map(|t| t.product.as_str()).collect();
    assert_eq!(products, vec!["mssecure:17", "mssecure:18"]);
    assert_eq!(
        catalog.product("mssecure:17").unwrap().name,
        "Internet Information Services 5.0"
    );
    let sps: Vec<&str> = p.targets[0]
        .service_packs
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(sps[0], "Windows 2000 Gold");

    // RegChange 1241 + FileChange 841 (idq.dll 5.0.2195.3645).
    let rule = p.detection_for("mssecure:17").unwrap();
    let DetectionRule::All { rules } = rule else {
        panic!("{rule:?}")
    };
    assert_eq!(
        rules[0],
        DetectionRule::RegistryValue {
            key: r"HKLM\SOFTWARE\Microsoft\Updates\Windows 2000\SP3\Q300972".into(),
            value: "Type".into(),
            data: "Update".into(),
        }
    );
    let DetectionRule::FileVersion {
        path,
        op,
        version,
        date,
        checksum,
        when_missing,
        ..
    } = &rules[1]
    else {
        panic!("{:?}", rules[1])
    };
    assert_eq!(path, r"%windir%\system32\idq.dll");
    assert_eq!(*op, VersionOp::Exact);
    assert_eq!(version.to_string(), "5.0.2195.3645");
    assert_eq!(date.as_deref(), Some("2001/05/24"));
    assert_eq!(*checksum, Some(FileChecksum::Hfnetchk(136855)));
    assert_eq!(*when_missing, WhenMissing::Ignore);

    // SBID 58: superseded by MS01-044's cumulative IIS 5 patch, and the link goes both ways.
    let by: Vec<&str> = p.superseded_by.iter().map(String::as_str).collect();
    assert_eq!(by.len(), 1);
    assert!(
        by[0].to_lowercase() == "ms01-044/q301625_w2k_sp3_x86_en.exe",
        "{by:?}"
    );
    let newer = catalog
        .patch(by[0])
        .expect("superseding patch is in the catalog");
    assert!(newer.supersedes.contains(&p.id));
    assert!(catalog.is_superseded(&p.id));

    // The NT4 patch: SBID 60, superseded by MS01-041's Q299444I.exe.
    let nt4 = catalog.patch("MS01-033/Q300972i.exe").unwrap();
    assert_eq!(
        nt4.installer.as_ref().unwrap().kind,
        InstallerKind::HotfixExe
    );
    assert_eq!(
        nt4.installer.as_ref().unwrap().arguments,
        vec!["-z", "-q", "-m"]
    );
    assert!(nt4.installer.as_ref().unwrap().needs_qchain);
    assert!(
        nt4.superseded_by
            .iter()
            .any(|id| id.eq_ignore_ascii_case("MS01-041/Q299444I.exe"))
    );
}

#[test]
fn a_patch_without_data_is_cannot_tell() {
    let (catalog, _) = import();
    // MS98-001's only patch has no FileChgs and no RegChgs.
    let p = catalog.patch("MS98-001/CREATALS_x86.exe").unwrap();
    for t in &p.targets {
        assert!(
            matches!(t.detection, DetectionRule::CannotTell { .. }),
            "{:?}",
            t.detection
        );
    }
    assert_eq!(p.restart, Some(Restart::Yes));
}

#[test]
fn cached_json_round_trips_the_whole_catalog() {
    let (catalog, _) = import();
    let json = serde_json::to_string(&catalog.to_file()).unwrap();
    let back: hive::catalog::CatalogFile = serde_json::from_str(&json).unwrap();
    assert_eq!(back.catalog, catalog);
    // Stable: the same content serializes to the same bytes.
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
}

#[test]
fn a_huge_bad_value_is_quoted_short() {
    let path = fixture("catalogs/mssecure-2001-10-04.xml");
    let text = std::fs::read_to_string(&path).unwrap();
    let broken = text.replacen(
        "DatePosted=\"1998/06/01\"",
        &format!("DatePosted=\"{}\"", "9".repeat(400_000)),
        1,
    );
    assert_ne!(broken, text);
    let err = mssecure::import("big.xml", &broken)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("big.xml:"), "{err}");
    assert!(
        err.contains("DatePosted") && err.contains("not a date"),
        "{err}"
    );
    assert!(err.len() < 300, "{} bytes", err.len());
}
