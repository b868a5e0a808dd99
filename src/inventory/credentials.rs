//! Credential references: where a host's (or a directory's) password comes from, and how it is
//! read. The inventory holds only the reference, never the secret.

use std::fmt;
use std::path::{Path, PathBuf};

use super::kerberos::KerberosRef;
use super::{Host, InventoryError, Secret};

/// Where a host's password comes from. The inventory holds only this reference, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRef {
    /// An environment variable of the orchestrator's process.
    Env(String),
    /// A file readable by its owner only (mode 0600 or stricter); its first line is the password.
    File(PathBuf),
    /// Ask on the terminal once per distinct reference.
    Prompt,
    /// SSH only: a private key file (OpenSSH or PEM, ed25519 or RSA, not encrypted) readable by its
    /// owner only, like a credential file.
    SshKey(PathBuf),
    /// SSH only: the keys of the SSH agent the orchestrator's `SSH_AUTH_SOCK` names.
    SshAgent,
    /// WinRM only: a Kerberos logon (`kerberos:ccache`, `kerberos:keytab:/path`, or `kerberos:`
    /// before a password reference); see [`super::kerberos`].
    Kerberos(KerberosRef),
    /// WinRM over HTTPS only: a client certificate (PEM chain) the host maps to an account, its
    /// key in a file readable by its owner only. Written
    /// `cert:/path/client.pem[,key=/path/client.key][,smb=env:VAR|file:/path]`; the key defaults
    /// to the certificate's path with `.key`. A certificate logs on to WinRM only: file copies go
    /// over SMB, which needs the account's password, named by `smb=`.
    Certificate(ClientCertificateRef),
}

/// Where a client certificate, its key, and (for SMB file copies) the account's password are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificateRef {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The password of the account the certificate maps to, for SMB (`env:` or `file:`).
    pub smb: Option<Box<CredentialRef>>,
}

impl ClientCertificateRef {
    /// Parse what follows `cert:`. Paths may not hold commas (they separate the options).
    fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(',');
        let cert = PathBuf::from(parts.next().unwrap_or(""));
        if cert.as_os_str().is_empty() {
            return Err("cert: needs the certificate's path (cert:/path/client.pem)".into());
        }
        let mut key = None;
        let mut smb = None;
        for part in parts {
            match part.split_once('=') {
                Some(("key", path)) if !path.is_empty() => key = Some(PathBuf::from(path)),
                Some(("smb", reference)) => match CredentialRef::parse(reference) {
                    Ok(r @ (CredentialRef::Env(_) | CredentialRef::File(_))) => {
                        smb = Some(Box::new(r))
                    }
                    _ => {
                        return Err(format!(
                            "cert: smb= takes env:VAR or file:/path (the password of the account \
                             the certificate maps to), not `{}`",
                            reference.split(':').next().unwrap_or("")
                        ));
                    }
                },
                _ => {
                    return Err(format!(
                        "cert: option `{}` is not key=/path or smb=env:VAR|file:/path",
                        part.split('=').next().unwrap_or(part)
                    ));
                }
            }
        }
        let key = key.unwrap_or_else(|| cert.with_extension("key"));
        Ok(ClientCertificateRef { cert, key, smb })
    }
}

impl fmt::Display for ClientCertificateRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cert:{},key={}", self.cert.display(), self.key.display())?;
        match &self.smb {
            Some(smb) => write!(f, ",smb={smb}"),
            None => Ok(()),
        }
    }
}

