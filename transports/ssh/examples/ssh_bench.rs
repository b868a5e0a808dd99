//! Measures what integration/bench/ssh.sh compares against OpenSSH: connect + authenticate + run
//! `true` (a fresh connection each time, as hive does per host), and SFTP upload throughput.
//! Reads the test server's HIVE_TEST_SSH_* variables; prints one figure per line.
//!
//! cargo run --release -p hive-ssh --example ssh_bench -- latency 7
//! cargo run --release -p hive-ssh --example ssh_bench -- upload LOCAL_FILE REMOTE_PATH 5 [CHUNK]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hive_ssh::{Auth, HostKeyPin, SshEndpoint, SshOptions, SshSession};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set: run through integration/bench.sh"))
}

fn target() -> Result<SshEndpoint, String> {
    let host = env("HIVE_TEST_SSH_HOST")?;
    let port = env("HIVE_TEST_SSH_PORT")?
        .parse()
        .map_err(|e| format!("HIVE_TEST_SSH_PORT: {e}"))?;
    let host_key = HostKeyPin::parse(&host, &env("HIVE_TEST_SSH_HOSTKEY_SHA256")?)
        .map_err(|e| e.to_string())?;
    Ok(SshEndpoint {
        host,
        port,
        host_key,
        user: env("HIVE_TEST_SSH_USER")?,
        auth: Auth::KeyFile {
            path: PathBuf::from(env("HIVE_TEST_SSH_KEY")?),
            passphrase: None,
        },
    })
}

async fn latency(runs: usize) -> Result<(), String> {
    let target = target()?;
    let options = SshOptions::default();
    for _ in 0..runs {
        let started = Instant::now();
        let ssh = SshSession::connect(&target, &options)
            .await
            .map_err(|e| e.to_string())?;
        let out = ssh
            .exec("true", Duration::from_secs(30))
            .await
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("`true` ended with {}", out.status));
        }
        ssh.disconnect().await.map_err(|e| e.to_string())?;
        println!("latency_ms {:.2}", started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(())
}

async fn upload(
    local: &Path,
    remote: &str,
    runs: usize,
    chunk: Option<usize>,
) -> Result<(), String> {
    let target = target()?;
    let mut options = SshOptions::default();
    if let Some(chunk) = chunk {
        options.sftp_chunk = chunk;
    }
    let ssh = SshSession::connect(&target, &options)
        .await
        .map_err(|e| e.to_string())?;
    for _ in 0..runs {
        let started = Instant::now();
        let sftp = ssh.sftp().await.map_err(|e| e.to_string())?;
        let bytes = sftp
            .upload(local, remote)
            .await
            .map_err(|e| e.to_string())?;
        sftp.close().await.map_err(|e| e.to_string())?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "upload_mib_s {:.1}",
            bytes as f64 / (1024.0 * 1024.0) / secs
        );
    }
    ssh.disconnect().await.map_err(|e| e.to_string())
}

// One thread, like the `ssh` it is compared with: a one-shot command gains nothing from a pool.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |i: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(5);
    let result = match args.first().map(String::as_str) {
        Some("latency") => latency(count(1)).await,
        Some("upload") if args.len() >= 3 => {
            upload(
                Path::new(&args[1]),
                &args[2],
                count(3),
                args.get(4).and_then(|s| s.parse().ok()),
            )
            .await
        }
        _ => Err(
            "usage: ssh_bench latency [RUNS] | upload LOCAL REMOTE [RUNS [CHUNK_BYTES]]".to_owned(),
        ),
    };
    if let Err(e) = result {
        eprintln!("ssh_bench: {e}");
        std::process::exit(1);
    }
}
