//! WinRM certificate authentication, the server side: the host's certificate-mapping table
//! (`winrm create winrm/config/service/certmapping?Issuer=...+Subject=...+URI=*`) and the
//! check Windows makes of a client certificate the TLS handshake delivered.
//!
//! As on Windows (MS-WSMV 3.1.4.1.29.3): an entry names the certificate that *issued* the client
//! certificate, a subject pattern (exact, `*suffix`, or `*`) matched against the client
//! certificate's UPN (the `otherName` SAN Windows reads) or, when it has none, its common name,
//! and the local account the request then runs as. The TLS listener asks for a client
//! certificate only when the table has entries, and trusts exactly the issuers it names: a
//! certificate from another CA fails the handshake. A trusted certificate no entry maps gets 401,
//! as Windows answers (pywinrm reports "the specified credentials were rejected by the server").

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The `Authorization` value of a certificate logon (pywinrm `transport="certificate"`).
pub const MUTUAL_SCHEME: &str =
    "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual";

/// `1.3.6.1.4.1.311.20.2.3`, Microsoft's UPN `otherName`.
const UPN_OID: &str = "1.3.6.1.4.1.311.20.2.3";

/// One row of the fleet file's `client_certificates` (one certmapping entry).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertMappingSetting {
    /// The issuing CA's certificate, a PEM file (Windows names it by thumbprint; the simulator
    /// needs the certificate itself to verify the chain).
    pub issuer: PathBuf,
    /// The subject pattern: the UPN (or common name) exactly, `*@corp.example`, or `*`.
    pub subject: String,
    /// The local account the certificate logs on as.
    pub user: String,
}

/// A host's certificate-mapping table whose issuers are read and parsed.
#[derive(Debug)]
pub struct CertMap {
    entries: Vec<Entry>,
    roots: Arc<rustls::RootCertStore>,
}

#[derive(Debug)]
struct Entry {
    /// The issuer's subject name, DER, which the client certificate's issuer field must equal.
    issuer_name: Vec<u8>,
    subject: String,
    user: String,
}

/// Why a host's mapping table cannot be used; names the host and the file.
#[derive(Debug, thiserror::Error)]
pub enum CertMapError {
    #[error("host {host}: client certificate issuer {path}: {detail}")]
    Issuer {
        host: String,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "host {host}: certificate mapping for subject `{subject}` logs on as `{user}`, but the \
         host's account is `{account}`"
    )]
    Account {
        host: String,
        subject: String,
        user: String,
        account: String,
    },
    #[error("host {host}: certificate mapping subject `{subject}` {detail}")]
    Subject {
        host: String,
        subject: String,
        detail: &'static str,
    },
}

impl CertMap {
    /// Read the table's issuers. `None` when the table is empty (certificate logons are off).
    pub fn load(
        host: &str,
        account: &str,
        settings: &[CertMappingSetting],
    ) -> Result<Option<CertMap>, CertMapError> {
        if settings.is_empty() {
            return Ok(None);
        }
        let mut roots = rustls::RootCertStore::empty();
        let mut entries = Vec::with_capacity(settings.len());
        for s in settings {
            check_pattern(&s.subject).map_err(|detail| CertMapError::Subject {
                host: host.into(),
                subject: s.subject.clone(),
                detail,
            })?;
            if !same_account(&s.user, account) {
                return Err(CertMapError::Account {
                    host: host.into(),
                    subject: s.subject.clone(),
                    user: s.user.clone(),
                    account: account.into(),
                });
            }
            let issuer_err = |detail: String| CertMapError::Issuer {
                host: host.into(),
                path: s.issuer.clone(),
                detail,
            };
            let der = read_issuer(&s.issuer).map_err(issuer_err)?;
            let (_, ca) = X509Certificate::from_der(der.as_ref())
                .map_err(|e| issuer_err(format!("not an X.509 certificate: {e}")))?;
            entries.push(Entry {
                issuer_name: ca.subject().as_raw().to_vec(),
                subject: s.subject.clone(),
                user: s.user.clone(),
            });
            roots
                .add(der)
                .map_err(|e| issuer_err(format!("not usable as a trust anchor: {e}")))?;
        }
        Ok(Some(CertMap {
            entries,
            roots: Arc::new(roots),
        }))
    }