impl CredentialRef {
    /// Parse `env:VAR`, `file:/path` or `prompt`; the message never echoes a value that is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "prompt" {
            return Ok(CredentialRef::Prompt);
        }
        if text == "ssh-agent" {
            return Ok(CredentialRef::SshAgent);
        }
        if let Some(rest) = text.strip_prefix("kerberos:") {
            return KerberosRef::parse(rest).map(CredentialRef::Kerberos);
        }
        match text.split_once(':') {
            Some(("env", var)) if is_env_name(var) => Ok(CredentialRef::Env(var.to_string())),
            Some(("env", var)) => Err(format!("`{var}` is not an environment variable name")),
            Some(("file", path)) if !path.is_empty() => {
                Ok(CredentialRef::File(PathBuf::from(path)))
            }
            Some(("ssh-key", path)) if !path.is_empty() => {
                Ok(CredentialRef::SshKey(PathBuf::from(path)))
            }
            Some(("cert", rest)) => {
                ClientCertificateRef::parse(rest).map(CredentialRef::Certificate)
            }
            // The value is not echoed: what an admin puts here by mistake is the password itself.
            _ => Err(
                "the credential is not a reference (its value is not shown: it may be a \
                 password): use env:VAR, file:/path, prompt, ssh-key:/path, ssh-agent, \
                 kerberos:... or cert:/path/client.pem"
                    .to_string(),
            ),
        }
    }
}

/// A reference is written as its text (`env:VAR`, `file:/path`, `prompt`) and read back through
/// [`CredentialRef::parse`], so a stored reference is checked like a typed one.
impl serde::Serialize for CredentialRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for CredentialRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        CredentialRef::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for CredentialRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialRef::Env(v) => write!(f, "env:{v}"),
            CredentialRef::File(p) => write!(f, "file:{}", p.display()),
            CredentialRef::Prompt => f.write_str("prompt"),
            CredentialRef::SshKey(p) => write!(f, "ssh-key:{}", p.display()),
            CredentialRef::SshAgent => f.write_str("ssh-agent"),
            CredentialRef::Kerberos(k) => k.fmt(f),
            CredentialRef::Certificate(c) => c.fmt(f),
        }
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads secrets for credential references, asking each distinct `prompt` reference once.
pub trait SecretSource {
    /// Ask the operator for a password (no echo). `label` says what for.
    fn prompt(&mut self, label: &str) -> Result<Secret, String>;
}

/// Resolve a host's credential reference to its secret.
///
/// A credential file readable by group or others is refused: a password file anyone on the
/// orchestrator can read is a domain-admin password anyone can read.
pub fn resolve_credential(
    host: &Host,
    prompter: &mut dyn SecretSource,
) -> Result<Secret, InventoryError> {
    resolve_host(host, prompter).map_err(|message| InventoryError::Credential {
        host: host.name.clone(),
        reference: host.credential.to_string(),
        message,
    })
}

/// What a host's logon needs from its references: its password, or for a Kerberos ticket from a
/// cache or keytab (no password in it) the `smb_credential` file copies log on with, if any.
pub fn resolve_host(host: &Host, prompter: &mut dyn SecretSource) -> Result<Secret, String> {
    let label = format!("password for {}@{}", host.user, host.name);
    let secret = resolve_reference(&host.credential, &label, prompter)?;
    match (&host.credential, &host.smb_credential) {
        (CredentialRef::Kerberos(k), Some(smb)) if !k.has_password() => {
            let label = format!("SMB password for {}@{}", host.user, host.name);
            resolve_reference(smb, &label, prompter)
                .map_err(|m| format!("smb_credential {smb}: {m}"))
        }
        _ => Ok(secret),
    }
}

/// Read the secret a reference names (a host's password, a directory bind password); `label`
/// says what for when the operator is asked.
pub fn resolve_reference(
    reference: &CredentialRef,
    label: &str,
    prompter: &mut dyn SecretSource,
) -> Result<Secret, String> {
    match reference {
        CredentialRef::Env(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
            Ok(_) => Err("the environment variable is empty".into()),
            Err(_) => Err("the environment variable is not set".into()),
        },
        CredentialRef::File(path) => read_secret_file(path),
        CredentialRef::Prompt => prompter.prompt(label),
        CredentialRef::SshKey(path) => read_key_file(path),
        CredentialRef::Certificate(c) => read_client_certificate(c),
        CredentialRef::SshAgent => match std::env::var("SSH_AUTH_SOCK") {
            Ok(sock) if !sock.is_empty() => Ok(Secret::new(sock)),
            _ => Err(
                "SSH_AUTH_SOCK is not set: start ssh-agent (eval $(ssh-agent)) and add the \
                      key with ssh-add, or use ssh-key:/path"
                    .into(),
            ),
        },
        CredentialRef::Kerberos(k) => k.resolve(label, prompter),
    }
}

