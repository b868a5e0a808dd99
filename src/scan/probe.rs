//! The probe: what to ask a host in one round trip, and how its answer becomes [`HostFacts`].
//!
//! The wire protocol (the PowerShell script and its JSON answer) lives in `hive_probe`, shared
//! with the simulated fleet so the two cannot drift apart. This module decides *what* to ask (every
//! registry value and file the catalog's detection rules mention, plus what identifies products)
//! and turns the answer into the facts `evaluate` reads.

use std::collections::{BTreeMap, BTreeSet};

use hive_probe::{ProbeFacts, ProbeRequest, RegistryQuery};

use super::facts::{FileFact, HostFacts, InstalledProduct};
use crate::catalog::model::{Catalog, Kb, Version};

/// Registry values that identify products beside the OS: hfnetchk knew IIS and IE this way.
const INETSTP: &str = r"HKLM\SOFTWARE\Microsoft\InetStp";
const IE: &str = r"HKLM\SOFTWARE\Microsoft\Internet Explorer";

/// Everything the catalog's rules read, deduplicated case-insensitively, in a stable order.
pub fn request_for(catalog: &Catalog) -> ProbeRequest {
    let mut registry: BTreeMap<(String, String), RegistryQuery> = BTreeMap::new();
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut add_reg = |key: &str, value: &str| {
        registry
            .entry((key.to_ascii_lowercase(), value.to_ascii_lowercase()))
            .or_insert_with(|| RegistryQuery {
                key: key.to_string(),
                value: value.to_string(),
            });
    };
    add_reg(INETSTP, "MajorVersion");
    add_reg(INETSTP, "MinorVersion");
    add_reg(IE, "Version");
    add_reg(super::legacy::CURRENT_VERSION, "SystemRoot");
    add_reg(super::legacy::PRODUCT_OPTIONS, "ProductType");
    add_reg(super::legacy::PRODUCT_OPTIONS, "ProductSuite");
    for value in super::zone::ZONE_VALUES {
        add_reg(super::zone::TIME_ZONE_KEY, value);
    }
    for (key, value) in super::products::REGISTRY_READS {
        add_reg(key, value);
    }
    for patch in catalog.patches.values() {
        for target in &patch.targets {
            for (key, value) in target.detection.registry_reads() {
                // A key-only check asks for the key's default value: the key exists when any value
                // the probe asked for in it was found.
                add_reg(key, value.unwrap_or(""));
            }
            for path in target.detection.file_paths() {
                files
                    .entry(path.to_ascii_lowercase())
                    .or_insert_with(|| path.to_string());
            }
        }
    }
    ProbeRequest {
        registry: registry.into_values().collect(),
        files: files.into_values().collect(),
    }
}

