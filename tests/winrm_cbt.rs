//! hive's NTLM over HTTPS carries the listener certificate's channel binding: a simulated host
//! with Extended Protection required (`cbt_hardening = "strict"`, Windows'
//! `CbtHardeningLevel=Strict`) lets hive run commands, and refuses a wrong password with a message
//! that names the channel binding among the causes to check.

use std::path::Path;

use hive_winrm::{ClientConfig, Credentials, Endpoint, ServerTrust, Session};
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_logs_on_to_a_host_that_requires_channel_binding() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = winsim::fleet::parse(
        "[[host]]\nname = \"CBT01\"\naddress = \"127.0.0.1\"\nversion = \"10.0.17763\"\n\
         machine = \"amd64\"\ncbt_hardening = \"strict\"\n",
        Path::new("cbt-fleet.toml"),
    )
    .unwrap();
    assert_eq!(
        configs[0].cbt_hardening,
        winsim::fleet::CbtHardening::Strict
    );
    configs[0].winrm_port = 0;
    configs[0].winrm_https_port = Some(0);
    let password = configs[0].password.expose().to_string();
    let user = configs[0].user.clone();
    let model = winsim::Fleet::start(&configs, &dir.path().join("drives")).unwrap();
    let identity =
        winsim::server::tls::TlsIdentity::self_signed(&["127.0.0.1".to_string()]).unwrap();
    let der: String = identity
        .cert_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, der).unwrap();
    let servers = winsim::server::WinrmFleet::start(
        model.sim_hosts(),
        winsim::server::FleetOptions {
            tls: Some(identity),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let url = servers.endpoints()[0].https_url.clone().unwrap();
    let session = |password: &str| {
        let mut cfg = ClientConfig::new(
            Endpoint::parse(&url).unwrap(),
            Credentials::ntlm(&user, password),
        );
        cfg.trust = ServerTrust::thumbprint(&hex::encode(Sha256::digest(&der))).unwrap();
        Session::new(cfg).unwrap()
    };

    let mut s = session(&password);
    let out = s.run_cmd("echo bound", None).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "bound");
    assert_eq!(out.exit_code, 0);

    let err = session("not-the-password")
        .run_cmd("echo x", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("channel binding") && err.contains("CbtHardeningLevel"),
        "{err}"
    );
    servers.shutdown().await;
}
