//! `hive demo --legacy`: the seed era's job on the oldest hosts WinRM ever ran on. Windows Server
//! 2003 SP2 web servers (IIS 6.0) and a few Windows XP SP3 workstations, all with WinRM 1.1
//! (WS-Management 1.1, cmd.exe only, no PowerShell), scanned with a scenario catalog in the
//! mssecure.xml schema and patched with Update.exe packages run `/quiet /norestart`, chained, one
//! reboot. Update.exe has had Qchain's fix built in since May 2001, so no qchain.exe runs; the
//! 2001 catalog's `-z -q -m` hotfixes and Qchain are for Windows 2000, which never had WinRM (the
//! tests drive those hosts).
//!
//! The catalog is a document, [`SCENARIO_FILE`], read by the importer `hive catalog import`
//! uses: the demo proves that importer on the era's packages. The bulletins, KBs, package names
//! and the registry layout are Microsoft's (`HKLM\SOFTWARE\Microsoft\Updates\Windows Server
//! 2003\SP3\KB958644` on 2003 SP2, `...\Windows XP\SP4\KB958644` on XP SP3: updates for a
//! service pack file under the next one's folder, as MS08-067's article says to verify); the
//! file versions are the scenario's own. What each package does to a host is described here,
//! apart from the document, so a document that checks the wrong key or version shows up as hosts
//! that stay unpatched after their install.

use std::time::Duration;

use hive::catalog::model::Catalog;
use winsim::installer::Package;
use winsim::os::{Release, updates_sp_folder};

use super::DemoOptions;
use super::story::{Approval, Story};

/// The scenario catalog's name, as the import report and errors name it.
pub const SCENARIO_FILE: &str = "legacy-mssecure.xml";
/// The scenario catalog, an mssecure.xml document.
pub const SCENARIO: &str = include_str!("legacy-mssecure.xml");

/// The bulletins approved before the scan; the rest are left for triage (TBE).
const APPROVED: [&str; 2] = ["MS08-067", "MS09-001"];

/// The two kinds of host of the story.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Os {
    Server2003Sp2,
    XpSp3,
}

impl Os {
    /// The simulator's profile of this Windows.
    fn release(self) -> Release {
        match self {
            Os::Server2003Sp2 => Release::Server2003,
            Os::XpSp3 => Release::WindowsXp,
        }
    }

    fn service_pack(self) -> u32 {
        match self {
            Os::Server2003Sp2 => 2,
            Os::XpSp3 => 3,
        }
    }

    /// How Update.exe 6.x packages for this Windows are named.
    fn installer_name(self, kb: u32) -> String {
        let prefix = match self {
            Os::Server2003Sp2 => "WindowsServer2003",
            Os::XpSp3 => "WindowsXP",
        };
        format!("{prefix}-KB{kb}-x86-ENU.exe")
    }
}

/// One package of the scenario: what running it does to a host.
struct Fix {
    bulletin: &'static str,
    kb: u32,
    os: Os,
    /// The file it replaces, under `%windir%`.
    file: &'static str,
    /// The file's version on a host of `os` before the fix, and after.
    before: &'static str,
    after: &'static str,
}

/// MS09-048 has no Windows XP package: Microsoft released none for XP.
const FIXES: [Fix; 5] = [
    Fix {
        bulletin: "MS08-067",
        kb: 958644,
        os: Os::Server2003Sp2,
        file: r"system32\netapi32.dll",
        before: "5.2.3790.3959",
        after: "5.2.3790.4392",
    },
    Fix {
        bulletin: "MS08-067",
        kb: 958644,
        os: Os::XpSp3,
        file: r"system32\netapi32.dll",
        before: "5.1.2600.5512",
        after: "5.1.2600.5694",
    },
    Fix {
        bulletin: "MS09-001",
        kb: 958687,
        os: Os::Server2003Sp2,
        file: r"system32\drivers\srv.sys",
        before: "5.2.3790.3959",
        after: "5.2.3790.4425",
    },
    Fix {
        bulletin: "MS09-001",
        kb: 958687,
        os: Os::XpSp3,
        file: r"system32\drivers\srv.sys",
        before: "5.1.2600.5512",
        after: "5.1.2600.5725",
    },
    Fix {
        bulletin: "MS09-048",
        kb: 967723,
        os: Os::Server2003Sp2,
        file: r"system32\drivers\tcpip.sys",
        before: "5.2.3790.3959",
        after: "5.2.3790.4573",
    },
];

