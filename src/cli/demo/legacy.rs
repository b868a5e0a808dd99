//! `hive demo --legacy`: the seed era's job on the oldest hosts WinRM ever ran on. Windows Server
//! 2003 SP2 web servers (IIS 6.0) with WinRM 1.1 (WS-Management 1.1, cmd.exe only, no
//! PowerShell), scanned with a small scenario catalog in the mssecure.xml shape (bulletin →
//! patch → file version and registry key) and patched with Update.exe packages run
//! `/quiet /norestart`, chained, one reboot. Update.exe has had Qchain's fix built in since May
//! 2001, so no qchain.exe runs; the 2001 catalog's `-z -q -m` hotfixes and Qchain are for Windows
//! 2000, which never had WinRM (the tests drive those hosts).
//!
//! The catalog is a scenario: the bulletins, KBs, installer names and the registry layout are
//! Microsoft's (`HKLM\SOFTWARE\Microsoft\Updates\Windows Server 2003\SP3\KB958644\Filelist` is
//! what MS08-067's article says to verify on SP2); the file versions are the scenario's own.

use std::time::Duration;

use hive::catalog::model::{
    Bulletin, Catalog, DetectionRule, InstallerRecipe, Kb, Patch, PatchTarget, Product, Restart,
    SourceKind, Version, VersionOp, WhenMissing,
};
use winsim::installer::Package;

use super::DemoOptions;
use super::story::{Approval, Story};

const PRODUCT: &str = "Windows Server 2003";
/// Updates for Server 2003 SP2 file under the next service pack's folder.
const SP_FOLDER: &str = "SP3";

/// One bulletin of the scenario.
struct Fix {
    bulletin: &'static str,
    title: &'static str,
    kb: u32,
    /// The file it replaces, under `%windir%`.
    file: &'static str,
    /// The file's version on a Server 2003 SP2 host before the fix, and after.
    before: &'static str,
    after: &'static str,
    /// Approved before the scan (else it is left for triage: TBE).
    approved: bool,
}

const FIXES: [Fix; 3] = [
    Fix {
        bulletin: "MS08-067",
        title: "Vulnerability in Server Service Could Allow Remote Code Execution",
        kb: 958644,
        file: r"system32\netapi32.dll",
        before: "5.2.3790.3959",
        after: "5.2.3790.4392",
        approved: true,
    },
    Fix {
        bulletin: "MS09-001",
        title: "Vulnerabilities in SMB Could Allow Remote Code Execution",
        kb: 958687,
        file: r"system32\drivers\srv.sys",
        before: "5.2.3790.3959",
        after: "5.2.3790.4425",
        approved: true,
    },
    Fix {
        bulletin: "MS09-048",
        title: "Vulnerabilities in Windows TCP/IP Could Allow Denial of Service",
        kb: 967723,
        file: r"system32\drivers\tcpip.sys",
        before: "5.2.3790.3959",
        after: "5.2.3790.4573",
        approved: false,
    },
];

fn installer_name(kb: u32) -> String {
    format!("WindowsServer2003-KB{kb}-x86-ENU.exe")
}

fn updates_key(kb: u32) -> String {
    format!(r"HKLM\SOFTWARE\Microsoft\Updates\{PRODUCT}\{SP_FOLDER}\KB{kb}\Filelist")
}

/// Update.exe 6.x: `/quiet` (no UI), `/norestart` (hive reboots once, after the chain).
pub fn update_exe_recipe() -> InstallerRecipe {
    InstallerRecipe {
        arguments: vec!["/quiet".into(), "/norestart".into()],
        ..InstallerRecipe::update_exe()
    }
}

