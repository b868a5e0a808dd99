//! Which catalog product a host runs: by build family, installation type, edition and processor
//! architecture for Windows, by installed Framework version for .NET Framework, by name for the
//! 2001 catalog's products.
//!
//! The architecture and the .NET Framework versions are registry values every scan asks for
//! ([`REGISTRY_READS`]), so they travel in the probe's ordinary registry answer and fail soft: a
//! value the host could not give leaves the product matched as before (architecture) or not
//! matched (.NET), never a failed scan.

use super::facts::{HostFacts, InstalledProduct};
use crate::catalog::builds;
use crate::catalog::model::{BuildRange, Product, Version};
use crate::catalog::product_names::{Architecture, DotNetProduct};

/// Where Windows records the processor architecture (`AMD64`, `x86`, `ARM64`).
pub const ENVIRONMENT: &str = r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment";
/// .NET Framework 4.x: `Release` says which 4.x is installed (one at a time, in place).
pub const NDP_V4_FULL: &str = r"HKLM\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full";
/// .NET Framework 3.5 (and 3.5.1 on Windows 7 / Server 2008 R2): `Install` = 1.
pub const NDP_V35: &str = r"HKLM\SOFTWARE\Microsoft\NET Framework Setup\NDP\v3.5";

/// The registry values a scan asks every host for, beside the catalog's own rules.
pub const REGISTRY_READS: [(&str, &str); 3] = [
    (ENVIRONMENT, "PROCESSOR_ARCHITECTURE"),
    (NDP_V4_FULL, "Release"),
    (NDP_V35, "Install"),
];

/// The lowest `Release` of each .NET Framework 4.5+ version, newest first (Microsoft Learn,
/// "How to: Determine which .NET Framework versions are installed").
const RELEASES: [(u32, &str); 11] = [
    (533320, "4.8.1"),
    (528040, "4.8"),
    (461808, "4.7.2"),
    (461308, "4.7.1"),
    (460798, "4.7"),
    (394802, "4.6.2"),
    (394254, "4.6.1"),
    (393295, "4.6"),
    (379893, "4.5.2"),
    (378675, "4.5.1"),
    (378389, "4.5"),
];

fn registry(facts: &HostFacts, key: &str, value: &str) -> Option<Option<String>> {
    let values = facts.registry_key(key)?;
    Some(values.and_then(|v| HostFacts::registry_value(v, value).map(str::to_string)))
}

/// The host's processor architecture, when the scan learned it.
pub fn host_architecture(facts: &HostFacts) -> Option<Architecture> {
    registry(facts, ENVIRONMENT, "PROCESSOR_ARCHITECTURE")
        .flatten()
        .and_then(|v| Architecture::from_processor(&v))
}

/// The .NET Framework versions installed: `None` when the scan did not ask.
pub fn host_dotnet(facts: &HostFacts) -> Option<Vec<Version>> {
    let release = registry(facts, NDP_V4_FULL, "Release")?;
    let mut out = Vec::new();
    if let Some(r) = release.and_then(|r| r.trim().parse::<u32>().ok())
        && let Some((_, v)) = RELEASES.iter().find(|(min, _)| r >= *min)
        && let Ok(v) = v.parse()
    {
        out.push(v);
    }
    if registry(facts, NDP_V35, "Install")
        .flatten()
        .is_some_and(|v| v.trim() == "1")
    {
        out.push(Version(vec![3, 5]));
    }
    Some(out)
}

/// Which of the host's products is this catalog product, if any.
///
/// By build range when the catalog has one (CVRF products are told apart by build, Server Core
/// by installation type, the "for x64-based Systems" variants by architecture); .NET Framework
/// products by the Windows they are on and the Framework installed; else by name (mssecure
/// products), ignoring case, a leading "Microsoft " and repeated spaces.
pub fn host_runs(product: &Product, facts: &HostFacts) -> Option<InstalledProduct> {
    ProductRule::of(product).host_runs(&HostView::of(facts), facts)
}

/// How to tell whether a host runs one catalog product ([`host_runs`]), worked out from the
/// product alone, so a scan works it out once per catalog rather than once per host and target:
/// parsing product names (".NET Framework 4.8 on ...", "for x64-based Systems") for every target
/// of every host was most of the time spent evaluating a host.
#[derive(Debug, Clone)]
pub struct ProductRule {
    name: String,
    kind: RuleKind,
}

