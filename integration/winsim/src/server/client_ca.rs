//! A throwaway certificate authority for certificate logons, made at test time so no private key
//! is ever checked in: it issues client certificates shaped like the ones an enterprise CA's
//! "User" template issues (the `clientAuth` extended key usage and the UPN in the subject
//! alternative name, which Windows' certificate mapping reads).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};

/// `1.3.6.1.4.1.311.20.2.3`, the UPN `otherName`.
const UPN_OID: [u64; 9] = [1, 3, 6, 1, 4, 1, 311, 20, 2];

/// A CA that lives for one test.
pub struct ClientCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A client certificate and its key, PEM.
pub struct ClientCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

impl ClientCa {
    /// A fresh CA whose subject common name is `name`.
    pub fn new(name: &str) -> Result<ClientCa, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ok(ClientCa {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate()?)?,
        })
    }

    /// The CA's certificate, PEM: what a host's mapping names as its issuer.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A client certificate for `common_name`, with `upn` in its subject alternative name when
    /// given.
    pub fn issue(
        &self,
        common_name: &str,
        upn: Option<&str>,
    ) -> Result<ClientCertificate, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if let Some(upn) = upn {
            let mut oid = UPN_OID.to_vec();
            oid.push(3);
            params
                .subject_alt_names
                .push(SanType::OtherName((oid, upn.into())));
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ClientCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Write the CA certificate to `dir/<file>` and return its path.
    pub fn write_cert(&self, dir: &Path, file: &str) -> std::io::Result<PathBuf> {
        let path = dir.join(file);
        std::fs::write(&path, self.cert_pem())?;
        Ok(path)
    }
}

impl ClientCertificate {
    /// Write `dir/<stem>.pem` and `dir/<stem>.key` (the key readable by its owner only) and
    /// return both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> std::io::Result<(PathBuf, PathBuf)> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key)?
            .write_all(self.key_pem.as_bytes())?;
        Ok((cert, key))
    }
}
