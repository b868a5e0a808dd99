//! hive-smb's error type, and the pure mapping from what the `smb` crate reports (an NT status, a
//! transport failure) to the few kinds an administrator acts on differently.

use std::path::PathBuf;
use std::time::Duration;

/// NT status codes hive-smb tells apart. The `smb` crate's `Status` enum lacks some of them (e.g.
/// `STATUS_DISK_FULL`), so they are spelled out here.
pub mod nt_status {
    pub const END_OF_FILE: u32 = 0xC000_0011;
    pub const ACCESS_DENIED: u32 = 0xC000_0022;
    pub const OBJECT_NAME_NOT_FOUND: u32 = 0xC000_0034;
    pub const OBJECT_PATH_NOT_FOUND: u32 = 0xC000_003A;
    pub const LOGON_FAILURE: u32 = 0xC000_006D;
    pub const ACCOUNT_RESTRICTION: u32 = 0xC000_006E;
    pub const WRONG_PASSWORD: u32 = 0xC000_006A;
    pub const NO_SUCH_USER: u32 = 0xC000_0064;
    pub const PASSWORD_EXPIRED: u32 = 0xC000_0071;
    pub const ACCOUNT_DISABLED: u32 = 0xC000_0072;
    pub const ACCOUNT_LOCKED_OUT: u32 = 0xC000_0234;
    pub const DISK_FULL: u32 = 0xC000_007F;
    pub const QUOTA_EXCEEDED: u32 = 0xC000_0044;
    pub const NETWORK_NAME_DELETED: u32 = 0xC000_00C9;
    pub const BAD_NETWORK_NAME: u32 = 0xC000_00CC;
    pub const SHARING_VIOLATION: u32 = 0xC000_0043;
    pub const USER_SESSION_DELETED: u32 = 0xC000_0203;
    pub const NETWORK_SESSION_EXPIRED: u32 = 0xC000_035C;
    pub const FILE_IS_A_DIRECTORY: u32 = 0xC000_00BA;
    pub const NOT_A_DIRECTORY: u32 = 0xC000_0103;
    pub const DIRECTORY_NOT_EMPTY: u32 = 0xC000_0101;
}

/// Everything that can go wrong talking SMB to a host. Every variant names the host and the
/// UNC path (`\\host\share\dir\file`) it concerns, so a line in a fleet-wide log stands alone.
#[derive(Debug, thiserror::Error)]
pub enum SmbError {
    #[error("{host}: logon as {user:?} refused (wrong user, password or NT hash)")]
    AuthFailed { host: String, user: String },
    #[error("{host}: share {path} does not exist")]
    ShareNotFound { host: String, path: String },
    #[error("{host}: access denied to {path}")]
    AccessDenied { host: String, path: String },
    #[error("{host}: disk full while writing {path}")]
    DiskFull { host: String, path: String },
    #[error("{host}: {path} not found")]
    NotFound { host: String, path: String },
    /// Another open of the file (by another client, a program on the host, or another hive
    /// connection) excludes this one: e.g. a held upload ([`crate::HeldUpload`]) denies every
    /// other writer until it is closed. Not transient in the sense of [`SmbError::is_transient`]:
    /// the server said no; it may say yes once the other open is closed.
    #[error(
        "{host}: {op} of {path} refused: the file is open elsewhere in a way that excludes this \
         open (sharing violation; another client or program may be writing it)"
    )]
    SharingViolation {
        host: String,
        path: String,
        op: &'static str,
    },
    #[error("{host}: connection lost during {op} of {path}: {detail}")]
    ConnectionLost {
        host: String,
        path: String,
        op: &'static str,
        detail: String,
    },
    #[error("{host}: {op} of {path} timed out after {after:?}")]
    Timeout {
        host: String,
        path: String,
        op: &'static str,
        after: Duration,
    },
    /// A message from the server failed its signature check: something between us and the host
    /// changed it, or the keys disagree. Never retried, never ignored.
    #[error("{host}: a message about {path} failed its signature check during {op}: {detail}")]
    BadSignature {
        host: String,
        path: String,
        op: &'static str,
        detail: String,
    },
    #[error("{host}: {path} failed verification: {detail}")]
    VerifyFailed {
        host: String,
        path: String,
        detail: String,
    },
    #[error("{host}: {op} of {path} failed: {detail}")]
    Protocol {
        host: String,
        path: String,
        op: &'static str,
        detail: String,
    },
    #[error("{host}: {op} of {path}: local file {local}: {source}")]
    Local {
        host: String,
        path: String,
        op: &'static str,
        local: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SmbError {
    /// Whether the same call on a fresh connection may succeed: the connection broke or the server
    /// was too slow, as opposed to the server saying no.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SmbError::ConnectionLost { .. } | SmbError::Timeout { .. }
        )
    }
}

