//! Extended Protection (channel binding) on the simulator's HTTPS listener, proven with the
//! unmodified pywinrm client (requests_ntlm + pyspnego send the `tls-server-end-point` binding of
//! the certificate they see): a host with `CbtHardeningLevel=Strict` accepts pywinrm's binding and
//! refuses a logon without one or with one for another certificate; the default (Relaxed) accepts
//! a logon without one but still refuses a wrong one, as Windows does.

mod server_common;

use std::sync::Arc;

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

async fn pywinrm_over_https(fleet: &WinrmFleet, binding: Option<&str>) -> serde_json::Value {
    let mut spec = json!({
        "endpoint": fleet.endpoints()[0].https_url, "user": USER, "password": PASSWORD,
        "transport": "ntlm",
        "steps": [{"command": "cmd.exe", "args": ["/c", "echo", "bound"]}]
    });
    if let Some(b) = binding {
        spec["channel_binding"] = json!(b);
    }
    run_driver("pywinrm_driver.py", spec).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_host_accepts_pywinrms_binding_and_refuses_none_or_a_wrong_one() {
    let host = FakeHost::with_https_strict("SIM-CBT-STRICT");
    let fleet = fleet_of(std::slice::from_ref(&host)).await;

    let report = pywinrm_over_https(&fleet, None).await;
    assert!(report["error"].is_null(), "pywinrm's own binding: {report}");
    assert_eq!(b64(&report["results"][0]["stdout"]), "bound\r\n");

    for binding in ["none", "wrong"] {
        let report = pywinrm_over_https(&fleet, Some(binding)).await;
        assert_eq!(
            report["error"]["type"], "InvalidCredentialsError",
            "{binding}: {report}"
        );
    }
    assert_eq!(
        host.runs.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the bound logon ran a command"
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaxed_host_accepts_no_binding_but_refuses_a_wrong_one() {
    let host = FakeHost::with_https("SIM-CBT-RELAXED");
    let fleet = fleet_of(std::slice::from_ref(&host)).await;
    let report = pywinrm_over_https(&fleet, Some("none")).await;
    assert!(report["error"].is_null(), "no binding, relaxed: {report}");
    let report = pywinrm_over_https(&fleet, Some("wrong")).await;
    assert_eq!(
        report["error"]["type"], "InvalidCredentialsError",
        "{report}"
    );
    fleet.shutdown().await;
}
