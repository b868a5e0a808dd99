//! Certificate logons on the simulator's HTTPS listener, driven by the unmodified pywinrm client
//! (`transport="certificate"`: the certificate in the TLS handshake, the `secprofile/https/mutual`
//! Authorization): a certificate the host's mapping table maps runs commands; one it does not map
//! gets 401 (pywinrm's InvalidCredentialsError), as Windows answers; one from a CA the table does
//! not name fails the TLS handshake. The CA and certificates are made here, per run.

mod server_common;

use std::path::Path;

use serde_json::json;
use server_common::{b64, run_driver};
use winsim::server::client_ca::ClientCa;
use winsim::server::{FleetOptions, WinrmFleet};

struct Lab {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    ca: ClientCa,
    servers: WinrmFleet,
    _model: winsim::Fleet,
}

/// One host whose mapping table maps `admin@corp.example`, issued by this run's CA, to its account.
async fn lab() -> Lab {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let ca = ClientCa::new("Hive Test Client CA").unwrap();
    let ca_path = ca.write_cert(&dir, "ca.pem").unwrap();
    let fleet = format!(
        "[[host]]\nname = \"CERT01\"\naddress = \"127.0.0.1\"\nversion = \"10.0.17763\"\n\
         machine = \"amd64\"\nclient_certificates = [{{ issuer = \"{}\", subject = \
         \"admin@corp.example\", user = \"Administrator\" }}]\n",
        ca_path.display()
    );
    let mut configs = winsim::fleet::parse(&fleet, Path::new("cert-fleet.toml")).unwrap();
    configs[0].winrm_port = 0;
    configs[0].winrm_https_port = Some(0);
    let model = winsim::Fleet::start(&configs, &dir.join("drives")).unwrap();
    let servers = WinrmFleet::start(model.sim_hosts(), FleetOptions::default())
        .await
        .unwrap();
    Lab {
        _dir: tmp,
        dir,
        ca,
        servers,
        _model: model,
    }
}

async fn pywinrm_with(lab: &Lab, issuer: &ClientCa, upn: &str, stem: &str) -> serde_json::Value {
    let cert = issuer.issue("hive admin", Some(upn)).unwrap();
    let (cert_pem, key_pem) = cert.write(&lab.dir, stem).unwrap();
    run_driver(
        "pywinrm_driver.py",
        json!({
            "endpoint": lab.servers.endpoints()[0].https_url,
            "transport": "certificate",
            "cert_pem": cert_pem, "cert_key_pem": key_pem,
            "steps": [{"command": "cmd.exe", "args": ["/c", "echo", "mapped"]}]
        }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_logs_on_with_a_mapped_certificate_only() {
    let lab = lab().await;

    let report = pywinrm_with(&lab, &lab.ca, "admin@corp.example", "mapped").await;
    assert!(report["error"].is_null(), "mapped certificate: {report}");
    assert_eq!(b64(&report["results"][0]["stdout"]), "mapped\r\n");

    let report = pywinrm_with(&lab, &lab.ca, "someone@corp.example", "unmapped").await;
    assert_eq!(
        report["error"]["type"], "InvalidCredentialsError",
        "unmapped certificate: {report}"
    );

    let stranger = ClientCa::new("Some Other CA").unwrap();
    let report = pywinrm_with(&lab, &stranger, "admin@corp.example", "untrusted").await;
    assert!(
        report["error"]["message"]
            .as_str()
            .is_some_and(|m| m.to_ascii_lowercase().contains("ssl")
                || m.to_ascii_lowercase().contains("certificate")
                || m.to_ascii_lowercase().contains("connection")),
        "a certificate from another CA fails the handshake: {report}"
    );
    assert!(report["results"].as_array().is_some_and(Vec::is_empty));
    lab.servers.shutdown().await;
}

#[tokio::test]
async fn a_mapping_to_another_account_or_a_missing_issuer_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = ClientCa::new("CA").unwrap();
    let ca_path = ca.write_cert(tmp.path(), "ca.pem").unwrap();
    for (issuer, user, expect) in [
        (
            ca_path.clone(),
            "Guest",
            "host's account is `Administrator`",
        ),
        (
            tmp.path().join("missing.pem"),
            "Administrator",
            "missing.pem",
        ),
    ] {
        let fleet = format!(
            "[[host]]\nname = \"CERT02\"\naddress = \"127.0.0.1\"\nclient_certificates = \
             [{{ issuer = \"{}\", subject = \"*\", user = \"{user}\" }}]\n",
            issuer.display()
        );
        let mut configs = winsim::fleet::parse(&fleet, Path::new("f.toml")).unwrap();
        configs[0].winrm_port = 0;
        configs[0].winrm_https_port = Some(0);
        let model = winsim::Fleet::start(&configs, &tmp.path().join("d")).unwrap();
        let err = WinrmFleet::start(model.sim_hosts(), FleetOptions::default())
            .await
            .err()
            .expect("the fleet refuses the mapping")
            .to_string();
        assert!(err.contains("CERT02") && err.contains(expect), "{err}");
    }
}
