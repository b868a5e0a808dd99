//! Start N simulated hosts' WinRM listeners in one process and report how long that took and
//! what it costs in memory, then prove every listener answers (each gets an unauthenticated POST
//! and must answer 401 Negotiate, as Windows does). One JSON line on stdout.
//!
//! Usage: winrm_fleet_bench [--hosts N] [--octet B] [--serve-secs S]
//!   hosts bind 127.B.x.y:5985 (B defaults to 60); --serve-secs keeps the fleet up for a client.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use winsim::host::{BoxFuture, CommandOutcome, CommandRequest, SimHost, WireFault, WsmanOp};
use winsim::server::{FleetOptions, WinrmFleet};

/// The smallest believable host: `echo` answers, everything else is "not recognized".
struct BenchHost {
    name: String,
    addr: SocketAddr,
}

impl SimHost for BenchHost {
    fn name(&self) -> &str {
        &self.name
    }
    fn winrm_http_addr(&self) -> SocketAddr {
        self.addr
    }
    fn winrm_https_addr(&self) -> Option<SocketAddr> {
        None
    }
    fn account(&self) -> (&str, &str) {
        ("Administrator", "Bench-Passw0rd!")
    }
    fn accepting(&self) -> bool {
        true
    }
    fn wire_fault(&self, _op: WsmanOp) -> Option<WireFault> {
        None
    }
    fn run(&self, request: CommandRequest) -> BoxFuture<'_, CommandOutcome> {
        Box::pin(async move {
            let line = request.arguments.join(" ");
            match line.strip_prefix("/c echo ") {
                Some(text) => CommandOutcome {
                    stdout: format!("{text}\r\n").into_bytes(),
                    ..Default::default()
                },
                None => CommandOutcome {
                    stderr: b"'x' is not recognized as an internal or external command,\r\n"
                        .to_vec(),
                    exit_code: 1,
                    ..Default::default()
                },
            }
        })
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// POST /wsman without credentials; Windows (and winsim) answers 401 with `Negotiate`.
async fn probe(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return false;
    };
    let req = format!(
        "POST /wsman HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    text.starts_with("HTTP/1.1 401") && text.contains("Negotiate")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = arg("--hosts", 1000) as usize;
    let octet = arg("--octet", 60) as u8;
    let serve = arg("--serve-secs", 0);
    let hosts: Vec<Arc<dyn SimHost>> = (0..n)
        .map(|i| {
            let ip = Ipv4Addr::new(127, octet, (i / 250) as u8, (i % 250) as u8 + 1);
            Arc::new(BenchHost {
                name: format!("SIM{i:05}"),
                addr: SocketAddr::new(IpAddr::V4(ip), 5985),
            }) as Arc<dyn SimHost>
        })
        .collect();
    let rss_before = rss_mib();
    let t = Instant::now();
    let fleet = match WinrmFleet::start(hosts, FleetOptions::default()).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("winrm_fleet_bench: {e}");
            std::process::exit(1);
        }
    };
    let start_ms = t.elapsed().as_secs_f64() * 1000.0;
    let rss_started = rss_mib();

    let addrs: Vec<SocketAddr> = fleet
        .endpoints()
        .iter()
        .filter_map(|e| {
            e.http_url
                .trim_start_matches("http://")
                .trim_end_matches("/wsman")
                .parse()
                .ok()
        })
        .collect();
    let t = Instant::now();
    let mut answered = 0usize;
    for batch in addrs.chunks(64) {
        let probes: Vec<_> = batch.iter().map(|a| tokio::spawn(probe(*a))).collect();
        for p in probes {
            if p.await.unwrap_or(false) {
                answered += 1;
            }
        }
    }
    let sweep_ms = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{{\"hosts\":{n},\"start_ms\":{start_ms:.1},\"rss_before_mib\":{rss_before:.1},\"rss_started_mib\":{rss_started:.1},\"sweep_ms\":{sweep_ms:.1},\"answered_401\":{answered},\"rss_after_sweep_mib\":{:.1}}}",
        rss_mib()
    );
    if serve > 0 {
        tokio::time::sleep(Duration::from_secs(serve)).await;
    }
    fleet.shutdown().await;
    if answered != n {
        std::process::exit(2);
    }
}
