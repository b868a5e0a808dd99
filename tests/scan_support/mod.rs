//! The fleet both scan tests build (over WinRM in scan_fleet.rs, over SSH in scan_ssh.rs):
//! Windows 2000 hosts in each hfnetchk state for MS01-033, as the real 2001 catalog describes the
//! patch, and Windows Server 2019 hosts at chosen builds. One copy, so the two transports are
//! checked against the same ground truth.
#![allow(dead_code)]

use hive::catalog::model::{Catalog, DetectionRule, Version};
use hive::scan::HostResult;
use hive::scan::evaluate::Status;

/// The state the test gives one Windows 2000 host for MS01-033, and what hfnetchk would say.
#[derive(Debug, Clone, Copy)]
pub enum W2kState {
    /// Old idq.dll, no hotfix key: NOT FOUND.
    Unpatched,
    /// The patch's idq.dll and its key: installed.
    Patched,
    /// A newer idq.dll than the patch's, with the key: WARNING.
    Newer,
    /// The patch's file but no key (a failed install): NOT FOUND.
    KeyMissing,
}

impl W2kState {
    pub fn expected(self) -> Status {
        match self {
            W2kState::Unpatched | W2kState::KeyMissing => Status::Missing,
            W2kState::Patched => Status::Installed,
            W2kState::Newer => Status::Warning,
        }
    }
}

/// MS01-033's Windows 2000 patch as the real catalog describes it: its file rule and registry rule.
pub struct Ms01033 {
    pub patch: String,
    pub file: String,
    pub version: Version,
    pub reg_key: String,
    pub reg_value: String,
    pub reg_data: String,
}

pub fn ms01_033(catalog: &Catalog) -> Ms01033 {
    let patch = catalog
        .patches
        .values()
        .find(|p| {
            p.bulletins.iter().any(|b| b == "MS01-033")
                && p.file_name.as_deref().is_some_and(|f| f.contains("W2K"))
        })
        .expect("MS01-033's Windows 2000 patch in the real catalog");
    let rule = &patch.targets[0].detection;
    let mut file = None;
    let mut reg = None;
    let mut walk = vec![rule];
    while let Some(r) = walk.pop() {
        match r {
            DetectionRule::All { rules } | DetectionRule::Any { rules } => walk.extend(rules),
            DetectionRule::FileVersion { path, version, .. } => {
                file = Some((path.clone(), version.clone()))
            }
            DetectionRule::RegistryValue { key, value, data } => {
                reg = Some((key.clone(), value.clone(), data.clone()))
            }
            _ => {}
        }
    }
    let (file, version) = file.expect("MS01-033 has a file rule");
    let (reg_key, reg_value, reg_data) = reg.expect("MS01-033 has a registry rule");
    Ms01033 {
        patch: patch.id.clone(),
        file,
        version,
        reg_key,
        reg_value,
        reg_data,
    }
}

pub fn windows_path(catalog_path: &str) -> String {
    catalog_path
        .replace("%windir%", r"C:\Windows")
        .replace("%SystemRoot%", r"C:\Windows")
}

