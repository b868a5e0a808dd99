//! Clock skew beyond Kerberos' limit (KRB_AP_ERR_SKEW), with the `hive` binary run under Debian's
//! `faketime` (libfaketime) ten minutes ahead of the simulated host and the KDC:
//! - with the service ticket already in the cache (got with `kvno` at the real time), the AP-REQ
//!   reaches the host, which refuses it; hive reads the host's clock from the reply's `Date`
//!   header and says the clocks differ, by how much, and to sync them;
//! - without it, the KDC refuses the ticket request and MIT's code says the clocks differ.
//!   Needs the harness (kdc) and the `faketime` package.

#[path = "../transports/winrm/tests/kdc/mod.rs"]
mod kdc;

use std::path::Path;
use std::process::{Command, Stdio};

const SPN: &str = "HTTP/winsim.hive.test";

fn scan_ten_minutes_ahead(dir: &Path, ccache: &Path, port: u16) -> String {
    let inventory = dir.join("inv.toml");
    std::fs::write(
        &inventory,
        format!(
            "[[host]]\nname = \"SKEW01\"\naddress = \"127.0.0.1\"\nport = {port}\n\
             credential = \"kerberos:ccache\"\nspn = \"{SPN}\"\n"
        ),
    )
    .unwrap();
    let catalog = dir.join("catalog.json");
    hive::catalog::store::save(&catalog, &Default::default()).unwrap();
    let out = Command::new("faketime")
        .args([
            "-f",
            "+10m",
            env!("CARGO_BIN_EXE_hive"),
            "scan",
            "--inventory",
        ])
        .arg(&inventory)
        .arg("--catalog")
        .arg(&catalog)
        .env("KRB5CCNAME", format!("FILE:{}", ccache.display()))
        .stdin(Stdio::null())
        .output()
        .expect("faketime runs (apt-get install faketime)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(!out.status.success(), "the logon must fail: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_ten_minutes_off_is_refused_saying_the_clocks_differ() {
    let kdc = kdc::Kdc::from_env();
    let dir = tempfile::tempdir().unwrap();
    let mut configs = winsim::fleet::parse(
        "[[host]]\nname = \"SKEW01\"\naddress = \"127.0.0.1\"\nversion = \"10.0.17763\"\nubr = 5576\nmachine = \"amd64\"\n",
        Path::new("skew-fleet.toml"),
    )
    .unwrap();
    configs[0].address = std::net::Ipv4Addr::LOCALHOST;
    configs[0].winrm_port = 0;
    let model = winsim::Fleet::start(&configs, &dir.path().join("drives")).unwrap();
    let servers = winsim::server::WinrmFleet::start(model.sim_hosts(), Default::default())
        .await
        .unwrap();
    let port = servers.endpoints()[0].http_port().expect("HTTP listener");

    // The KDC refuses a ticket request whose authenticator is ten minutes off.
    let ccache = kdc.kinit(dir.path());
    let text = scan_ten_minutes_ahead(dir.path(), &ccache, port);
    assert!(
        text.contains("clocks") && text.contains("sync") && text.contains(SPN),
        "{text}"
    );
    assert_eq!(servers.http_requests(), 0, "nothing sent to the host");

    // With the service ticket cached, the host itself refuses the authenticator.
    let name = format!("FILE:{}", ccache.display());
    let out = kdc.tool("kvno", &["-c", &name, SPN], "");
    assert!(
        out.status.success(),
        "kvno: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = scan_ten_minutes_ahead(dir.path(), &ccache, port);
    assert!(
        text.contains("clocks differ")
            && (text.contains("9 min") || text.contains("10 min"))
            && text.contains("ahead of")
            && text.contains("NTP"),
        "{text}"
    );
    assert!(!text.contains("NTLM"), "no NTLM fallback: {text}");
    assert_eq!(servers.http_requests(), 1, "one refused request");
}
