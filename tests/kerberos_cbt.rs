//! hive's Kerberos over HTTPS carries the listener certificate's `tls-server-end-point` binding in
//! the authenticator's checksum, so a host with Extended Protection required
//! (`CbtHardeningLevel=Strict`, winsim's `cbt_hardening = "strict"`) lets it run commands. Tickets
//! come from the harness's real MIT KDC (integration/services/kdc.sh).

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use hive_winrm::client::{ClientConfig, Credentials, Endpoint};
use hive_winrm::kerberos::{KerberosCredentials, TicketSource};
use hive_winrm::shell::Session;
use hive_winrm::tls::ServerTrust;
use sha2::{Digest, Sha256};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this test through integration/test.sh (it starts the kdc service)")
    })
}

#[tokio::test]
async fn kerberos_over_https_logs_on_to_a_host_that_requires_channel_binding() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = winsim::fleet::parse(
        "[[host]]\nname = \"KCBT01\"\naddress = \"127.0.0.1\"\nversion = \"10.0.17763\"\n\
         machine = \"amd64\"\ncbt_hardening = \"strict\"\n",
        Path::new("kcbt-fleet.toml"),
    )
    .unwrap();
    configs[0].winrm_port = 0;
    configs[0].winrm_https_port = Some(0);
    let model = winsim::Fleet::start(&configs, &dir.path().join("drives")).unwrap();
    let identity =
        winsim::server::tls::TlsIdentity::self_signed(&["127.0.0.1".to_string()]).unwrap();
    let der: String = identity
        .cert_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .unwrap();
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
    let mut cfg = ClientConfig::new(
        Endpoint::parse(&url).unwrap(),
        Credentials::Kerberos(KerberosCredentials {
            source: TicketSource::Password {
                principal: format!(
                    "{}@{}",
                    env("HIVE_TEST_KDC_USER"),
                    env("HIVE_TEST_KDC_REALM")
                ),
                password: env("HIVE_TEST_KDC_PASSWORD"),
            },
            spn: Some("HTTP/winsim.hive.test".into()),
        }),
    );
    cfg.trust = ServerTrust::thumbprint(&hex::encode(Sha256::digest(&der))).unwrap();
    cfg.operation_timeout = Duration::from_secs(10);
    let mut session = Session::new(cfg).unwrap();
    let out = session
        .run_cmd("echo bound", Some(Duration::from_secs(20)))
        .await
        .expect("a Kerberos logon bound to the TLS channel");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "bound");
    session.close().await.unwrap();
    servers.shutdown().await;
}
