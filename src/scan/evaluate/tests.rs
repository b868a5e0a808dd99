//! The hfnetchk rules, supersedence, build families and per-CVE remediation, on hand-built
//! catalogs and facts.

use super::*;
use crate::catalog::model::{
    Applicability, BuildRange, Bulletin, FileChecksum, Kb, PatchTarget, Product, Restart,
    SourceKind,
};
use crate::scan::facts::FileFact;
use crate::scan::facts::InstalledProduct;
use std::collections::BTreeSet;

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn sp(name: &str) -> ServicePack {
    ServicePack {
        id: name.into(),
        name: name.into(),
    }
}

fn product(id: &str, name: &str, range: Option<(&str, &str)>) -> Product {
    Product {
        id: id.into(),
        name: name.into(),
        family: None,
        cpe: None,
        applicability: Applicability {
            build_range: range.map(|(a, b)| BuildRange {
                min: v(a),
                below: v(b),
            }),
            ..Default::default()
        },
    }
}

fn patch(id: &str, product: &str, detection: DetectionRule) -> Patch {
    Patch {
        id: id.into(),
        kb: None,
        file_name: None,
        download_url: None,
        sha256: None,
        subtype: None,
        restart: Some(Restart::Yes),
        bulletins: vec![format!("B-{id}")],
        targets: vec![PatchTarget {
            product: product.into(),
            service_packs: vec![],
            fixed_in_sp: None,
            fixed_build: None,
            detection,
        }],
        supersedes: BTreeSet::new(),
        superseded_by: BTreeSet::new(),
        installer: None,
    }
}

fn file_rule(path: &str, op: VersionOp, version: &str, when_missing: WhenMissing) -> DetectionRule {
    DetectionRule::FileVersion {
        path: path.into(),
        op,
        version: v(version),
        date: None,
        size: None,
        checksum: Some(FileChecksum::Hfnetchk(12345)),
        when_missing,
    }
}

fn catalog(products: Vec<Product>, patches: Vec<Patch>) -> Catalog {
    let mut c = Catalog::default();
    for p in products {
        c.products.insert(p.id.clone(), p);
    }
    for p in patches {
        c.patches.insert(p.id.clone(), p);
    }
    c
}

fn w2k(sp: u32) -> HostFacts {
    HostFacts {
        computer_name: "W2K01".into(),
        os_name: "Windows 2000 Server".into(),
        build: Some(v("5.0.2195")),
        products: vec![
            InstalledProduct {
                name: "Microsoft Windows 2000 Server".into(),
                service_pack: sp,
            },
            InstalledProduct {
                name: "Internet Information Services 5.0".into(),
                service_pack: sp,
            },
        ],
        ..Default::default()
    }
}

fn with_file(mut f: HostFacts, path: &str, version: Option<&str>) -> HostFacts {
    f.files.insert(
        path.into(),
        version.map(|ver| FileFact {
            version: Some(v(ver)),
            size: None,
            sha256: None,
        }),
    );
    f
}

const IDQ: &str = r"%windir%\system32\idq.dll";

fn idq_catalog(op: VersionOp) -> Catalog {
    catalog(
        vec![product("m:17", "Internet Information Services 5.0", None)],
        vec![patch(
            "MS01-033/Q300972",
            "m:17",
            file_rule(IDQ, op, "5.0.2195.3645", WhenMissing::NotInstalled),
        )],
    )
}

#[test]
fn older_file_is_missing_with_evidence() {
    let c = idq_catalog(VersionOp::Exact);
    let facts = with_file(w2k(1), &IDQ.to_uppercase(), Some("5.0.2195.2779"));
    let out = evaluate(&c, &facts);
    assert_eq!(out[0].status, Status::Missing);
    assert_eq!(out[0].evidence, "idq.dll 5.0.2195.2779 < 5.0.2195.3645");
    assert_eq!(&*out[0].product, "Internet Information Services 5.0");
}

#[test]
fn newer_file_is_a_warning_for_exact_and_installed_for_at_least() {
    let facts = with_file(w2k(1), IDQ, Some("5.0.2195.4000"));
    let out = evaluate(&idq_catalog(VersionOp::Exact), &facts);
    assert_eq!(out[0].status, Status::Warning);
    assert_eq!(out[0].evidence, "idq.dll 5.0.2195.4000 > 5.0.2195.3645");
    let out = evaluate(&idq_catalog(VersionOp::AtLeast), &facts);
    assert_eq!(out[0].status, Status::Installed);
}

