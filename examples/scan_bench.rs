//! Scan benchmark: N simulated Windows Server 2019 hosts (WinRM, NTLM with encryption) scanned by
//! hive, then by a pywinrm thread pool running the same probe at the same concurrency, against the
//! same fleet in the same run. Prints one JSON line. Driven by integration/bench/scan.sh.
//!
//! The simulated fleet runs in child processes (this same binary, `--serve-fleet`), so the memory
//! figure is hive's alone and the simulator's CPU is not charged to hive's runtime. A process may
//! hold only so many descriptors (20,000 here, a hard limit even root cannot raise in this
//! container), one per listening host plus the connections in flight, so a large fleet is split
//! into shards of at most `--shard-hosts` hosts, one child each, started together. The children
//! count the HTTP requests every host received, which gives round trips per host for both clients
//! as the server saw them. Their drives are written on first use ([`winsim::DriveSetup`]): a scan
//! only reads, so a 100,000-host fleet starts without touching the disk.
//!
//! With `--rounds K`, hive and pywinrm take turns K times on the same fleet (hive, pywinrm, hive,
//! pywinrm, ...), so a change in the machine's load hits both alike; the ratio reported is the
//! median of the K per-round ratios.
//!
//! Every host's verdicts are reduced to a digest (patch, status, evidence), counted per OS: the
//! bench scripts check that a large run gives every host the verdicts of the 1,000-host run.
//!
//! Usage: scan_bench --hosts N --parallel P --octet O --python PY --peer SCRIPT [--no-peer]
//!                   [--rounds K] [--shard-hosts S] [--kerberos SPN]
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

