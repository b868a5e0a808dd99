//! One timed transfer for integration/bench/smb.sh: upload or download one file with hive-smb and
//! print the seconds it took (connect and logon included, as for the `smbclient` it is compared
//! with).
//!
//! Usage: smb_bench upload|upload-verified|download|hash HOST PORT SHARE USER LOCAL REMOTE
//! The password comes from HIVE_BENCH_SMB_PASSWORD (never the command line).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use hive_smb::{Credentials, SmbConfig, SmbShare};

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.parse().ok()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, host, port, share, user, local, remote] = &args[..] else {
        eprintln!(
            "usage: smb_bench upload|upload-verified|download|hash HOST PORT SHARE USER LOCAL REMOTE"
        );
        return ExitCode::from(2);
    };
    let Ok(password) = std::env::var("HIVE_BENCH_SMB_PASSWORD") else {
        eprintln!("HIVE_BENCH_SMB_PASSWORD is not set");
        return ExitCode::from(2);
    };
    let Ok(port) = port.parse::<u16>() else {
        eprintln!("bad port {port}");
        return ExitCode::from(2);
    };
    let defaults = SmbConfig::default();
    let config = SmbConfig {
        verify_by_reading_back: mode == "upload-verified",
        // Tuning knobs for experiments; the bench script uses the defaults.
        chunk_size: env_usize("HIVE_BENCH_SMB_CHUNK").unwrap_or(defaults.chunk_size),
        in_flight: env_usize("HIVE_BENCH_SMB_IN_FLIGHT").unwrap_or(defaults.in_flight),
        ..defaults
    };
    let creds = Credentials::password(user.as_str(), password);
    let local = PathBuf::from(local);
    let started = Instant::now();
    let outcome = async {
        let conn = SmbShare::connect(host, port, share, &creds, &config).await?;
        let bytes = match mode.as_str() {
            "upload" | "upload-verified" => conn.upload(&local, remote).await?.bytes,
            "hash" => conn.sha256(remote).await?.0,
            _ => conn.download(remote, &local).await?.bytes,
        };
        conn.disconnect().await?;
        Ok::<u64, hive_smb::SmbError>(bytes)
    }
    .await;
    match outcome {
        Ok(bytes) => {
            println!("{:.4} {bytes}", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("smb_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