#[test]
fn equal_file_is_installed() {
    let facts = with_file(w2k(1), IDQ, Some("5.0.2195.3645"));
    assert_eq!(
        evaluate(&idq_catalog(VersionOp::Exact), &facts)[0].status,
        Status::Installed
    );
}

#[test]
fn facts_not_gathered_are_a_note_not_a_guess() {
    let out = evaluate(&idq_catalog(VersionOp::Exact), &w2k(1));
    assert_eq!(out[0].status, Status::Note);
    assert!(
        out[0].evidence.contains("was not gathered"),
        "{}",
        out[0].evidence
    );
}

#[test]
fn missing_file_follows_when_missing() {
    let facts = with_file(w2k(1), IDQ, None);
    assert_eq!(
        evaluate(&idq_catalog(VersionOp::Exact), &facts)[0].status,
        Status::Missing
    );
    let c = catalog(
        vec![product("m:17", "Internet Information Services 5.0", None)],
        vec![patch(
            "p",
            "m:17",
            file_rule(IDQ, VersionOp::Exact, "5.0.2195.3645", WhenMissing::Ignore),
        )],
    );
    assert_eq!(evaluate(&c, &facts)[0].status, Status::NotApplicable);
}

#[test]
fn product_not_on_host_is_not_applicable() {
    let c = catalog(
        vec![product("m:16", "Internet Information Server 4.0", None)],
        vec![patch(
            "p",
            "m:16",
            DetectionRule::KbInstalled { kb: Kb(300972) },
        )],
    );
    let out = evaluate(&c, &w2k(1));
    assert_eq!(out[0].status, Status::NotApplicable);
}

#[test]
fn service_pack_rules() {
    let mut p = patch("p", "m:6", DetectionRule::KbInstalled { kb: Kb(299553) });
    p.targets[0].fixed_in_sp = Some(sp("Windows 2000 Service Pack 2"));
    let c = catalog(
        vec![product("m:6", "Windows 2000 Server", None)],
        vec![p.clone()],
    );
    assert_eq!(evaluate(&c, &w2k(1))[0].status, Status::Missing);
    assert_eq!(evaluate(&c, &w2k(2))[0].status, Status::NotApplicable);
    p.targets[0].fixed_in_sp = None;
    p.targets[0].service_packs = vec![sp("Windows 2000 Gold"), sp("Windows 2000 Service Pack 1")];
    let c = catalog(vec![product("m:6", "Windows 2000 Server", None)], vec![p]);
    assert_eq!(evaluate(&c, &w2k(0))[0].status, Status::Missing);
    assert_eq!(evaluate(&c, &w2k(2))[0].status, Status::NotApplicable);
}

#[test]
fn registry_rules() {
    let key = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300972";
    let rule = DetectionRule::RegistryValue {
        key: key.into(),
        value: "Installed".into(),
        data: "1".into(),
    };
    let c = catalog(
        vec![product("m:6", "Windows 2000 Server", None)],
        vec![patch("p", "m:6", rule)],
    );
    let mut facts = w2k(1);
    assert_eq!(evaluate(&c, &facts)[0].status, Status::Note);
    facts.registry.insert(key.to_lowercase(), None);
    let out = evaluate(&c, &facts);
    assert_eq!(out[0].status, Status::Missing);
    assert!(out[0].evidence.contains("not found"));
    facts.registry.insert(
        key.to_lowercase(),
        Some([("installed".to_string(), "1".to_string())].into()),
    );
    assert_eq!(evaluate(&c, &facts)[0].status, Status::Installed);
    facts.registry.insert(
        key.to_lowercase(),
        Some([("Installed".to_string(), "0".to_string())].into()),
    );
    assert_eq!(evaluate(&c, &facts)[0].status, Status::Missing);
}