/// What kind of failure an `smb` crate error is, before host and path are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Auth,
    ShareNotFound,
    AccessDenied,
    DiskFull,
    NotFound,
    SharingViolation,
    ConnectionLost,
    Timeout,
    BadSignature,
    Other,
}

/// Maps an NT status to a kind. Pure, so it is tested on the numbers.
pub(crate) fn kind_of_status(status: u32) -> Kind {
    use nt_status::*;
    match status {
        LOGON_FAILURE | ACCOUNT_RESTRICTION | WRONG_PASSWORD | NO_SUCH_USER | PASSWORD_EXPIRED
        | ACCOUNT_DISABLED | ACCOUNT_LOCKED_OUT => Kind::Auth,
        BAD_NETWORK_NAME => Kind::ShareNotFound,
        ACCESS_DENIED => Kind::AccessDenied,
        DISK_FULL | QUOTA_EXCEEDED => Kind::DiskFull,
        OBJECT_NAME_NOT_FOUND | OBJECT_PATH_NOT_FOUND => Kind::NotFound,
        SHARING_VIOLATION => Kind::SharingViolation,
        NETWORK_NAME_DELETED | USER_SESSION_DELETED | NETWORK_SESSION_EXPIRED => {
            Kind::ConnectionLost
        }
        _ => Kind::Other,
    }
}

/// The NT status carried by an `smb` crate error, looking through the `std::io::Error` wrapper the
/// crate's file I/O uses.
pub(crate) fn status_of(err: &smb::Error) -> Option<u32> {
    match err {
        smb::Error::UnexpectedMessageStatus(s) | smb::Error::ReceivedErrorMessage(s, _) => Some(*s),
        smb::Error::IoError(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<smb::Error>())
            .and_then(status_of),
        _ => None,
    }
}

fn io_kind(io: &std::io::Error) -> Kind {
    use std::io::ErrorKind as K;
    if let Some(inner) = io.get_ref().and_then(|e| e.downcast_ref::<smb::Error>()) {
        return kind_of(inner);
    }
    match io.kind() {
        K::ConnectionReset
        | K::ConnectionAborted
        | K::ConnectionRefused
        | K::BrokenPipe
        | K::UnexpectedEof
        | K::NotConnected => Kind::ConnectionLost,
        K::TimedOut => Kind::Timeout,
        K::PermissionDenied => Kind::AccessDenied,
        _ => Kind::Other,
    }
}

/// Classifies an `smb` crate error.
pub(crate) fn kind_of(err: &smb::Error) -> Kind {
    if let Some(status) = status_of(err) {
        return kind_of_status(status);
    }
    match err {
        smb::Error::IoError(io) => io_kind(io),
        smb::Error::TransportError(_) | smb::Error::ConnectionStopped => Kind::ConnectionLost,
        smb::Error::OperationTimeout(..) => Kind::Timeout,
        smb::Error::MissingPermissions(_) => Kind::AccessDenied,
        smb::Error::SignatureVerificationFailed => Kind::BadSignature,
        // The crate does not export the phase's type; its Debug name is stable.
        smb::Error::TranformFailed(t)
            if !t.outgoing && format!("{:?}", t.phase) == "SignVerify" =>
        {
            Kind::BadSignature
        }
        _ => Kind::Other,
    }
}

/// The context a failure happened in; turns a kind into a full [`SmbError`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub op: &'static str,
}

