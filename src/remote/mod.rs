//! The one interface the orchestrator talks to a host through, whatever the transport.
//!
//! A [`Target`] runs commands, copies files in, reads byte ranges of remote files and tells the
//! boot time. Adapters map it onto the transport crates: WinRM for commands with SMB for files
//! (Windows' defaults), or SSH with SFTP. Each adapter keeps ONE authenticated connection and ONE
//! shell per host for the whole run: re-authenticating per command is what makes the peers slow.
//! Scan, deploy and rollout open targets only through a [`Connector`], so `hive demo` and tests
//! can put their own hosts behind the same seam instead of branches in the adapters.
//!
//! Remote paths are Windows paths (`C:\Windows\Temp\hive\run1\Q300972.exe`); an adapter maps them
//! onto its file channel (the `C$` share, or `/C:/...` for Windows OpenSSH's SFTP; see
//! [`SshTarget`]).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use hive_winrm::powershell::PreparedScript;
use serde::{Deserialize, Serialize};

use crate::inventory::{Host, Secret, Transport};

mod error;
pub mod follow;
mod ssh;
mod winrm;

pub use error::RemoteError;
pub use ssh::{SshTarget, sftp_path};
pub use winrm::{WinrmTarget, share_path};

/// A PowerShell single-quoted string literal: `'` doubles, nothing else is special.
pub fn ps_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A boxed future, so `Target` stays object-safe (`Box<dyn Target>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a command left behind. The exit code is a u32: installers exit with HRESULTs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: u32,
}

/// A command for the host's shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A cmd.exe command line; the caller quotes arguments (see [`crate::deploy::quote`]).
    Cmd(String),
    /// A PowerShell script of any length.
    PowerShell(String),
    /// A PowerShell script sent to many hosts, encoded for the wire once (a scan's probe): it
    /// runs as [`Command::PowerShell`] of its text would.
    Prepared(PreparedScript),
}

impl Command {
    /// A short label for logs: the first word of a command line, or `powershell`. Never the whole
    /// text, which may be long or (for custom commands) sensitive.
    pub fn label(&self) -> String {
        match self {
            Command::Cmd(line) => line.split_whitespace().next().unwrap_or("").to_string(),
            Command::PowerShell(_) | Command::Prepared(_) => "powershell".into(),
        }
    }

    /// The PowerShell text of a script, `None` for a command line.
    pub fn script(&self) -> Option<&str> {
        match self {
            Command::Cmd(_) => None,
            Command::PowerShell(script) => Some(script),
            Command::Prepared(prepared) => Some(prepared.script()),
        }
    }
}

/// What a file copy did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutReport {
    pub bytes: u64,
    /// Bytes already on the target and verified, not sent again.
    pub resumed_from: u64,
    /// SHA-256 of the file as it now is on the target, lowercase hex.
    pub sha256: String,
}

/// A copy the host hashed while it arrived ([`Target::put_file_host_hashed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostHashedPut {
    pub bytes: u64,
    /// Bytes already on the target and verified, not sent again.
    pub resumed_from: u64,
    /// What the host's follower said: its hash of the whole file, or why it has none.
    pub host: follow::Followed,
    /// The file's size and last write time once hive let go of it: the same stamp later shows
    /// that nothing wrote the file since it was hashed ([`Target::file_stamp`]).
    pub stamp: Option<FileStamp>,
}

/// A file's size and last write time, as the host's file system reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub bytes: u64,
    pub modified: std::time::SystemTime,
}