#[test]
fn a_cve_fixed_by_an_installed_hotpatch_does_not_ask_for_the_cumulative_update() {
    let rule = |kb: u32, build: &str| DetectionRule::Any {
        rules: vec![
            DetectionRule::KbInstalled { kb: Kb(kb) },
            DetectionRule::BuildAtLeast { build: v(build) },
        ],
    };
    let mut regular = patch("KB5001", "msrc:2025", rule(5001, "10.0.26100.3000"));
    regular.bulletins = vec!["CVE-1".into(), "CVE-2".into()];
    let mut hotpatch = patch("KB5002", "msrc:2025", rule(5002, "10.0.26100.2900"));
    hotpatch.bulletins = vec!["CVE-1".into()];
    let mut c = catalog(
        vec![product(
            "msrc:2025",
            "Windows Server 2025",
            Some(("10.0.26100", "10.0.26101")),
        )],
        vec![regular, hotpatch],
    );
    let cve = |id: &str, patches: &[&str]| Bulletin {
        id: id.into(),
        title: String::new(),
        posted: None,
        revised: None,
        severity: None,
        cves: vec![id.into()],
        kbs: vec![],
        patches: patches.iter().map(|p| p.to_string()).collect(),
        url: None,
        source: SourceKind::MsrcCvrf,
    };
    c.bulletins
        .insert("CVE-1".into(), cve("CVE-1", &["KB5001", "KB5002"]));
    c.bulletins
        .insert("CVE-2".into(), cve("CVE-2", &["KB5001"]));
    let facts = HostFacts {
        os_name: "Windows Server 2025 Datacenter".into(),
        installation_type: Some("Server".into()),
        build: Some(v("10.0.26100.2950")),
        kbs: [Kb(5002)].into(),
        ..Default::default()
    };
    let out = evaluate(&c, &facts);
    let by: BTreeMap<_, _> = out.iter().map(|v| (&*v.patch, v)).collect();
    assert_eq!(by["KB5002"].status, Status::Installed);
    // CVE-2 has no other remediation: the cumulative update is still missing, for CVE-2 only.
    assert_eq!(by["KB5001"].status, Status::Missing);
    assert_eq!(by["KB5001"].bulletins, ["CVE-2".into()].into());
    assert!(by["KB5001"].evidence.contains("still open: CVE-2"));
    // With CVE-2 gone, the hotpatch fixes everything the cumulative update would.
    c.bulletins.remove("CVE-2");
    c.patches.get_mut("KB5001").unwrap().bulletins = vec!["CVE-1".into()];
    let out = evaluate(&c, &facts);
    let regular = out.iter().find(|v| &*v.patch == "KB5001").unwrap();
    assert_eq!(regular.status, Status::Superseded, "{regular:?}");
    assert!(regular.evidence.contains("fixed by KB5002"), "{regular:?}");
}

#[test]
fn a_build_of_another_family_never_proves_a_patch_installed() {
    let rule = DetectionRule::Any {
        rules: vec![
            DetectionRule::KbInstalled { kb: Kb(5033372) },
            DetectionRule::BuildAtLeast {
                build: v("10.0.19041.3803"),
            },
        ],
    };
    let c = catalog(
        vec![product(
            "msrc:11931",
            "Windows 10 Version 21H2 for x64-based Systems",
            Some(("10.0.19044", "10.0.19045")),
        )],
        vec![patch("KB5033372", "msrc:11931", rule)],
    );
    let facts = HostFacts {
        os_name: "Windows 10 Enterprise".into(),
        build: Some(v("10.0.19044.3693")),
        ..Default::default()
    };
    let out = evaluate(&c, &facts);
    assert_ne!(out[0].status, Status::Installed, "{:?}", out[0]);
    assert!(out[0].evidence.contains("cannot compare"), "{:?}", out[0]);
}

