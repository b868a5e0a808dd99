//! Real MSRC CVRF months import into the model: per-product FixedBuilds, hotpatches,
//! supersedence, merging months, and an empty month that deletes nothing.

use std::path::PathBuf;

use hive::catalog::{
    Catalog, DetectionRule, ImportReport, Kb, Restart, Version, cvrf, diff, store,
};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(rel)
}

fn text(month: &str) -> String {
    std::fs::read_to_string(fixture(&format!("catalogs/cvrf/{month}.xml"))).unwrap()
}

fn import(month: &str) -> (Catalog, ImportReport) {
    cvrf::import(&format!("{month}.xml"), &text(month)).unwrap()
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

#[test]
fn march_2024_imports_with_real_counts() {
    let (c, r) = import("2024-Mar");
    assert_eq!(r.bulletins, 179);
    assert_eq!(r.products, 470);
    assert_eq!(
        r.patches, 43,
        "Vendor Fixes whose description is a KB number"
    );
    assert!(
        r.skipped > 0,
        "Mariner/Office C2R fixes without a KB are skipped"
    );
    assert_eq!(c.sources[0].id, "2024-Mar");
    assert_eq!(
        c.bulletin("CVE-2024-21407").unwrap().cves,
        vec!["CVE-2024-21407"]
    );
}

#[test]
fn kb5035845_has_a_fixed_build_per_product() {
    let (c, _) = import("2024-Mar");
    let p = c.patch("KB5035845").unwrap();
    assert_eq!(p.kb, Some(Kb(5035845)));
    assert_eq!(p.restart, Some(Restart::Yes));
    assert_eq!(p.targets.len(), 6);
    assert!(p.supersedes.contains("KB5034763"));
    assert_eq!(p.bulletins.len(), 35);
    let expect = [
        (
            "msrc:11931",
            "Windows 10 Version 21H2 for x64-based Systems",
            "10.0.19044.4170",
        ),
        (
            "msrc:12097",
            "Windows 10 Version 22H2 for x64-based Systems",
            "10.0.19045.4170",
        ),
    ];
    for (product, name, build) in expect {
        assert_eq!(c.product(product).unwrap().name, name);
        let t = p.target(product).unwrap();
        assert_eq!(t.fixed_build.as_deref(), Some(build));
        assert_eq!(
            t.detection,
            DetectionRule::Any {
                rules: vec![
                    DetectionRule::KbInstalled { kb: Kb(5035845) },
                    DetectionRule::BuildAtLeast { build: v(build) },
                ]
            }
        );
    }
}

#[test]
fn server_2019_gets_its_build_range_from_the_fixed_build() {
    let (c, _) = import("2024-Mar");
    let ws2019 = c.product("msrc:11571").unwrap();
    assert_eq!(ws2019.name, "Windows Server 2019");
    assert_eq!(ws2019.family.as_deref(), Some("Windows"));
    let range = ws2019.applicability.build_range.as_ref().unwrap();
    assert!(range.contains(&v("10.0.17763.5576")));
    assert!(!range.contains(&v("10.0.20348.1")));
    let core = c.product("msrc:11572").unwrap();
    assert_eq!(
        core.applicability.edition.as_deref(),
        Some("Server Core installation")
    );
    let p = c.patch("KB5035849").unwrap();
    assert_eq!(
        p.target("msrc:11571").unwrap().fixed_build.as_deref(),
        Some("10.0.17763.5576")
    );
    assert!(
        c.patches_for_product("msrc:11571")
            .any(|p| p.id == "KB5035849")
    );
}

#[test]
fn hotpatch_is_its_own_patch_with_a_lower_build() {
    let (c, _) = import("2024-Mar");
    let hot = c.patch("KB5035959").unwrap();
    let cu = c.patch("KB5035857").unwrap();
    assert_eq!(hot.subtype.as_deref(), Some("SecurityHotpatchUpdate"));
    let build =
        |p: &hive::catalog::Patch| p.target("msrc:11923").unwrap().fixed_build.clone().unwrap();
    assert_eq!(build(hot), "10.0.20348.2333");
    assert_eq!(build(cu), "10.0.20348.2340");
    assert!(v(&build(hot)) < v(&build(cu)));
}

#[test]
fn office_fixed_builds_are_not_windows_builds() {
    let (c, _) = import("2024-Mar");
    let p = c.patch("KB5002559").unwrap();
    let t = &p.targets[0];
    assert_eq!(t.fixed_build.as_deref(), Some("16.0.5439.1000"));
    assert_eq!(t.detection, DetectionRule::KbInstalled { kb: Kb(5002559) });
    assert_eq!(p.restart, Some(Restart::Maybe));
}

#[test]
fn fixed_build_dash_means_kb_check_only() {
    let doc = text("2024-Mar").replace(
        "<vuln:FixedBuild>10.0.17763.5576</vuln:FixedBuild>",
        "<vuln:FixedBuild>-</vuln:FixedBuild>",
    );
    let (c, _) = cvrf::import("dash.xml", &doc).unwrap();
    let t = c
        .patch("KB5035849")
        .unwrap()
        .target("msrc:11571")
        .unwrap()
        .clone();
    assert_eq!(t.fixed_build, None);
    assert_eq!(t.detection, DetectionRule::KbInstalled { kb: Kb(5035849) });
}

#[test]
fn february_2017_imports() {
    let (c, r) = import("2017-Feb");
    assert_eq!(r.bulletins, 5);
    let p = c.patch("KB4010250").unwrap();
    assert!(p.supersedes.contains("KB3214628"));
    assert_eq!(p.restart, Some(Restart::Yes));
    assert!(p.target("msrc:10384-10481").is_some());
}

/// The real March header with every vulnerability cut away: what MSRC serves for an empty month.
fn empty_month() -> String {
    let full = text("2024-Mar");
    let cut = full.find("<vuln:Vulnerability").unwrap();
    format!("{}</cvrf:cvrfdoc>\n", &full[..cut]).replace(">2024-Mar<", ">2024-Apr<")
}

#[test]
fn an_empty_month_never_deletes_known_data() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("catalog.json");
    let mut c = import("2024-Mar").0;
    c.merge(import("2017-Feb").0);
    store::save(&cache, &c).unwrap();
    let before = store::load(&cache).unwrap();
    let (empty, report) = cvrf::import("2024-Apr.xml", &empty_month()).unwrap();
    assert_eq!(empty.bulletins.len(), 0);
    assert!(
        report.warnings[0].contains("no vulnerabilities"),
        "{:?}",
        report.warnings
    );
    let mut after = before.clone();
    let m = after.merge(empty);
    assert_eq!((m.new_bulletins, m.new_patches, m.updated), (0, 0, 0));
    assert_eq!(after.bulletins, before.bulletins);
    assert_eq!(after.patches, before.patches);
    assert_eq!(after.sources.len(), 3);
    store::save(&cache, &after).unwrap();
    assert_eq!(
        store::load(&cache).unwrap().patches.len(),
        before.patches.len()
    );
}

