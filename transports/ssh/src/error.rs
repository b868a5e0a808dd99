//! The one error type of this crate. Every variant names the host (`host:port`) so a fleet-wide run
//! can say which of hundreds of targets failed and why, without the caller adding context.

use std::path::PathBuf;
use std::time::Duration;

use crate::kill::KillOutcome;

/// Everything that can go wrong talking to one SSH host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshError {
    /// The host key pin is not a `SHA256:<base64>` fingerprint as `ssh-keygen -l` prints it.
    #[error(
        "{host}: host key pin {pin:?} is not a SHA256 fingerprint like `SHA256:<43 base64 chars>`"
    )]
    BadHostKeyPin { host: String, pin: String },

    /// TCP connect, key exchange and authentication together took longer than allowed.
    #[error("{host}: no SSH session within {after:?} (connect, key exchange and authentication)")]
    ConnectTimeout { host: String, after: Duration },

    /// The TCP connection could not be made.
    #[error("{host}: cannot connect: {source}")]
    Unreachable {
        host: String,
        #[source]
        source: std::io::Error,
    },

    /// The server proved it holds a host key other than the pinned one: possibly a
    /// man-in-the-middle, possibly a reinstalled host. Never connect anyway; re-pin deliberately.
    #[error(
        "{host}: HOST KEY MISMATCH, refusing to connect: expected {expected}, server presented {presented}"
    )]
    HostKeyMismatch {
        host: String,
        expected: String,
        presented: String,
    },

    /// The server refused the credentials. `fix` says what the admin can change: the password,
    /// or which public keys (by fingerprint) to add to the account's authorized keys.
    #[error("{host}: authentication as {user:?} with {method} refused by the server: {fix}")]
    AuthRefused {
        host: String,
        user: String,
        method: &'static str,
        fix: String,
    },

    /// The SSH agent could not be reached or holds no key.
    #[error("{host}: SSH agent at {}: {message}", socket.display())]
    Agent {
        host: String,
        socket: PathBuf,
        message: String,
    },

    /// The private key file could not be read or decoded (wrong passphrase included).
    #[error("{host}: cannot load private key {path}: {source}")]
    KeyFile {
        host: String,
        path: PathBuf,
        #[source]
        source: Box<russh::keys::Error>,
    },

    /// The SSH connection failed below the command level (dropped, protocol error, peer gone).
    #[error("{host}: SSH connection failed while {doing}: {source}")]
    Protocol {
        host: String,
        doing: &'static str,
        #[source]
        source: russh::Error,
    },

    /// The server would not run the command (e.g. `exec` refused by a restricted account).
    #[error("{host}: the server refused to run the command")]
    ExecRefused { host: String },

    /// The channel closed without an exit status or signal: the outcome of the command is unknown,
    /// so it must be treated as failed.
    #[error("{host}: the command's channel closed without an exit status (outcome unknown)")]
    NoExitStatus { host: String },

    /// The command ran past its time limit; `kill` says what was done about the remote process.
    #[error("{host}: command still running after {after:?}; {kill}")]
    CommandTimedOut {
        host: String,
        after: Duration,
        kill: KillOutcome,
    },

    /// An SFTP operation on a remote path failed.
    #[error("{host}: SFTP {op} {path}: {source}")]
    Sftp {
        host: String,
        op: &'static str,
        path: String,
        #[source]
        source: russh_sftp::client::error::Error,
    },

    /// Reading or writing remote file data over SFTP failed (the server's write/close status
    /// included: this is where a full disk shows up).
    #[error("{host}: SFTP {op} {path}: {source}")]
    SftpIo {
        host: String,
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A local file could not be read or written.
    #[error("{host}: local file {path}: {source}")]
    LocalFile {
        host: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An SFTP transfer did not move the number of bytes it should have.
    #[error("{host}: SFTP {op} {path}: expected {expected} bytes, got {actual}")]
    ShortTransfer {
        host: String,
        op: &'static str,
        path: String,
        expected: u64,
        actual: u64,
    },
}

impl SshError {
    /// The server said the remote path does not exist (SFTP `SSH_FX_NO_SUCH_FILE`): callers that
    /// probe for a file (a content cache) treat that as "absent", not as a failure.
    pub fn is_not_found(&self) -> bool {
        use russh_sftp::client::error::Error as E;
        use russh_sftp::protocol::StatusCode;
        matches!(self, SshError::Sftp { source: E::Status(s), .. } if s.status_code == StatusCode::NoSuchFile)
    }
}

/// What `check_server_key` reports to russh; turned into [`SshError`] by the connect code, which
/// knows the host name.
#[derive(Debug)]
pub(crate) enum HandlerError {
    Ssh(russh::Error),
    HostKeyMismatch { presented: String },
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Ssh(e)
    }
}