#[test]
fn build_ranges_pick_the_product_and_fixed_build_decides() {
    let rule = DetectionRule::Any {
        rules: vec![
            DetectionRule::KbInstalled { kb: Kb(5035849) },
            DetectionRule::BuildAtLeast {
                build: v("10.0.17763.5576"),
            },
        ],
    };
    let c = catalog(
        vec![
            product(
                "msrc:1",
                "Windows Server 2019",
                Some(("10.0.17763", "10.0.17764")),
            ),
            product(
                "msrc:2",
                "Windows Server 2019 (Server Core installation)",
                Some(("10.0.17763", "10.0.17764")),
            ),
            product(
                "msrc:3",
                "Windows Server 2022",
                Some(("10.0.20348", "10.0.20349")),
            ),
        ],
        vec![
            patch("KB5035849", "msrc:1", rule.clone()),
            patch("KB5035849-core", "msrc:2", rule.clone()),
            patch(
                "KB5035857",
                "msrc:3",
                DetectionRule::BuildAtLeast {
                    build: v("10.0.20348.2340"),
                },
            ),
        ],
    );
    let mut facts = HostFacts {
        build: Some(v("10.0.17763.5458")),
        installation_type: Some("Server".into()),
        ..Default::default()
    };
    let out = evaluate(&c, &facts);
    let by: BTreeMap<_, _> = out.iter().map(|v| (&*v.patch, v)).collect();
    assert_eq!(by["KB5035849"].status, Status::Missing);
    assert_eq!(
        by["KB5035849"].evidence,
        "KB5035849 not installed; build 10.0.17763.5458 < 10.0.17763.5576"
    );
    assert_eq!(by["KB5035849-core"].status, Status::NotApplicable);
    assert_eq!(by["KB5035857"].status, Status::NotApplicable);
    facts.build = Some(v("10.0.17763.5576"));
    assert_eq!(evaluate(&c, &facts)[0].status, Status::Installed);
    facts.build = Some(v("10.0.17763.5458"));
    facts.kbs.insert(Kb(5035849));
    assert_eq!(evaluate(&c, &facts)[0].status, Status::Installed);
    facts.installation_type = Some("Server Core".into());
    let out = evaluate(&c, &facts);
    assert_eq!(out[0].status, Status::NotApplicable);
    assert_eq!(out[1].status, Status::Installed);
}

#[test]
fn cannot_tell_is_a_note() {
    let c = catalog(
        vec![product("m:6", "Windows 2000 Server", None)],
        vec![patch(
            "p",
            "m:6",
            DetectionRule::CannotTell {
                reason: "no file or registry data in the catalog".into(),
            },
        )],
    );
    let out = evaluate(&c, &w2k(1));
    assert_eq!(out[0].status, Status::Note);
    assert_eq!(out[0].evidence, "no file or registry data in the catalog");
}

#[test]
fn superseded_by_an_installed_patch_is_not_missing_even_through_a_chain() {
    let mut old = patch("old", "m:6", DetectionRule::KbInstalled { kb: Kb(1) });
    let mut mid = patch("mid", "m:6", DetectionRule::KbInstalled { kb: Kb(2) });
    let new = patch("new", "m:6", DetectionRule::KbInstalled { kb: Kb(3) });
    old.superseded_by.insert("mid".into());
    mid.superseded_by.insert("new".into());
    let c = catalog(
        vec![product("m:6", "Windows 2000 Server", None)],
        vec![old, mid, new],
    );
    let mut facts = w2k(1);
    facts.kbs.insert(Kb(3));
    let out: BTreeMap<_, _> = evaluate(&c, &facts)
        .into_iter()
        .map(|v| (v.patch.clone(), v))
        .collect();
    assert_eq!(out["new"].status, Status::Installed);
    assert_eq!(out["mid"].status, Status::Superseded);
    assert_eq!(out["old"].status, Status::Superseded);
    assert!(
        out["old"].evidence.starts_with("superseded by new"),
        "{}",
        out["old"].evidence
    );
    // Without the successor installed, the old one is missing again.
    facts.kbs.clear();
    let out = evaluate(&c, &facts);
    assert!(out.iter().all(|v| v.status == Status::Missing));
}

#[test]
fn all_rule_combines_fail_before_unknown_before_newer() {
    let key = r"HKLM\SOFTWARE\X";
    let rule = DetectionRule::All {
        rules: vec![
            DetectionRule::RegistryExists {
                key: key.into(),
                value: None,
            },
            file_rule(
                IDQ,
                VersionOp::Exact,
                "5.0.2195.3645",
                WhenMissing::NotInstalled,
            ),
        ],
    };
    let c = catalog(
        vec![product("m:6", "Windows 2000 Server", None)],
        vec![patch("p", "m:6", rule)],
    );
    let mut facts = with_file(w2k(1), IDQ, Some("5.0.2195.9999"));
    assert_eq!(evaluate(&c, &facts)[0].status, Status::Note);
    facts.registry.insert(key.into(), Some(BTreeMap::new()));
    assert_eq!(evaluate(&c, &facts)[0].status, Status::Warning);
    facts.registry.insert(key.into(), None);
    assert_eq!(evaluate(&c, &facts)[0].status, Status::Missing);
}

