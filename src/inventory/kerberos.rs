//! Kerberos credential references and service principal names.
//!
//! ```toml
//! [defaults]
//! transport = "winrm-https"
//! user = "patcher@CORP.EXAMPLE"           # the principal hive logs on as (keytab, password)
//! credential = "kerberos:ccache"          # the ticket `kinit` left (KRB5CCNAME or the default)
//! # credential = "kerberos:keytab:/etc/hive/patcher.keytab"   # 0600, owned by hive's user
//! # credential = "kerberos:env:HIVE_PASSWORD"                 # hive gets the ticket itself
//! smb_credential = "env:HIVE_SMB_PASSWORD" # file copies: SMB logs on with NTLM (see hive-smb)
//!
//! [group_defaults]
//! spn = "HTTP/{name}.corp.example"        # {name}, {address}; default HTTP/<DNS name>
//!
//! [[host]]
//! name = "db01"
//! address = "10.1.2.3"
//! spn = "HTTP/sql-cluster.corp.example"   # this host's own
//! ```
//!
//! Hosts are often reached by address while the KDC knows them only by DNS name, so the default
//! SPN uses the address only when it is a DNS name, and the host's inventory name otherwise.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{CredentialRef, Secret};

/// Where a Kerberos logon's ticket comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KerberosRef {
    /// `kerberos:ccache`: the ticket the admin got with `kinit`, from the credential cache
    /// `KRB5CCNAME` names (or the system default).
    Ccache,
    /// `kerberos:keytab:/path`: hive gets tickets for the host's `user` from this keytab, which
    /// must be readable by its owner only and owned by the user hive runs as.
    Keytab(PathBuf),
    /// `kerberos:env:VAR`, `kerberos:file:/path`, `kerberos:prompt`: hive gets a ticket for the
    /// host's `user` with this password.
    Password(Box<CredentialRef>),
}

const KERBEROS_FORMS: &str = "use kerberos:ccache, kerberos:keytab:/path, kerberos:env:VAR, kerberos:file:/path or kerberos:prompt";

impl KerberosRef {
    /// Parse what follows `kerberos:`. The message never echoes a value that is no reference.
    pub fn parse(rest: &str) -> Result<Self, String> {
        if rest == "ccache" {
            return Ok(KerberosRef::Ccache);
        }
        if let Some(path) = rest.strip_prefix("keytab:") {
            if path.is_empty() {
                return Err(format!("kerberos:keytab: names no file: {KERBEROS_FORMS}"));
            }
            return Ok(KerberosRef::Keytab(PathBuf::from(path)));
        }
        match CredentialRef::parse(rest) {
            Ok(
                inner @ (CredentialRef::Env(_) | CredentialRef::File(_) | CredentialRef::Prompt),
            ) => Ok(KerberosRef::Password(Box::new(inner))),
            Ok(_) => Err(format!(
                "a Kerberos ticket comes from a cache, a keytab or a password: {KERBEROS_FORMS}"
            )),
            Err(e) if e.contains("not an environment variable name") => Err(e),
            Err(_) => Err(format!(
                "the credential is not a reference (its value is not shown: it may be a password): {KERBEROS_FORMS}"
            )),
        }
    }

    /// Read what the logon needs: the password for a password reference; nothing for a cache
    /// (GSSAPI reads it) or a keytab (checked here, read by GSSAPI), which resolve to an empty
    /// secret.
    pub fn resolve(
        &self,
        label: &str,
        prompter: &mut dyn super::SecretSource,
    ) -> Result<Secret, String> {
        match self {
            KerberosRef::Ccache => Ok(Secret::new("")),
            KerberosRef::Keytab(path) => {
                check_keytab(path)?;
                Ok(Secret::new(""))
            }
            KerberosRef::Password(inner) => {
                super::credentials::resolve_reference(inner, label, prompter)
            }
        }
    }

    /// True when the reference holds a password (which SMB file copies can use too).
    pub fn has_password(&self) -> bool {
        matches!(self, KerberosRef::Password(_))
    }
}