#[derive(Debug, Clone)]
enum RuleKind {
    Windows(WindowsRule),
    /// `windows` is `None` when the Windows named is no build family hive knows: never matched.
    DotNet {
        windows: Option<WindowsRule>,
        product: DotNetProduct,
    },
    /// The normalised name ([`normalize_name`]).
    ByName(String),
}

/// A Windows product: its builds, and what tells apart products sharing them.
#[derive(Debug, Clone)]
struct WindowsRule {
    range: BuildRange,
    core: bool,
    server: bool,
    architecture: Option<Architecture>,
}

impl WindowsRule {
    fn of(name: &str, range: BuildRange) -> WindowsRule {
        WindowsRule {
            range,
            core: name.contains("Server Core"),
            // Windows 10 1809 and Server 2019 share their builds; the edition tells them apart.
            server: name.contains("Server"),
            // One month lists the same version for x64, x86 and ARM64, with their own FixedBuilds.
            architecture: Architecture::of_product(name),
        }
    }

    fn runs_on(&self, host: &HostView, facts: &HostFacts) -> bool {
        let Some(build) = &facts.build else {
            return false;
        };
        self.range.contains(build)
            && self.core == host.core
            && self.server == host.server
            && match (self.architecture, host.architecture) {
                (Some(product), Some(host)) => product == host,
                _ => true,
            }
    }
}

impl ProductRule {
    pub fn of(product: &Product) -> ProductRule {
        let name = product.name.clone();
        let kind = if let Some(range) = &product.applicability.build_range {
            RuleKind::Windows(WindowsRule::of(&product.name, range.clone()))
        } else if let Some(dotnet) = DotNetProduct::of_product(&product.name) {
            RuleKind::DotNet {
                windows: builds::family_of(&dotnet.windows)
                    .map(|family| WindowsRule::of(&dotnet.windows, family.range())),
                product: dotnet,
            }
        } else {
            RuleKind::ByName(normalize_name(&product.name))
        };
        ProductRule { name, kind }
    }

    /// [`host_runs`] for the host `host` describes.
    pub fn host_runs(&self, host: &HostView, facts: &HostFacts) -> Option<InstalledProduct> {
        let runs = |yes: bool| {
            yes.then(|| InstalledProduct {
                name: self.name.clone(),
                service_pack: 0,
            })
        };
        match &self.kind {
            RuleKind::Windows(w) => runs(w.runs_on(host, facts)),
            RuleKind::DotNet { windows, product } => runs(
                windows.as_ref().is_some_and(|w| w.runs_on(host, facts))
                    && runs_dotnet(product, host.dotnet.as_deref()),
            ),
            RuleKind::ByName(want) => facts
                .products
                .iter()
                .find(|p| normalize_name(&p.name) == *want)
                .cloned(),
        }
    }
}

/// What a host's facts say that [`ProductRule`]s ask about, read once per host.
#[derive(Debug, Clone)]
pub struct HostView {
    core: bool,
    server: bool,
    architecture: Option<Architecture>,
    /// [`host_dotnet`].
    dotnet: Option<Vec<Version>>,
}

impl HostView {
    pub fn of(facts: &HostFacts) -> HostView {
        let installation = facts.installation_type.as_deref();
        HostView {
            core: installation.is_some_and(|t| t.eq_ignore_ascii_case("Server Core")),
            server: facts.os_name.contains("Server")
                || installation.is_some_and(|t| t.starts_with("Server")),
            architecture: host_architecture(facts),
            dotnet: host_dotnet(facts),
        }
    }
}

/// Whether the Framework a .NET Framework product names is installed (the host runs its
/// Windows): the 4.x version named (the 4.x line is in place: one per host), or for a 3.5-only
/// product, Framework 3.5. `installed` is `None` when the scan did not learn it.
fn runs_dotnet(product: &DotNetProduct, installed: Option<&[Version]>) -> bool {
    let Some(installed) = installed else {
        return false;
    };
    let named_v4: Vec<&Version> = product.v4().collect();
    if named_v4.is_empty() {
        return product.versions.iter().any(|v| installed.contains(v))
            || (installed.contains(&Version(vec![3, 5]))
                && product.versions.iter().any(|v| v.0.starts_with(&[3, 5])));
    }
    installed.iter().any(|v| named_v4.contains(&v))
}

