//! HTTPS listeners: certificate verification on by default, SHA-256 thumbprint pinning for
//! self-signed listeners, Basic / NTLM / client-certificate authentication over TLS.

mod common;

use common::{PASSWORD, Peer, USER, write};
use hive_winrm::tls::cert_thumbprint;
use hive_winrm::{
    ClientCertificate, ClientConfig, Credentials, Endpoint, Error, ServerTrust, Session,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

struct TlsPeer {
    peer: Peer,
    thumbprint: [u8; 32],
}

/// A server with a fresh self-signed certificate for 127.0.0.1, optionally accepting client
/// certificates from `client_ca_pem`.
fn tls_peer(client_ca_pem: Option<&str>) -> TlsPeer {
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    write(&cert, &ck.cert.pem());
    write(&key, &ck.signing_key.serialize_pem());
    let mut args = vec![
        "--tls-cert".to_string(),
        cert.display().to_string(),
        "--tls-key".to_string(),
        key.display().to_string(),
    ];
    if let Some(ca) = client_ca_pem {
        let p = dir.path().join("client-ca.pem");
        write(&p, ca);
        args.push("--client-ca".into());
        args.push(p.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TlsPeer {
        thumbprint: cert_thumbprint(ck.cert.der()),
        peer: Peer::start_in(dir, &args),
    }
}

fn config(p: &TlsPeer, creds: Credentials, trust: ServerTrust) -> ClientConfig {
    let ep = Endpoint::parse(&format!("https://127.0.0.1:{}/wsman", p.peer.port)).unwrap();
    let mut cfg = ClientConfig::new(ep, creds);
    cfg.trust = trust;
    cfg
}

fn basic(password: &str) -> Credentials {
    Credentials::Basic {
        user: USER.into(),
        password: password.into(),
    }
}

#[tokio::test]
async fn self_signed_certificate_is_refused_by_default() {
    let p = tls_peer(None);
    let mut s = Session::new(config(&p, basic(PASSWORD), ServerTrust::default())).unwrap();
    let err = s.run_cmd("echo hi", None).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn right_pin_is_accepted_and_wrong_pin_refused() {
    let p = tls_peer(None);
    let pin = ServerTrust::thumbprint(&hex::encode(p.thumbprint)).unwrap();
    let mut s = Session::new(config(&p, basic(PASSWORD), pin)).unwrap();
    let o = s
        .run_cmd("printf '%s\\n' \"$WINRM_PEER_USER\"", None)
        .await
        .unwrap();
    assert_eq!(o.stdout_text(), format!("{USER}\n"));
    s.close().await.unwrap();

    let mut wrong = p.thumbprint;
    wrong[0] ^= 0xff;
    let mut s = Session::new(config(&p, basic(PASSWORD), ServerTrust::Thumbprint(wrong))).unwrap();
    let err = s.run_cmd("echo hi", None).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(
        err.to_string().contains("does not match the pinned"),
        "{err}"
    );
}

#[tokio::test]
async fn the_listener_ca_can_be_trusted_instead_of_pinned() {
    let p = tls_peer(None);
    let cert_pem = std::fs::read_to_string(p.peer.path("cert.pem")).unwrap();
    let trust = ServerTrust::WebPki {
        extra_roots_pem: Some(cert_pem),
    };
    let mut s = Session::new(config(&p, basic(PASSWORD), trust)).unwrap();
    assert_eq!(
        s.run_cmd("echo ok", None).await.unwrap().stdout_text(),
        "ok\n"
    );
}

#[tokio::test]
async fn basic_with_a_wrong_password_is_an_auth_error() {
    let p = tls_peer(None);
    let pin = ServerTrust::Thumbprint(p.thumbprint);
    let mut s = Session::new(config(&p, basic("nope"), pin)).unwrap();
    let err = s.run_cmd("echo hi", None).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Auth {
                method: "Basic",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn ntlm_over_https() {
    let p = tls_peer(None);
    let pin = ServerTrust::Thumbprint(p.thumbprint);
    let mut s = Session::new(config(&p, Credentials::ntlm(USER, PASSWORD), pin)).unwrap();
    let o = s.run_cmd("echo tls-ntlm; exit 7", None).await.unwrap();
    assert_eq!((o.stdout_text().as_str(), o.exit_code), ("tls-ntlm\n", 7));
}

#[tokio::test]
async fn client_certificate_authentication() {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "hive test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
    cp.distinguished_name.push(DnType::CommonName, "alice");
    cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().unwrap();
    let client_cert = cp.signed_by(&client_key, &ca).unwrap();

    let p = tls_peer(Some(&ca.pem()));
    let creds = Credentials::Certificate(ClientCertificate {
        cert_pem: client_cert.pem(),
        key_pem: client_key.serialize_pem(),
    });
    let d = format!("{creds:?}");
    assert!(!d.contains("PRIVATE KEY"), "{d}");
    let mut s = Session::new(config(&p, creds, ServerTrust::Thumbprint(p.thumbprint))).unwrap();
    let o = s
        .run_cmd("printf '%s\\n' \"$WINRM_PEER_USER\"", None)
        .await
        .unwrap();
    assert_eq!(o.stdout_text(), "cert:alice\n");
}