/// Turn the probe's answer into facts. `request` is what was asked, so that "asked and absent" is
/// recorded as absent rather than left unknown. What the host could not tell (an error in the
/// answer) is left out, with its reason in [`HostFacts::unknown`]: rules reading it evaluate to
/// NOTE, never to "not found".
pub fn facts_from(probe: &ProbeFacts, request: &ProbeRequest) -> HostFacts {
    let build_known = probe.build != 0 && !probe.unknown.contains_key("CurrentBuild");
    let build = Version(vec![probe.major, probe.minor, probe.build, probe.ubr]);
    let service_pack = service_pack_of(&probe.csd_version);
    let mut unknown: BTreeMap<String, String> = probe
        .unknown
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    // Registry: key → values found; a key none of whose asked values was found counts as absent,
    // unless reading it failed: then the key is unknown.
    let mut registry: BTreeMap<String, Option<BTreeMap<String, String>>> = BTreeMap::new();
    for q in &request.registry {
        registry.entry(q.key.clone()).or_insert(None);
    }
    for r in probe.registry.iter().filter(|r| r.error.is_some()) {
        if let Some(key) = registry
            .keys()
            .find(|k| k.eq_ignore_ascii_case(&r.key))
            .cloned()
        {
            registry.remove(&key);
        }
        unknown.insert(r.key.clone(), r.error.clone().unwrap_or_default());
    }
    for r in probe
        .registry
        .iter()
        .filter(|r| r.found && r.error.is_none())
        .filter(|r| !unknown.contains_key(&r.key))
    {
        let text = r.data.as_ref().map(value_text).unwrap_or_default();
        let key = registry
            .keys()
            .find(|k| k.eq_ignore_ascii_case(&r.key))
            .cloned()
            .unwrap_or_else(|| r.key.clone());
        registry
            .entry(key)
            .or_insert(None)
            .get_or_insert_with(BTreeMap::new)
            .insert(r.value.clone(), text);
    }

    // Only files the answer reports on count as asked: one the host could not be asked about (an
    // unexpandable path) stays unknown, which evaluates to NOTE, never to "not found".
    let mut files: BTreeMap<String, Option<FileFact>> = BTreeMap::new();
    for f in probe.files.iter().filter(|f| f.error.is_some()) {
        unknown.insert(f.path.clone(), f.error.clone().unwrap_or_default());
    }
    for f in probe
        .files
        .iter()
        .filter(|f| !f.exists && f.error.is_none())
    {
        let key = request
            .files
            .iter()
            .find(|p| p.eq_ignore_ascii_case(&f.path))
            .cloned()
            .unwrap_or_else(|| f.path.clone());
        files.insert(key, None);
    }
    for f in probe.files.iter().filter(|f| f.exists) {
        let key = files
            .keys()
            .find(|k| k.eq_ignore_ascii_case(&f.path))
            .cloned()
            .unwrap_or_else(|| f.path.clone());
        files.insert(
            key,
            Some(FileFact {
                version: f.file_version.as_deref().and_then(|v| v.parse().ok()),
                size: f.size,
                sha256: None,
            }),
        );
    }

    let option = |name: &str| {
        registry
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(super::legacy::PRODUCT_OPTIONS))
            .and_then(|(_, v)| v.as_ref())
            .and_then(|vals| HostFacts::registry_value(vals, name).map(str::to_string))
            .unwrap_or_default()
    };
    let os_name = windows_name(&probe.product_name, probe.major, probe.build);
    let mut products = vec![InstalledProduct {
        name: os_product_name(&os_name, &option("ProductType"), &option("ProductSuite")),
        service_pack,
    }];
    products.extend(recognised_products(&registry, probe, service_pack));

    let kbs: BTreeSet<Kb> = probe
        .installed_kbs
        .iter()
        .filter_map(|k| k.parse().ok())
        .collect();

    let pending_reboot = pending_reboot_names(&probe.pending_reboot);

    HostFacts {
        computer_name: probe.computer_name.clone(),
        os_name,
        edition: (!probe.edition_id.is_empty()).then(|| probe.edition_id.clone()),
        installation_type: installation_type(probe),
        build: build_known.then_some(build),
        products,
        kbs,
        kbs_unknown: probe.unknown.get("installed_kbs").cloned(),
        registry,
        files,
        pending_reboot,
        last_boot: (!probe.last_boot_time.is_empty()).then(|| probe.last_boot_time.clone()),
        file_source: "probe".into(),
        unknown,
    }
}

/// The OS name as an admin knows it. Windows 11 kept Windows 10's `ProductName` ("Windows 10
/// Pro" on a Windows 11 Pro host); its builds start at 22000.
pub fn windows_name(product_name: &str, major: u32, build: u32) -> String {
    let name = product_name.trim();
    match name.strip_prefix("Windows 10") {
        Some(rest) if major == 10 && build >= 22000 => format!("Windows 11{rest}"),
        _ => name.to_string(),
    }
}

/// The pending-reboot markers that are set, by the names reports and logs use.
pub fn pending_reboot_names(p: &hive_probe::PendingReboot) -> Vec<String> {
    [
        (p.cbs_reboot_pending, "CBS RebootPending"),
        (
            p.windows_update_reboot_required,
            "WindowsUpdate RebootRequired",
        ),
        (p.pending_file_renames, "PendingFileRenameOperations"),
        (p.update_exe_volatile, "UpdateExeVolatile"),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| name.to_string())
    .collect()
}

/// Registry data as text, the way hfnetchk compared it (DWORDs in decimal).
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join("\n"),
        other => other.to_string(),
    }
}

