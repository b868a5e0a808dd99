//! hive's WinRM client logs on to the simulated fleet with Kerberos: tickets from the harness's
//! real MIT KDC (integration/services/kdc.sh), winsim accepting with the HTTP/ keytab. Over HTTP
//! every message is sealed (`HTTP-Kerberos-session-encrypted`), over HTTPS TLS protects it; either
//! way the AP-REQ rides on the first request, so logging on costs no round trip of its own.

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

const NTLM_PASSWORD: &str = "Krb-Compare-Passw0rd!";

fn kerberos(spn: Option<&str>) -> Credentials {
    Credentials::Kerberos(KerberosCredentials {
        source: TicketSource::Password {
            principal: format!(
                "{}@{}",
                env("HIVE_TEST_KDC_USER"),
                env("HIVE_TEST_KDC_REALM")
            ),
            password: env("HIVE_TEST_KDC_PASSWORD"),
        },
        spn: spn.map(str::to_string),
    })
}

struct Sim {
    _dir: tempfile::TempDir,
    _model: winsim::Fleet,
    servers: winsim::server::WinrmFleet,
    http_port: u16,
    https_port: u16,
    thumbprint: [u8; 32],
}

async fn start() -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = winsim::fleet::parse(
        "[[host]]\nname = \"KRB01\"\naddress = \"127.0.0.1\"\nversion = \"10.0.17763\"\nubr = 5576\nmachine = \"amd64\"\n",
        Path::new("krb-fleet.toml"),
    )
    .unwrap();
    configs[0].address = std::net::Ipv4Addr::LOCALHOST;
    configs[0].winrm_port = 0;
    configs[0].winrm_https_port = Some(0);
    configs[0].user = "Administrator".into();
    configs[0].password = winsim::fleet::Password::new(NTLM_PASSWORD);
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
    let thumbprint: [u8; 32] = Sha256::digest(&der).into();
    let servers = winsim::server::WinrmFleet::start(
        model.sim_hosts(),
        winsim::server::FleetOptions {
            tls: Some(identity),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let e = &servers.endpoints()[0];
    let http_port = e.http_port().expect("HTTP listener");
    let https_port = e
        .https_url
        .as_deref()
        .and_then(winsim::server::url_port)
        .expect("HTTPS listener");
    Sim {
        _dir: dir,
        _model: model,
        servers,
        http_port,
        https_port,
        thumbprint,
    }
}

async fn run_echo(sim: &Sim, tls: bool, creds: Credentials) -> hive_winrm::error::Result<String> {
    let endpoint = Endpoint {
        tls,
        host: "127.0.0.1".into(),
        port: if tls { sim.https_port } else { sim.http_port },
        path: "/wsman".into(),
    };
    let mut cfg = ClientConfig::new(endpoint, creds);
    cfg.trust = ServerTrust::Thumbprint(sim.thumbprint);
    cfg.operation_timeout = Duration::from_secs(10);
    let mut session = Session::new(cfg)?;
    let out = session
        .run_cmd("echo kerberos-ok", Some(Duration::from_secs(20)))
        .await?;
    assert_eq!(session.client().connections_opened, 1);
    session.close().await?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn kerberos_over_http_seals_and_costs_no_extra_round_trip() {
    let sim = start().await;
    let out = run_echo(&sim, false, kerberos(Some("HTTP/winsim.hive.test")))
        .await
        .expect("Kerberos over HTTP");
    assert!(out.contains("kerberos-ok"), "{out}");
    // Create, Command, Receive, Delete: the logon has no request of its own.
    let kerberos_requests = sim.servers.http_requests();
    assert_eq!(kerberos_requests, 4);
    // NTLM needs its NEGOTIATE/CHALLENGE leg first: one request more for the same work.
    let out = run_echo(
        &sim,
        false,
        Credentials::ntlm("Administrator", NTLM_PASSWORD),
    )
    .await
    .expect("NTLM over HTTP");
    assert!(out.contains("kerberos-ok"), "{out}");
    assert_eq!(sim.servers.http_requests() - kerberos_requests, 5);
}

#[tokio::test]
async fn kerberos_over_https() {
    let sim = start().await;
    let out = run_echo(&sim, true, kerberos(Some("HTTP/winsim.hive.test")))
        .await
        .expect("Kerberos over HTTPS");
    assert!(out.contains("kerberos-ok"), "{out}");
    assert_eq!(sim.servers.http_requests(), 4);
}

/// The default SPN is HTTP/<address>; with no such principal the logon fails before anything is
/// sent, and the message says to set `spn`. No NTLM is tried instead.
#[tokio::test]
async fn an_unknown_spn_fails_without_falling_back_to_ntlm() {
    let sim = start().await;
    let err = run_echo(&sim, false, kerberos(None))
        .await
        .expect_err("HTTP/127.0.0.1 is no principal");
    let text = err.to_string();
    assert!(
        text.contains("HTTP/127.0.0.1") && text.contains("spn"),
        "{text}"
    );
    assert_eq!(sim.servers.http_requests(), 0, "nothing sent, no NTLM");
}
