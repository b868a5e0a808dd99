//! Commands per second on one reused shell (used by integration/bench/winrm.sh).
//!
//! Usage: winrm_bench URL USER COUNT  (password from the WINRM_BENCH_PASSWORD environment variable,
//! so it never appears on a command line). Prints `<commands per second>`.

use std::time::Instant;

use hive_winrm::{ClientConfig, Credentials, Endpoint, Session};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        return Err("usage: winrm_bench URL USER COUNT (password in WINRM_BENCH_PASSWORD)".into());
    }
    let password = std::env::var("WINRM_BENCH_PASSWORD")?;
    let count: u32 = args[3].parse()?;
    let cfg = ClientConfig::new(
        Endpoint::parse(&args[1])?,
        Credentials::ntlm(&args[2], &password),
    );
    let mut session = Session::new(cfg)?;
    // Connecting, authenticating and opening the shell are inside the timed loop on purpose: a
    // real run pays them once per host, and they amortise over COUNT commands.
    let t0 = Instant::now();
    for _ in 0..count {
        let out = session.run_cmd("echo hi", None).await?;
        if out.stdout != b"hi\n" || out.exit_code != 0 {
            return Err(format!("unexpected output {:?}", out).into());
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    session.close().await?;
    println!("{:.2}", f64::from(count) / secs);
    Ok(())
}