impl fmt::Display for KerberosRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KerberosRef::Ccache => f.write_str("kerberos:ccache"),
            KerberosRef::Keytab(p) => write!(f, "kerberos:keytab:{}", p.display()),
            KerberosRef::Password(inner) => write!(f, "kerberos:{inner}"),
        }
    }
}

/// A keytab is a password in another form: refused like a credential file when group or others
/// can read it, and when someone else owns it (they could loosen its mode at any time).
pub fn check_keytab(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    super::credentials::check_owner_only(path, "a keytab")?;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "{} is owned by uid {}, not by the user hive runs as (uid {me}): a keytab must be \
             owned by its user (chown it, or export a keytab of your own with ktadd)",
            path.display(),
            meta.uid()
        ));
    }
    if meta.len() == 0 {
        return Err(format!(
            "{} is empty: export the principal's keys into it (kadmin ktadd, or ktpass on Windows)",
            path.display()
        ));
    }
    Ok(())
}

/// Check an SPN as written in the inventory (`HTTP/web01.corp.example`, optionally `@REALM`,
/// and `{name}`/`{address}` placeholders).
pub fn validate_spn(spn: &str) -> Result<(), String> {
    let (service, rest) = spn
        .split_once('/')
        .ok_or_else(|| format!("spn `{spn}` must be service/host, e.g. HTTP/web01.corp.example"))?;
    if service.is_empty()
        || rest.is_empty()
        || spn.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "spn `{spn}` must be service/host, e.g. HTTP/web01.corp.example"
        ));
    }
    Ok(())
}

/// The SPN for a host: its own `spn`, else the first group layer's (placeholders filled in), else
/// `HTTP/<address>` when the address is a DNS name and `HTTP/<name>` when it is an IP address.
pub fn spn_for(name: &str, address: &str, template: Option<&str>) -> String {
    match template {
        Some(t) => t.replace("{name}", name).replace("{address}", address),
        None if address.parse::<std::net::IpAddr>().is_ok() => format!("HTTP/{name}"),
        None => format!("HTTP/{address}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_print_back() {
        for text in [
            "kerberos:ccache",
            "kerberos:keytab:/etc/hive/p.keytab",
            "kerberos:env:HIVE_PW",
            "kerberos:file:/etc/hive/pw",
            "kerberos:prompt",
        ] {
            let r = CredentialRef::parse(text).unwrap();
            assert_eq!(r.to_string(), text);
        }
        for bad in [
            "kerberos:",
            "kerberos:keytab:",
            "kerberos:hunter2",
            "kerberos:ssh-agent",
        ] {
            let e = CredentialRef::parse(bad).unwrap_err();
            assert!(e.contains("kerberos:ccache"), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn default_spn_uses_the_dns_name_never_an_address() {
        assert_eq!(spn_for("web01", "10.0.0.5", None), "HTTP/web01");
        assert_eq!(
            spn_for("web01", "web01.corp.example", None),
            "HTTP/web01.corp.example"
        );
        assert_eq!(
            spn_for("web01", "10.0.0.5", Some("HTTP/{name}.corp.example@CORP")),
            "HTTP/web01.corp.example@CORP"
        );
        assert!(validate_spn("HTTP/{name}.corp").is_ok());
        assert!(validate_spn("web01").is_err());
        assert!(validate_spn("HTTP/ web01").is_err());
    }

    #[test]
    fn a_keytab_others_can_read_is_refused_naming_the_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let kt = dir.path().join("p.keytab");
        std::fs::write(&kt, [5u8, 2, 0, 0]).unwrap();
        std::fs::set_permissions(&kt, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_keytab(&kt).unwrap_err();
        assert!(
            e.contains(&kt.display().to_string()) && e.contains("0644") && e.contains("chmod 600"),
            "{e}"
        );
        std::fs::set_permissions(&kt, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_keytab(&kt).unwrap();
        std::fs::write(&kt, []).unwrap();
        assert!(check_keytab(&kt).unwrap_err().contains("empty"));
        let missing = dir.path().join("none.keytab");
        assert!(check_keytab(&missing).unwrap_err().contains("none.keytab"));
    }
}
