//! The default story: a fleet that exists today. Windows Server 2016, 2019 and 2022 hosts on
//! their February 2024 cumulative updates, scanned with the real MSRC CVRF document of March 2024,
//! and patched with that month's cumulative update for each version: one `.msu` per version,
//! expanded and added with DISM (never `wusa`, which fails over WinRM), one reboot per host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hive::catalog::model::{Catalog, InstallerRecipe};
use winsim::installer::Package;

use super::DemoOptions;
use super::story::{Approval, HealthGate, Story};

/// The CVRF month the story scans with. Every Server 2016/2019/2022 build of February 2024
/// misses its cumulative update; its FixedBuilds are the builds those updates bring.
pub const MONTH: &str = "2024-Mar";

/// The kernel every cumulative update replaces; in use, so it is swapped at the reboot.
const KERNEL: &str = r"C:\Windows\System32\ntoskrnl.exe";

/// One Windows Server version of the fleet: its February 2024 state and March 2024's fix.
struct Version {
    template: &'static str,
    group: &'static str,
    product: &'static str,
    build: u16,
    /// UBR after February 2024's cumulative update.
    ubr: u16,
    /// February 2024's cumulative update, installed.
    installed: &'static str,
    /// March 2024's cumulative update, and the UBR it brings (its FixedBuild in the month).
    fix: &'static str,
    fixed_ubr: u16,
}

const VERSIONS: [Version; 3] = [
    Version {
        template: "ws2016",
        group: "ws2016",
        product: "Windows Server 2016 Datacenter",
        build: 14393,
        ubr: 6709,
        installed: "KB5034767",
        fix: "KB5035855",
        fixed_ubr: 6796,
    },
    Version {
        template: "ws2019",
        group: "ws2019",
        product: "Windows Server 2019 Datacenter",
        build: 17763,
        ubr: 5458,
        installed: "KB5034768",
        fix: "KB5035849",
        fixed_ubr: 5576,
    },
    Version {
        template: "ws2022",
        group: "ws2022",
        product: "Windows Server 2022 Datacenter",
        build: 20348,
        ubr: 2322,
        installed: "KB5034770",
        fix: "KB5035857",
        fixed_ubr: 2340,
    },
];

/// The Windows Server version of host `i`: the canaries take one version each, in order, and so
/// do the other hosts, so every version's update meets a canary first when there are three.
fn version_of(i: usize, opts: &DemoOptions) -> &'static Version {
    let n = if i < opts.canaries {
        i
    } else {
        i - opts.canaries
    };
    &VERSIONS[n % VERSIONS.len()]
}

/// Where the month's CVRF document is: the shared fixtures beside the repository.
pub fn cvrf_path() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/catalogs/cvrf")
        .join(format!("{MONTH}.xml"));
    path.canonicalize().unwrap_or(path)
}

/// The story, with the month read from `cvrf`.
pub fn story(cvrf: &Path) -> Result<Story, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(cvrf).map_err(|e| {
        format!(
            "the demo scans with the real MSRC CVRF month {MONTH}: cannot read {}: {e}",
            cvrf.display()
        )
    })?;
    let (catalog, report) = hive::catalog::cvrf::import(&format!("{MONTH}.xml"), &text)?;
    check_catalog(&catalog, cvrf)?;
    let mut templates = String::new();
    for v in &VERSIONS {
        templates.push_str(&format!(
            "[template.{}]\nproduct = \"{}\"\nedition = \"ServerDatacenter\"\n\
             version = \"10.0.{}\"\nubr = {}\nkbs = [\"{}\"]\n\
             files = [{{ path = '{KERNEL}', version = \"10.0.{}.{}\" }}]\n\
             services = [{{ name = \"W3SVC\", display_name = \"World Wide Web Publishing Service\" }}]\n\n",
            v.template, v.product, v.build, v.ubr, v.installed, v.build, v.ubr
        ));
    }
    let approvals = VERSIONS
        .iter()
        .map(|v| {
            let lower = v.fix.to_ascii_lowercase();
            Approval {
                id: v.fix.into(),
                file_name: format!("windows10.0-{lower}-x64.msu"),
                package: Package::msu(v.fix).cab(
                    &format!("Windows10.0-{}-x64.cab", v.fix),
                    Package::cab_file(v.fix)
                        .file_in_use(
                            KERNEL,
                            winsim::pe::Version::new(10, 0, v.build, v.fixed_ubr),
                        )
                        .reboot_required(true)
                        .sets_build(v.build.into(), v.fixed_ubr.into())
                        .duration(Duration::from_millis(400)),
                ),
                recipe: InstallerRecipe::msu(),
                describe: format!(
                    "{} ({} cumulative update, 10.0.{}.{}): expand + dism /add-package /quiet /norestart",
                    v.fix,
                    v.product.trim_end_matches(" Datacenter"),
                    v.build,
                    v.fixed_ubr
                ),
            }
        })
        .collect();
    Ok(Story {
        intro: format!(
            "Windows Server 2016/2019/2022 on their February 2024 updates; catalog: MSRC CVRF {MONTH} \
             ({} CVEs, {} KBs, read from {})",
            report.bulletins,
            report.patches,
            cvrf.display()
        ),
        templates,
        template_of: |i, o| version_of(i, o).template,
        groups_of: |i, o| vec![version_of(i, o).group],
        catalog,
        approvals,
        health: Some(HealthGate {
            inventory: "health = [{ service = \"W3SVC\", retries = 1, settle = 1 }]\n",
            canary_fault: "faults = { breaks_service = [{ package = \"KB5035855\", service = \"W3SVC\" }] }\n",
            describe: "health gate: every host must have W3SVC running after its patch; on CANARY01 \
                       KB5035855 leaves it stopped, so that update is withheld from the fleet \
                       (quarantine_after=1) while the others go on",
        }),
    })
}

/// The month must carry each version's update with the FixedBuild the simulated package brings,
/// or the demo would patch to a build the catalog does not know.
fn check_catalog(catalog: &Catalog, file: &Path) -> Result<(), String> {
    for v in &VERSIONS {
        let want = format!("10.0.{}.{}", v.build, v.fixed_ubr);
        let found = catalog.patch(v.fix).is_some_and(|p| {
            p.targets
                .iter()
                .any(|t| t.fixed_build.as_deref() == Some(want.as_str()))
        });
        if !found {
            return Err(format!(
                "{}: {} with FixedBuild {want} is not in this CVRF month",
                file.display(),
                v.fix
            ));
        }
    }
    Ok(())
}