/// One host, reachable.
pub trait Target: Send + Sync {
    /// The inventory name.
    fn host(&self) -> &str;
    /// Run a command to completion, or kill it after `timeout`.
    fn exec<'a>(
        &'a mut self,
        command: &'a Command,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, RemoteError>>;
    /// Copy a local file to a Windows path on the host, verified by size and SHA-256.
    fn put_file<'a>(
        &'a mut self,
        local: &'a Path,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<PutReport, RemoteError>>;
    /// Whether [`Target::put_file_host_hashed`] works on this transport.
    fn hashes_while_copying(&self) -> bool {
        false
    }
    /// Copy a local file in while the host itself hashes it as it arrives (see [`follow`]): the
    /// host's SHA-256 is ready when the copy ends, and the orchestrator does not hash what it
    /// sends. The copy's success and the host's answer are separate: a copy that landed with no
    /// usable answer (no PowerShell, a timeout) is `Ok` with [`follow::Followed::Failed`], and the
    /// caller hashes the file on the host afterwards. `timeout` bounds the follower.
    fn put_file_host_hashed<'a>(
        &'a mut self,
        local: &'a Path,
        remote: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<HostHashedPut, RemoteError>> {
        let _ = (local, timeout);
        let msg = format!(
            "{}: this transport cannot hash {remote} while copying it",
            self.host()
        );
        Box::pin(async move { Err(RemoteError::Failed(msg)) })
    }
    /// The size and last write time of a remote file, `None` when it does not exist or the
    /// transport cannot tell.
    fn file_stamp<'a>(
        &'a mut self,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<Option<FileStamp>, RemoteError>> {
        let _ = remote;
        Box::pin(async { Ok(None) })
    }
    /// Read `len` bytes at `offset` of a remote file (fewer at its end).
    fn read_file_range<'a>(
        &'a mut self,
        remote: &'a str,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, RemoteError>>;
    /// The SHA-256 of a remote file if it exists (the content cache: a copy already there with
    /// the right hash is not sent again).
    fn remote_sha256<'a>(
        &'a mut self,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, RemoteError>>;
    /// Drop the connection now (e.g. before a reboot); the next call reconnects.
    fn disconnect(&mut self);
    /// The channel files travel over (`smb`, `sftp`): scan results say which one read the
    /// file versions.
    fn file_channel(&self) -> &'static str {
        "smb"
    }
    /// Delete a remote file (deploy's clean-up of staged installers).
    fn remove_file<'a>(&'a mut self, remote: &'a str) -> BoxFuture<'a, Result<(), RemoteError>> {
        let msg = format!("{}: this transport cannot delete {remote}", self.host());
        Box::pin(async move { Err(RemoteError::Failed(msg)) })
    }
    /// Delete an empty remote folder.
    fn remove_dir<'a>(&'a mut self, remote: &'a str) -> BoxFuture<'a, Result<(), RemoteError>> {
        self.remove_file(remote)
    }
    /// Bytes of the current [`Target::put_file`] on the host so far, for the copy's progress
    /// (MB/s, ETA), where the transport counts them.
    fn copy_progress(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        None
    }
}

/// Timeouts that apply to every host of a run.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            operation: Duration::from_secs(20),
        }
    }
}

/// How a run opens each host's [`Target`]: the one seam between the orchestration (scan, deploy,
/// rollout) and the transports. [`NetworkConnector`] is the real one; `hive demo` has its own for
/// simulated hosts whose drives are local folders, and tests can script one.
pub trait Connector: Send + Sync {
    /// Open the adapter for `host`. Nothing is sent until the first call on the target.
    fn open(&self, host: &Host, secret: &Secret) -> Result<Box<dyn Target>, RemoteError>;
}

/// The transports the inventory names: WinRM with SMB for files, or SSH with SFTP.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetworkConnector {
    pub timeouts: Timeouts,
}

impl NetworkConnector {
    pub fn new(timeouts: Timeouts) -> Self {
        NetworkConnector { timeouts }
    }
}

impl Connector for NetworkConnector {
    fn open(&self, host: &Host, secret: &Secret) -> Result<Box<dyn Target>, RemoteError> {
        match host.transport {
            Transport::WinrmHttp | Transport::WinrmHttps => {
                Ok(Box::new(WinrmTarget::new(host, secret, self.timeouts)?))
            }
            Transport::Ssh => Ok(Box::new(SshTarget::new(host, secret, self.timeouts)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ssh_host_without_a_pinned_key_is_refused() {
        let inv = crate::inventory::Inventory::parse(
            "[[host]]\nname=\"a\"\ntransport=\"ssh\"\ncredential=\"prompt\"\n",
            Path::new("inv.toml"),
        )
        .unwrap();
        let err = NetworkConnector::default()
            .open(&inv.hosts[0], &Secret::new("x"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("host_key"), "{err}");
    }
}