#[test]
fn sp_names() {
    assert_eq!(sp_number(&sp("Windows 2000 Gold")), Some(0));
    assert_eq!(sp_number(&sp("Windows 2000 Service Pack 2")), Some(2));
    assert_eq!(sp_number(&sp("Windows NT4 Service Pack 6a")), Some(6));
    assert_eq!(sp_number(&sp("SP3")), Some(3));
    assert_eq!(sp_number(&sp("None Available")), None);
}

#[test]
fn what_the_host_could_not_tell_is_a_note_with_its_reason() {
    let mut f = w2k(1);
    f.unknown.insert(
        IDQ.to_ascii_uppercase(),
        "Access to the path is denied.".into(),
    );
    let out = evaluate(&idq_catalog(VersionOp::Exact), &f);
    assert_eq!(out[0].status, Status::Note);
    assert!(
        out[0]
            .evidence
            .contains("could not be read on the host: Access to the path"),
        "{}",
        out[0].evidence
    );
}

#[test]
fn a_kb_absent_from_an_incomplete_or_foreign_update_list_is_a_note() {
    let range = Some(("10.0.20348.0", "10.0.20349.0"));
    let c = catalog(
        vec![
            product("p:win", "Windows Server 2022", range),
            product("p:app", "Fabrikam Office 2024 Server", range),
        ],
        vec![
            patch(
                "win",
                "p:win",
                DetectionRule::KbInstalled { kb: Kb(5_034_770) },
            ),
            patch(
                "app",
                "p:app",
                DetectionRule::KbInstalled { kb: Kb(5_002_500) },
            ),
        ],
    );
    let mut f = HostFacts {
        os_name: "Windows Server 2022 Datacenter".into(),
        installation_type: Some("Server".into()),
        build: Some(v("10.0.20348.2340")),
        ..Default::default()
    };
    let status = |c: &Catalog, f: &HostFacts, id: &str| {
        let out = evaluate(c, f);
        let v = out.iter().find(|v| &*v.patch == id).unwrap().clone();
        (v.status, v.evidence)
    };
    assert_eq!(status(&c, &f, "win").0, Status::Missing);
    let (s, evidence) = status(&c, &f, "app");
    assert_eq!(s, Status::Note, "{evidence}");
    assert!(evidence.contains("Windows updates only"), "{evidence}");
    f.kbs_unknown = Some("Invalid class \"Win32_QuickFixEngineering\"".into());
    let (s, evidence) = status(&c, &f, "win");
    assert_eq!(s, Status::Note, "{evidence}");
    assert!(evidence.contains("Win32_QuickFixEngineering"), "{evidence}");
    f.kbs = [Kb(5_034_770), Kb(5_002_500)].into_iter().collect();
    assert_eq!(status(&c, &f, "win").0, Status::Installed);
    assert_eq!(status(&c, &f, "app").0, Status::Installed);
}

#[test]
fn hosts_share_the_catalogs_names_and_json_keeps_plain_strings() {
    let mut c = idq_catalog(VersionOp::Exact);
    for p in c.patches.values_mut() {
        p.bulletins = vec!["MS01-033".into()];
    }
    let index = CatalogIndex::new(&c);
    let old = evaluate_with(&c, &index, &with_file(w2k(1), IDQ, Some("5.0.2195.2779")));
    let new = evaluate_with(&c, &index, &with_file(w2k(1), IDQ, Some("5.0.2195.3645")));
    assert_eq!(
        (old[0].status, new[0].status),
        (Status::Missing, Status::Installed)
    );
    assert!(Arc::ptr_eq(&old[0].patch, &new[0].patch));
    assert!(Arc::ptr_eq(&old[0].bulletins, &new[0].bulletins));
    assert!(Arc::ptr_eq(&old[0].product, &new[0].product));
    let json = serde_json::to_string(&old[0]).unwrap();
    assert_eq!(
        json,
        r#"{"patch":"MS01-033/Q300972","bulletins":["MS01-033"],"product":"Internet Information Services 5.0","status":"missing","evidence":"idq.dll 5.0.2195.2779 < 5.0.2195.3645"}"#
    );
    let back: Verdict = serde_json::from_str(&json).unwrap();
    assert_eq!(back, old[0]);
}
