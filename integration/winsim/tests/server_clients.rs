//! The simulator's WinRM face proven by independent, unmodified clients: pywinrm (NTLM with
//! message encryption, and Basic over HTTPS) and pypsrp (WinRS over NTLM with encryption).

mod server_common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use server_common::{FakeHost, PASSWORD, USER, b64, run_driver};
use winsim::host::SimHost;
use winsim::server::{FleetOptions, WinrmFleet};

async fn fleet_of(hosts: &[Arc<FakeHost>]) -> WinrmFleet {
    let hosts: Vec<Arc<dyn SimHost>> = hosts
        .iter()
        .map(|h| Arc::clone(h) as Arc<dyn SimHost>)
        .collect();
    WinrmFleet::start(hosts, FleetOptions::default())
        .await
        .unwrap()
}

fn host_port(url: &str) -> (String, u16) {
    let authority = url.split("://").nth(1).unwrap().trim_end_matches("/wsman");
    let (h, p) = authority.rsplit_once(':').unwrap();
    (h.to_string(), p.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_ntlm_encrypted_runs_commands_with_u32_exit_codes() {
    let host = FakeHost::new("SIM-PYWINRM");
    let fleet = fleet_of(std::slice::from_ref(&host)).await;
    let report = run_driver(
        "pywinrm_driver.py",
        json!({
            "endpoint": fleet.endpoints()[0].http_url,
            "user": USER, "password": PASSWORD, "transport": "ntlm",
            "steps": [
                {"command": "cmd.exe", "args": ["/c", "echo", "hello from winsim"]},
                {"command": "cmd.exe", "args": ["/c", "exit", "0x80240017"]},
                {"command": "cmd.exe", "args": ["/c", "notathing.exe"]},
                {"command": "powershell.exe", "args": ["-"], "stdin": "Write-Host 'probe'\r\n"},
                {"command": "cmd.exe", "args": ["/c", "big", "400000"]},
            ]
        }),
    )
    .await;
    assert!(report["error"].is_null(), "pywinrm failed: {report}");
    let r = report["results"].as_array().unwrap();
    assert_eq!(b64(&r[0]["stdout"]), "hello from winsim\r\n");
    assert_eq!(r[0]["rc"], 0);
    // 0x80240017 (WU_E_NOT_APPLICABLE) must arrive whole: pywinrm shows it as 2149842967.
    assert_eq!(r[1]["rc"], 2_149_842_967u64);
    assert_eq!(b64(&r[1]["stdout"]), "before exit\r\n");
    assert_eq!(b64(&r[1]["stderr"]), "failing on purpose\r\n");
    assert_eq!(r[2]["rc"], 1);
    assert!(b64(&r[2]["stderr"]).contains("'notathing.exe' is not recognized"));
    assert_eq!(
        b64(&r[3]["stdout"]),
        "Write-Host 'probe'\r\n",
        "stdin sent with Send reaches the command"
    );
    // 400 kB of output does not fit one 150 KiB envelope: several Receives, reassembled intact.
    let big = b64(&r[4]["stdout"]);
    assert_eq!(big.len(), 400_000);
    assert!(big.starts_with("abcdefghijklmnopqrstuvwxyzabc"));
    assert_eq!(
        fleet.hosts()[0].open_shells(),
        0,
        "close_shell deleted the shell"
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_polls_through_operation_timeouts() {
    // A command longer than OperationTimeout: the server answers w:TimedOut (2150858793) and
    // pywinrm keeps polling, as it must against Windows.
    let host = FakeHost::new("SIM-SLOW");
    let fleet = fleet_of(std::slice::from_ref(&host)).await;
    let started = std::time::Instant::now();
    let report = run_driver(
        "pywinrm_driver.py",
        json!({
            "endpoint": fleet.endpoints()[0].http_url,
            "user": USER, "password": PASSWORD, "transport": "ntlm",
            "operation_timeout": 1, "read_timeout": 5,
            "steps": [{"command": "cmd.exe", "args": ["/c", "sleep", "2500"]}]
        }),
    )
    .await;
    assert!(report["error"].is_null(), "pywinrm failed: {report}");
    assert_eq!(b64(&report["results"][0]["stdout"]), "slept\r\n");
    assert!(started.elapsed() >= Duration::from_millis(2500));
    assert_eq!(
        host.runs.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "polling does not rerun the command"
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_wrong_password_is_refused() {
    let host = FakeHost::new("SIM-WRONGPW");
    let fleet = fleet_of(std::slice::from_ref(&host)).await;
    let report = run_driver(
        "pywinrm_driver.py",
        json!({
            "endpoint": fleet.endpoints()[0].http_url,
            "user": USER, "password": "not-the-password", "transport": "ntlm",
            "steps": [{"command": "cmd.exe", "args": ["/c", "echo", "x"]}]
        }),
    )
    .await;
    assert_eq!(
        report["error"]["type"], "InvalidCredentialsError",
        "{report}"
    );
    assert_eq!(host.runs.load(std::sync::atomic::Ordering::SeqCst), 0);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_basic_over_https_works_and_basic_over_http_is_refused() {
    let host = FakeHost::with_https("SIM-TLS");
    let fleet = fleet_of(std::slice::from_ref(&host)).await;
    let https = fleet.endpoints()[0].https_url.clone().unwrap();
    let report = run_driver(
        "pywinrm_driver.py",
        json!({
            "endpoint": https, "user": USER, "password": PASSWORD, "transport": "ssl",
            "steps": [{"command": "cmd.exe", "args": ["/c", "echo", "over tls"]}]
        }),
    )
    .await;
    assert!(
        report["error"].is_null(),
        "pywinrm over https failed: {report}"
    );
    assert_eq!(b64(&report["results"][0]["stdout"]), "over tls\r\n");

    // NTLM over TLS too (pywinrm sends its channel binding token there; Windows' default
    // CbtHardeningLevel=Relaxed accepts it).
    let report = run_driver(
        "pywinrm_driver.py",
        json!({
            "endpoint": fleet.endpoints()[0].https_url, "user": USER, "password": PASSWORD, "transport": "ntlm",
            "steps": [{"command": "cmd.exe", "args": ["/c", "echo", "ntlm over tls"]}]
        }),
    )
    .await;
    assert!(
        report["error"].is_null(),
        "pywinrm ntlm over https failed: {report}"
    );
    assert_eq!(b64(&report["results"][0]["stdout"]), "ntlm over tls\r\n");

    // Same credentials, Basic, plain HTTP: Windows (AllowUnencrypted=false) refuses.
    let report = run_driver(
        "pywinrm_driver.py",
        json!({
            "endpoint": fleet.endpoints()[0].http_url, "user": USER, "password": PASSWORD, "transport": "basic",
            "steps": [{"command": "cmd.exe", "args": ["/c", "echo", "x"]}]
        }),
    )
    .await;
    assert_eq!(
        report["error"]["type"], "InvalidCredentialsError",
        "{report}"
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pypsrp_winrs_ntlm_encrypted_runs_commands() {
    let host = FakeHost::new("SIM-PYPSRP");
    let fleet = fleet_of(std::slice::from_ref(&host)).await;
    let (h, port) = host_port(&fleet.endpoints()[0].http_url);
    let report = run_driver(
        "pypsrp_driver.py",
        json!({
            "host": h, "port": port, "ssl": false, "auth": "ntlm",
            "user": USER, "password": PASSWORD,
            "steps": [
                {"command": "cmd.exe", "args": ["/c", "echo", "hello pypsrp"]},
                {"command": "cmd.exe", "args": ["/c", "exit", "0x80240017"]},
                {"command": "powershell.exe", "args": ["-"], "stdin": "$PSVersionTable\r\n"},
            ]
        }),
    )
    .await;
    assert!(report["error"].is_null(), "pypsrp failed: {report}");
    let r = report["results"].as_array().unwrap();
    assert_eq!(b64(&r[0]["stdout"]), "hello pypsrp\r\n");
    assert_eq!(r[0]["rc"], 0);
    assert_eq!(r[1]["rc"], 2_149_842_967u64);
    assert_eq!(b64(&r[2]["stdout"]), "$PSVersionTable\r\n");
    assert_eq!(fleet.hosts()[0].open_shells(), 0);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pypsrp_basic_over_https() {
    let host = FakeHost::with_https("SIM-PYPSRP-TLS");
    let fleet = fleet_of(std::slice::from_ref(&host)).await;
    let (h, port) = host_port(fleet.endpoints()[0].https_url.as_deref().unwrap());
    let report = run_driver(
        "pypsrp_driver.py",
        json!({
            "host": h, "port": port, "ssl": true, "auth": "basic",
            "user": USER, "password": PASSWORD,
            "steps": [{"command": "cmd.exe", "args": ["/c", "echo", "tls pypsrp"]}]
        }),
    )
    .await;
    assert!(
        report["error"].is_null(),
        "pypsrp over https failed: {report}"
    );
    assert_eq!(b64(&report["results"][0]["stdout"]), "tls pypsrp\r\n");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pypsrp_negotiate_spnego_wrapped_ntlm_with_encryption() {
    // pypsrp's default auth: SPNEGO around NTLM (no Kerberos here), mechListMIC exchange, then
    // sealed messages on restarted RC4 streams, as against Windows.
    let host = FakeHost::new("SIM-SPNEGO");
    let fleet = fleet_of(std::slice::from_ref(&host)).await;
    let (h, port) = host_port(&fleet.endpoints()[0].http_url);
    let report = run_driver(
        "pypsrp_driver.py",
        json!({
            "host": h, "port": port, "ssl": false, "auth": "negotiate",
            "user": USER, "password": PASSWORD,
            "steps": [
                {"command": "cmd.exe", "args": ["/c", "echo", "via spnego"]},
                {"command": "cmd.exe", "args": ["/c", "exit", "0x80240017"]},
            ]
        }),
    )
    .await;
    assert!(
        report["error"].is_null(),
        "pypsrp negotiate failed: {report}"
    );
    let r = report["results"].as_array().unwrap();
    assert_eq!(b64(&r[0]["stdout"]), "via spnego\r\n");
    assert_eq!(r[1]["rc"], 2_149_842_967u64);

    let report = run_driver(
        "pypsrp_driver.py",
        json!({
            "host": h, "port": port, "ssl": false, "auth": "negotiate",
            "user": USER, "password": "wrong",
            "steps": [{"command": "cmd.exe", "args": ["/c", "echo", "x"]}]
        }),
    )
    .await;
    assert_eq!(report["error"]["type"], "AuthenticationError", "{report}");
    fleet.shutdown().await;
}
