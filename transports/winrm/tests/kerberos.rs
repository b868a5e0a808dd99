//! Kerberos against the harness's real MIT KDC (integration/services/kdc.sh).

mod common;
mod kdc;

use kdc::Kdc;

/// The harness KDC issues the admin a TGT and a service ticket for a simulated host's HTTP/ SPN
/// whose key version matches the keytab the acceptors use.
#[test]
fn kinit_and_service_ticket_against_the_harness_kdc() {
    let kdc = Kdc::from_env();
    let dir = tempfile::tempdir().unwrap();
    let ccache = kdc.kinit(dir.path());
    let name = format!("FILE:{}", ccache.display());

    let list = kdc.tool("klist", &["-c", &name], "");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "klist: {}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(
        text.contains(&format!("Default principal: {}", kdc.principal())),
        "{text}"
    );
    assert!(
        text.contains(&format!("krbtgt/{0}@{0}", kdc.realm)),
        "{text}"
    );

    let spn = format!("HTTP/winsim.hive.test@{}", kdc.realm);
    let kvno = kdc.tool("kvno", &["-c", &name, &spn], "");
    let got = String::from_utf8_lossy(&kvno.stdout);
    assert!(
        kvno.status.success(),
        "kvno: {}",
        String::from_utf8_lossy(&kvno.stderr)
    );
    let keytab = kdc.tool("klist", &["-k", &kdc.keytab.display().to_string()], "");
    let table = String::from_utf8_lossy(&keytab.stdout);
    let version = got.rsplit("kvno = ").next().unwrap().trim();
    assert!(
        table
            .lines()
            .any(|l| l.contains(&spn) && l.split_whitespace().next() == Some(version)),
        "ticket kvno {version} not in keytab:\n{table}"
    );

    // A wrong password is the KDC's refusal, not a hang or a silent success.
    let bad = kdc.tool(
        "kinit",
        &["-c", &name, &kdc.principal()],
        "not-the-password\n",
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Password incorrect"));
}

/// hive's initiator gets a ticket with the password and its single AP-REQ completes MIT's
/// acceptor (keyed from the harness keytab, KRB5_KTNAME); messages sealed on either side open on
/// the other, and a tampered one is refused.
#[test]
fn ap_req_completes_mit_acceptor_and_messages_seal_both_ways() {
    use hive_winrm::kerberos::{self, KerberosCredentials, TicketSource};
    use libgssapi::context::{SecurityContext, ServerCtx};

    let kdc = Kdc::from_env();
    let creds = KerberosCredentials {
        source: TicketSource::Password {
            principal: kdc.principal(),
            password: kdc.password.clone(),
        },
        spn: None,
    };
    let spn = creds.spn_for("winsim.hive.test");
    let (mut client, token) = kerberos::initiate(&creds, &spn, None).expect("AP-REQ");

    let mut server = ServerCtx::new(None);
    let reply = server
        .step(&token, None)
        .expect("MIT acceptor takes hive's AP-REQ");
    assert!(server.is_complete(), "one token must complete the context");
    assert!(reply.is_none(), "no mutual authentication asked: no AP-REP");
    assert_eq!(server.source_name().unwrap().to_string(), kdc.principal());

    use hive_winrm::framing::Sealing as _;
    let soap = b"<s:Envelope>work</s:Envelope>";
    let (header, cipher) = client.seal_message(soap).unwrap();
    assert_ne!(&cipher[..], &soap[..], "sealed, not signed only");
    assert_eq!(
        kerberos::unseal(&mut server, &header, &cipher).unwrap(),
        soap
    );
    let (h, c) = kerberos::seal(&mut server, b"<ok/>").unwrap();
    assert_eq!(client.unseal_message(&h, &c).unwrap(), b"<ok/>");

    let (h, mut c) = client.seal_message(soap).unwrap();
    c[0] ^= 1;
    assert!(kerberos::unseal(&mut server, &h, &c).is_err());
}

/// An SPN the KDC does not know fails before anything is sent, saying what to fix.
#[test]
fn unknown_spn_names_the_fix() {
    use hive_winrm::kerberos::{self, KerberosCredentials, TicketSource};
    let kdc = Kdc::from_env();
    let creds = KerberosCredentials {
        source: TicketSource::Password {
            principal: kdc.principal(),
            password: kdc.password.clone(),
        },
        spn: Some("HTTP/nowhere.hive.test".into()),
    };
    let err =
        kerberos::initiate(&creds, &creds.spn_for("127.0.0.1"), None).expect_err("no such SPN");
    let text = err.to_string();
    assert!(text.contains("set `spn`"), "{text}");
}

/// An independent acceptor takes hive's Kerberos logon: pyspnego with python-gssapi in
/// integration/winrm_peer/server.py, keyed from the harness keytab, with MS-WSMV message
/// encryption over HTTP (its own framing code, pyspnego's `wrap_winrm`).
#[tokio::test]
async fn pyspnego_acceptor_takes_hives_kerberos_over_http() {
    use hive_winrm::client::{ClientConfig, Credentials, Endpoint};
    use hive_winrm::kerberos::{KerberosCredentials, TicketSource};
    use hive_winrm::shell::Session;

    let kdc = Kdc::from_env();
    let peer = common::Peer::start(&[]);
    let creds = Credentials::Kerberos(KerberosCredentials {
        source: TicketSource::Password {
            principal: kdc.principal(),
            password: kdc.password.clone(),
        },
        spn: Some("HTTP/winsim.hive.test".into()),
    });
    let endpoint = Endpoint {
        tls: false,
        host: "127.0.0.1".into(),
        port: peer.port,
        path: "/wsman".into(),
    };
    let mut session = Session::new(ClientConfig::new(endpoint, creds)).unwrap();
    let out = session
        .run_cmd("echo sealed-by-kerberos", None)
        .await
        .expect("pyspnego accepts hive's AP-REQ and sealed messages");
    assert_eq!(out.exit_code, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("sealed-by-kerberos"));
    session.close().await.unwrap();
}

/// A user the KDC does not know, and a realm no KDC serves: refused before any request, each
/// saying what to check.
#[test]
fn unknown_principal_and_wrong_realm_name_the_fix() {
    use hive_winrm::kerberos::{self, KerberosCredentials, TicketSource};
    let kdc = Kdc::from_env();
    let with = |principal: String| KerberosCredentials {
        source: TicketSource::Password {
            principal,
            password: kdc.password.clone(),
        },
        spn: Some("HTTP/winsim.hive.test".into()),
    };
    let unknown = with(format!("nobody@{}", kdc.realm));
    let text = kerberos::initiate(&unknown, "HTTP/winsim.hive.test", None)
        .expect_err("no such user")
        .to_string();
    assert!(text.contains("knows no such user"), "{text}");
    let realm = with(format!("{}@NOWHERE.TEST", kdc.user));
    let text = kerberos::initiate(&realm, "HTTP/winsim.hive.test", None)
        .expect_err("no such realm")
        .to_string();
    assert!(text.contains("realm"), "{text}");
}
