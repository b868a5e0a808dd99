//! The simulator's Kerberos acceptor proven by the unmodified pywinrm client (`transport =
//! "kerberos"`, pykerberos over MIT GSSAPI) with a ticket from the harness's real KDC
//! (integration/services/kdc.sh): over HTTP with `HTTP-Kerberos-session-encrypted` messages, and
//! over HTTPS.

mod server_common;

use std::sync::Arc;

use serde_json::json;
use server_common::kdc::kinit;
use server_common::{FakeHost, b64, run_driver};
use winsim::host::SimHost;
use winsim::server::{FleetOptions, WinrmFleet};

/// Runs two commands in one shell; returns the HTTP requests the host received.
async fn pywinrm_kerberos(https: bool) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let ccache = kinit(dir.path());
    let host = FakeHost::with_https("SIM-KRB");
    let hosts: Vec<Arc<dyn SimHost>> = vec![Arc::clone(&host) as Arc<dyn SimHost>];
    let fleet = WinrmFleet::start(hosts, FleetOptions::default())
        .await
        .unwrap();
    let e = &fleet.endpoints()[0];
    let endpoint = if https {
        e.https_url.clone().expect("an HTTPS listener")
    } else {
        e.http_url.clone()
    };
    let report = run_driver(
        "pywinrm_driver.py",
        json!({
            "endpoint": endpoint, "user": null, "password": null, "transport": "kerberos",
            "ccache": ccache, "hostname_override": "winsim.hive.test",
            "steps": [
                {"command": "cmd.exe", "args": ["/c", "echo", "hello over kerberos"]},
                {"command": "cmd.exe", "args": ["/c", "big", "200000"]},
            ]
        }),
    )
    .await;
    assert!(report["error"].is_null(), "pywinrm failed: {report}");
    let r = report["results"].as_array().unwrap();
    assert_eq!(b64(&r[0]["stdout"]), "hello over kerberos\r\n");
    assert_eq!(b64(&r[1]["stdout"]).len(), 200_000);
    let requests = fleet.http_requests();
    fleet.shutdown().await;
    requests
}

/// Over HTTP pywinrm first logs on with an empty-bodied request (to set up encryption), over
/// HTTPS its AP-REQ rides on the Create: the same work costs one request more over HTTP. (hive's
/// client needs no such request either way: tests/kerberos_winrm.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_kerberos_over_http_with_message_encryption_and_over_https() {
    let http = pywinrm_kerberos(false).await;
    let https = pywinrm_kerberos(true).await;
    assert_eq!(http, https + 1, "HTTP {http} requests, HTTPS {https}");
}
