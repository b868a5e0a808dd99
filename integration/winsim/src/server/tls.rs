//! The HTTPS listener's certificate: one self-signed certificate for the whole simulated fleet,
//! made with rcgen at start (real Windows hosts use a per-host cert; clients of a test fleet skip
//! validation or trust this one PEM).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate and key the HTTPS listeners present.
#[derive(Clone)]
pub struct TlsIdentity {
    cert_der: Vec<u8>,
    cert_pem: String,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key stays out of logs.
        f.debug_struct("TlsIdentity")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not generate the fleet's self-signed certificate: {0}")]
    Generate(String),
    #[error("rustls refused the fleet's certificate: {0}")]
    Config(String),
}

impl TlsIdentity {
    /// A self-signed certificate valid for `names` (DNS names or IP addresses).
    pub fn self_signed(names: &[String]) -> Result<TlsIdentity, TlsError> {
        let certified = rcgen::generate_simple_self_signed(names.to_vec())
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        Ok(TlsIdentity {
            cert_der: certified.cert.der().to_vec(),
            cert_pem: certified.cert.pem(),
            key_der: certified.signing_key.serialize_der(),
        })
    }

    /// The `tls-server-end-point` channel binding (RFC 5929) of this certificate as NTLM carries
    /// it in MsvAvChannelBindings: MD5 of a gss_channel_bindings_struct whose only non-empty
    /// field is the application data `tls-server-end-point:` + SHA-256 of the certificate (rcgen
    /// signs with ECDSA SHA-256, and RFC 5929 uses the certificate's own signature hash).
    pub fn channel_bindings(&self) -> [u8; 16] {
        use md5::Digest as _;
        let app = self.tls_server_end_point();
        // Initiator and acceptor address types and lengths: four zero u32s.
        let mut gss = vec![0u8; 16];
        gss.extend_from_slice(&(app.len() as u32).to_le_bytes());
        gss.extend_from_slice(&app);
        md5::Md5::digest(&gss).into()
    }

    /// The `tls-server-end-point` application data (RFC 5929) Kerberos carries in its
    /// authenticator checksum: the prefix and SHA-256 of the certificate (rcgen signs with ECDSA
    /// SHA-256).
    pub fn tls_server_end_point(&self) -> Vec<u8> {
        use sha2::Digest as _;
        let mut app = b"tls-server-end-point:".to_vec();
        app.extend_from_slice(&sha2::Sha256::digest(&self.cert_der));
        app
    }

    /// The certificate in PEM, for clients that want to trust it.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The listener's configuration; with a certificate-mapping table the handshake also asks
    /// for a client certificate and verifies it against the table's issuers.
    pub(crate) fn server_config(
        &self,
        certmap: Option<&super::certmap::CertMap>,
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match certmap {
            None => builder.with_no_client_auth(),
            Some(map) => {
                builder.with_client_cert_verifier(map.client_verifier().map_err(TlsError::Config)?)
            }
        };
        let config = builder
            .with_single_cert(
                vec![CertificateDer::from(self.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Arc::new(config))
    }
}
