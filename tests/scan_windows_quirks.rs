//! End to end over WinRM and Samba: hosts that answer as real Windows does where the simulator used
//! to be kinder (issue 21): PowerShell 2.0, a hidden file, a registry key the account may not
//! read, a German cmd.exe without PowerShell, Windows 11 calling itself Windows 10, Server Core
//! sharing the full installation's EditionID, a PowerShell that writes a byte order mark, an
//! environment variable the host does not have, and empty or second rename lists.
//!
//! Each host is scanned by hive's real scan (probe, legacy route, SMB reads) and each verdict is
//! checked against what the host was given. Needs the harness's Samba (`integration/test.sh`).

mod common;

use std::sync::Arc;

use common::SimFleet;
use hive::catalog::model::Catalog;
use hive::scan::evaluate::Status;
use hive::scan::run::{FileSource, ScanOptions, scan_fleet};
use hive::scan::{HostResult, HostScan};

const FLEET: &str = r#"
[[host]]
name = "PS20"
address = "127.0.0.11"
product = "Windows Server 2008 R2 Standard"
edition = "ServerStandard"
csd_version = "Service Pack 1"
version = "6.1.7601"
powershell_version = "2.0"
files = [{ path = 'C:\Program Files\Fabrikam\agent.dll', version = "2.0.0.0" }]

[[host]]
name = "HIDDEN"
address = "127.0.0.12"
files = [{ path = 'C:\Program Files\Fabrikam\agent.dll', version = "2.0.0.0", hidden = true }]

[[host]]
name = "LOCKED"
address = "127.0.0.13"
registry = [
  { key = 'HKLM\SOFTWARE\Fabrikam\Secure', name = "Patched", type = "REG_DWORD", value = 1 },
  { key = 'HKLM\SOFTWARE\Fabrikam\Open', name = "Patched", type = "REG_DWORD", value = 1 },
  { key = 'HKU\.DEFAULT\Software\Fabrikam', name = "Patched", type = "REG_DWORD", value = 1 },
  { key = 'HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Ciphers\RC4 128/128', name = "Patched", type = "REG_DWORD", value = 1 },
]
registry_denied = ['HKLM\SOFTWARE\Fabrikam\Secure']

[[host]]
name = "DE2003"
address = "127.0.0.14"
product = "Windows Server 2003"
edition = ""
csd_version = "Service Pack 2"
version = "5.2.3790"
powershell = false
language = "de-DE"
files = [{ path = 'C:\Program Files\Fabrikam\agent.dll', version = "2.0.0.0" }]

[[host]]
name = "WIN11"
address = "127.0.0.15"
product = "Windows 10 Pro"
edition = "Professional"
version = "10.0.22631"
ubr = 3007

[[host]]
name = "CORE"
address = "127.0.0.16"
product = "Windows Server 2022 Datacenter"
edition = "ServerDatacenter"
version = "10.0.20348"
ubr = 2340
registry = [{ key = 'HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion', name = "InstallationType", value = "Server Core" }]

[[host]]
name = "BOM"
address = "127.0.0.17"
powershell_bom = true
registry = [
  { key = 'HKLM\SYSTEM\CurrentControlSet\Control\Session Manager', name = "PendingFileRenameOperations", type = "REG_MULTI_SZ", value = [] },
]

[[host]]
name = "RENAME2"
address = "127.0.0.18"
registry = [
  { key = 'HKLM\SYSTEM\CurrentControlSet\Control\Session Manager', name = "PendingFileRenameOperations2", type = "REG_MULTI_SZ", value = ['\??\C:\Windows\Temp\x.tmp', ''] },
]
"#;

/// Product and patch ids of the test catalog.
const AGENT: &str = "t:agent";
const SECURE: &str = "t:secure";
const OPEN: &str = "t:open";
const ODD_PATH: &str = "t:odd-path";
const USERS: &str = "t:users";
const RC4: &str = "t:rc4";
const WIN11: &str = "t:win11";
const CORE: &str = "t:core";
const FULL: &str = "t:full";
const OFFICE: &str = "t:office";

