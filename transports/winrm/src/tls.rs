//! TLS for HTTPS listeners (5986): rustls, certificate verification on by default.
//!
//! WinRM HTTPS listeners very often carry a self-signed certificate made at setup time. Instead of
//! the usual "skip verification" switch we let the admin pin the certificate's SHA-256 thumbprint
//! (what `Get-ChildItem Cert:\LocalMachine\My` shows is SHA-1; we ask for SHA-256 of the DER),
//! which is as safe as a CA for one host and cannot be bypassed by another certificate.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// How the server certificate is checked.
#[derive(Clone, PartialEq, Eq)]
pub enum ServerTrust {
    /// Normal WebPKI validation against the system roots plus these extra CA certificates (PEM).
    WebPki {
        /// Extra trusted CA certificates, PEM text (e.g. an enterprise CA).
        extra_roots_pem: Option<String>,
    },
    /// Accept exactly the certificate whose DER SHA-256 is this (any name, any issuer, any date).
    Thumbprint([u8; 32]),
}

impl Default for ServerTrust {
    fn default() -> Self {
        ServerTrust::WebPki {
            extra_roots_pem: None,
        }
    }
}

impl fmt::Debug for ServerTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerTrust::WebPki { extra_roots_pem } => f
                .debug_struct("WebPki")
                .field("extra_roots", &extra_roots_pem.is_some())
                .finish(),
            ServerTrust::Thumbprint(t) => write!(f, "Thumbprint({})", hex::encode(t)),
        }
    }
}

impl ServerTrust {
    /// Parse a SHA-256 thumbprint as hex, with or without `:` separators.
    pub fn thumbprint(hex_text: &str) -> Result<Self, String> {
        let clean: String = hex_text
            .chars()
            .filter(|c| !matches!(c, ':' | ' '))
            .collect();
        let bytes = hex::decode(&clean).map_err(|e| format!("thumbprint is not hex: {e}"))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "thumbprint has {} bytes; a SHA-256 thumbprint has 32",
                b.len()
            )
        })?;
        Ok(ServerTrust::Thumbprint(arr))
    }
}

/// SHA-256 of a certificate's DER, the value to pin.
pub fn cert_thumbprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

#[derive(Debug)]
struct PinnedVerifier {
    pin: [u8; 32],
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = cert_thumbprint(end_entity);
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate SHA-256 {} does not match the pinned {}",
                hex::encode(got),
                hex::encode(self.pin)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A client certificate and key, PEM (for `secprofile/https/mutual` certificate authentication).
#[derive(Clone)]
pub struct ClientCertificate {
    /// Certificate chain, PEM.
    pub cert_pem: String,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// A certificate and its key from one PEM text holding both (the certificate chain first):
    /// each part keeps only its own sections, so the key never travels as "the certificate".
    pub fn from_bundle(pem: &str) -> Self {
        let mut cert_pem = String::new();
        let mut key_pem = String::new();
        let mut into_key = false;
        for line in pem.lines() {
            if let Some(label) = line.strip_prefix("-----BEGIN ") {
                into_key = label.contains("PRIVATE KEY");
            }
            let part = if into_key {
                &mut key_pem
            } else {
                &mut cert_pem
            };
            part.push_str(line);
            part.push('\n');
        }
        ClientCertificate { cert_pem, key_pem }
    }

    /// How an admin recognises the certificate: the leaf's subject and its UPN, if it has one
    /// (what a Windows certificate mapping matches).
    pub fn subject(&self) -> String {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let Some(Ok(der)) = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()).next() else {
            return "<no certificate>".into();
        };
        let Ok((_, cert)) = X509Certificate::from_der(der.as_ref()) else {
            return "<unreadable certificate>".into();
        };
        let upn = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value.general_names.iter().find_map(|n| match n {
                    GeneralName::OtherName(oid, value)
                        if oid.to_id_string() == "1.3.6.1.4.1.311.20.2.3" =>
                    {
                        // [0] EXPLICIT UTF8String, both with short lengths (a UPN is under 128 bytes).
                        match value {
                            [0xa0, _, 0x0c, n, text @ ..] if text.len() == *n as usize => {
                                std::str::from_utf8(text).ok()
                            }
                            _ => None,
                        }
                    }
                    _ => None,
                })
            });
        match upn {
            Some(upn) => format!("\"{}\" (UPN {upn})", cert.subject()),
            None => format!("\"{}\"", cert.subject()),
        }
    }
}

/// The TLS alert the peer ended the session with, wherever it sits in an error's source chain
/// (hyper wraps the I/O error that wraps rustls' error).
pub fn alert_in(e: &(dyn std::error::Error + 'static)) -> Option<rustls::AlertDescription> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        let rustls_err = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::AlertReceived(alert)) = rustls_err {
            return Some(*alert);
        }
        cur = err.source();
    }
    None
}