/// Every fifth host, from the third on, is an XP SP3 workstation (with 3 canaries, the last
/// canary is one, so the canaries cover both kinds of host).
fn is_workstation(i: usize) -> bool {
    i % 5 == 2
}

/// The scenario catalog, imported the way `hive catalog import legacy-mssecure.xml` imports it.
pub fn scenario_catalog()
-> Result<(Catalog, hive::catalog::ImportReport), Box<dyn std::error::Error>> {
    Ok(hive::catalog::store::import_bytes(
        SCENARIO_FILE,
        SCENARIO.as_bytes(),
    )?)
}

/// The `[template.NAME]` table of one kind of host: its files before the fixes, its registry.
fn template(name: &str, os: Os, product: &str, version: &str, registry: &str) -> String {
    let files: Vec<String> = FIXES
        .iter()
        .filter(|f| f.os == os)
        .map(|f| {
            format!(
                "{{ path = '%windir%\\{}', version = \"{}\" }}",
                f.file, f.before
            )
        })
        .collect();
    let csd = format!("Service Pack {}", os.service_pack());
    format!(
        "[template.{name}]\nproduct = \"{product}\"\ncsd_version = \"{csd}\"\n\
         version = \"{version}\"\nmachine = \"i386\"\n\
         files = [{}]\n\
         registry = [\n{registry}]\n\n",
        files.join(", ")
    )
}

/// The story.
pub fn story() -> Result<Story, Box<dyn std::error::Error>> {
    let (catalog, report) = scenario_catalog()?;
    let product_options = r"HKLM\SYSTEM\CurrentControlSet\Control\ProductOptions";
    let templates = template(
        "w2k3-iis",
        Os::Server2003Sp2,
        "Microsoft Windows Server 2003",
        "5.2.3790",
        &format!(
            "  {{ key = 'HKLM\\SOFTWARE\\Microsoft\\InetStp', name = \"MajorVersion\", type = \"REG_DWORD\", value = 6 }},\n  \
             {{ key = '{product_options}', name = \"ProductType\", type = \"REG_SZ\", value = \"ServerNT\" }},\n"
        ),
    ) + &template(
        "xp-sp3",
        Os::XpSp3,
        "Microsoft Windows XP",
        "5.1.2600",
        &format!(
            "  {{ key = '{product_options}', name = \"ProductType\", type = \"REG_SZ\", value = \"WinNT\" }},\n"
        ),
    );
    let mut approvals = Vec::new();
    for f in FIXES.iter().filter(|f| APPROVED.contains(&f.bulletin)) {
        let file_name = f.os.installer_name(f.kb);
        let patch_id = format!("{}/{file_name}", f.bulletin);
        // The recipe is the importer's reading of the package name, as an admin's would be.
        let recipe = catalog
            .patches
            .get(&patch_id)
            .and_then(|p| p.installer.clone())
            .ok_or_else(|| format!("{SCENARIO_FILE}: no patch {patch_id} with an installer"))?;
        let version: winsim::pe::Version = f
            .after
            .parse()
            .map_err(|_| format!("{}: bad version {}", f.bulletin, f.after))?;
        let product =
            f.os.release()
                .updates_product()
                .ok_or("the Update.exe registry layout of the legacy hosts")?;
        approvals.push(Approval {
            id: f.bulletin.into(),
            describe: format!(
                "{} (KB{}): {file_name} {}",
                f.bulletin,
                f.kb,
                recipe.arguments.join(" ")
            ),
            file_name,
            package: Package::hotfix(&format!("KB{}", f.kb))
                .file_in_use(&format!(r"C:\Windows\{}", f.file), version)
                .updates_key(product, &updates_sp_folder(f.os.service_pack()))
                .chains_itself()
                .reboot_required(true)
                .duration(Duration::from_millis(300)),
            recipe,
        });
    }
    Ok(Story {
        intro: format!(
            "Windows Server 2003 SP2 + IIS 6.0 and Windows XP SP3 workstations with WinRM 1.1 \
             (WS-Management 1.1, cmd.exe, no PowerShell)\n  catalog: {SCENARIO_FILE} (mssecure.xml \
             schema, imported as `hive catalog import` does: {} bulletins, {} patches, {} products)",
            report.bulletins, report.patches, report.products
        ),
        templates,
        template_of: |i, _: &DemoOptions| {
            if is_workstation(i) {
                "xp-sp3"
            } else {
                "w2k3-iis"
            }
        },
        groups_of: |i, _| {
            if is_workstation(i) {
                vec!["xp-sp3"]
            } else {
                vec!["w2k3"]
            }
        },
        catalog,
        approvals,
        health: None,
    })
}
