//! Kerberos logon for WinRM through the system's MIT GSSAPI (`libgssapi_krb5`).
//!
//! # Why MIT GSSAPI and not a pure-Rust Kerberos client
//!
//! - Admins log on with `kinit` (or their desktop does it): the ticket lives in the credential
//!   cache named by `KRB5CCNAME`, in whatever format (FILE, DIR, KEYRING, KCM) the system uses.
//!   MIT GSSAPI reads them all; the pure-Rust `sspi`/`picky-krb` client gets its own tickets from
//!   a password (keytab credentials only arrived in sspi-rs PR #681, 2026) and reads no ccache.
//! - It is the library pywinrm (through pyspnego/python-gssapi) and curl use, so hive's tokens are
//!   byte-for-byte what the reference clients send, and errors (clock skew, unknown SPN, expired
//!   ticket, wrong key version) come with MIT's own codes, which [`KerberosError`] turns into what
//!   to fix.
//! - krb5.conf (realms, KDCs, enctypes, `rdns`) is honoured exactly as by `kinit`.
//!
//! The cost is a build dependency on `libkrb5-dev` and libclang (bindgen, through `libgssapi-sys`),
//! which the harness installs; at run time `libgssapi_krb5.so.2` is on every Debian-like system.
//!
//! # Where tickets come from
//!
//! [`TicketSource`]: the admin's `kinit` cache (`KRB5CCNAME` or the default), a password (MIT's
//! `gss_acquire_cred_with_password`, tickets kept in memory), or a keytab (MIT's credential store,
//! `gss_acquire_cred_from` with `client_keytab` and a `MEMORY:` cache: see the keytab module for
//! why that and not `krb5_get_init_creds_keytab`). No source writes a ticket file.
//!
//! # Files on a Kerberos-only estate (SMB)
//!
//! hive copies installers over SMB (`hive-smb`, on the `smb` crate), which today logs on with NTLM
//! only. The `smb` crate can do Kerberos through Devolutions' `sspi` behind its `kerberos` feature,
//! but only from a password (sspi-rs reads no ccache and, before its PR #681, no keytab), talks to
//! the KDC through its own network client (`reqwest`), and would be checked against nothing here:
//! the harness's Samba is a standalone server, which accepts no Kerberos. So on a Kerberos host,
//! file copies log on to SMB with NTLM as the host's `user`: with the password of a
//! `kerberos:env:`/`file:`/`prompt` reference, or with `smb_credential` for a ticket from a cache
//! or keytab. Where the domain refuses NTLM outright, copies fail with the host's SMB logon error
//! while commands and scans (WinRM only) keep working.
//!
//! # The token
//!
//! A raw Kerberos initial context token (RFC 4121, AP-REQ) under the `Negotiate` scheme, as
//! pyspnego sends for `auth="kerberos"` and Windows accepts. Mutual authentication is not asked
//! for: the context is complete after our first token, so the AP-REQ rides on the first request
//! that carries work and that request is already sealed (one round trip saved per connection).
//! The server is still authenticated: over HTTPS by TLS, over HTTP because only the holder of the
//! service key can read our sealed request and seal its reply under the session key.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::error::MajorFlags;
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_KRB5, GSS_NT_KRB5_PRINCIPAL, OidSet};
use libgssapi::util::{GssIov, GssIovFake, GssIovType};

use crate::framing::{FramingError, Sealing};

mod keytab;

/// Where the Kerberos ticket comes from.
#[derive(Clone)]
pub enum TicketSource {
    /// The credential cache named by `KRB5CCNAME` (or the system default): the admin's `kinit`.
    Ccache,
    /// hive gets the ticket itself from the KDC with this principal's password.
    Password {
        /// `user@REALM` (or `user`, in the default realm).
        principal: String,
        /// The password.
        password: String,
    },
    /// hive gets the ticket itself with this principal's keys from a keytab, into a cache in this
    /// process's memory (nothing written to disk).
    Keytab {
        /// `user@REALM` (or `user`, in the default realm).
        principal: String,
        /// The keytab file.
        keytab: std::path::PathBuf,
    },
}

