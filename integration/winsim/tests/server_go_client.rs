//! The simulator proven by the Go WinRM library Packer and Terraform use (masterzen/winrm over
//! Azure/go-ntlmssp, Debian's golang-github-masterzen-winrm-dev), unmodified: its NTLM NEGOTIATE
//! (0xa0880001: UNICODE only, no REQUEST_TARGET, no key exchange) must get a CHALLENGE it accepts,
//! it must log on, run plain and quoted command lines, read output spanning several Receives and
//! see the right exit codes. The harness builds `integration/winrm_go` and names the binary in
//! HIVE_TEST_GO_WINRM (integration/services/goclient.sh).

mod server_common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use server_common::{FakeHost, PASSWORD, USER, b64, run_json_client};
use winsim::host::SimHost;
use winsim::server::{FleetOptions, WinrmFleet};

fn go_client() -> PathBuf {
    match std::env::var_os("HIVE_TEST_GO_WINRM") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "HIVE_TEST_GO_WINRM is not set: run these tests through integration/test.sh (its goclient \
             service builds integration/winrm_go), or set it to a built winrm-go binary"
        ),
    }
}

/// Run the Go client with one spec; returns its JSON report.
async fn run_go(spec: Value) -> Value {
    let mut cmd = tokio::process::Command::new(go_client());
    cmd.arg(spec.to_string());
    run_json_client(cmd, "winrm-go").await
}

fn host_port(url: &str) -> (String, u16) {
    let authority = url.split("://").nth(1).unwrap().trim_end_matches("/wsman");
    let (h, p) = authority.rsplit_once(':').unwrap();
    (h.to_string(), p.parse().unwrap())
}

/// NTLM over HTTPS: the Go library has no message encryption, so (as against Windows with
/// AllowUnencrypted=false) it talks to the HTTPS listener.
fn spec(https_url: &str, user: &str, password: &str, steps: Value) -> Value {
    let (host, port) = host_port(https_url);
    json!({"host": host, "port": port, "https": true, "insecure": true, "auth": "ntlm",
           "user": user, "password": password, "steps": steps})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_winrm_logs_on_with_ntlm_and_reads_long_output_and_exit_codes() {
    let host = FakeHost::with_https("SIM-GO");
    let hosts: Vec<Arc<dyn SimHost>> = vec![Arc::clone(&host) as Arc<dyn SimHost>];
    let fleet = WinrmFleet::start(hosts, FleetOptions::default())
        .await
        .unwrap();
    let url = fleet.endpoints()[0].https_url.clone().unwrap();
    let report = run_go(spec(
        &url,
        USER,
        PASSWORD,
        json!([
            {"command": "cmd.exe", "args": ["/c", "echo", "hello from winsim"]},
            {"command": "cmd.exe", "args": ["/c", "exit", "0x80240017"]},
            {"command": "cmd.exe", "args": ["/c", "notathing.exe"]},
            {"command": "cmd.exe", "args": ["/c", "big", "400000"]},
        ]),
    ))
    .await;
    assert!(report["error"].is_null(), "winrm-go failed: {report}");
    let r = report["results"].as_array().unwrap();
    assert_eq!(b64(&r[0]["stdout"]), "hello from winsim\r\n");
    assert_eq!(r[0]["rc"], 0);
    assert_eq!(r[1]["rc"], 2_149_842_967u64, "0x80240017 arrives whole");
    assert_eq!(b64(&r[1]["stderr"]), "failing on purpose\r\n");
    assert_eq!(r[2]["rc"], 1);
    assert!(b64(&r[2]["stderr"]).contains("'notathing.exe' is not recognized"));
    // 400 kB does not fit the Go client's 150 KiB envelope: several Receives, reassembled intact.
    let big = b64(&r[3]["stdout"]);
    assert_eq!(big.len(), 400_000);
    assert!(big.starts_with("abcdefghijklmnopqrstuvwxyzabc"));
    assert_eq!(fleet.hosts()[0].open_shells(), 0, "the shell was deleted");

    let wrong = run_go(spec(
        &url,
        USER,
        "not-the-password",
        json!([{"command": "cmd.exe", "args": ["/c", "echo", "x"]}]),
    ))
    .await;
    assert!(
        wrong["error"].as_str().is_some_and(|e| e.contains("401")),
        "a wrong password is refused: {wrong}"
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_winrm_runs_quoted_lines_as_cmd_c_does_on_the_real_model() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[defaults]
user = "Administrator"
password = "Go-Passw0rd!"

[[host]]
name = "SRV2022-GO"
address = "127.0.0.1"
winrm_port = 0
winrm_https_port = 0
product = "Windows Server 2022 Datacenter"
edition = "ServerDatacenter"
version = "10.0.20348"
ubr = 2655
"#;
    let configs = winsim::fleet::parse(toml, Path::new("go.toml")).unwrap();
    let model = winsim::Fleet::start(&configs, dir.path()).unwrap();
    let fleet = WinrmFleet::start(model.sim_hosts(), FleetOptions::default())
        .await
        .unwrap();
    let url = fleet.endpoints()[0].https_url.clone().unwrap();
    let build_query =
        r#"reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion" /v CurrentBuildNumber"#;
    let report = run_go(spec(
        &url,
        "Administrator",
        "Go-Passw0rd!",
        json!([
            {"command": build_query},
            // The Ruby library's shape: the whole line in one pair of quotes.
            {"command": format!("\"{build_query}\"")},
            {"command": "\"hostname\""},
            {"command": "\"\""},
            {"command": "\"hostname & exit 3\""},
            {"command": "\"tasklist /FO CSV /NH\""},
        ]),
    ))
    .await;
    assert!(report["error"].is_null(), "winrm-go failed: {report}");
    let r = report["results"].as_array().unwrap();
    let plain = b64(&r[0]["stdout"]);
    assert!(
        plain.contains("CurrentBuildNumber") && plain.contains("20348"),
        "{report}"
    );
    assert_eq!(r[0]["rc"], 0);
    assert_eq!(
        b64(&r[1]["stdout"]),
        plain,
        "the quoted line runs as the plain one"
    );
    assert_eq!(r[1]["rc"], 0);
    assert_eq!(b64(&r[2]["stdout"]), "SRV2022-GO\r\n");
    assert_eq!(r[3]["rc"], 0, "\"\" runs nothing and succeeds");
    assert_eq!(b64(&r[3]["stdout"]), "");
    assert_eq!(b64(&r[4]["stdout"]), "SRV2022-GO\r\n");
    assert_eq!(r[4]["rc"], 3);
    let tasks = b64(&r[5]["stdout"]);
    assert!(tasks.contains("\"tasklist.exe\","), "{tasks}");
    fleet.shutdown().await;
}
