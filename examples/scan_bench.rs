//! Scan benchmark: N simulated Windows Server 2019 hosts (WinRM, NTLM with encryption) scanned by
//! hive, then by a pywinrm thread pool running the same probe at the same concurrency, against the
//! same fleet in the same run. Prints one JSON line. Driven by integration/bench/scan.sh.
//!
//! The simulated fleet runs in a child process (this same binary, `--serve-fleet`), so the memory
//! figure is hive's alone and the simulator's CPU is not charged to hive's runtime. The child counts
//! the HTTP requests every host received, which gives round trips per host for both clients as the
//! server saw them.
//!
//! Usage: scan_bench --hosts N --parallel P --octet O --python PY --peer SCRIPT [--no-peer]
//!                   [--kerberos SPN]
//!                   [--wan-rtt-ms MS --relay SCRIPT --relay-octet R]
//!
//! With `--wan-rtt-ms`, both clients reach every host through integration/bench/wan_relay.py,
//! which listens on 127.R.x.y (one address per host) and adds MS of round-trip delay to every
//! connection: the same WAN for hive and for pywinrm.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hive::inventory::{Inventory, Secret};
use hive::scan::run::{FileSource, ScanOptions, scan_fleet};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const PASSWORD: &str = "Bench-Passw0rd!";

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
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

/// Host `i`'s loopback address: 250 hosts per /24, 62,500 per second octet, so 100,000 hosts
/// take the octets `octet` and `octet + 1`.
fn address(octet: usize, i: usize) -> String {
    format!(
        "127.{}.{}.{}",
        octet + i / 62_500,
        (i / 250) % 250,
        i % 250 + 1
    )
}

/// Child mode: start the fleet, print its WinRM port, then answer `requests` with the HTTP
/// request count until stdin closes.
async fn serve_fleet(hosts: usize, octet: usize) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut fleet = format!(
        "[defaults]\nuser = \"Administrator\"\npassword = \"{PASSWORD}\"\n\n\
         [template.ws]\nproduct = \"Windows Server 2019 Datacenter\"\nedition = \"ServerDatacenter\"\n\
         version = \"10.0.17763\"\nubr = 5458\nmachine = \"amd64\"\nkbs = [\"KB5034127\"]\n\
         files = [{{ path = 'C:\\Windows\\System32\\ntoskrnl.exe', version = \"10.0.17763.5458\" }}]\n\n"
    );
    for i in 0..hosts {
        fleet.push_str(&format!(
            "[[host]]\nname = \"WS{i:05}\"\naddress = \"{}\"\ntemplate = \"ws\"\n",
            address(octet, i)
        ));
    }
    std::fs::write(dir.path().join("fleet.toml"), fleet)?;
    let model =
        winsim::Fleet::from_file(&dir.path().join("fleet.toml"), &dir.path().join("drives"))?;
    let servers = winsim::server::WinrmFleet::start(model.sim_hosts(), Default::default()).await?;
    let urls: Vec<&str> = servers
        .endpoints()
        .iter()
        .map(|e| e.http_url.as_str())
        .collect();
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(format!("{}\n", serde_json::json!({ "urls": urls })).as_bytes())
        .await?;
    stdout.flush().await?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim() == "requests" {
            stdout
                .write_all(format!("{}\n", servers.http_requests()).as_bytes())
                .await?;
            stdout.flush().await?;
        }
    }
    servers.shutdown().await;
    Ok(())
}

