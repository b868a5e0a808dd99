//! Who to log on as and how patient to be.

use std::fmt;
use std::time::Duration;

/// Logon credentials. The secret is never printed: `Debug` shows only the user.
#[derive(Clone)]
pub struct Credentials {
    pub(crate) user: String,
    secret: Secret,
}

#[derive(Clone)]
enum Secret {
    Password(String),
    /// The 16-byte NT hash (MD4 of the UTF-16LE password), for pass-the-hash logons with an account
    /// whose password hive never sees.
    NtHash([u8; 16]),
}

impl Credentials {
    /// `user` is `name` or `DOMAIN\name`.
    pub fn password(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            secret: Secret::Password(password.into()),
        }
    }

    /// Logs on with the account's NT hash instead of its password.
    pub fn nt_hash(user: impl Into<String>, hash: [u8; 16]) -> Self {
        Credentials {
            user: user.into(),
            secret: Secret::NtHash(hash),
        }
    }

    /// Parses the NT hash from 32 hex digits (as `pdbedit -w` or `secretsdump` print it).
    pub fn nt_hash_hex(user: impl Into<String>, hex_hash: &str) -> Option<Self> {
        let bytes = hex::decode(hex_hash.trim()).ok()?;
        let hash: [u8; 16] = bytes.try_into().ok()?;
        Some(Self::nt_hash(user, hash))
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// The secret in the form the `smb` crate's NTLM layer (sspi) takes: a password, or an NT hash
    /// behind sspi's `$NTLM$:` prefix.
    pub(crate) fn sspi_secret(&self) -> String {
        match &self.secret {
            Secret::Password(p) => p.clone(),
            Secret::NtHash(h) => format!("$NTLM$:{}", hex::encode(h)),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.secret {
            Secret::Password(_) => "password",
            Secret::NtHash(_) => "nt-hash",
        };
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("secret", &format_args!("<{kind} redacted>"))
            .finish()
    }
}

/// Timeouts and transfer shape.
#[derive(Debug, Clone)]
pub struct SmbConfig {
    /// Bound on one SMB round trip (a create, a query, a listing). A server that stops
    /// answering turns into [`crate::SmbError::Timeout`] after this, never a hang. A pipelined
    /// transfer's reads or writes are bounded together instead: it fails when no answer at all
    /// comes for this long, so a slow link that answers one request after another is not
    /// mistaken for a dead one.
    pub op_timeout: Duration,
    /// Bound on TCP connect + negotiate + logon + tree connect.
    pub connect_timeout: Duration,
    /// Bytes per read/write request; capped by the server's negotiated maximum.
    pub chunk_size: usize,
    /// Read/write requests kept in flight on one connection: loopback and LAN throughput needs
    /// several, since one request at a time leaves the link idle during every round trip.
    pub in_flight: usize,
    /// How many times a connection set-up refused or reset by the server (a full listen backlog)
    /// is retried, with exponential backoff.
    pub connect_retries: u32,
    /// Read the whole file back after an upload and compare its SHA-256 with the local file's.
    /// Off, only the size is compared.
    pub verify_by_reading_back: bool,
    /// The [`crate::SmbShare::session_id`] of an earlier connection to the same server, as the
    /// same user, that was dropped after a network error. The server then ends that session
    /// (closing its files) as soon as this logon succeeds. Without it, a server that never saw
    /// the old connection close (a link that went dark, not one that was reset) keeps its
    /// opens until its own keep-alive gives up, minutes later, and a held upload's open, which
    /// shuts other writers out, blocks the very upload that resumes it.
    pub replaces_session: Option<u64>,
}

impl Default for SmbConfig {
    fn default() -> Self {
        SmbConfig {
            op_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(20),
            chunk_size: 1 << 20,
            in_flight: 16,
            connect_retries: 6,
            verify_by_reading_back: true,
            replaces_session: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credentials::password("admin", "hunter2-secret");
        assert!(!format!("{c:?}").contains("hunter2"));
        let h = Credentials::nt_hash_hex("admin", "a1f2ffa00d1707f5c11046fea7cbd494").unwrap();
        assert!(!format!("{h:?}").contains("a1f2ff"));
        assert_eq!(h.sspi_secret(), "$NTLM$:a1f2ffa00d1707f5c11046fea7cbd494");
    }

    #[test]
    fn bad_hashes_are_refused() {
        assert!(Credentials::nt_hash_hex("a", "xyz").is_none());
        assert!(Credentials::nt_hash_hex("a", "a1f2").is_none());
    }
}