    /// The TLS side: ask every client for a certificate, accept none (NTLM, Kerberos and Basic
    /// logons carry no certificate), and refuse one no mapped issuer signed.
    pub fn client_verifier(
        &self,
    ) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::server::WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| e.to_string())
    }

    /// The account the (already chain-verified) client certificate logs on as, or why none.
    pub fn map(&self, leaf: &[u8]) -> Result<&str, String> {
        let (_, cert) = X509Certificate::from_der(leaf)
            .map_err(|e| format!("the client certificate does not parse: {e}"))?;
        let names = subject_names(&cert);
        self.entries
            .iter()
            .find(|e| {
                e.issuer_name == cert.issuer().as_raw()
                    && names.iter().any(|n| matches(&e.subject, n))
            })
            .map(|e| e.user.as_str())
            .ok_or_else(|| {
                format!(
                    "no certificate mapping for subject {} ({}) issued by {}",
                    cert.subject(),
                    names.join(", "),
                    cert.issuer()
                )
            })
    }
}

fn read_issuer(path: &Path) -> Result<CertificateDer<'static>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    CertificateDer::from_pem_slice(&text).map_err(|e| format!("no PEM certificate: {e}"))
}

/// What a mapping's subject pattern is matched against: the UPNs, else the common names.
fn subject_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut upns = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::OtherName(oid, value) = name
                && oid.to_id_string() == UPN_OID
                && let Some(upn) = utf8_string(value)
            {
                upns.push(upn);
            }
        }
    }
    if !upns.is_empty() {
        return upns;
    }
    cert.subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect()
}

/// The UTF8String inside an `otherName` value, with or without its `[0] EXPLICIT` wrapper.
fn utf8_string(value: &[u8]) -> Option<String> {
    let (tag, body) = tlv(value)?;
    let (tag, body) = if tag == 0xa0 { tlv(body)? } else { (tag, body) };
    (tag == 0x0c)
        .then(|| String::from_utf8(body.to_vec()).ok())
        .flatten()
}

fn tlv(b: &[u8]) -> Option<(u8, &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, start) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    Some((tag, b.get(start..start.checked_add(len)?)?))
}

/// MS-WSMV: at least one character, at most one `*`, and only as the first character.
fn check_pattern(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("is empty");
    }
    if p.chars().skip(1).any(|c| c == '*') {
        return Err("may hold one `*`, only as its first character");
    }
    Ok(())
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => name
            .to_ascii_lowercase()
            .ends_with(&suffix.to_ascii_lowercase()),
        None => pattern.eq_ignore_ascii_case(name),
    }
}

/// `Administrator`, `.\Administrator` and `HOST\Administrator` are the same local account.
fn same_account(mapped: &str, account: &str) -> bool {
    let bare = |u: &str| u.rsplit('\\').next().unwrap_or(u).to_ascii_lowercase();
    bare(mapped) == bare(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_follow_ms_wsmv() {
        assert!(matches("*", "admin@corp.example"));
        assert!(matches("*@CORP.example", "admin@corp.example"));
        assert!(matches("Admin@corp.example", "admin@corp.example"));
        assert!(!matches("admin@corp.example", "other@corp.example"));
        assert!(check_pattern("a*").is_err());
        assert!(check_pattern("").is_err());
        assert!(check_pattern("*x").is_ok());
    }

    #[test]
    fn upn_other_names_are_read_with_or_without_the_explicit_tag() {
        assert_eq!(utf8_string(b"\x0c\x03a@b").as_deref(), Some("a@b"));
        assert_eq!(utf8_string(b"\xa0\x05\x0c\x03a@b").as_deref(), Some("a@b"));
        assert_eq!(utf8_string(b"\x04\x03a@b"), None);
    }
}