/// The scenario catalog: each bulletin's patch is installed when its `Updates` key exists and
/// its file is at the fixed version (as MBSA checked it).
pub fn scenario_catalog() -> Catalog {
    let mut c = Catalog::default();
    let product = Product {
        id: "scenario:w2k3".into(),
        name: PRODUCT.into(),
        family: Some("Windows".into()),
        cpe: None,
        applicability: Default::default(),
    };
    for f in &FIXES {
        let id = format!("{}/{}", f.bulletin, installer_name(f.kb));
        let version: Version = f.after.parse().unwrap_or(Version(vec![0]));
        let patch = Patch {
            id: id.clone(),
            kb: Some(Kb(f.kb)),
            file_name: Some(installer_name(f.kb)),
            download_url: None,
            sha256: None,
            subtype: Some("Security Update".into()),
            restart: Some(Restart::Yes),
            bulletins: vec![f.bulletin.into()],
            targets: vec![PatchTarget {
                product: product.id.clone(),
                service_packs: vec![],
                fixed_in_sp: None,
                fixed_build: None,
                detection: DetectionRule::All {
                    rules: vec![
                        DetectionRule::RegistryExists {
                            key: updates_key(f.kb),
                            value: None,
                        },
                        DetectionRule::FileVersion {
                            path: format!(r"%windir%\{}", f.file),
                            op: VersionOp::Exact,
                            version,
                            date: None,
                            size: None,
                            checksum: None,
                            when_missing: WhenMissing::NotInstalled,
                        },
                    ],
                },
            }],
            supersedes: Default::default(),
            superseded_by: Default::default(),
            installer: Some(update_exe_recipe()),
        };
        c.bulletins.insert(
            f.bulletin.into(),
            Bulletin {
                id: f.bulletin.into(),
                title: f.title.into(),
                posted: None,
                revised: None,
                severity: None,
                cves: vec![],
                kbs: vec![Kb(f.kb)],
                patches: vec![id.clone()],
                url: None,
                source: SourceKind::Mssecure,
            },
        );
        c.patches.insert(id, patch);
    }
    c.products.insert(product.id.clone(), product);
    c
}

/// The story.
pub fn story() -> Story {
    let files: Vec<String> = FIXES
        .iter()
        .map(|f| {
            format!(
                "{{ path = '%windir%\\{}', version = \"{}\" }}",
                f.file, f.before
            )
        })
        .collect();
    let templates = format!(
        "[template.w2k3-iis]\nproduct = \"Microsoft Windows Server 2003\"\ncsd_version = \"Service Pack 2\"\n\
         version = \"5.2.3790\"\nmachine = \"i386\"\n\
         files = [{}]\n\
         registry = [\n  {{ key = 'HKLM\\SOFTWARE\\Microsoft\\InetStp', name = \"MajorVersion\", type = \"REG_DWORD\", value = 6 }},\n  \
         {{ key = 'HKLM\\SYSTEM\\CurrentControlSet\\Control\\ProductOptions', name = \"ProductType\", type = \"REG_SZ\", value = \"ServerNT\" }},\n]\n\n",
        files.join(", ")
    );
    let approvals = FIXES
        .iter()
        .filter(|f| f.approved)
        .map(|f| {
            let version: winsim::pe::Version = f
                .after
                .parse()
                .unwrap_or(winsim::pe::Version::new(0, 0, 0, 0));
            Approval {
                id: f.bulletin.into(),
                file_name: installer_name(f.kb),
                package: Package::hotfix(&format!("KB{}", f.kb))
                    .file_in_use(&format!(r"C:\Windows\{}", f.file), version)
                    .updates_key(PRODUCT, SP_FOLDER)
                    .chains_itself()
                    .reboot_required(true)
                    .duration(Duration::from_millis(300)),
                recipe: update_exe_recipe(),
                describe: format!(
                    "{} (KB{}): {} /quiet /norestart",
                    f.bulletin,
                    f.kb,
                    installer_name(f.kb)
                ),
            }
        })
        .collect();
    Story {
        intro: "Windows Server 2003 SP2 + IIS 6.0 with WinRM 1.1 (WS-Management 1.1, cmd.exe, \
                no PowerShell); catalog: a scenario in the mssecure.xml shape"
            .into(),
        templates,
        template_of: |_, _: &DemoOptions| "w2k3-iis",
        groups_of: |_, _| vec!["w2k3"],
        catalog: scenario_catalog(),
        approvals,
        health: None,
    }
}
