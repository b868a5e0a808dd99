//! One staged installer copy for integration/bench/smb.sh, the way a deploy stages it: hive's
//! WinRM + SMB target copies a file to a simulated Windows host whose C: drive is a folder of the
//! harness's real Samba share, while the host hashes it as it arrives (src/remote/follow.rs), and
//! prints the seconds from opening the target to the host's verified hash (connect, both logons,
//! the copy and the host's hash included, as the `smbclient put` it is compared with includes its
//! own connect and logon).
//!
//! The simulated host (winsim: WinRM and the follow-hash script) runs in this process and is
//! started before the clock starts, as a real host is up before a deploy reaches it.
//!
//! Prints the seconds, the bytes, the CPU seconds the whole machine was busy meanwhile (all
//! processes: hive, the simulated host's hash, smbd), which shows what a 2-core machine that is
//! both orchestrator and host can give, and the CPU seconds of this process alone meanwhile (hive's
//! client and the simulated host's hash; smbd is the one part outside).
//!
//! Usage: stage_bench SMB_HOST SMB_PORT SHARE SHARE_ROOT USER UID GID LOCAL
//! The password comes from HIVE_BENCH_SMB_PASSWORD (never the command line). UID and GID own the
//! staging folder on disk, so Samba (logged on as USER) may write there.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hive::inventory::{CredentialRef, Host, Secret, Transport};
use hive::remote::follow::Followed;
use hive::remote::{Connector as _, NetworkConnector, Timeouts};
use sha2::Digest as _;

/// The allocator the `hive` binary uses (src/main.rs), so the bench measures hive as shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REMOTE: &str = r"C:\Windows\Temp\hive\bench\installer.exe";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stage_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [smb_host, smb_port, share, root, user, uid, gid, local] = &args[..] else {
        return Err(
            "usage: stage_bench SMB_HOST SMB_PORT SHARE SHARE_ROOT USER UID GID LOCAL".into(),
        );
    };
    let password = std::env::var("HIVE_BENCH_SMB_PASSWORD")
        .map_err(|_| "HIVE_BENCH_SMB_PASSWORD is not set".to_string())?;
    let smb_port: u16 = smb_port
        .parse()
        .map_err(|_| format!("bad port {smb_port}"))?;
    let uid: u32 = uid.parse().map_err(|_| format!("bad uid {uid}"))?;
    let gid: u32 = gid.parse().map_err(|_| format!("bad gid {gid}"))?;
    let local = PathBuf::from(local);
    let want = sha256_of(&local).map_err(|e| format!("{}: {e}", local.display()))?;

    let sub = format!("stage-bench-{}", std::process::id());
    let drives = Path::new(root).join(&sub);
    let fleet_toml = "[[host]]\nname = \"BENCH\"\naddress = \"127.0.0.1\"\n\
                      product = \"Windows Server 2019 Datacenter\"\nversion = \"10.0.17763\"\n";
    let mut configs = winsim::fleet::parse(fleet_toml, Path::new("stage-bench.toml"))
        .map_err(|e| e.to_string())?;
    for c in configs.iter_mut() {
        c.winrm_port = 0;
        c.user = user.clone();
        c.password = winsim::fleet::Password::new(password.clone());
    }
    let model = winsim::Fleet::start(&configs, &drives).map_err(|e| e.to_string())?;
    let result = async {
        let servers = winsim::server::WinrmFleet::start(
            model.sim_hosts(),
            winsim::server::FleetOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let port = servers
            .endpoints()
            .iter()
            .find_map(|e| e.http_port())
            .ok_or("no WinRM endpoint")?;
        let staging = model
            .host("BENCH")
            .ok_or("no host")?
            .host_path(r"C:\Windows\Temp\hive\bench");
        own_path(&staging, &drives, uid, gid)?;
        let host = Host {
            name: "BENCH".into(),
            address: "127.0.0.1".into(),
            transport: Transport::WinrmHttp,
            port,
            smb_address: smb_host.clone(),
            smb_port,
            smb_share: share.clone(),
            smb_root: format!("{sub}\\BENCH"),
            sftp_root: String::new(),
            user: user.clone(),
            credential: CredentialRef::Env("HIVE_BENCH_SMB_PASSWORD".into()),
            groups: Default::default(),
            pin: None,
            spn: None,
            smb_credential: None,
            site: None,
        };
        let timeouts = Timeouts {
            connect: Duration::from_secs(5),
            operation: Duration::from_secs(60),
        };
        let cpu_before = machine_busy_secs();
        let own_before = own_cpu_secs();
        let started = Instant::now();
        let mut target = NetworkConnector::new(timeouts)
            .open(&host, &Secret::new(password.clone()))
            .map_err(|e| e.to_string())?;
        let put = target
            .put_file_host_hashed(&local, REMOTE, Duration::from_secs(600))
            .await
            .map_err(|e| e.to_string())?;
        let secs = started.elapsed().as_secs_f64();
        let cpu = machine_busy_secs() - cpu_before;
        let own = own_cpu_secs() - own_before;
        match put.host {
            Followed::Hashed { bytes, sha256 } if sha256 == want => {
                Ok(format!("{secs:.4} {bytes} {cpu:.2} {own:.2}"))
            }
            other => Err(format!("the host's hash is not the file's: {other:?}")),
        }
    }
    .await;
    let _ = std::fs::remove_dir_all(&drives);
    result
}

/// CPU seconds all cores spent outside idle and iowait since boot (/proc/stat; 0 where absent).
fn machine_busy_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let ticks: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    busy as f64 / 100.0
}

/// User + system CPU seconds of this process so far (/proc/self/stat; 0 where absent).
fn own_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces: state is the
    // first, utime the 12th, stime the 13th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// Creates `dir` and hands it and its parents below `top` to `uid:gid`.
fn own_path(dir: &Path, top: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut p = Some(dir);
    while let Some(d) = p {
        if !d.starts_with(top) {
            break;
        }
        std::os::unix::fs::chown(d, Some(uid), Some(gid))
            .map_err(|e| format!("{}: {e}", d.display()))?;
        p = d.parent();
    }
    Ok(())
}