pub fn bump(v: &Version, delta: i64) -> String {
    let mut parts = v.0.clone();
    let last = parts.len() - 1;
    parts[last] = (parts[last] as i64 + delta) as u32;
    parts
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

pub fn fleet_toml(
    user: &str,
    password: &str,
    w2k: &[(String, String, W2kState)],
    ws: &[(String, String, u32, bool)],
    m: &Ms01033,
) -> String {
    let mut t = format!(
        "[defaults]\nuser = \"{user}\"\npassword = \"{password}\"\n\n\
         [template.w2k]\nproduct = \"Microsoft Windows 2000\"\ncsd_version = \"Service Pack 1\"\n\
         version = \"5.0.2195\"\nmachine = \"i386\"\n\
         registry = [\n  {{ key = 'HKLM\\SOFTWARE\\Microsoft\\InetStp', name = \"MajorVersion\", type = \"REG_DWORD\", value = 5 }},\n  \
         {{ key = 'HKLM\\SYSTEM\\CurrentControlSet\\Control\\ProductOptions', name = \"ProductType\", type = \"REG_SZ\", value = \"ServerNT\" }},\n]\n\n\
         [template.ws2019]\nproduct = \"Windows Server 2019 Datacenter\"\nedition = \"ServerDatacenter\"\n\
         version = \"10.0.17763\"\nmachine = \"amd64\"\n\n"
    );
    let file = windows_path(&m.file);
    for (name, addr, state) in w2k {
        let version = match state {
            W2kState::Unpatched => bump(&m.version, -866),
            W2kState::Patched | W2kState::KeyMissing => m.version.to_string(),
            W2kState::Newer => bump(&m.version, 100),
        };
        let key = match state {
            W2kState::Unpatched | W2kState::KeyMissing => String::new(),
            _ => format!(
                "registry = [{{ key = '{}', name = \"{}\", type = \"REG_SZ\", value = \"{}\" }}]\n",
                m.reg_key, m.reg_value, m.reg_data
            ),
        };
        t.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"{addr}\"\ntemplate = \"w2k\"\n\
             files = [{{ path = '{file}', version = \"{version}\" }}]\n{key}\n"
        ));
    }
    for (name, addr, ubr, kb) in ws {
        let kbs = if *kb { "kbs = [\"KB5035849\"]\n" } else { "" };
        t.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"{addr}\"\ntemplate = \"ws2019\"\nubr = {ubr}\n{kbs}\n"
        ));
    }
    t
}

/// What hfnetchk would have said of one Windows 2000 host, checked against hive's verdicts:
/// MS01-033 in the host's state with its evidence, NOTE for patches the catalog has no data for,
/// and NT 4 patches not applicable. `file_source` is the channel the versions must have come
/// through (the host has no PowerShell).
pub fn assert_w2k_verdicts(
    name: &str,
    state: W2kState,
    r: &HostResult,
    m: &Ms01033,
    file_source: &str,
) {
    assert_eq!(
        r.facts.file_source, file_source,
        "{name} has no PowerShell: versions read over the file channel"
    );
    let v = r.verdicts.iter().find(|v| *v.patch == *m.patch).unwrap();
    assert_eq!(
        v.status,
        state.expected(),
        "{name} ({state:?}): {}",
        v.evidence
    );
    match state {
        W2kState::Unpatched => assert!(
            v.evidence
                .contains(&format!("{} < {}", bump(&m.version, -866), m.version))
                || v.evidence.contains("not found"),
            "{}",
            v.evidence
        ),
        W2kState::Newer => assert!(v.evidence.contains(" > "), "{}", v.evidence),
        _ => {}
    }
    // Patches the catalog has no data for are NOTE, as hfnetchk said.
    assert!(
        r.verdicts.iter().any(|v| v.status == Status::Note),
        "{name}: no NOTE"
    );
    // Windows NT 4 patches do not apply to Windows 2000.
    assert!(r.verdicts.iter().any(|v| v.status == Status::NotApplicable));
}

/// A Windows Server 2019 host at build `10.0.17763.ubr` (or with the KB's package recorded when
/// `kb`) must have KB5035849 installed from UBR 5576 on and missing below it, with its versions
/// read over `file_source`.
pub fn assert_ws2019_verdict(name: &str, ubr: u32, kb: bool, r: &HostResult, file_source: &str) {
    assert_eq!(r.facts.file_source, file_source, "{name}");
    let v = r
        .verdicts
        .iter()
        .find(|v| &*v.patch == "KB5035849" && &*v.product == "Windows Server 2019")
        .unwrap_or_else(|| panic!("{name}: no KB5035849 verdict for Windows Server 2019"));
    let want = if ubr >= 5576 || kb {
        Status::Installed
    } else {
        Status::Missing
    };
    assert_eq!(v.status, want, "{name} ubr {ubr} kb {kb}: {}", v.evidence);
}
