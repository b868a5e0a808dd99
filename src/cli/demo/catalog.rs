//! The slice of the 2001 catalog that Windows 2000 IIS 5.0 hosts need (MS01-033, MS01-044). The
//! security tests scan simulated Windows 2000 hosts with it (they include this file, so it names
//! the library as `hive::`); the demo's stories have their own catalogs.

use hive::catalog::model::{
    Bulletin, Catalog, DetectionRule, InstallerRecipe, Kb, Patch, PatchTarget, Product, Restart,
    SourceKind, Version, VersionOp, WhenMissing,
};

/// The file MS01-033 replaces (Index Server's ISAPI extension, the Code Red hole).
pub const IDQ: &str = r"C:\Windows\system32\idq.dll";
/// The file MS01-044 replaces (the IIS web service).
pub const W3SVC: &str = r"C:\Windows\system32\inetsrv\w3svc.dll";
const HOTFIX_KEY: &str = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300972";

fn v(s: &str) -> Version {
    s.parse().unwrap_or(Version(vec![0]))
}

/// The slice of the 2001 catalog: MS01-033 and MS01-044 for IIS 5.0 on Windows
/// 2000, with the real detection data (idq.dll 5.0.2195.3645 and the Q300972 hotfix key).
pub fn demo_catalog() -> Catalog {
    let mut c = Catalog::default();
    let iis = Product {
        id: "mssecure:17".into(),
        name: "Internet Information Services 5.0".into(),
        family: Some("Windows 2000".into()),
        cpe: None,
        applicability: Default::default(),
    };
    c.products.insert(iis.id.clone(), iis);
    let patch = |id: &str, bulletin: &str, kb: u32, file: &str, rule: DetectionRule| Patch {
        id: id.into(),
        kb: Some(Kb(kb)),
        file_name: Some(file.into()),
        download_url: None,
        sha256: None,
        subtype: Some("Security Update".into()),
        restart: Some(Restart::Yes),
        bulletins: vec![bulletin.into()],
        targets: vec![PatchTarget {
            product: "mssecure:17".into(),
            service_packs: vec![],
            fixed_in_sp: None,
            fixed_build: None,
            detection: rule,
        }],
        supersedes: Default::default(),
        superseded_by: Default::default(),
        installer: Some(InstallerRecipe::legacy_hotfix()),
    };
    let p1 = patch(
        "MS01-033/Q300972_W2K_SP3_x86_en.EXE",
        "MS01-033",
        300972,
        "Q300972_W2K_SP3_x86_en.EXE",
        DetectionRule::All {
            rules: vec![
                DetectionRule::FileVersion {
                    path: r"%windir%\system32\idq.dll".into(),
                    op: VersionOp::Exact,
                    version: v("5.0.2195.3645"),
                    date: Some("2001/05/24".into()),
                    size: None,
                    checksum: None,
                    when_missing: WhenMissing::NotInstalled,
                },
                DetectionRule::RegistryValue {
                    key: HOTFIX_KEY.into(),
                    value: "Installed".into(),
                    data: "1".into(),
                },
            ],
        },
    );
    let p2 = patch(
        "MS01-044/q301625_w2k_sp3_x86_en.exe",
        "MS01-044",
        301625,
        "q301625_w2k_sp3_x86_en.exe",
        DetectionRule::FileVersion {
            path: r"%windir%\system32\inetsrv\w3svc.dll".into(),
            op: VersionOp::Exact,
            version: v("5.0.2195.4208"),
            date: None,
            size: None,
            checksum: None,
            when_missing: WhenMissing::Ignore,
        },
    );
    for (p, title, cves) in [
        (
            &p1,
            "Unchecked Buffer in Index Server ISAPI Extension Could Enable Web Server Compromise",
            vec!["CVE-2001-0500".to_string()],
        ),
        (&p2, "15 August 2001 Cumulative Patch for IIS", vec![]),
    ] {
        let b = &p.bulletins[0];
        c.bulletins.insert(
            b.clone(),
            Bulletin {
                id: b.clone(),
                title: title.into(),
                posted: None,
                revised: None,
                severity: None,
                cves,
                kbs: p.kb.into_iter().collect(),
                patches: vec![p.id.clone()],
                url: None,
                source: SourceKind::Mssecure,
            },
        );
    }
    c.patches.insert(p1.id.clone(), p1);
    c.patches.insert(p2.id.clone(), p2);
    c
}