impl Ctx<'_> {
    pub(crate) fn error(&self, kind: Kind, detail: String) -> SmbError {
        let host = self.host.to_string();
        let path = self.path.to_string();
        match kind {
            Kind::Auth => SmbError::AuthFailed { host, user: detail },
            Kind::ShareNotFound => SmbError::ShareNotFound { host, path },
            Kind::AccessDenied => SmbError::AccessDenied { host, path },
            Kind::DiskFull => SmbError::DiskFull { host, path },
            Kind::NotFound => SmbError::NotFound { host, path },
            Kind::SharingViolation => SmbError::SharingViolation {
                host,
                path,
                op: self.op,
            },
            Kind::ConnectionLost => SmbError::ConnectionLost {
                host,
                path,
                op: self.op,
                detail,
            },
            Kind::Timeout => SmbError::Timeout {
                host,
                path,
                op: self.op,
                after: Duration::ZERO,
            },
            Kind::BadSignature => SmbError::BadSignature {
                host,
                path,
                op: self.op,
                detail,
            },
            Kind::Other => SmbError::Protocol {
                host,
                path,
                op: self.op,
                detail,
            },
        }
    }

    pub(crate) fn smb(&self, err: smb::Error) -> SmbError {
        self.error(kind_of(&err), err.to_string())
    }

    pub(crate) fn timeout(&self, after: Duration) -> SmbError {
        SmbError::Timeout {
            host: self.host.to_string(),
            path: self.path.to_string(),
            op: self.op,
            after,
        }
    }

    pub(crate) fn verify(&self, detail: String) -> SmbError {
        SmbError::VerifyFailed {
            host: self.host.to_string(),
            path: self.path.to_string(),
            detail,
        }
    }

    pub(crate) fn local(&self, local: &std::path::Path, source: std::io::Error) -> SmbError {
        SmbError::Local {
            host: self.host.to_string(),
            path: self.path.to_string(),
            op: self.op,
            local: local.to_path_buf(),
            source,
        }
    }

    pub(crate) fn other(&self, detail: String) -> SmbError {
        self.error(Kind::Other, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_kinds_an_admin_acts_on() {
        assert_eq!(kind_of_status(0xC000_006D), Kind::Auth);
        assert_eq!(kind_of_status(0xC000_00CC), Kind::ShareNotFound);
        assert_eq!(kind_of_status(0xC000_0022), Kind::AccessDenied);
        assert_eq!(kind_of_status(0xC000_007F), Kind::DiskFull);
        assert_eq!(kind_of_status(0xC000_0034), Kind::NotFound);
        assert_eq!(kind_of_status(0xC000_003A), Kind::NotFound);
        assert_eq!(kind_of_status(0xC000_0043), Kind::SharingViolation);
        assert_eq!(kind_of_status(0xC000_0203), Kind::ConnectionLost);
        assert_eq!(kind_of_status(0xC000_000D), Kind::Other);
    }

    #[test]
    fn status_is_found_through_the_io_wrapper() {
        let inner = smb::Error::UnexpectedMessageStatus(nt_status::DISK_FULL);
        let wrapped = smb::Error::IoError(std::io::Error::other(inner));
        assert_eq!(status_of(&wrapped), Some(nt_status::DISK_FULL));
        assert_eq!(kind_of(&wrapped), Kind::DiskFull);
    }

    #[test]
    fn broken_sockets_are_connection_lost() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(kind_of(&smb::Error::IoError(io)), Kind::ConnectionLost);
        assert_eq!(
            kind_of(&smb::Error::ConnectionStopped),
            Kind::ConnectionLost
        );
    }

    #[test]
    fn every_message_names_host_and_path() {
        let ctx = Ctx {
            host: "web01",
            path: r"\\web01\C$\hive\kb.msu",
            op: "upload",
        };
        for kind in [
            Kind::AccessDenied,
            Kind::DiskFull,
            Kind::NotFound,
            Kind::SharingViolation,
            Kind::ConnectionLost,
            Kind::Other,
        ] {
            let msg = ctx.error(kind, "detail".into()).to_string();
            assert!(
                msg.contains("web01") && msg.contains(r"\\web01\C$\hive\kb.msu"),
                "{msg}"
            );
        }
        let msg = ctx.timeout(Duration::from_secs(3)).to_string();
        assert!(
            msg.contains(r"\\web01\C$\hive\kb.msu") && msg.contains("3s"),
            "{msg}"
        );
    }
}
