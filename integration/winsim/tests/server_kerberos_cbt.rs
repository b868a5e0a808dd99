//! Extended Protection for Kerberos on the simulator's HTTPS listener, proven with the unmodified
//! pywinrm client (its vendored requests_kerberos puts the `tls-server-end-point` binding of the
//! certificate it sees into the authenticator's checksum), tickets from the harness's real KDC:
//! a host with `CbtHardeningLevel=Strict` accepts pywinrm's binding and refuses a logon without
//! one or with one for another certificate; a Relaxed host accepts a logon without one.

mod server_common;

use std::sync::Arc;

use serde_json::json;
use server_common::kdc::kinit;
use server_common::{FakeHost, b64, run_driver};
use winsim::host::SimHost;
use winsim::server::{FleetOptions, WinrmFleet};

async fn pywinrm_kerberos(
    fleet: &WinrmFleet,
    ccache: &str,
    binding: Option<&str>,
) -> serde_json::Value {
    let mut spec = json!({
        "endpoint": fleet.endpoints()[0].https_url, "user": null, "password": null,
        "transport": "kerberos", "ccache": ccache, "hostname_override": "winsim.hive.test",
        "steps": [{"command": "cmd.exe", "args": ["/c", "echo", "bound"]}]
    });
    if let Some(b) = binding {
        spec["channel_binding"] = json!(b);
    }
    run_driver("pywinrm_driver.py", spec).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_host_accepts_pywinrms_kerberos_binding_and_refuses_none_or_a_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    let ccache = kinit(dir.path());
    let host = FakeHost::with_https_strict("SIM-KCBT-STRICT");
    let fleet = WinrmFleet::start(
        vec![Arc::clone(&host) as Arc<dyn SimHost>],
        FleetOptions::default(),
    )
    .await
    .unwrap();

    let report = pywinrm_kerberos(&fleet, &ccache, None).await;
    assert!(report["error"].is_null(), "pywinrm's own binding: {report}");
    assert_eq!(b64(&report["results"][0]["stdout"]), "bound\r\n");

    for binding in ["none", "wrong"] {
        let report = pywinrm_kerberos(&fleet, &ccache, Some(binding)).await;
        assert!(
            !report["error"].is_null() && report["results"].as_array().is_some_and(Vec::is_empty),
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
async fn relaxed_host_accepts_a_kerberos_logon_without_binding() {
    let dir = tempfile::tempdir().unwrap();
    let ccache = kinit(dir.path());
    let host = FakeHost::with_https("SIM-KCBT-RELAXED");
    let fleet = WinrmFleet::start(
        vec![Arc::clone(&host) as Arc<dyn SimHost>],
        FleetOptions::default(),
    )
    .await
    .unwrap();
    let report = pywinrm_kerberos(&fleet, &ccache, Some("none")).await;
    assert!(report["error"].is_null(), "no binding, relaxed: {report}");
    fleet.shutdown().await;
}
