//! End to end over SSH: scan 50 simulated hosts reached only through the harness's real sshd
//! (commands through `winsim-shell` into the host model, files through the real `sftp-server`)
//! with the real 2001 mssecure catalog and the real March 2024 CVRF month, and check every
//! verdict against the simulator's ground truth — the states this test gave each host. The same
//! states and checks as tests/scan_fleet.rs, which does it over WinRM and SMB.
//!
//! Needs the harness's sshd and samba services (`integration/test.sh`).

mod scan_support;
mod ssh_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hive::catalog::model::Catalog;
use hive::inventory::Inventory;
use hive::report::{Format, render};
use hive::scan::HostScan;
use hive::scan::evaluate::Status;
use hive::scan::run::{FileSource, ScanOptions, scan_fleet};
use scan_support::{W2kState, assert_w2k_verdicts, assert_ws2019_verdict, fleet_toml, ms01_033};
use ssh_common::SshFleet;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/catalogs")
        .join(name)
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
    scan_fleet(hosts.into(), Arc::new(catalog), options, Arc::new(())).await
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
        assert_w2k_verdicts(name, *state, r, &m, "sftp");
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
            let source = if files == FileSource::Smb {
                "sftp"
            } else {
                "probe"
            };
            assert_ws2019_verdict(name, *ubr, *kb, r, source);
        }
    }
    let log = fleet.host("WS19-00").command_log();
    assert!(
        log.iter().any(|c| c
            .command_line
            .starts_with("powershell.exe -NoProfile -NonInteractive")
            && c.script
                .as_deref()
                .is_some_and(|s| s.starts_with(winsim::probe::PROBE_MARKER))),
        "{log:?}"
    );
    eprintln!(
        "50 hosts scanned over SSH (3 rounds) in {:?}",
        started.elapsed()
    );
}

/// Over SSH the probe travels on stdin, which Windows PowerShell reads in the console's OEM code
/// page, and its answer comes back in it (issue 21, item 6): a host with code page 850 and
/// non-ASCII registry names, paths and product name is scanned right because the request and the
/// answer are ASCII (`\uXXXX`) both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_names_survive_the_oem_code_page() {
    let toml = "[[host]]\nname = \"OEM850\"\naddress = \"127.0.0.2\"\n\
                product = \"Windows Server 2019 Datacenter Évaluation\"\nversion = \"10.0.17763\"\n\
                oem_code_page = 850\n\
                registry = [{ key = 'HKLM\\SOFTWARE\\Fabrikam\\Überwachung', name = \"Größe\", value = \"1\" }]\n\
                files = [{ path = 'C:\\Program Files\\Fabrikam Überwachung\\agent.dll', version = \"2.0.0.0\" }]\n";
    let fleet = SshFleet::start("scanoem", 1, toml).await;
    let catalog: Catalog = serde_json::from_value(serde_json::json!({
        "products": { "t:agent": { "id": "t:agent", "name": "Fabrikam Überwachung for Windows Server",
            "applicability": { "build_range": { "min": "10.0.17763.0", "below": "10.0.17764.0" } } } },
        "patches": {
            "t:reg": { "id": "t:reg", "targets": [{ "product": "t:agent", "detection":
                { "kind": "registry_value", "key": "HKLM\\SOFTWARE\\Fabrikam\\Überwachung", "value": "Größe", "data": "1" } }] },
            "t:file": { "id": "t:file", "targets": [{ "product": "t:agent", "detection":
                { "kind": "file_version", "path": "%ProgramFiles%\\Fabrikam Überwachung\\agent.dll",
                  "op": "at_least", "version": "2.0.0.0", "when_missing": "not_installed" } }] }
        }
    }))
    .expect("the test catalog");
    let name = "OEM850".to_string();
    let scans = scan(&fleet, &[&name], catalog, FileSource::Probe).await;
    let r = scans[0]
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("OEM850: {e}"));
    assert_eq!(r.facts.os_name, "Windows Server 2019 Datacenter Évaluation");
    assert_eq!(r.facts.file_source, "probe");
    for patch in ["t:reg", "t:file"] {
        let v = r.verdicts.iter().find(|v| &*v.patch == patch).expect(patch);
        assert_eq!(v.status, Status::Installed, "{patch}: {}", v.evidence);
    }
}