/// The allocator the `hive` binary uses (src/main.rs), so the bench measures hive as shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// Child mode: start hosts `first..first + hosts` of the fleet, print their URLs, then answer
/// `requests` with the HTTP request count until stdin closes.
async fn serve_fleet(
    first: usize,
    hosts: usize,
    octet: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut fleet = format!(
        "[defaults]\nuser = \"Administrator\"\npassword = \"{PASSWORD}\"\n\n\
         [template.ws]\nproduct = \"Windows Server 2019 Datacenter\"\nedition = \"ServerDatacenter\"\n\
         version = \"10.0.17763\"\nubr = 5458\nmachine = \"amd64\"\nkbs = [\"KB5034127\"]\n\
         files = [{{ path = 'C:\\Windows\\System32\\ntoskrnl.exe', version = \"10.0.17763.5458\" }}]\n\n"
    );
    for i in first..first + hosts {
        fleet.push_str(&format!(
            "[[host]]\nname = \"WS{i:05}\"\naddress = \"{}\"\ntemplate = \"ws\"\n",
            address(octet, i)
        ));
    }
    let configs = winsim::fleet::parse(&fleet, std::path::Path::new("scan_bench fleet"))?;
    let model = winsim::Fleet::start_with(
        &configs,
        &dir.path().join("drives"),
        winsim::DriveSetup::OnFirstUse,
    )?;
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

/// The parent's handle on one fleet child (one shard of the fleet).
struct FleetChild {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl FleetChild {
    fn spawn(
        first: usize,
        hosts: usize,
        octet: usize,
    ) -> Result<FleetChild, Box<dyn std::error::Error>> {
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(["--serve-fleet", "--first", &first.to_string()])
            .args(["--hosts", &hosts.to_string()])
            .args(["--octet", &octet.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let input = child.stdin.take().ok_or("no stdin for the fleet")?;
        let output = std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?);
        Ok(FleetChild {
            child,
            input,
            output,
        })
    }

    /// Waits for the child's URLs (it prints them once every listener is bound).
    fn urls(&mut self) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let mut line = String::new();
        self.output.read_line(&mut line)?;
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| format!("a fleet child did not start ({e}): {line:?}"))?;
        Ok(v["urls"]
            .as_array()
            .ok_or("no urls from the fleet")?
            .iter()
            .filter_map(|u| u.as_str().map(str::to_string))
            .collect())
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

/// The whole simulated fleet: its shards, each in its own process.
struct FleetShards(Vec<FleetChild>);

impl FleetShards {
    /// Starts `hosts` hosts in shards of at most `per_shard`, all at once, and waits until every
    /// listener is bound. Returns the URLs in host order.
    fn start(
        hosts: usize,
        octet: usize,
        per_shard: usize,
    ) -> Result<(FleetShards, Vec<String>), Box<dyn std::error::Error>> {
        let shards = hosts.div_ceil(per_shard.max(1)).max(1);
        let size = hosts.div_ceil(shards);
        let mut children = Vec::with_capacity(shards);
        for first in (0..hosts).step_by(size.max(1)) {
            children.push(FleetChild::spawn(first, size.min(hosts - first), octet)?);
        }
        let mut urls = Vec::with_capacity(hosts);
        for c in &mut children {
            urls.extend(c.urls()?);
        }
        Ok((FleetShards(children), urls))
    }

    fn requests(&mut self) -> Result<u64, Box<dyn std::error::Error>> {
        let mut sum = 0;
        for c in &mut self.0 {
            sum += c.requests()?;
        }
        Ok(sum)
    }

    fn stop(self) -> Result<(), Box<dyn std::error::Error>> {
        for c in self.0 {
            c.stop()?;
        }
        Ok(())
    }
}

/// Hosts one fleet process may hold: its descriptor limit, less the connections `parallel`
/// clients keep open and a margin for everything else a process opens.
fn hosts_per_process(parallel: usize) -> usize {
    let (soft, _) = fd_limits();
    (soft as usize).saturating_sub(parallel + 500).max(100)
}

/// Per host: the digest of its verdicts, counted per OS (`{"Windows Server 2019 Datacenter":
/// {"9f1c...": 1000}}`); a host that failed counts under `failed`.
fn verdict_digests(scans: &[hive::scan::HostScan]) -> serde_json::Value {
    use std::collections::BTreeMap;
    use std::hash::{Hash, Hasher};
    let mut by_os: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for s in scans {
        let (os, digest) = match &s.result {
            Ok(r) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                for v in &r.verdicts {
                    (&v.patch, &v.bulletins, &v.product, v.status, &v.evidence).hash(&mut h);
                }
                (r.facts.os_name.clone(), format!("{:016x}", h.finish()))
            }
            Err(_) => ("failed".to_string(), "failed".to_string()),
        };
        *by_os.entry(os).or_default().entry(digest).or_default() += 1;
    }
    serde_json::to_value(by_os).unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hosts: usize = arg("--hosts", "1000").parse()?;
    let octet: usize = arg("--octet", "150").parse()?;
    raise_fd_limit();
    if flag("--serve-fleet") {
        let first: usize = arg("--first", "0").parse()?;
        return serve_fleet(first, hosts, octet).await;
    }
    let parallel: usize = arg("--parallel", "64").parse()?;
    let rounds: usize = arg("--rounds", "1").parse::<usize>()?.max(1);
    let per_shard: usize =
        arg("--shard-hosts", &hosts_per_process(parallel).to_string()).parse()?;
    let python = arg("--python", "python3");
    let peer = arg("--peer", "integration/bench/scan_peer.py");
    let dir = tempfile::tempdir()?;

    let started = Instant::now();
    let (mut fleet, urls) = FleetShards::start(hosts, octet, per_shard)?;
    let fleet_start_s = started.elapsed().as_secs_f64();
    let fleet_processes = fleet.0.len();
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
    let with: Arc<[_]> = inv
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
    let probe = hive::scan::run::PreparedProbe::new(&catalog);
    let script_path = dir.path().join("probe.ps1");
    std::fs::write(&script_path, probe.script.script())?;
    std::fs::write(dir.path().join("urls.txt"), urls.join("\n"))?;
    let mut hive_runs = Vec::new();
    let mut peer_runs = Vec::new();
    let mut result = serde_json::json!({
        "hosts": hosts, "parallel": parallel, "fleet_start_s": fleet_start_s,
        "fleet_processes": fleet_processes, "fd_limit": fd_limits().0, "wan_rtt_ms": wan_rtt_ms,
        "rounds": rounds,
    });
    for round in 0..rounds {
        let requests_before = fleet.requests()?;
        let t = Instant::now();
        let scans = scan_fleet(with.clone(), catalog.clone(), options, Arc::new(())).await;
        let hive_s = t.elapsed().as_secs_f64();
        let rss_peak = rss_kib("VmHWM:");
        // Sessions still closing their shells in the background are part of hive's traffic.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let hive_requests = fleet.requests()? - requests_before;
        let ok = scans.iter().filter(|s| s.result.is_ok()).count();
        hive_runs.push(hive_s);
        if round == 0 {
            result["hive_ok"] = ok.into();
            result["hive_requests_per_host"] = (hive_requests as f64 / hosts as f64).into();
            result["rss_before_kib"] = rss_before.into();
            result["rss_peak_kib"] = rss_peak.into();
            result["per_in_flight_kib"] =
                ((rss_peak.saturating_sub(rss_before)) as f64 / parallel.min(hosts) as f64).into();
            result["verdicts"] = verdict_digests(&scans);
        } else {
            result["hive_ok"] = result["hive_ok"]
                .as_u64()
                .unwrap_or(0)
                .min(ok as u64)
                .into();
        }
        drop(scans);

        if flag("--no-peer") {
            continue;
        }
        // The peer: the same probe script, the same hosts, the same concurrency, from pywinrm.
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
        peer_runs.push(peer["seconds"].as_f64().unwrap_or(f64::NAN));
        let peer_ok = peer["ok"].as_u64().unwrap_or(0);
        result["peer_ok"] = match result["peer_ok"].as_u64() {
            Some(prev) => prev.min(peer_ok).into(),
            None => peer_ok.into(),
        };
        result["peer_requests_per_host"] = (peer_requests as f64 / hosts as f64).into();
    }
    result["hive_s"] = median(hive_runs.clone()).into();
    result["hive_runs"] = hive_runs.clone().into();
    if !peer_runs.is_empty() {
        let ratios = peer_runs
            .iter()
            .zip(&hive_runs)
            .map(|(p, h)| p / h)
            .collect();
        result["peer_s"] = median(peer_runs.clone()).into();
        result["peer_runs"] = peer_runs.into();
        result["ratio"] = median(ratios).into();
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
/// raise its hard limit (in this container it may not: the hard limit, 20,000, binds even root),
/// else the soft limit up to the hard one.
fn raise_fd_limit() {
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<libc::rlim_t>().ok());
    let (soft, hard) = fd_limits();
    if let Some(c) = ceiling.filter(|&c| c > hard)
        && set_fd_limits(c, c)
    {
        return;
    }
    if soft < hard {
        set_fd_limits(hard, hard);
    }
}

/// The descriptor limits (soft, hard) of this process.
fn fd_limits() -> (libc::rlim_t, libc::rlim_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (1024, 1024);
    }
    (lim.rlim_cur, lim.rlim_max)
}

fn set_fd_limits(soft: libc::rlim_t, hard: libc::rlim_t) -> bool {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct passed in.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 }
}