/// A catalog whose rules read exactly what the quirky hosts hide or misreport. The agent patch
/// has 150 more files to look for, on no host: the probe's request then makes the script too long
/// for one process command line, so it travels on stdin through cmd.exe, where a host without
/// PowerShell answers in its own language.
fn catalog() -> Catalog {
    let product = |id: &str, name: &str, range: Option<(&str, &str)>| {
        let mut p = serde_json::json!({ "id": id, "name": name });
        if let Some((min, below)) = range {
            p["applicability"] =
                serde_json::json!({ "build_range": { "min": min, "below": below } });
        }
        (id.to_string(), p)
    };
    let patch = |id: &str, product: &str, detection: serde_json::Value| {
        (
            id.to_string(),
            serde_json::json!({ "id": id, "targets": [{ "product": product, "detection": detection }] }),
        )
    };
    let file = |path: &str, version: &str| serde_json::json!({ "kind": "file_version", "path": path, "op": "at_least", "version": version, "when_missing": "not_installed" });
    let reg = |key: &str| serde_json::json!({ "kind": "registry_value", "key": key, "value": "Patched", "data": "1" });
    let kb = |n: u32| serde_json::json!({ "kind": "kb_installed", "kb": format!("KB{n}") });
    let mut agent_rules = vec![file(r"%ProgramFiles%\Fabrikam\agent.dll", "2.0.0.0")];
    for i in 0..150 {
        agent_rules.push(serde_json::json!({ "kind": "file_version", "path": format!(r"%ProgramFiles%\Fabrikam\plugins\a-rather-long-plugin-name-{i:03}.dll"), "op": "at_least", "version": "1.0.0.0", "when_missing": "ignore" }));
    }
    let products: serde_json::Map<String, serde_json::Value> = [
        // Build ranges that hold every host: the server products apply to every server.
        product(
            AGENT,
            "Fabrikam Agent for Windows Server",
            Some(("5.0.0.0", "99.0.0.0")),
        ),
        product(
            SECURE,
            "Fabrikam Secure for Windows Server",
            Some(("5.0.0.0", "99.0.0.0")),
        ),
        product(WIN11, "Windows 11 Pro", None),
        // Not a Windows component: its updates are never in Win32_QuickFixEngineering.
        product(
            OFFICE,
            "Fabrikam Office 2024",
            Some(("10.0.22631.0", "10.0.22632.0")),
        ),
        product(
            CORE,
            "Windows Server 2022 (Server Core installation)",
            Some(("10.0.20348.0", "10.0.20349.0")),
        ),
        product(
            FULL,
            "Windows Server 2022",
            Some(("10.0.20348.0", "10.0.20349.0")),
        ),
    ]
    .into_iter()
    .collect();
    let patches: serde_json::Map<String, serde_json::Value> = [
        patch(
            AGENT,
            AGENT,
            serde_json::json!({ "kind": "all", "rules": agent_rules }),
        ),
        patch(SECURE, SECURE, reg(r"HKLM\SOFTWARE\Fabrikam\Secure")),
        patch(OPEN, SECURE, reg(r"HKLM\SOFTWARE\Fabrikam\Open")),
        patch(USERS, SECURE, reg(r"HKU\.DEFAULT\Software\Fabrikam")),
        patch(
            RC4,
            SECURE,
            reg(r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Ciphers\RC4 128/128"),
        ),
        patch(
            ODD_PATH,
            SECURE,
            file(r"%FABRIKAM_HOME%\bin\agent.exe", "1.0.0.0"),
        ),
        patch(WIN11, WIN11, kb(5_034_765)),
        patch(CORE, CORE, kb(5_034_770)),
        patch(FULL, FULL, kb(5_034_771)),
        patch(OFFICE, OFFICE, kb(5_002_500)),
    ]
    .into_iter()
    .collect();
    serde_json::from_value(serde_json::json!({ "products": products, "patches": patches }))
        .expect("the test catalog")
}

fn result<'a>(scans: &'a [HostScan], host: &str) -> &'a HostResult {
    let s = scans
        .iter()
        .find(|s| s.host == host)
        .unwrap_or_else(|| panic!("{host} was not scanned"));
    s.result
        .as_ref()
        .unwrap_or_else(|e| panic!("{host}: the scan failed: {e}"))
}