/// The whole text of a private key file, after the same owner-only check as a credential file.
/// The secret is the key itself: an SSH reference resolves to the material the logon needs.
pub fn read_key_file(path: &Path) -> Result<Secret, String> {
    check_owner_only(path, "a private key file")?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !text.contains("PRIVATE KEY-----") {
        return Err(format!(
            "{} is not a private key in OpenSSH or PEM format (ssh-keygen -t ed25519 writes one)",
            path.display()
        ));
    }
    Ok(Secret::new(text))
}

/// A client certificate and its key as one PEM text (the chain first), after the same owner-only
/// check of the key as a credential file; the certificate itself is public.
pub fn read_client_certificate(c: &ClientCertificateRef) -> Result<Secret, String> {
    check_owner_only(&c.key, "a client certificate's private key")?;
    let key = std::fs::read_to_string(&c.key)
        .map_err(|e| format!("cannot read {}: {e}", c.key.display()))?;
    if key.contains("ENCRYPTED PRIVATE KEY") {
        return Err(format!(
            "{} is encrypted: hive reads an unencrypted key from a file only its owner can read \
             (openssl pkey -in it -out client.key)",
            c.key.display()
        ));
    }
    if !key.contains("PRIVATE KEY-----") {
        return Err(format!("{} is not a PEM private key", c.key.display()));
    }
    let cert = std::fs::read_to_string(&c.cert)
        .map_err(|e| format!("cannot read {}: {e}", c.cert.display()))?;
    if !cert.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!("{} is not a PEM certificate", c.cert.display()));
    }
    Ok(Secret::new(format!("{}\n{}", cert.trim_end(), key)))
}

/// Refuses a file that group or others can read: a secret anyone on the orchestrator can read is
/// a domain-admin secret anyone can read.
pub(super) fn check_owner_only(path: &Path, what: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} has mode {mode:04o}: {what} must be readable by its owner only (chmod 600)",
            path.display()
        ));
    }
    Ok(())
}

/// Read the first line of a credential file after checking that only its owner can read it.
pub fn read_secret_file(path: &Path) -> Result<Secret, String> {
    check_owner_only(path, "a credential file")?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_references_parse_and_print_back() {
        let r = CredentialRef::parse("cert:/etc/hive/c.pem").unwrap();
        assert_eq!(
            r,
            CredentialRef::Certificate(ClientCertificateRef {
                cert: "/etc/hive/c.pem".into(),
                key: "/etc/hive/c.key".into(),
                smb: None,
            })
        );
        let text = "cert:/a/c.pem,key=/b/k.pem,smb=env:SMB_PW";
        let r = CredentialRef::parse(text).unwrap();
        assert_eq!(r.to_string(), text);
        assert_eq!(CredentialRef::parse(&r.to_string()).unwrap(), r);
        for bad in [
            "cert:",
            "cert:/a/c.pem,smb=prompt",
            "cert:/a/c.pem,smb=ssh-agent",
            "cert:/a/c.pem,pass=x",
        ] {
            assert!(CredentialRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_certificate_resolves_to_its_chain_and_key_once_the_key_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("c.key");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let reference = ClientCertificateRef {
            cert: cert.clone(),
            key: key.clone(),
            smb: None,
        };
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_client_certificate(&reference).unwrap_err();
        assert!(
            err.contains(&key.display().to_string()) && err.contains("0640"),
            "{err}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let bundle = read_client_certificate(&reference).unwrap();
        assert!(bundle.expose().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(bundle.expose().contains("-----BEGIN PRIVATE KEY-----"));
        std::fs::write(&cert, "not a certificate").unwrap();
        let err = read_client_certificate(&reference).unwrap_err();
        assert!(err.contains("is not a PEM certificate"), "{err}");
    }
}