fn normalize_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let trimmed = lower.strip_prefix("microsoft ").unwrap_or(&lower);
    trimmed.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::model::Applicability;
    use std::collections::BTreeMap;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn windows(name: &str, build: u32) -> Product {
        Product::for_build(name, name, "Windows", build)
    }

    fn dotnet(name: &str) -> Product {
        Product {
            id: name.into(),
            name: name.into(),
            family: Some("Developer Tools".into()),
            cpe: None,
            applicability: Applicability::default(),
        }
    }

    fn host(build: &str, os: &str, reg: &[(&str, &str, &str)]) -> HostFacts {
        let mut registry: BTreeMap<String, Option<BTreeMap<String, String>>> = BTreeMap::new();
        for (key, _) in REGISTRY_READS {
            registry.insert(key.to_string(), None);
        }
        for (key, name, data) in reg {
            registry
                .entry(key.to_string())
                .or_default()
                .get_or_insert_with(BTreeMap::new)
                .insert(name.to_string(), data.to_string());
        }
        HostFacts {
            os_name: os.into(),
            installation_type: Some(
                if os.contains("Server") {
                    "Server"
                } else {
                    "Client"
                }
                .into(),
            ),
            build: Some(v(build)),
            registry,
            ..Default::default()
        }
    }

    #[test]
    fn an_x64_host_runs_only_the_x64_product() {
        let facts = host(
            "10.0.19044.4170",
            "Windows 10 Enterprise",
            &[(ENVIRONMENT, "PROCESSOR_ARCHITECTURE", "AMD64")],
        );
        let x64 = windows("Windows 10 Version 21H2 for x64-based Systems", 19044);
        let arm = windows("Windows 10 Version 21H2 for ARM64-based Systems", 19044);
        let x86 = windows("Windows 10 Version 21H2 for 32-bit Systems", 19044);
        assert!(host_runs(&x64, &facts).is_some());
        assert!(host_runs(&arm, &facts).is_none());
        assert!(host_runs(&x86, &facts).is_none());
        // A host that could not say keeps every variant, as before.
        let unknown = host("10.0.19044.4170", "Windows 10 Enterprise", &[]);
        assert!(host_runs(&arm, &unknown).is_some());
    }

    #[test]
    fn dotnet_products_match_the_installed_framework() {
        let with_481 = host(
            "10.0.20348.2340",
            "Windows Server 2022 Datacenter",
            &[
                (NDP_V4_FULL, "Release", "533325"),
                (NDP_V35, "Install", "1"),
                (ENVIRONMENT, "PROCESSOR_ARCHITECTURE", "AMD64"),
            ],
        );
        let p481 = dotnet("Microsoft .NET Framework 3.5 AND 4.8.1 on Windows Server 2022");
        let p48 = dotnet("Microsoft .NET Framework 3.5 AND 4.8 on Windows Server 2022");
        let core = dotnet(
            "Microsoft .NET Framework 3.5 AND 4.8.1 on Windows Server 2022 (Server Core installation)",
        );
        let other_os = dotnet("Microsoft .NET Framework 3.5 AND 4.8.1 on Windows Server 2019");
        assert!(host_runs(&p481, &with_481).is_some());
        assert!(host_runs(&p48, &with_481).is_none());
        assert!(host_runs(&core, &with_481).is_none());
        assert!(host_runs(&other_os, &with_481).is_none());
        let with_48 = host(
            "10.0.20348.2340",
            "Windows Server 2022 Datacenter",
            &[(NDP_V4_FULL, "Release", "528449")],
        );
        assert!(host_runs(&p48, &with_48).is_some());
        assert!(host_runs(&p481, &with_48).is_none());
        let only_35 = dotnet("Microsoft .NET Framework 3.5 on Windows Server 2012 R2");
        let w2012r2 = host(
            "6.3.9600.21830",
            "Windows Server 2012 R2 Standard",
            &[(NDP_V35, "Install", "1")],
        );
        assert!(host_runs(&only_35, &w2012r2).is_some());
    }
}