/// A Kerberos logon: the ticket source and the service principal to ask a ticket for.
#[derive(Clone)]
pub struct KerberosCredentials {
    /// Where the ticket comes from.
    pub source: TicketSource,
    /// The SPN, e.g. `HTTP/web01.corp.example` (realm optional); `None` means `HTTP/<host>`.
    pub spn: Option<String>,
}

impl KerberosCredentials {
    /// The SPN for a connection to `host`.
    pub fn spn_for(&self, host: &str) -> String {
        self.spn.clone().unwrap_or_else(|| format!("HTTP/{host}"))
    }

    /// Who logs on, for messages (never the password).
    pub fn display_user(&self) -> String {
        match &self.source {
            TicketSource::Ccache => "<ticket from KRB5CCNAME>".into(),
            TicketSource::Password { principal, .. } | TicketSource::Keytab { principal, .. } => {
                principal.clone()
            }
        }
    }
}

impl fmt::Debug for KerberosCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            TicketSource::Ccache => "ccache".to_string(),
            TicketSource::Password { principal, .. } => format!("password for {principal}"),
            TicketSource::Keytab { principal, keytab } => {
                format!("keytab {} for {principal}", keytab.display())
            }
        };
        f.debug_struct("KerberosCredentials")
            .field("source", &source)
            .field("spn", &self.spn)
            .finish()
    }
}

/// Why a Kerberos logon failed, with what to fix.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: {detail}{}", hint.map(|h| format!(" — {h}")).unwrap_or_default())]
pub struct KerberosError {
    /// The step that failed.
    pub what: &'static str,
    /// MIT's message.
    pub detail: String,
    /// What to fix, when MIT's code says it.
    pub hint: Option<&'static str>,
}

impl KerberosError {
    fn gss(what: &'static str, e: libgssapi::error::Error) -> Self {
        KerberosError {
            what,
            detail: e.to_string().trim().to_string(),
            hint: hint(e.minor as i32 as i64).or_else(|| major_hint(e.major)),
        }
    }
}

/// What to fix when GSSAPI's major status says it and the mechanism's code does not.
fn major_hint(major: MajorFlags) -> Option<&'static str> {
    if major.contains(MajorFlags::GSS_S_CREDENTIALS_EXPIRED) {
        Some("the ticket has expired: run kinit again")
    } else if major.contains(MajorFlags::GSS_S_NO_CRED) {
        Some("no ticket in the credential cache: run kinit (or point KRB5CCNAME at the cache)")
    } else {
        None
    }
}

/// What to fix for the MIT error codes an admin meets (krb5.h's com_err values).
fn hint(minor: i64) -> Option<&'static str> {
    Some(match minor {
        -1765328347 => {
            "the clocks of this machine, the KDC and the host differ by more than the allowed skew (5 minutes by default): sync them (NTP)"
        }
        -1765328377 => {
            "the KDC knows no such service principal: check the host's SPN (HTTP/<name>), or set `spn` for this host in the inventory"
        }
        -1765328378 => "the KDC knows no such user: check the principal's name and realm",
        -1765328352 => "the ticket has expired: run kinit again",
        -1765328189 | -1765328243 => {
            "no ticket in the credential cache: run kinit (or point KRB5CCNAME at the cache)"
        }
        -1765328230 | -1765328164 => {
            "no KDC is known for this realm: check the realm's spelling and [realms] in krb5.conf"
        }
        -1765328228 => "no KDC answered: check the kdc entries in krb5.conf and the network",
        -1765328360 => "the KDC refused the password",
        -1765328340 | -1765328154 => {
            "the host's keytab holds another key version than the KDC: export the keytab again"
        }
        _ => return None,
    })
}

