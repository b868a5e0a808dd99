//! A host whose keytab holds an older key version than the KDC (the service's key was changed and
//! the keytab not exported again) refuses hive's ticket; hive's error says to check the keytab and
//! SPN, and nothing falls back to NTLM. One test in its own binary: winsim's acceptor reads its
//! keytab from KRB5_KTNAME, which this test points at the stale one.

#[path = "../transports/winrm/tests/kdc/mod.rs"]
mod kdc;

use std::path::Path;
use std::time::Duration;

use hive_winrm::client::{ClientConfig, Credentials, Endpoint};
use hive_winrm::kerberos::{KerberosCredentials, TicketSource};
use hive_winrm::shell::Session;

#[tokio::test]
async fn a_keytab_with_the_wrong_key_version_is_refused_with_what_to_fix() {
    let kdc = kdc::Kdc::from_env();
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.keytab");
    let spn = format!("HTTP/kvno-{}.hive.test", std::process::id());
    let out = kdc.kadmin(&format!(
        "addprinc -randkey {spn}\nktadd -k {} {spn}\ncpw -randkey {spn}\n",
        stale.display()
    ));
    assert!(
        out.status.success(),
        "kadmin: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SAFETY: the only test in this binary; set before any acceptor exists.
    unsafe { std::env::set_var("KRB5_KTNAME", format!("FILE:{}", stale.display())) };

    let mut configs = winsim::fleet::parse(
        "[[host]]\nname = \"KVNO01\"\naddress = \"127.0.0.1\"\nversion = \"10.0.17763\"\nubr = 5576\nmachine = \"amd64\"\n",
        Path::new("kvno-fleet.toml"),
    )
    .unwrap();
    configs[0].address = std::net::Ipv4Addr::LOCALHOST;
    configs[0].winrm_port = 0;
    let model = winsim::Fleet::start(&configs, &dir.path().join("drives")).unwrap();
    let servers = winsim::server::WinrmFleet::start(model.sim_hosts(), Default::default())
        .await
        .unwrap();
    let port = servers.endpoints()[0].http_port().expect("HTTP listener");

    let creds = Credentials::Kerberos(KerberosCredentials {
        source: TicketSource::Password {
            principal: kdc.principal(),
            password: kdc.password.clone(),
        },
        spn: Some(spn.clone()),
    });
    let endpoint = Endpoint {
        tls: false,
        host: "127.0.0.1".into(),
        port,
        path: "/wsman".into(),
    };
    let mut cfg = ClientConfig::new(endpoint, creds);
    cfg.operation_timeout = Duration::from_secs(10);
    let mut session = Session::new(cfg).unwrap();
    let err = session
        .run_cmd("echo never", Some(Duration::from_secs(20)))
        .await
        .expect_err("the stale keytab cannot read the ticket");
    let text = err.to_string();
    assert!(
        text.contains("refused the Kerberos ticket")
            && text.contains("keytab")
            && text.contains(&spn),
        "{text}"
    );
    assert!(!text.contains("NTLM"), "no NTLM fallback: {text}");
    assert_eq!(
        servers.http_requests(),
        1,
        "one refused request, no other logon tried"
    );
}