fn status(r: &HostResult, patch: &str) -> (Status, String) {
    let v = r
        .verdicts
        .iter()
        .find(|v| &*v.patch == patch)
        .unwrap_or_else(|| panic!("no verdict for {patch}"));
    (v.status, v.evidence.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_that_answer_as_real_windows_does_are_scanned_right() {
    let fleet = SimFleet::start("quirks", FLEET).await;
    let catalog = catalog();
    let probe = hive::scan::run::PreparedProbe::new(&catalog);
    let script = probe.script.script();
    assert!(
        script.len() * 8 / 3 > hive_winrm::powershell::MAX_PROCESS_COMMAND_LINE,
        "the request must be big enough to go through cmd.exe ({} characters)",
        script.len()
    );
    let hosts: Vec<_> = fleet
        .hosts
        .iter()
        .map(|h| (h.clone(), Ok(fleet.secret.clone())))
        .collect();
    let options = ScanOptions {
        parallel: 8,
        files: FileSource::Probe,
        ..ScanOptions::default()
    };
    let scans = scan_fleet(hosts.into(), Arc::new(catalog), options, Arc::new(())).await;

    // 1. PowerShell 2.0: the probe says so, and the host is scanned the legacy way.
    let ps20 = result(&scans, "PS20");
    assert_eq!(ps20.facts.file_source, "smb", "PS20 took the probe route");
    assert_eq!(
        status(ps20, AGENT).0,
        Status::Installed,
        "{:?}",
        status(ps20, AGENT)
    );
    assert!(
        fleet
            .host("PS20")
            .command_log()
            .iter()
            .any(|c| c.command_line.contains("reg query")),
        "no reg query on the PowerShell 2.0 host"
    );

    // 2. A hidden file is read like any other.
    let hidden = result(&scans, "HIDDEN");
    assert_eq!(
        status(hidden, AGENT).0,
        Status::Installed,
        "{:?}",
        status(hidden, AGENT)
    );

    // 3. A key the account may not read is unknown (NOTE, with the host's error), and the
    // other facts are still gathered.
    let locked = result(&scans, "LOCKED");
    let (s, evidence) = status(locked, SECURE);
    assert_eq!(s, Status::Note, "{evidence}");
    assert!(
        evidence.contains("Requested registry access is not allowed"),
        "{evidence}"
    );
    assert_eq!(status(locked, OPEN).0, Status::Installed);
    // 7. HKU keys, and key names with `/` (read through .NET, not the registry provider).
    assert_eq!(
        status(locked, USERS).0,
        Status::Installed,
        "{:?}",
        status(locked, USERS)
    );
    assert_eq!(
        status(locked, RC4).0,
        Status::Installed,
        "{:?}",
        status(locked, RC4)
    );
    assert!(locked.facts.last_boot.is_some() && !locked.facts.os_name.is_empty());

    // 4. A German cmd.exe without PowerShell: exit code 9009, the legacy route.
    let de = result(&scans, "DE2003");
    assert_eq!(de.facts.file_source, "smb");
    assert_eq!(
        status(de, AGENT).0,
        Status::Installed,
        "{:?}",
        status(de, AGENT)
    );
    let log = fleet.host("DE2003").command_log();
    assert!(
        log.iter()
            .any(|c| c.command_line.starts_with("powershell") && c.exit_code == Some(9009)),
        "the probe did not meet cmd.exe on DE2003: {:?}",
        log.iter()
            .map(|c| (&c.command_line[..c.command_line.len().min(60)], c.exit_code))
            .collect::<Vec<_>>()
    );

    // 5. An environment variable the host does not have: unknown, not missing.
    let (s, evidence) = status(locked, ODD_PATH);
    assert_eq!(s, Status::Note, "{evidence}");
    assert!(evidence.contains("FABRIKAM_HOME"), "{evidence}");

    // 8. Windows 11 and Server Core are told apart.
    let win11 = result(&scans, "WIN11");
    assert_eq!(win11.facts.os_name, "Windows 11 Pro");
    assert_eq!(status(win11, WIN11).0, Status::Missing);
    let core = result(&scans, "CORE");
    assert_eq!(core.facts.installation_type.as_deref(), Some("Server Core"));
    assert_eq!(status(core, CORE).0, Status::Missing);
    assert_eq!(status(core, FULL).0, Status::NotApplicable);

    // 10. A byte order mark before the JSON; 12. an empty rename list is not a pending reboot,
    // a second one is.
    let bom = result(&scans, "BOM");
    assert!(
        bom.facts.pending_reboot.is_empty(),
        "{:?}",
        bom.facts.pending_reboot
    );
    let rename2 = result(&scans, "RENAME2");
    assert_eq!(
        rename2.facts.pending_reboot,
        ["PendingFileRenameOperations"]
    );

    // 11. An update the host's list never shows is not proven missing.
    let (s, evidence) = status(win11, OFFICE);
    assert_eq!(s, Status::Note, "{evidence}");
    assert!(evidence.contains("Windows updates only"), "{evidence}");
}