/// Kerberos' default allowed clock skew (MIT's and Windows' `clockskew`, 5 minutes).
const ALLOWED_SKEW: std::time::Duration = std::time::Duration::from_secs(300);

/// When the host's clock (its HTTP `Date` header) is further from ours than Kerberos allows: what
/// the difference is and what to fix.
pub fn clock_skew(host_now: std::time::SystemTime) -> Option<String> {
    let now = std::time::SystemTime::now();
    let (ahead, diff) = match now.duration_since(host_now) {
        Ok(d) => (true, d),
        Err(e) => (false, e.duration()),
    };
    if diff <= ALLOWED_SKEW {
        return None;
    }
    // Whole seconds, rounded: the Date header has no finer resolution.
    let secs = (diff.as_millis() + 500) as u64 / 1000;
    Some(format!(
        "the clocks differ: this machine's is {} min {} s {} the host's (its HTTP Date header), \
         more than Kerberos allows (5 minutes by default): sync both with the domain's time (NTP)",
        secs / 60,
        secs % 60,
        if ahead { "ahead of" } else { "behind" }
    ))
}

/// A complete client context: seals and unseals MS-WSMV messages. The GSS context is a C handle
/// that may move between threads but not be shared, hence the mutex (never contended: one
/// connection uses it at a time).
pub struct KerberosSealer {
    ctx: Mutex<ClientCtx>,
}

impl KerberosSealer {
    fn ctx(&mut self) -> &mut ClientCtx {
        self.ctx.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for KerberosSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KerberosSealer")
    }
}

/// Start a logon to `spn`: returns the context and the AP-REQ token to send.
pub fn initiate(
    creds: &KerberosCredentials,
    spn: &str,
    channel_bindings: Option<&[u8]>,
) -> Result<(KerberosSealer, Vec<u8>), KerberosError> {
    let mut mechs = OidSet::new();
    mechs
        .add(GSS_MECH_KRB5)
        .map_err(|e| KerberosError::gss("GSSAPI", e))?;
    // A keytab's first logon fills a shared in-memory cache: see the keytab module.
    let _turn = matches!(creds.source, TicketSource::Keytab { .. }).then(keytab::turn);
    let cred = match &creds.source {
        TicketSource::Ccache => Cred::acquire(None, None, CredUsage::Initiate, Some(&mechs))
            .map_err(|e| KerberosError::gss("reading the ticket from the credential cache", e))?,
        TicketSource::Password {
            principal,
            password,
        } => {
            let name = Name::new(principal.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL))
                .map_err(|e| KerberosError::gss("the user principal name", e))?;
            Cred::acquire_with_password(
                Some(&name),
                password,
                None,
                CredUsage::Initiate,
                Some(&mechs),
            )
            .map_err(|e| KerberosError::gss("getting a ticket with the password", e))?
        }
        TicketSource::Keytab {
            principal,
            keytab: file,
        } => keytab::acquire(principal, file)?,
    };
    let target = Name::new(spn.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL))
        .map_err(|e| KerberosError::gss("the service principal name", e))?;
    let flags = CtxFlags::GSS_C_CONF_FLAG
        | CtxFlags::GSS_C_INTEG_FLAG
        | CtxFlags::GSS_C_SEQUENCE_FLAG
        | CtxFlags::GSS_C_REPLAY_FLAG;
    let mut ctx = ClientCtx::new(Some(cred), target, flags, Some(GSS_MECH_KRB5));
    let token = ctx
        .step(None, channel_bindings)
        .map_err(|e| KerberosError::gss("getting a service ticket", e))?
        .ok_or_else(|| KerberosError {
            what: "getting a service ticket",
            detail: "GSSAPI produced no token".into(),
            hint: None,
        })?;
    if !ctx.is_complete() {
        return Err(KerberosError {
            what: "starting the security context",
            detail: "the Kerberos context needs more legs than one AP-REQ".into(),
            hint: None,
        });
    }
    Ok((
        KerberosSealer {
            ctx: Mutex::new(ctx),
        },
        token.to_vec(),
    ))
}

