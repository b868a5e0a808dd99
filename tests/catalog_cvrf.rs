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

/// March as another document would state it: `id`, current release date and revision replaced,
/// and CVE-2024-21407 retitled, so a test can see which document won.
fn restated_march(id: &str, released: &str, revision: &str, title: &str) -> String {
    let full = text("2024-Mar");
    let cve = full.find("<vuln:CVE>CVE-2024-21407").unwrap();
    let t = full[..cve].rfind("<vuln:Title>").unwrap() + "<vuln:Title>".len();
    let end = t + full[t..].find("</vuln:Title>").unwrap();
    format!("{}{title}{}", &full[..t], &full[end..])
        .replacen(
            "<cvrf:ID>2024-Mar</cvrf:ID>",
            &format!("<cvrf:ID>{id}</cvrf:ID>"),
            1,
        )
        .replacen(
            "<cvrf:Number>235</cvrf:Number>",
            &format!("<cvrf:Number>{revision}</cvrf:Number>"),
            1,
        )
        .replacen(
            "<cvrf:CurrentReleaseDate>2026-06-28T01:41:24<",
            &format!("<cvrf:CurrentReleaseDate>{released}<"),
            1,
        )
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

#[test]
fn months_imported_in_any_order_give_byte_identical_caches() {
    let docs = [
        import("2017-Feb").0,
        import("2024-Mar").0,
        cvrf::import(
            "old-rev.xml",
            &restated_march("2024-Mar", "2024-03-12T07:00:00", "1", "Old revision title"),
        )
        .unwrap()
        .0,
        cvrf::import(
            "later.xml",
            &restated_march("2026-Jul", "2026-07-14T07:00:00", "1", "Restated later"),
        )
        .unwrap()
        .0,
    ];
    let mut first: Option<Vec<u8>> = None;
    for order in permutations(docs.len()) {
        let mut c = Catalog::default();
        for &i in &order {
            c.merge(docs[i].clone());
        }
        assert_eq!(
            c.bulletin("CVE-2024-21407").unwrap().title,
            "Restated later",
            "order {order:?}: the newest document's title must win"
        );
        let march = c.sources.iter().find(|s| s.id == "2024-Mar").unwrap();
        assert_eq!(
            march.revision.as_deref(),
            Some("235"),
            "order {order:?}: revision 1 replaced revision 235"
        );
        let bytes = serde_json::to_vec_pretty(&c.to_file()).unwrap();
        match &first {
            None => first = Some(bytes),
            Some(f) => assert!(*f == bytes, "order {order:?} gives another cache"),
        }
    }
}

#[test]
fn an_older_revision_imported_last_does_not_win() {
    let mut c = import("2024-Mar").0;
    let old = cvrf::import(
        "old-rev.xml",
        &restated_march("2024-Mar", "2024-03-12T07:00:00", "1", "Old revision title"),
    )
    .unwrap()
    .0;
    c.merge(old);
    assert_eq!(
        c.bulletin("CVE-2024-21407").unwrap().title,
        "Windows Hyper-V Remote Code Execution Vulnerability"
    );
    assert_eq!(c.sources.len(), 1);
    assert_eq!(c.sources[0].location, "2024-Mar.xml");
}

/// A small CVRF month with one product, Windows 10 21H2 x64, and one remediation per entry:
/// (CVE, KB, FixedBuild, superseded KB).
fn month_21h2(id: &str, released: &str, fixes: &[(&str, u32, &str, &str)]) -> String {
    let mut doc = format!(
        "<cvrf:cvrfdoc xmlns:cvrf=\"c\" xmlns:prod=\"p\" xmlns:vuln=\"v\">\
         <cvrf:DocumentTracking><cvrf:Identification><cvrf:ID>{id}</cvrf:ID></cvrf:Identification>\
         <cvrf:Version>1.0</cvrf:Version><cvrf:CurrentReleaseDate>{released}</cvrf:CurrentReleaseDate>\
         </cvrf:DocumentTracking><prod:ProductTree><prod:Branch Type=\"Vendor\" Name=\"Microsoft\">\
         <prod:Branch Type=\"Product Family\" Name=\"Windows\"><prod:FullProductName ProductID=\"11931\">\
         Windows 10 Version 21H2 for x64-based Systems</prod:FullProductName></prod:Branch></prod:Branch>\
         </prod:ProductTree>\n"
    );
    for (cve, kb, fixed, supersedes) in fixes {
        doc.push_str(&format!(
            "<vuln:Vulnerability><vuln:Title>{cve}</vuln:Title><vuln:CVE>{cve}</vuln:CVE>\
             <vuln:Remediations><vuln:Remediation Type=\"Vendor Fix\"><vuln:Description>{kb}</vuln:Description>\
             <vuln:ProductID>11931</vuln:ProductID><vuln:Supercedence>{supersedes}</vuln:Supercedence>\
             <vuln:RestartRequired>Yes</vuln:RestartRequired><vuln:FixedBuild>{fixed}</vuln:FixedBuild>\
             </vuln:Remediation></vuln:Remediations></vuln:Vulnerability>\n"
        ));
    }
    doc.push_str("</cvrf:cvrfdoc>\n");
    doc
}

/// December as MSRC published it for 21H2: most CVEs give the 2004 build number (19041), one the
/// right one (19044); January is consistent.
fn december_and_january() -> [(Catalog, ImportReport); 2] {
    let dec = month_21h2(
        "2023-Dec",
        "2023-12-12T08:00:00",
        &[
            ("CVE-2023-0001", 5033372, "10.0.19041.3803", "5032189"),
            ("CVE-2023-0002", 5033372, "10.0.19041.3803", "5032189"),
            ("CVE-2023-0003", 5033372, "10.0.19044.3803", "5032189"),
            ("CVE-2023-0004", 5033372, "10.0.19041.3803", "5032189"),
        ],
    );
    let jan = month_21h2(
        "2024-Jan",
        "2024-01-09T08:00:00",
        &[("CVE-2024-0001", 5034122, "10.0.19044.3930", "5033372")],
    );
    [
        cvrf::import("2023-Dec.xml", &dec).unwrap(),
        cvrf::import("2024-Jan.xml", &jan).unwrap(),
    ]
}

#[test]
fn a_fixed_build_of_another_version_is_corrected_with_a_warning() {
    let [(dec, report), _] = december_and_january();
    let warnings: Vec<&String> = report
        .warnings
        .iter()
        .filter(|w| w.contains("FixedBuild"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning per KB and product: {warnings:?}"
    );
    let w = warnings[0];
    assert!(
        w.contains("2023-Dec.xml")
            && w.contains("KB5033372")
            && w.contains("Windows 10 Version 21H2 for x64-based Systems")
            && w.contains("10.0.19041.3803"),
        "{w}"
    );
    let t = dec
        .patch("KB5033372")
        .unwrap()
        .target("msrc:11931")
        .unwrap();
    assert_eq!(
        t.fixed_build.as_deref(),
        Some("10.0.19044.3803"),
        "the FixedBuild that agrees with the family wins"
    );
    let range = dec
        .product("msrc:11931")
        .unwrap()
        .applicability
        .build_range
        .clone();
    assert!(range.unwrap().contains(&v("10.0.19044.3693")));
}

#[test]
fn a_21h2_host_without_the_update_is_missing_after_any_import_order() {
    use hive::scan::evaluate::{Status, evaluate};
    use hive::scan::facts::HostFacts;
    let [(dec, _), (jan, _)] = december_and_january();
    let mut host = HostFacts {
        computer_name: "WS21H2".into(),
        os_name: "Windows 10 Enterprise".into(),
        installation_type: Some("Client".into()),
        build: Some(v("10.0.19044.3693")),
        ..Default::default()
    };
    for order in [[&dec, &jan], [&jan, &dec]] {
        let mut c = Catalog::default();
        for m in order {
            c.merge(m.clone());
        }
        let verdicts = evaluate(&c, &host);
        let dec_kb = verdicts.iter().find(|v| &*v.patch == "KB5033372").unwrap();
        assert_eq!(dec_kb.status, Status::Missing, "{dec_kb:?}");
        let jan_kb = verdicts.iter().find(|v| &*v.patch == "KB5034122").unwrap();
        assert_eq!(jan_kb.status, Status::Missing, "{jan_kb:?}");
    }
    // The corrected rule still detects the update by build.
    host.build = Some(v("10.0.19044.3803"));
    let mut c = Catalog::default();
    c.merge(jan.clone());
    c.merge(dec.clone());
    let verdicts = evaluate(&c, &host);
    let dec_kb = verdicts.iter().find(|v| &*v.patch == "KB5033372").unwrap();
    assert_eq!(dec_kb.status, Status::Installed, "{dec_kb:?}");
}

#[test]
fn march_2024_on_an_x64_21h2_host_with_framework_481() {
    use hive::scan::evaluate::{Status, evaluate};
    use hive::scan::facts::HostFacts;
    use hive::scan::products::{ENVIRONMENT, NDP_V4_FULL, NDP_V35};
    let (c, _) = import("2024-Mar");
    let reg = |pairs: &[(&str, &str)]| -> Option<std::collections::BTreeMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    };
    let host = HostFacts {
        computer_name: "WS21H2".into(),
        os_name: "Windows 10 Enterprise".into(),
        installation_type: Some("Client".into()),
        build: Some(v("10.0.19044.4046")),
        registry: [
            (
                ENVIRONMENT.to_string(),
                reg(&[("PROCESSOR_ARCHITECTURE", "AMD64")]),
            ),
            (NDP_V4_FULL.to_string(), reg(&[("Release", "533320")])),
            (NDP_V35.to_string(), reg(&[("Install", "1")])),
        ]
        .into(),
        ..Default::default()
    };
    let verdicts = evaluate(&c, &host);
    let cu = verdicts.iter().find(|v| &*v.patch == "KB5035845").unwrap();
    assert_eq!(cu.status, Status::Missing, "{cu:?}");
    assert_eq!(
        &*cu.product, "Windows 10 Version 21H2 for x64-based Systems",
        "matched on the host's architecture"
    );
    let dotnet: Vec<_> = verdicts
        .iter()
        .filter(|v| v.product.contains(".NET Framework") && v.status == Status::Missing)
        .collect();
    assert!(
        !dotnet.is_empty(),
        "the month's .NET updates are found missing"
    );
    assert!(
        dotnet
            .iter()
            .all(|v| v.product.contains("4.8.1") && v.product.contains("Windows 10 Version 21H2")),
        "{dotnet:#?}"
    );
}
