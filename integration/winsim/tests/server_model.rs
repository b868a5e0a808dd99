//! The real host model (winsim-model's `Fleet`) behind the WinRM face, driven by unmodified
//! pywinrm and pypsrp: `reg query`, `ipconfig`, `hostname`, an unknown program, and wire faults
//! and a reboot planned in the fleet file.

mod server_common;

use std::time::Duration;

use serde_json::json;
use server_common::{b64, run_driver};
use winsim::Fleet;
use winsim::server::{FleetOptions, WinrmFleet};

/// A loopback /24 of our own for this test process.
fn base(test: u32) -> String {
    let pid = std::process::id();
    format!("127.{}.{}", 200 + (pid % 50), ((pid / 50) * 2 + test) % 250)
}

fn fleet_toml(base: &str) -> String {
    format!(
        r#"
[defaults]
user = "Administrator"
password = "Model-Passw0rd!"

[[host]]
name = "W2K-SP1"
address = "{base}.10"
product = "Windows 2000 Server"
csd_version = "Service Pack 1"
version = "5.0.2195"
registry = [{{ key = 'HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300972', name = "Installed", type = "REG_DWORD", value = 1 }}]

[[host]]
name = "SRV2019"
address = "{base}.11"
product = "Windows Server 2019 Datacenter"
edition = "ServerDatacenter"
version = "10.0.17763"
ubr = 5206
reboot = {{ downtime_ms = 5000 }}

[[host]]
name = "FLAKY"
address = "{base}.12"
product = "Windows Server 2019 Datacenter"
version = "10.0.17763"
faults = {{ wire = [{{ kind = "soap-fault", op = "Command", nth = 1, code = 2150859174, text = "The WS-Management service cannot process the request: too many operations." }}, {{ kind = "reset", op = "Receive", nth = 2 }}] }}
"#
    )
}

async fn start(dir: &std::path::Path, test: u32) -> (Fleet, WinrmFleet) {
    let path = dir.join("fleet.toml");
    std::fs::write(&path, fleet_toml(&base(test))).unwrap();
    let model = Fleet::from_file(&path, &dir.join("drives")).unwrap();
    let servers = WinrmFleet::start(model.sim_hosts(), FleetOptions::default())
        .await
        .unwrap();
    (model, servers)
}

fn spec(url: &str, steps: serde_json::Value) -> serde_json::Value {
    json!({"endpoint": url, "user": "Administrator", "password": "Model-Passw0rd!", "transport": "ntlm", "steps": steps})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_and_pypsrp_read_the_model_through_the_winrm_face() {
    let dir = tempfile::tempdir().unwrap();
    let (_model, servers) = start(dir.path(), 0).await;
    let w2k = &servers.endpoints()[0].http_url;
    let report = run_driver(
        "pywinrm_driver.py",
        spec(
            w2k,
            json!([
                {"command": "reg", "args": ["query", r#""HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300972""#, "/v", "Installed"]},
                {"command": "hostname"},
                {"command": "ipconfig"},
                {"command": "cmd.exe", "args": ["/c", "frobnicate.exe"]},
                {"command": "reg", "args": ["query", r#""HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q999999""#]},
            ]),
        ),
    )
    .await;
    assert!(
        report["error"].is_null(),
        "pywinrm against the model failed: {report}"
    );
    let r = report["results"].as_array().unwrap();
    let reg = b64(&r[0]["stdout"]);
    assert!(
        reg.contains("Installed") && reg.contains("REG_DWORD") && reg.contains("0x1"),
        "{report}"
    );
    assert_eq!(r[0]["rc"], 0);
    assert_eq!(b64(&r[1]["stdout"]).trim(), "W2K-SP1");
    let ip = base(0) + ".10";
    assert!(
        b64(&r[2]["stdout"]).contains(&ip),
        "ipconfig shows the host's address"
    );
    assert_eq!(
        r[3]["rc"], 9009,
        "cmd.exe's exit code for a missing program"
    );
    assert!(b64(&r[3]["stderr"]).contains("is not recognized"));
    assert_eq!(r[4]["rc"], 1, "a missing key is exit code 1, as reg.exe");

    let (h, port) = {
        let a = servers.endpoints()[1]
            .http_url
            .trim_start_matches("http://")
            .trim_end_matches("/wsman")
            .to_string();
        let (h, p) = a.rsplit_once(':').unwrap();
        (h.to_string(), p.parse::<u16>().unwrap())
    };
    let report = run_driver(
        "pypsrp_driver.py",
        json!({
            "host": h, "port": port, "ssl": false, "auth": "ntlm",
            "user": "Administrator", "password": "Model-Passw0rd!",
            "steps": [
                {"command": "reg", "args": ["query", r#""HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion""#, "/v", "CurrentBuildNumber"]},
                {"command": "cmd.exe", "args": ["/c", "hostname"]},
            ]
        }),
    )
    .await;
    assert!(
        report["error"].is_null(),
        "pypsrp against the model failed: {report}"
    );
    let r = report["results"].as_array().unwrap();
    assert!(
        b64(&r[0]["stdout"]).contains("17763"),
        "{}",
        b64(&r[0]["stdout"])
    );
    assert_eq!(b64(&r[1]["stdout"]).trim(), "SRV2019");
    servers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_file_wire_faults_and_reboots_reach_real_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (model, servers) = start(dir.path(), 1).await;

    // FLAKY: the first Command is answered with the planned SOAP fault, which pywinrm surfaces
    // with its WS-Man code.
    let flaky = &servers.endpoints()[2].http_url;
    let report = run_driver(
        "pywinrm_driver.py",
        spec(flaky, json!([{"command": "hostname"}])),
    )
    .await;
    assert_eq!(
        report["error"]["wsman_fault_code"], 2_150_859_174u64,
        "{report}"
    );
    // Second attempt: Command passes, the second Receive of the plan resets the connection.
    let report = run_driver(
        "pywinrm_driver.py",
        spec(
            flaky,
            json!([{"command": "hostname"}, {"command": "hostname"}]),
        ),
    )
    .await;
    assert!(
        report["error"]["type"]
            .as_str()
            .unwrap_or_default()
            .contains("ConnectionError"),
        "{report}"
    );

    // SRV2019 reboots: during its downtime connections are refused, then it answers again.
    let srv = &servers.endpoints()[1].http_url;
    let report = run_driver(
        "pywinrm_driver.py",
        spec(
            srv,
            json!([{"command": "shutdown", "args": ["/r", "/t", "0"]}]),
        ),
    )
    .await;
    assert!(
        report["results"][0]["rc"] == 0 || !report["error"].is_null(),
        "{report}"
    );
    let host = model.host("SRV2019").unwrap();
    let mut saw_down = false;
    for _ in 0..40 {
        if !winsim::host::SimHost::accepting(host.as_ref()) {
            saw_down = true;
            let report = run_driver(
                "pywinrm_driver.py",
                spec(srv, json!([{"command": "hostname"}])),
            )
            .await;
            assert!(
                !report["error"].is_null(),
                "a rebooting host must not answer: {report}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_down, "the host never went down after shutdown /r");
    for _ in 0..200 {
        if winsim::host::SimHost::accepting(host.as_ref()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = run_driver(
        "pywinrm_driver.py",
        spec(srv, json!([{"command": "hostname"}])),
    )
    .await;
    assert!(report["error"].is_null(), "the host came back: {report}");
    assert_eq!(host.reboot_count(), 1);
    servers.shutdown().await;
}