/// "Service Pack 2" → 2; no CSDVersion → 0.
fn service_pack_of(csd: &str) -> u32 {
    let lower = csd.to_ascii_lowercase();
    lower
        .strip_prefix("service pack")
        .map(|rest| {
            rest.trim()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// The OS product as the catalogs name it. Windows 2000 and NT 4 report only "Microsoft Windows
/// 2000" in `ProductName`; which product it is (Professional, Server, Advanced Server, Datacenter)
/// is in `ProductOptions`: `ProductType` WinNT is a workstation, ServerNT/LanmanNT a server, and
/// `ProductSuite` names Enterprise or DataCenter. Newer Windows spell it out ("Windows Server 2019
/// Datacenter"); the vendor prefix is dropped either way.
pub fn os_product_name(name: &str, product_type: &str, suite: &str) -> String {
    let base = name
        .trim()
        .strip_prefix("Microsoft ")
        .unwrap_or(name.trim());
    let server = matches!(
        product_type.trim().to_ascii_lowercase().as_str(),
        "servernt" | "lanmannt"
    );
    let suite = suite.to_ascii_lowercase();
    match base {
        "Windows 2000" if product_type.trim().eq_ignore_ascii_case("WinNT") => {
            "Windows 2000 Professional".into()
        }
        "Windows 2000" if server && suite.contains("datacenter") => {
            "Windows 2000 Datacenter Server".into()
        }
        "Windows 2000" if server && suite.contains("enterprise") => {
            "Windows 2000 Advanced Server".into()
        }
        "Windows 2000" if server => "Windows 2000 Server".into(),
        "Windows NT" | "Windows NT 4.0" if server && suite.contains("enterprise") => {
            "Windows NT Server 4.0, Enterprise Edition".into()
        }
        "Windows NT" | "Windows NT 4.0" if server => "Windows NT Server 4.0".into(),
        "Windows NT" | "Windows NT 4.0" if !product_type.is_empty() => {
            "Windows NT Workstation 4.0".into()
        }
        other => other.to_string(),
    }
}

/// Server Core has no Explorer shell; Windows says so in `InstallationType` (Windows 7 / Server
/// 2008 R2 on). Server 2008's Core editions have their own EditionID (`ServerDatacenterCore`);
/// from Server 2012 on Core shares the full installation's EditionID, so the edition id is only
/// the fallback for hosts without `InstallationType`.
fn installation_type(probe: &ProbeFacts) -> Option<String> {
    if probe.major < 6 {
        return None;
    }
    if !probe.installation_type.trim().is_empty() {
        return Some(probe.installation_type.trim().to_string());
    }
    if probe.edition_id.ends_with("Core") {
        Some("Server Core".into())
    } else if probe.product_name.contains("Server") {
        Some("Server".into())
    } else {
        Some("Client".into())
    }
}

/// IIS and IE, recognised from their registry values, at the OS's service pack (they were serviced
/// with it on Windows 2000).
fn recognised_products(
    registry: &BTreeMap<String, Option<BTreeMap<String, String>>>,
    probe: &ProbeFacts,
    service_pack: u32,
) -> Vec<InstalledProduct> {
    let value = |key: &str, name: &str| -> Option<String> {
        registry
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_ref())
            .and_then(|vals| HostFacts::registry_value(vals, name).map(str::to_string))
    };
    let mut out = Vec::new();
    if let Some(major) = value(INETSTP, "MajorVersion") {
        let name = match major.trim() {
            "3" => Some("Internet Information Server 3.0"),
            "4" => Some("Internet Information Server 4.0"),
            "5" if probe.minor == 0 => Some("Internet Information Services 5.0"),
            "5" => Some("Internet Information Services 5.1"),
            "6" => Some("Internet Information Services 6.0"),
            _ => None,
        };
        if let Some(name) = name {
            out.push(InstalledProduct {
                name: name.into(),
                service_pack,
            });
        }
    }
    if probe.major == 5 && probe.minor == 0 {
        // Indexing Service ships with every Windows 2000.
        out.push(InstalledProduct {
            name: "Indexing Services for Windows 2000".into(),
            service_pack,
        });
    }
    if let Some(ver) = value(IE, "Version") {
        let parts: Vec<&str> = ver.split('.').collect();
        if parts.len() >= 2 {
            let name = match (parts[0], parts[1]) {
                ("5", "00") | ("5", "0") => "Internet Explorer 5.01",
                ("5", "50") | ("5", "5") => "Internet Explorer 5.5",
                ("6", _) => "Internet Explorer 6.0",
                (m, _) => {
                    out.push(InstalledProduct {
                        name: format!("Internet Explorer {m}"),
                        service_pack: 0,
                    });
                    return out;
                }
            };
            out.push(InstalledProduct {
                name: name.into(),
                service_pack: 0,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_probe::{FileFact as PFile, PendingReboot, RegistryFact};

    fn probe() -> ProbeFacts {
        ProbeFacts {
            schema: 1,
            computer_name: "W2K01".into(),
            product_name: "Microsoft Windows 2000".into(),
            edition_id: String::new(),
            installation_type: String::new(),
            csd_version: "Service Pack 1".into(),
            major: 5,
            minor: 0,
            build: 2195,
            ubr: 0,
            installed_kbs: vec!["Q299553".into(), "KB5035849".into(), "junk".into()],
            pending_reboot: PendingReboot {
                pending_file_renames: true,
                ..Default::default()
            },
            last_boot_time: "2026-11-25T10:00:00.000Z".into(),
            free_disk_bytes: 1 << 30,
            utc_now: String::new(),
            registry: vec![
                RegistryFact {
                    key: r"HKLM\SOFTWARE\Microsoft\InetStp".into(),
                    value: "MajorVersion".into(),
                    found: true,
                    kind: Some("REG_DWORD".into()),
                    data: Some(serde_json::json!(5)),
                    error: None,
                },
                RegistryFact {
                    key: r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300972".into(),
                    value: "Installed".into(),
                    found: false,
                    kind: None,
                    data: None,
                    error: None,
                },
            ],
            files: vec![
                PFile {
                    path: r"%windir%\system32\idq.dll".into(),
                    exists: true,
                    size: Some(1234),
                    file_version: Some("5.0.2195.2779".into()),
                    product_version: None,
                    error: None,
                },
                PFile {
                    path: r"%windir%\system32\gone.dll".into(),
                    exists: false,
                    size: None,
                    file_version: None,
                    product_version: None,
                    error: None,
                },
            ],
            unknown: Default::default(),
        }
    }

    fn request() -> ProbeRequest {
        ProbeRequest {
            registry: vec![
                RegistryQuery {
                    key: r"HKLM\SOFTWARE\Microsoft\InetStp".into(),
                    value: "MajorVersion".into(),
                },
                RegistryQuery {
                    key: r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300972".into(),
                    value: "Installed".into(),
                },
            ],
            files: vec![
                r"%WINDIR%\system32\idq.dll".into(),
                r"%windir%\system32\gone.dll".into(),
            ],
        }
    }

    #[test]
    fn probe_answer_becomes_facts() {
        let f = facts_from(&probe(), &request());
        assert_eq!(f.computer_name, "W2K01");
        assert_eq!(f.build, Some("5.0.2195".parse().unwrap()));
        assert_eq!(f.products[0].name, "Windows 2000");
        assert_eq!(
            os_product_name("Microsoft Windows 2000", "LanmanNT", ""),
            "Windows 2000 Server"
        );
        assert_eq!(
            os_product_name(
                "Microsoft Windows 2000",
                "ServerNT",
                "Enterprise\\0Terminal Server"
            ),
            "Windows 2000 Advanced Server"
        );
        assert_eq!(
            os_product_name("Microsoft Windows 2000", "WinNT", ""),
            "Windows 2000 Professional"
        );
        assert_eq!(
            os_product_name("Windows Server 2019 Datacenter", "", ""),
            "Windows Server 2019 Datacenter"
        );
        assert_eq!(f.products[0].service_pack, 1);
        assert!(
            f.products
                .iter()
                .any(|p| p.name == "Internet Information Services 5.0")
        );
        assert!(
            f.products
                .iter()
                .any(|p| p.name == "Indexing Services for Windows 2000")
        );
        assert!(f.kbs.contains(&Kb(299553)) && f.kbs.contains(&Kb(5035849)));
        assert_eq!(f.kbs.len(), 2);
        assert_eq!(f.pending_reboot, ["PendingFileRenameOperations"]);
        // Asked and absent is recorded as absent; asked and present carries the data.
        let hotfix = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300972";
        assert_eq!(f.registry_key(hotfix), Some(None));
        assert_eq!(
            f.registry_key(r"hklm\software\microsoft\inetstp")
                .flatten()
                .and_then(|v| HostFacts::registry_value(v, "majorversion")),
            Some("5")
        );
        assert_eq!(f.file(r"%windir%\system32\gone.dll"), Some(None));
        let idq = f.file(r"%windir%\SYSTEM32\idq.dll").flatten().unwrap();
        assert_eq!(idq.version, Some("5.0.2195.2779".parse().unwrap()));
        assert_eq!(f.file(r"%windir%\system32\other.dll"), None);
    }

    #[test]
    fn request_covers_every_rule_once() {
        use crate::catalog::model::DetectionRule;
        let mut c = Catalog::default();
        let rule = DetectionRule::All {
            rules: vec![
                DetectionRule::FileVersion {
                    path: r"%windir%\system32\idq.dll".into(),
                    op: crate::catalog::model::VersionOp::Exact,
                    version: "5.0.2195.3645".parse().unwrap(),
                    date: None,
                    size: None,
                    checksum: None,
                    when_missing: crate::catalog::model::WhenMissing::NotInstalled,
                },
                DetectionRule::RegistryExists {
                    key: r"HKLM\SOFTWARE\X".into(),
                    value: None,
                },
            ],
        };
        for (id, path_case) in [("a", "idq.dll"), ("b", "IDQ.DLL")] {
            let mut r = rule.clone();
            if let DetectionRule::All { rules } = &mut r
                && let DetectionRule::FileVersion { path, .. } = &mut rules[0]
            {
                *path = format!(r"%windir%\system32\{path_case}");
            }
            c.patches.insert(
                id.into(),
                crate::catalog::model::Patch {
                    id: id.into(),
                    kb: None,
                    file_name: None,
                    download_url: None,
                    sha256: None,
                    subtype: None,
                    restart: None,
                    bulletins: vec![],
                    targets: vec![crate::catalog::model::PatchTarget {
                        product: "p".into(),
                        service_packs: vec![],
                        fixed_in_sp: None,
                        fixed_build: None,
                        detection: r,
                    }],
                    supersedes: Default::default(),
                    superseded_by: Default::default(),
                    installer: None,
                },
            );
        }
        let req = request_for(&c);
        assert_eq!(req.files.len(), 1);
        assert!(
            req.registry
                .iter()
                .any(|q| q.key == r"HKLM\SOFTWARE\X" && q.value.is_empty())
        );
        assert!(req.registry.iter().any(|q| q.value == "MajorVersion"));
    }

    #[test]
    fn what_the_host_could_not_read_stays_unknown() {
        let mut p = probe();
        let hotfix = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300972";
        p.registry[1].error = Some("Requested registry access is not allowed.".into());
        p.files[1].error = Some("environment variable %X% is not set on this host".into());
        p.unknown
            .insert("installed_kbs".into(), "Invalid class".into());
        p.unknown
            .insert("CurrentBuild".into(), "Access denied".into());
        let f = facts_from(&p, &request());
        // Not "asked and absent": never known.
        assert_eq!(f.registry_key(hotfix), None);
        assert_eq!(
            f.unknown_reason(hotfix),
            Some("Requested registry access is not allowed.")
        );
        assert_eq!(f.file(r"%windir%\system32\gone.dll"), None);
        assert!(f.unknown_reason(r"%windir%\system32\gone.dll").is_some());
        assert_eq!(f.kbs_unknown.as_deref(), Some("Invalid class"));
        assert_eq!(f.build, None);
        // What was read is still there.
        assert!(f.file(r"%windir%\system32\idq.dll").flatten().is_some());
    }

    #[test]
    fn windows_11_and_server_core_are_named_by_what_tells_them_apart() {
        let mut p = probe();
        p.product_name = "Windows 10 Pro".into();
        p.edition_id = "Professional".into();
        (p.major, p.minor, p.build, p.ubr) = (10, 0, 22631, 3007);
        let f = facts_from(&p, &request());
        assert_eq!(f.os_name, "Windows 11 Pro");
        assert_eq!(f.products[0].name, "Windows 11 Pro");
        p.build = 19045;
        assert_eq!(facts_from(&p, &request()).os_name, "Windows 10 Pro");

        p.product_name = "Windows Server 2022 Datacenter".into();
        p.edition_id = "ServerDatacenter".into();
        p.build = 20348;
        p.installation_type = "Server Core".into();
        let f = facts_from(&p, &request());
        assert_eq!(f.installation_type.as_deref(), Some("Server Core"));
        assert_eq!(f.os_name, "Windows Server 2022 Datacenter");
        p.installation_type = String::new();
        p.edition_id = "ServerDatacenterCore".into();
        assert_eq!(
            facts_from(&p, &request()).installation_type.as_deref(),
            Some("Server Core"),
            "Server 2008's Core editions have their own EditionID"
        );
    }
}