/// Build the rustls client configuration.
pub fn client_config(
    trust: &ServerTrust,
    client_cert: Option<&ClientCertificate>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match trust {
        ServerTrust::Thumbprint(pin) => {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                    pin: *pin,
                    algs: provider.signature_verification_algorithms,
                }))
        }
        ServerTrust::WebPki { extra_roots_pem } => {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if let Some(pem) = extra_roots_pem {
                for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let c = c.map_err(|e| format!("extra CA certificate: {e}"))?;
                    roots
                        .add(c)
                        .map_err(|e| format!("extra CA certificate: {e}"))?;
                }
            }
            builder.with_root_certificates(roots)
        }
    };
    let mut cfg = match client_cert {
        None => builder.with_no_client_auth(),
        Some(cc) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(cc.cert_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(cc.key_pem.as_bytes())
                .map_err(|e| format!("client key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The NTLM channel binding hash for a TLS connection (RFC 5929 `tls-server-end-point`, MD5 of
/// the gss_channel_bindings_struct), which Windows checks when CbtHardeningLevel is Strict.
///
/// The certificate is hashed with its own signature hash (SHA-384 for an ECDSA P-384 listener
/// certificate), SHA-256 when that is MD5, SHA-1 or unknown, as RFC 5929 says.
pub fn channel_bindings(server_cert_der: &[u8]) -> [u8; 16] {
    use md5::{Digest as _, Md5};
    let app = tls_server_end_point(server_cert_der);
    let mut s = vec![0u8; 16];
    s.extend_from_slice(&(app.len() as u32).to_le_bytes());
    s.extend_from_slice(&app);
    Md5::digest(&s).into()
}

/// The channel binding's application data, `tls-server-end-point:` + the certificate's hash
/// (RFC 5929): what Kerberos carries in its authenticator checksum, and what NTLM hashes into
/// [`channel_bindings`].
pub fn tls_server_end_point(server_cert_der: &[u8]) -> Vec<u8> {
    use sha2::{Sha384, Sha512};
    let hash: Vec<u8> = match signature_hash(server_cert_der) {
        CertHash::Sha384 => Sha384::digest(server_cert_der).to_vec(),
        CertHash::Sha512 => Sha512::digest(server_cert_der).to_vec(),
        CertHash::Sha256 => Sha256::digest(server_cert_der).to_vec(),
    };
    let mut app = b"tls-server-end-point:".to_vec();
    app.extend_from_slice(&hash);
    app
}

#[derive(Debug, PartialEq, Eq)]
enum CertHash {
    Sha256,
    Sha384,
    Sha512,
}

/// One DER TLV: (tag, contents, rest).
fn der_tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let body = b.get(hdr..hdr.checked_add(len)?)?;
    Some((tag, body, &b[hdr + len..]))
}

/// The hash of the certificate's signatureAlgorithm (Certificate ::= SEQUENCE { tbs, alg, sig }).
fn signature_hash(der: &[u8]) -> CertHash {
    const SHA384_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
    const SHA512_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
    const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    const ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
    let oid = (|| {
        let (_, cert, _) = der_tlv(der)?;
        let (_, _tbs, rest) = der_tlv(cert)?;
        let (_, alg, _) = der_tlv(rest)?;
        let (tag, oid, _) = der_tlv(alg)?;
        (tag == 0x06).then_some(oid)
    })();
    match oid {
        Some(o) if o == SHA384_RSA || o == ECDSA_SHA384 => CertHash::Sha384,
        Some(o) if o == SHA512_RSA || o == ECDSA_SHA512 => CertHash::Sha512,
        _ => CertHash::Sha256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_bindings_match_pyspnego() {
        // hashlib.md5(GssChannelBindings(application_data=b"tls-server-end-point:" +
        //   sha256(b"hello")).pack()) computed with pyspnego 0.12.4.
        assert_eq!(
            hex::encode(channel_bindings(b"hello")),
            "a01c5bbb538f595407796f880caf06a9"
        );
    }

    #[test]
    fn channel_bindings_use_the_certificate_signature_hash() {
        let p256 = rcgen::generate_simple_self_signed(vec!["a".to_string()]).unwrap();
        assert_eq!(signature_hash(p256.cert.der()), CertHash::Sha256);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let p384 = rcgen::CertificateParams::new(vec!["a".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(signature_hash(p384.der()), CertHash::Sha384);
        assert_eq!(signature_hash(b"\x30\x82garbage"), CertHash::Sha256);
    }

    #[test]
    fn a_bundle_splits_into_chain_and_key_and_names_its_subject() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hive admin");
        params.subject_alt_names.push(rcgen::SanType::OtherName((
            vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
            "admin@corp.example".into(),
        )));
        let cert = params.self_signed(&key).unwrap();
        let bundle = format!("{}{}", cert.pem(), key.serialize_pem());
        let cc = ClientCertificate::from_bundle(&bundle);
        assert!(!cc.cert_pem.contains("PRIVATE KEY"));
        assert!(cc.key_pem.contains("PRIVATE KEY") && !cc.key_pem.contains("CERTIFICATE"));
        assert_eq!(cc.subject(), "\"CN=hive admin\" (UPN admin@corp.example)");
        assert!(client_config(&ServerTrust::Thumbprint([0; 32]), Some(&cc)).is_ok());
    }

    #[test]
    fn thumbprints_parse_with_or_without_colons() {
        let hexs = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(
            ServerTrust::thumbprint(&hexs).unwrap(),
            ServerTrust::thumbprint(&colons).unwrap()
        );
        assert!(ServerTrust::thumbprint("abcd").is_err());
        assert!(ServerTrust::thumbprint(&"zz".repeat(32)).is_err());
    }
}
