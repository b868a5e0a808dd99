//! Targets from an address range and a host list (`--range`, `--hosts-file`): simulated Windows
//! hosts on some addresses of a loopback range, nothing on the others. The empty addresses are
//! reported once as having no WinRM/SSH listener and are not failures; a range larger than the
//! limit is refused unless `--max-hosts` allows it. Needs no harness service.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

/// A loopback /24 of this test process's own.
fn net() -> String {
    let pid = std::process::id();
    format!("127.{}.{}", 150 + (pid % 40), (pid / 40) % 250)
}

fn hive(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hive"))
        .args(args)
        .env("HIVE_TEST_RANGE_PW", "Sim-Pass-1")
        .env_remove("HIVE_INVENTORY")
        .env_remove("HIVE_REPO")
        .output()
        .expect("hive runs")
}

fn scanned_hosts(out: &Output) -> BTreeSet<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let scans: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    scans
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["status"], "scanned", "{s}");
            s["host"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_of_a_range_and_a_host_list() {
    let net = net();
    let port = common::shared_winrm_port();
    let dir = tempfile::tempdir().unwrap();
    let live = [10, 11, 13];
    let (_model, servers) = common::ws2019_fleet(
        dir.path(),
        live.map(|n| (format!("SIM{n}"), format!("{net}.{n}"))),
        port,
    )
    .await;

    let inventory = dir.path().join("inventory.toml");
    // Only defaults: the targets come from the command line.
    std::fs::write(
        &inventory,
        format!(
            "[defaults]\nuser = \"hive\"\ncredential = \"env:HIVE_TEST_RANGE_PW\"\nport = {port}\n"
        ),
    )
    .unwrap();
    let hosts_file = dir.path().join("hosts.txt");
    std::fs::write(
        &hosts_file,
        format!("# the web tier\n{net}.10\n\n{net}.13   # the new one\n"),
    )
    .unwrap();
    let catalog =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/catalogs/cvrf/2024-Mar.xml");
    let inv = inventory.to_string_lossy().into_owned();
    let cat = catalog.to_string_lossy().into_owned();
    let range = format!("{net}.8-{net}.14");
    let list = hosts_file.to_string_lossy().into_owned();
    let a = net.rsplit_once('.').map(|(a, _)| a.to_string()).unwrap();
    let large = format!("{a}.0.0/22");

    let (by_range, by_list, too_large, allowed) = tokio::task::spawn_blocking(move || {
        let scan = |extra: &[&str]| {
            let mut a = vec!["scan", "-i", &inv, "--catalog", &cat, "-o", "json"];
            a.extend_from_slice(extra);
            hive(&a)
        };
        (
            scan(&["--range", &range]),
            scan(&["--hosts-file", &list]),
            scan(&["--range", &large]),
            scan(&[
                "--range",
                &large,
                "--max-hosts",
                "1022",
                "--hosts",
                "nohost",
            ]),
        )
    })
    .await
    .unwrap();

    // 7 addresses, 3 listening: the other 4 are said once and are not failures (exit 0).
    let stderr = String::from_utf8_lossy(&by_range.stderr);
    assert_eq!(by_range.status.code(), Some(0), "{stderr}");
    let want: BTreeSet<String> = live.iter().map(|n| format!("{net}.{n}")).collect();
    assert_eq!(scanned_hosts(&by_range), want);
    let silent: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("no WinRM/SSH listener"))
        .collect();
    assert_eq!(silent.len(), 1, "{stderr}");
    assert!(
        silent[0].starts_with("4 address(es)")
            && [8, 9, 12, 14]
                .iter()
                .all(|n| silent[0].contains(&format!("{net}.{n}:{port}"))),
        "{stderr}"
    );

    let stderr = String::from_utf8_lossy(&by_list.stderr);
    assert_eq!(by_list.status.code(), Some(0), "{stderr}");
    assert_eq!(
        scanned_hosts(&by_list),
        BTreeSet::from([format!("{net}.10"), format!("{net}.13")])
    );

    let stderr = String::from_utf8_lossy(&too_large.stderr);
    assert_eq!(too_large.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "range `{a}.0.0/22` holds 1022 addresses, more than the limit of 256"
        )) && stderr.contains("--max-hosts 1022"),
        "{stderr}"
    );
    // With the limit raised the range is accepted (and the selection then names an unknown host).
    let stderr = String::from_utf8_lossy(&allowed.stderr);
    assert_eq!(allowed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("host `nohost` is not in the --range/--hosts-file targets"),
        "{stderr}"
    );
    servers.shutdown().await;
}