#[test]
fn months_merge_and_diff_names_what_is_new() {
    let feb = import("2017-Feb").0;
    let mar = import("2024-Mar").0;
    let mut both = feb.clone();
    let m = both.merge(mar.clone());
    assert_eq!(m.new_patches, 43);
    assert_eq!(both.patches.len(), feb.patches.len() + 43);
    let d = diff(&feb, &both);
    assert_eq!(
        d.new_bulletins.len(),
        both.bulletins.len() - feb.bulletins.len()
    );
    assert!(d.new_bulletins.contains(&"CVE-2024-21407".to_string()));
    assert!(d.removed_bulletins.is_empty());
    // Merging the same month again changes nothing.
    let again = both.clone().merge(mar);
    assert_eq!(
        (again.new_bulletins, again.new_patches, again.updated),
        (0, 0, 0)
    );
}

#[test]
fn mssecure_and_cvrf_share_one_catalog() {
    let (ms, _) = store::import_file(&fixture("catalogs/mssecure-2001-10-04.xml")).unwrap();
    let mut c = ms;
    c.merge(import("2024-Mar").0);
    assert_eq!(c.patches.len(), 393 + 43);
    assert!(c.bulletin("ms01-033").is_some());
    assert!(c.bulletin("CVE-2024-21407").is_some());
}

#[test]
fn malformed_xml_reports_file_line_and_element() {
    let full = text("2024-Mar");
    let at = full.find("<vuln:FixedBuild>10.0.17763.5576").unwrap();
    let broken = format!(
        "{}<vuln:FixedBuild>10.0.17763.5576</vuln:Fixed>{}",
        &full[..at],
        &full[at + 60..]
    );
    let line = full[..at].lines().count();
    let err = cvrf::import("2024-Mar.xml", &broken)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&format!("2024-Mar.xml:{line}:")), "{err}");
    assert!(
        err.contains("cvrfdoc/Vulnerability/Remediations/Remediation/FixedBuild"),
        "{err}"
    );
}

/// March with `depth` product-family branches wrapped around the real product tree's content.
fn nested_branches(depth: usize) -> String {
    let full = text("2024-Mar");
    let open = full.find("<prod:ProductTree>").unwrap() + "<prod:ProductTree>".len();
    let close = full.find("</prod:ProductTree>").unwrap();
    format!(
        "{}{}{}{}{}",
        &full[..open],
        "<prod:Branch Type=\"Vendor\" Name=\"x\">".repeat(depth),
        &full[open..close],
        "</prod:Branch>".repeat(depth),
        &full[close..]
    )
}

#[test]
fn ten_thousand_nested_branches_are_an_error_naming_the_file() {
    let err = cvrf::import("deep.xml", &nested_branches(10_000))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("deep.xml:"), "{err}");
    assert!(err.contains("deeper than 256 levels"), "{err}");
    assert!(err.contains("more…"), "the path is shortened: {err}");
    assert!(err.len() < 500, "{} bytes: {err}", err.len());
}

#[test]
fn products_inside_deep_but_allowed_branches_still_import() {
    let (c, _) = cvrf::import("deep.xml", &nested_branches(240)).unwrap();
    assert_eq!(c.products.len(), 470);
    assert_eq!(
        c.product("msrc:11931").unwrap().family.as_deref(),
        Some("Windows")
    );
}
