//! End to end over SSH: scan 50 simulated hosts reached only through the harness's real sshd
//! (commands through `winsim-shell` into the host model, files through the real `sftp-server`)
//! with the real 2001 mssecure catalog and the real March 2024 CVRF month, and check every
//! verdict against the simulator's ground truth — the states this test gave each host. The same
//! states and checks as tests/scan_fleet.rs, which does it over WinRM and SMB.
//!
//! Needs the harness's sshd and samba services (`integration/test.sh`).

mod ssh_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hive::catalog::model::{Catalog, DetectionRule, Version};
use hive::inventory::Inventory;
use hive::report::{Format, render};
use hive::scan::HostScan;
use hive::scan::evaluate::Status;
use hive::scan::run::{FileSource, ScanOptions, scan_fleet};
use ssh_common::SshFleet;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/catalogs")
        .join(name)
}

/// The state the test gives one Windows 2000 host for MS01-033, and what hfnetchk would say.
#[derive(Debug, Clone, Copy)]
enum W2kState {
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
    fn expected(self) -> Status {
        match self {
            W2kState::Unpatched | W2kState::KeyMissing => Status::Missing,
            W2kState::Patched => Status::Installed,
            W2kState::Newer => Status::Warning,
        }
    }
}

/// MS01-033's Windows 2000 patch as the real catalog describes it: its file rule and registry rule.
struct Ms01033 {
    patch: String,
    file: String,
    version: Version,
    reg_key: String,
    reg_value: String,
    reg_data: String,
}

fn ms01_033(catalog: &Catalog) -> Ms01033 {
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

fn windows_path(catalog_path: &str) -> String {
    catalog_path
        .replace("%windir%", r"C:\Windows")
        .replace("%SystemRoot%", r"C:\Windows")
}

fn bump(v: &Version, delta: i64) -> String {
    let mut parts = v.0.clone();
    let last = parts.len() - 1;
    parts[last] = (parts[last] as i64 + delta) as u32;
    parts
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn fleet_toml(
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

async fn scan(
    fleet: &SshFleet,
    names: &[&String],
    catalog: Catalog,
    files: FileSource,
) -> Vec<HostScan> {
    let inv: &Inventory = &fleet.inventory;
    let hosts: Vec<_> = names
        .iter()
        .map(|n| {
            let h = inv.host(n).unwrap().clone();
            (h, Ok(fleet.secret.clone()))
        })
        .collect();
    let options = ScanOptions {
        parallel: 16,
        files,
        ..ScanOptions::default()
    };
    scan_fleet(&hosts, Arc::new(catalog), options, &()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_hosts_over_ssh_every_verdict_matches_the_ground_truth() {
    let (mssecure, _) =
        hive::catalog::store::import_file(&fixture("mssecure-2001-10-04.xml")).unwrap();
    let (cvrf, _) = hive::catalog::store::import_file(&fixture("cvrf/2024-Mar.xml")).unwrap();
    let m = ms01_033(&mssecure);

    // 40 Windows 2000 hosts cycling through the four states, 10 Windows Server 2019 hosts below,
    // at, and above March 2024's FixedBuild 10.0.17763.5576, some with the KB recorded.
    let states = [
        W2kState::Unpatched,
        W2kState::Patched,
        W2kState::Newer,
        W2kState::KeyMissing,
    ];
    let w2k: Vec<(String, String, W2kState)> = (0..40)
        .map(|i| {
            (
                format!("W2K-{i:03}"),
                format!("127.0.0.{}", i + 10),
                states[i % 4],
            )
        })
        .collect();
    let ws: Vec<(String, String, u32, bool)> = (0..10)
        .map(|i| {
            let (ubr, kb) = match i % 3 {
                0 => (5458, false),
                1 => (5576, false),
                _ => (5458, true),
            };
            (
                format!("WS19-{i:02}"),
                format!("127.0.0.{}", i + 100),
                ubr,
                kb,
            )
        })
        .collect();
    let toml = fleet_toml("unused", "unused", &w2k, &ws, &m);
    let started = std::time::Instant::now();
    let fleet = SshFleet::start("scanssh", 0, &toml).await;

    // Windows 2000 hosts: no PowerShell, so reg query through cmd.exe and PE headers over SFTP.
    let names: Vec<&String> = w2k.iter().map(|(n, _, _)| n).collect();
    let scans = scan(&fleet, &names, mssecure.clone(), FileSource::Probe).await;
    assert_eq!(scans.len(), 40);
    for ((name, _, state), s) in w2k.iter().zip(&scans) {
        assert_eq!(&s.host, name);
        let r = s.result.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            r.facts.file_source, "sftp",
            "{name} has no PowerShell: versions read over the file channel"
        );
        let v = r.verdicts.iter().find(|v| v.patch == m.patch).unwrap();
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
        assert!(
            r.verdicts.iter().any(|v| v.status == Status::Note),
            "{name}: no NOTE"
        );
        assert!(r.verdicts.iter().any(|v| v.status == Status::NotApplicable));
        // The commands really went through the SSH face to this host.
        let log = fleet.host(name).command_log();
        assert!(
            log.iter().any(|c| c.command_line.starts_with("reg query")),
            "{name}: {log:?}"
        );
    }

    // The hfnetchk-style tab output parses back into its seven columns.
    let tab = render(Format::Tab, &mssecure, &scans);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for row in tab.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        assert_eq!(cols.len(), 7, "{row}");
        if cols[2] == "MS01-033" {
            seen.insert(cols[0].to_string(), cols[6].to_string());
        }
    }
    for (name, _, state) in &w2k {
        let want = match state.expected() {
            Status::Missing => Some("NOT FOUND"),
            Status::Warning => Some("WARNING"),
            _ => None,
        };
        assert_eq!(seen.get(name).map(String::as_str), want, "{name}");
    }

    // Windows Server 2019 hosts: the PowerShell probe (on stdin: it is longer than cmd.exe's
    // line), and then versions over SFTP, with CVRF.
    let names: Vec<&String> = ws.iter().map(|(n, _, _, _)| n).collect();
    for files in [FileSource::Probe, FileSource::Smb] {
        let scans = scan(&fleet, &names, cvrf.clone(), files).await;
        for ((name, _, ubr, kb), s) in ws.iter().zip(&scans) {
            let r = s.result.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                r.facts.file_source,
                if files == FileSource::Smb {
                    "sftp"
                } else {
                    "probe"
                }
            );
            let v = r
                .verdicts
                .iter()
                .find(|v| v.patch == "KB5035849" && v.product == "Windows Server 2019")
                .unwrap_or_else(|| panic!("{name}: no KB5035849 verdict for Windows Server 2019"));
            let want = if *ubr >= 5576 || *kb {
                Status::Installed
            } else {
                Status::Missing
            };
            assert_eq!(v.status, want, "{name} ubr {ubr} kb {kb}: {}", v.evidence);
        }
    }
    let log = fleet.host("WS19-00").command_log();
    assert!(
        log.iter().any(|c| c
            .command_line
            .starts_with("powershell.exe -NoProfile -NonInteractive")
            && c.script
                .as_deref()
                .is_some_and(|s| s.starts_with("# hive-probe v1"))),
        "{log:?}"
    );
    eprintln!(
        "50 hosts scanned over SSH (3 rounds) in {:?}",
        started.elapsed()
    );
}