/// MS-WSMV's layout of one GSS-wrapped message: the wrap token's header (signature) apart, the
/// ciphertext after it, any padding appended to the ciphertext (none with AES, whose CFX tokens
/// carry their own filler inside the header).
pub fn seal(ctx: &mut impl SecurityContext, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut data = plain.to_vec();
    let mut lengths = [
        GssIovFake::new(GssIovType::Header),
        GssIov::new(GssIovType::Data, &mut data).as_fake(),
        GssIovFake::new(GssIovType::Padding),
    ];
    ctx.wrap_iov_length(true, &mut lengths)
        .map_err(|e| e.to_string())?;
    let mut header = vec![0u8; lengths[0].len()];
    let mut padding = vec![0u8; lengths[2].len()];
    {
        let mut iovs = [
            GssIov::new(GssIovType::Header, &mut header),
            GssIov::new(GssIovType::Data, &mut data),
            GssIov::new(GssIovType::Padding, &mut padding),
        ];
        ctx.wrap_iov(true, &mut iovs).map_err(|e| e.to_string())?;
    }
    data.extend_from_slice(&padding);
    Ok((header, data))
}

/// The inverse of [`seal`]: checks and decrypts in place.
pub fn unseal(
    ctx: &mut impl SecurityContext,
    header: &[u8],
    cipher: &[u8],
) -> Result<Vec<u8>, String> {
    let mut header = header.to_vec();
    let mut data = cipher.to_vec();
    {
        let mut iovs = [
            GssIov::new(GssIovType::Header, &mut header),
            GssIov::new(GssIovType::Data, &mut data),
        ];
        ctx.unwrap_iov(&mut iovs).map_err(|e| e.to_string())?;
    }
    Ok(data)
}

impl Sealing for KerberosSealer {
    fn seal_message(&mut self, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>), FramingError> {
        seal(self.ctx(), plain).map_err(FramingError::Gss)
    }

    fn unseal_message(&mut self, header: &[u8], cipher: &[u8]) -> Result<Vec<u8>, FramingError> {
        unseal(self.ctx(), header, cipher).map_err(FramingError::Gss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_skew_is_told_with_its_size_only_beyond_five_minutes() {
        let now = std::time::SystemTime::now();
        assert!(clock_skew(now).is_none());
        assert!(clock_skew(now - std::time::Duration::from_secs(200)).is_none());
        let text = clock_skew(now - std::time::Duration::from_secs(605)).unwrap();
        assert!(
            text.contains("10 min") && text.contains("ahead of"),
            "{text}"
        );
        let text = clock_skew(now + std::time::Duration::from_secs(3600)).unwrap();
        assert!(text.contains("60 min") && text.contains("behind"), "{text}");
    }

    #[test]
    fn hints_name_the_fix() {
        assert!(hint(-1765328347).unwrap().contains("clocks"));
        assert!(hint(-1765328377).unwrap().contains("spn"));
        assert!(hint(-1765328189).unwrap().contains("kinit"));
        assert!(hint(0).is_none());
    }

    #[test]
    fn default_spn_is_http_host_and_passwords_stay_out_of_debug() {
        let c = KerberosCredentials {
            source: TicketSource::Password {
                principal: "admin@CORP".into(),
                password: "s3cret".into(),
            },
            spn: None,
        };
        assert_eq!(c.spn_for("web01.corp"), "HTTP/web01.corp");
        assert!(!format!("{c:?}").contains("s3cret"));
        let o = KerberosCredentials {
            spn: Some("HTTP/web01.corp@CORP".into()),
            ..c
        };
        assert_eq!(o.spn_for("10.0.0.5"), "HTTP/web01.corp@CORP");
    }
}