/// The parent's handle on the child fleet.
struct FleetChild {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl FleetChild {
    fn start(
        hosts: usize,
        octet: usize,
    ) -> Result<(FleetChild, Vec<String>), Box<dyn std::error::Error>> {
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(["--serve-fleet", "--hosts", &hosts.to_string()])
            .args(["--octet", &octet.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let input = child.stdin.take().ok_or("no stdin for the fleet")?;
        let mut output = std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        output.read_line(&mut line)?;
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| format!("the fleet child did not start ({e}): {line:?}"))?;
        let urls = v["urls"]
            .as_array()
            .ok_or("no urls from the fleet")?
            .iter()
            .filter_map(|u| u.as_str().map(str::to_string))
            .collect();
        Ok((
            FleetChild {
                child,
                input,
                output,
            },
            urls,
        ))
    }

    fn requests(&mut self) -> Result<u64, Box<dyn std::error::Error>> {
        self.input.write_all(b"requests\n")?;
        self.input.flush()?;
        let mut line = String::new();
        self.output.read_line(&mut line)?;
        Ok(line.trim().parse()?)
    }

    fn stop(mut self) -> Result<(), Box<dyn std::error::Error>> {
        drop(self.input);
        self.child.wait()?;
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hosts: usize = arg("--hosts", "1000").parse()?;
    let octet: usize = arg("--octet", "150").parse()?;
    if flag("--serve-fleet") {
        return serve_fleet(hosts, octet).await;
    }
    let parallel: usize = arg("--parallel", "64").parse()?;
    let python = arg("--python", "python3");
    let peer = arg("--peer", "integration/bench/scan_peer.py");
    let dir = tempfile::tempdir()?;
    raise_fd_limit();

    let started = Instant::now();
    let (mut fleet, urls) = FleetChild::start(hosts, octet)?;
    let fleet_start_s = started.elapsed().as_secs_f64();
    let port = urls
        .first()
        .and_then(|u| winsim::server::url_port(u))
        .unwrap_or(5985);
    let wan_rtt_ms: f64 = arg("--wan-rtt-ms", "0").parse()?;
    let (relay, octet, urls) = if wan_rtt_ms > 0.0 {
        let relay_octet: usize = arg("--relay-octet", &(octet + 50).to_string()).parse()?;
        let map = dir.path().join("relay.map");
        let lines: String = (0..hosts)
            .map(|i| {
                format!(
                    "{} {port} {} {port}\n",
                    address(relay_octet, i),
                    address(octet, i)
                )
            })
            .collect();
        std::fs::write(&map, lines)?;
        let relay = Relay::start(
            &python,
            &arg("--relay", "integration/bench/wan_relay.py"),
            wan_rtt_ms,
            &map,
        )?;
        let urls = (0..hosts)
            .map(|i| format!("http://{}:{port}/wsman", address(relay_octet, i)))
            .collect();
        (Some(relay), relay_octet, urls)
    } else {
        (None, octet, urls)
    };

    let (catalog, _) = hive::catalog::store::import_file(std::path::Path::new(
        "../shared/fixtures/catalogs/cvrf/2024-Mar.xml",
    ))?;
    let catalog = Arc::new(catalog);
    // `--kerberos SPN`: both clients log on with the ticket in KRB5CCNAME (integration/bench/kerberos.sh).
    let kerberos_spn = flag("--kerberos").then(|| arg("--kerberos", "HTTP/winsim.hive.test"));
    let mut inv = match &kerberos_spn {
        Some(spn) => format!(
            "[defaults]\ncredential = \"kerberos:ccache\"\n[group_defaults]\nspn = \"{spn}\"\n"
        ),
        None => String::from("[defaults]\ncredential = \"prompt\"\n"),
    };
    for i in 0..hosts {
        inv.push_str(&format!(
            "[[host]]\nname = \"WS{i:05}\"\naddress = \"{}\"\nport = {port}\n",
            address(octet, i)
        ));
    }
    let inv = Inventory::parse(&inv, std::path::Path::new("bench.toml"))?;
    let with: Vec<_> = inv
        .hosts
        .iter()
        .map(|h| (h.clone(), Ok(Secret::new(PASSWORD))))
        .collect();
    let options = ScanOptions {
        parallel,
        host_timeout: Duration::from_secs(300),
        files: FileSource::Probe,
        ..ScanOptions::default()
    };
    let rss_before = rss_kib("VmRSS:");
    let requests_before = fleet.requests()?;
    let t = Instant::now();
    let scans = scan_fleet(&with, catalog.clone(), options, &()).await;
    let hive_s = t.elapsed().as_secs_f64();
    let rss_peak = rss_kib("VmHWM:");
    // Sessions still closing their shells in the background are part of hive's traffic.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hive_requests = fleet.requests()? - requests_before;
    let ok = scans.iter().filter(|s| s.result.is_ok()).count();
    let mut result = serde_json::json!({
        "hosts": hosts, "parallel": parallel, "fleet_start_s": fleet_start_s, "wan_rtt_ms": wan_rtt_ms,
        "hive_s": hive_s, "hive_ok": ok,
        "hive_requests_per_host": hive_requests as f64 / hosts as f64,
        "rss_before_kib": rss_before, "rss_peak_kib": rss_peak,
        "per_in_flight_kib": (rss_peak.saturating_sub(rss_before)) as f64 / parallel.min(hosts) as f64,
    });

    if !flag("--no-peer") {
        // The peer: the same probe script, the same hosts, the same concurrency, from pywinrm.
        let probe = hive::scan::run::PreparedProbe::new(&catalog);
        let script_path = dir.path().join("probe.ps1");
        std::fs::write(&script_path, &probe.script)?;
        std::fs::write(dir.path().join("urls.txt"), urls.join("\n"))?;
        let before = fleet.requests()?;
        let out = tokio::process::Command::new(&python)
            .arg(&peer)
            .arg(dir.path().join("urls.txt"))
            .arg(&script_path)
            .arg(parallel.to_string())
            .env("BENCH_PASSWORD", PASSWORD)
            .env("BENCH_KERBEROS_SPN", kerberos_spn.as_deref().unwrap_or(""))
            .output()
            .await?;
        let peer_requests = fleet.requests()? - before;
        let peer_line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            return Err(format!("peer failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        let peer: serde_json::Value = serde_json::from_str(&peer_line)?;
        result["peer_s"] = peer["seconds"].clone();
        result["peer_ok"] = peer["ok"].clone();
        result["peer_requests_per_host"] = (peer_requests as f64 / hosts as f64).into();
    }
    println!("{result}");
    if let Some(relay) = relay {
        relay.stop()?;
    }
    fleet.stop()?;
    Ok(())
}

/// The WAN relay child (integration/bench/wan_relay.py); it relays until its stdin closes.
struct Relay {
    child: std::process::Child,
    input: std::process::ChildStdin,
}

impl Relay {
    fn start(
        python: &str,
        script: &str,
        rtt_ms: f64,
        map: &std::path::Path,
    ) -> Result<Relay, Box<dyn std::error::Error>> {
        let mut child = std::process::Command::new(python)
            .arg(script)
            .args(["--rtt-ms", &rtt_ms.to_string()])
            .arg("--map")
            .arg(map)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let input = child.stdin.take().ok_or("no stdin for the relay")?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().ok_or("no stdout for the relay")?)
            .read_line(&mut line)?;
        if !line.starts_with("ready") {
            return Err(format!("the WAN relay did not start: {line:?}").into());
        }
        Ok(Relay { child, input })
    }

    fn stop(mut self) -> Result<(), Box<dyn std::error::Error>> {
        drop(self.input);
        self.child.wait()?;
        Ok(())
    }
}

/// Thousands of hosts need thousands of sockets: raise this process's descriptor limit (children
/// inherit it), never the system's. Up to the kernel's per-process ceiling where the process may
/// raise its hard limit, else the soft limit up to the hard one.
fn raise_fd_limit() {
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<libc::rlim_t>().ok());
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if let Some(c) = ceiling.filter(|&c| c > lim.rlim_max) {
            let raised = libc::rlimit {
                rlim_cur: c,
                rlim_max: c,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return;
            }
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
