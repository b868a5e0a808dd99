//! Scan benchmark: N simulated Windows Server 2019 hosts (WinRM, NTLM with encryption) scanned by
//! hive, then by a pywinrm thread pool running the same probe at the same concurrency, against the
//! same fleet in the same run. Prints one JSON line. Driven by integration/bench/scan.sh.
//!
//! Usage: scan_bench --hosts N --parallel P --octet O --python PY --peer SCRIPT

use std::sync::Arc;
use std::time::{Duration, Instant};

use hive::inventory::{Inventory, Secret};
use hive::scan::run::{FileSource, ScanOptions, scan_fleet};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hosts: usize = arg("--hosts", "1000").parse()?;
    let parallel: usize = arg("--parallel", "64").parse()?;
    let octet: usize = arg("--octet", "150").parse()?;
    let python = arg("--python", "python3");
    let peer = arg("--peer", "integration/bench/scan_peer.py");
    let password = "Bench-Passw0rd!";
    let dir = tempfile::tempdir()?;
    let addr = |i: usize| format!("127.{octet}.{}.{}", i / 250, i % 250 + 1);
    let mut fleet = format!(
        "[defaults]\nuser = \"Administrator\"\npassword = \"{password}\"\n\n\
         [template.ws]\nproduct = \"Windows Server 2019 Datacenter\"\nedition = \"ServerDatacenter\"\n\
         version = \"10.0.17763\"\nubr = 5458\nmachine = \"amd64\"\nkbs = [\"KB5034127\"]\n\
         files = [{{ path = 'C:\\Windows\\System32\\ntoskrnl.exe', version = \"10.0.17763.5458\" }}]\n\n"
    );
    for i in 0..hosts {
        fleet.push_str(&format!(
            "[[host]]\nname = \"WS{i:05}\"\naddress = \"{}\"\ntemplate = \"ws\"\n",
            addr(i)
        ));
    }
    std::fs::write(dir.path().join("fleet.toml"), fleet)?;
    let model =
        winsim::Fleet::from_file(&dir.path().join("fleet.toml"), &dir.path().join("drives"))?;
    let servers = winsim::server::WinrmFleet::start(model.sim_hosts(), Default::default()).await?;
    let port: u16 = servers.endpoints()[0]
        .http_url
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(5985);

    let (catalog, _) = hive::catalog::store::import_file(std::path::Path::new(
        "../shared/fixtures/catalogs/cvrf/2024-Mar.xml",
    ))?;
    let catalog = Arc::new(catalog);
    let mut inv = String::from("[defaults]\ncredential = \"prompt\"\n");
    for i in 0..hosts {
        inv.push_str(&format!(
            "[[host]]\nname = \"WS{i:05}\"\naddress = \"{}\"\nport = {port}\n",
            addr(i)
        ));
    }
    let inv = Inventory::parse(&inv, std::path::Path::new("bench.toml"))?;
    let with: Vec<_> = inv
        .hosts
        .iter()
        .map(|h| (h.clone(), Ok(Secret::new(password))))
        .collect();
    let options = ScanOptions {
        parallel,
        host_timeout: Duration::from_secs(300),
        files: FileSource::Probe,
        ..ScanOptions::default()
    };
    let rss_before = rss_kib("VmRSS:");
    let t = Instant::now();
    let scans = scan_fleet(&with, catalog.clone(), options, &()).await;
    let hive_s = t.elapsed().as_secs_f64();
    let rss_peak = rss_kib("VmHWM:");
    let ok = scans.iter().filter(|s| s.result.is_ok()).count();

    // The peer: the same probe script, the same hosts, the same concurrency, from pywinrm.
    let probe = hive::scan::run::PreparedProbe::new(&catalog);
    let script_path = dir.path().join("probe.ps1");
    std::fs::write(&script_path, &probe.script)?;
    let urls: Vec<String> = servers
        .endpoints()
        .iter()
        .map(|e| e.http_url.clone())
        .collect();
    std::fs::write(dir.path().join("urls.txt"), urls.join("\n"))?;
    let out = tokio::process::Command::new(&python)
        .arg(&peer)
        .arg(dir.path().join("urls.txt"))
        .arg(&script_path)
        .arg(parallel.to_string())
        .env("BENCH_PASSWORD", password)
        .output()
        .await?;
    let peer_line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return Err(format!("peer failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let peer: serde_json::Value = serde_json::from_str(&peer_line)?;
    println!(
        "{}",
        serde_json::json!({
            "hosts": hosts, "parallel": parallel, "hive_s": hive_s, "hive_ok": ok,
            "peer_s": peer["seconds"], "peer_ok": peer["ok"],
            "rss_before_kib": rss_before, "rss_peak_kib": rss_peak,
            "per_in_flight_kib": (rss_peak.saturating_sub(rss_before)) as f64 / parallel as f64,
        })
    );
    servers.shutdown().await;
    Ok(())
}
