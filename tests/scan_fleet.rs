//! End to end: scan simulated hosts over NTLM-encrypted WinRM (files through real Samba) with the
//! real 2001 mssecure catalog and the real March 2024 CVRF month, and check every verdict against
//! the simulator's ground truth — the states this test gave each host.
//!
//! Needs the harness's Samba (`integration/test.sh`): the simulated hosts' C: drives live in the
//! `fleet` share, so versions read over SMB are the simulated hosts' own files.

mod scan_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hive::catalog::model::Catalog;
use hive::inventory::{Inventory, Secret};
use hive::repo::{Repository, Triage};
use hive::report::{Format, render};
use hive::scan::HostScan;
use hive::scan::evaluate::Status;
use hive::scan::run::{FileSource, ScanOptions, scan_fleet};
use scan_support::{W2kState, assert_w2k_verdicts, assert_ws2019_verdict, fleet_toml, ms01_033};
use winsim::Fleet;
use winsim::server::{FleetOptions, WinrmFleet};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this test through integration/test.sh (it starts Samba)")
    })
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/catalogs")
        .join(name)
}

/// A loopback /24 of this test process's own.
fn base(n: u32) -> String {
    let pid = std::process::id();
    format!("127.{}.{}", 100 + (pid % 50), ((pid / 50) * 4 + n) % 250)
}

fn inventory(
    hosts: &[(String, String)],
    port: u16,
    smb_port: u16,
    share: &str,
    sub: &str,
) -> Inventory {
    let smb_host = env("HIVE_TEST_SMB_HOST");
    let mut t = String::from("[defaults]\ncredential = \"env:HIVE_E2E_PASSWORD\"\n");
    for (name, addr) in hosts {
        t.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"{addr}\"\nport = {port}\nsmb_address = \"{smb_host}\"\nsmb_port = {smb_port}\n\
             smb_share = \"{share}\"\nsmb_root = '{sub}\\{name}'\ngroups = [\"all\"]\n"
        ));
    }
    Inventory::parse(&t, Path::new("e2e-inventory.toml")).unwrap()
}

async fn scan(
    inv: &Inventory,
    user_pw: &str,
    catalog: Catalog,
    files: FileSource,
) -> Vec<HostScan> {
    let hosts: Vec<_> = inv
        .hosts
        .iter()
        .map(|h| {
            let mut h = h.clone();
            h.user = env("HIVE_TEST_SMB_USER");
            (h, Ok(Secret::new(user_pw)))
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
async fn fifty_hosts_every_verdict_matches_the_ground_truth() {
    let user = env("HIVE_TEST_SMB_USER");
    let password = env("HIVE_TEST_SMB_PASSWORD");
    let smb_port: u16 = env("HIVE_TEST_SMB_PORT").parse().unwrap();
    let share = env("HIVE_TEST_SMB_FLEET_SHARE");
    let fleet_root = std::path::PathBuf::from(env("HIVE_TEST_SMB_FLEET_ROOT"));
    let sub = format!("scan-{}", std::process::id());

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
                format!("{}.{}", base(0), i + 10),
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
                format!("{}.{}", base(0), i + 100),
                ubr,
                kb,
            )
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let toml = fleet_toml(&user, &password, &w2k, &ws, &m);
    std::fs::write(dir.path().join("fleet.toml"), &toml).unwrap();
    let drives = fleet_root.join(&sub);
    let model = Fleet::from_file(&dir.path().join("fleet.toml"), &drives).unwrap();
    let servers = WinrmFleet::start(model.sim_hosts(), FleetOptions::default())
        .await
        .unwrap();
    let port: u16 = servers.endpoints()[0].http_port().unwrap();

    // Windows 2000 hosts: no PowerShell, so reg query + PE headers over SMB, with the 2001 catalog.
    let w2k_inv = inventory(
        &w2k.iter()
            .map(|(n, a, _)| (n.clone(), a.clone()))
            .collect::<Vec<_>>(),
        port,
        smb_port,
        &share,
        &sub,
    );
    let scans = scan(&w2k_inv, &password, mssecure.clone(), FileSource::Probe).await;
    assert_eq!(scans.len(), 40);
    for ((name, _, state), s) in w2k.iter().zip(&scans) {
        assert_eq!(&s.host, name);
        let r = s.result.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_w2k_verdicts(name, *state, r, &m, "smb");
    }

    // The hfnetchk-style tab output parses back into its seven columns.
    let tab = render(Format::Tab, &mssecure, &scans);
    let mut rows = tab.lines();
    assert_eq!(
        rows.next(),
        Some("Machine Name\tProduct\tBulletin\tTitle\tQ Number\tReason\tStatus")
    );
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for row in rows {
        let cols: Vec<&str> = row.split('\t').collect();
        assert_eq!(cols.len(), 7, "{row}");
        if cols[2] == "MS01-033" {
            assert_eq!(cols[4], "Q300972");
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

    // TBE folders: exactly the missing bulletins nobody triaged; an ignored one stays ignored.
    let repo_dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(repo_dir.path()).unwrap();
    repo.ignore(
        "MS01-044",
        &hive::repo::IgnoreReason {
            reason: "IIS cumulative tested separately".into(),
            owner: "e2e".into(),
            expires: None,
        },
    )
    .unwrap();
    let summary = hive::triage::record_scan(&repo, &mssecure, &scans).unwrap();
    let missing = hive::triage::missing_by_bulletin(&scans);
    for (bulletin, hosts) in &missing {
        let state = repo.state_of(bulletin).unwrap();
        if bulletin == "MS01-044" {
            assert_eq!(state, Some(Triage::Ignore));
        } else {
            assert_eq!(state, Some(Triage::Tbe), "{bulletin}");
            assert_eq!(&summary.tbe[bulletin], hosts);
        }
    }
    let tbe_dirs = std::fs::read_dir(repo_dir.path().join("tbe"))
        .unwrap()
        .count();
    assert_eq!(
        tbe_dirs,
        missing.len() - usize::from(missing.contains_key("MS01-044"))
    );
    let ms01_033_hosts: Vec<&String> = w2k
        .iter()
        .filter(|(_, _, s)| s.expected() == Status::Missing)
        .map(|(n, _, _)| n)
        .collect();
    assert_eq!(
        summary.tbe["MS01-033"].iter().collect::<Vec<_>>(),
        ms01_033_hosts
    );

    // Windows Server 2019 hosts: the PowerShell probe, and then versions over SMB, with CVRF.
    let ws_inv = inventory(
        &ws.iter()
            .map(|(n, a, _, _)| (n.clone(), a.clone()))
            .collect::<Vec<_>>(),
        port,
        smb_port,
        &share,
        &sub,
    );
    for files in [FileSource::Probe, FileSource::Smb] {
        let scans = scan(&ws_inv, &password, cvrf.clone(), files).await;
        for ((name, _, ubr, kb), s) in ws.iter().zip(&scans) {
            let r = s.result.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
            let source = if files == FileSource::Smb {
                "smb"
            } else {
                "probe"
            };
            assert_ws2019_verdict(name, *ubr, *kb, r, source);
        }
    }

    servers.shutdown().await;
    drop(model);
    let _ = std::fs::remove_dir_all(&drives);
}
