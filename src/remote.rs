//! The one interface the orchestrator talks to a host through, whatever the transport.
//!
//! A [`Target`] runs commands, copies files in, reads byte ranges of remote files and tells the
//! boot time. Adapters map it onto the transport crates: WinRM for commands with SMB for files
//! (Windows' defaults), or SSH with SFTP. Each adapter keeps ONE authenticated connection and ONE
//! shell per host for the whole run: re-authenticating per command is what makes the peers slow.
//!
//! Remote paths are Windows paths (`C:\Windows\Temp\hive\run1\Q300972.exe`); an adapter maps them
//! onto its file channel (the `C$` share, or `/C:/...` for Windows OpenSSH's SFTP).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::inventory::{Host, Secret, Transport};

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
    /// A cmd.exe command line; the caller quotes arguments (see [`crate::quote`]).
    Cmd(String),
    /// A PowerShell script of any length.
    PowerShell(String),
}

impl Command {
    /// A short label for logs: the first word of a command line, or `powershell`. Never the whole
    /// text, which may be long or (for custom commands) sensitive.
    pub fn label(&self) -> String {
        match self {
            Command::Cmd(line) => line.split_whitespace().next().unwrap_or("").to_string(),
            Command::PowerShell(_) => "powershell".into(),
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

/// Why a step on a host failed, classified so the orchestrator can decide: an unreachable host
/// may come back (a reboot), a refused logon will not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RemoteError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    AuthFailed(String),
    #[error("{0}")]
    TimedOut(String),
    #[error("{0}")]
    DiskFull(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

impl RemoteError {
    /// The scan's view of the failure.
    pub fn to_host_failure(&self) -> crate::scan::HostFailure {
        use crate::scan::HostFailure as F;
        match self {
            RemoteError::Unreachable(m) => F::Unreachable(m.clone()),
            RemoteError::AuthFailed(m) => F::AuthFailed(m.clone()),
            RemoteError::TimedOut(m) => F::TimedOut(m.clone()),
            other => F::ProbeFailed(other.to_string()),
        }
    }
}

impl From<hive_winrm::Error> for RemoteError {
    fn from(e: hive_winrm::Error) -> Self {
        use hive_winrm::Error as E;
        let text = e.to_string();
        match e {
            E::Connect { .. } | E::Connection { .. } | E::Tls { .. } => {
                RemoteError::Unreachable(text)
            }
            E::Auth { .. } => RemoteError::AuthFailed(text),
            E::Timeout { .. } | E::CommandTimeout { .. } => RemoteError::TimedOut(text),
            _ => RemoteError::Failed(text),
        }
    }
}

impl From<hive_smb::SmbError> for RemoteError {
    fn from(e: hive_smb::SmbError) -> Self {
        use hive_smb::SmbError as E;
        let text = e.to_string();
        match e {
            E::AuthFailed { .. } => RemoteError::AuthFailed(text),
            E::ConnectionLost { .. } => RemoteError::Unreachable(text),
            E::Timeout { .. } => RemoteError::TimedOut(text),
            E::DiskFull { .. } => RemoteError::DiskFull(text),
            E::NotFound { .. } | E::ShareNotFound { .. } => RemoteError::NotFound(text),
            _ => RemoteError::Failed(text),
        }
    }
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
    /// Delete a remote file (deploy's clean-up of staged installers).
    fn remove_file<'a>(&'a mut self, remote: &'a str) -> BoxFuture<'a, Result<(), RemoteError>> {
        let msg = format!("{}: this transport cannot delete {remote}", self.host());
        Box::pin(async move { Err(RemoteError::Failed(msg)) })
    }
    /// Delete an empty remote folder.
    fn remove_dir<'a>(&'a mut self, remote: &'a str) -> BoxFuture<'a, Result<(), RemoteError>> {
        self.remove_file(remote)
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

/// Open the right adapter for a host. Nothing is sent until the first call.
pub fn connect(
    host: &Host,
    secret: &Secret,
    timeouts: Timeouts,
) -> Result<Box<dyn Target>, RemoteError> {
    match host.transport {
        Transport::WinrmHttp | Transport::WinrmHttps => {
            Ok(Box::new(WinrmTarget::new(host, secret, timeouts)?))
        }
        Transport::Ssh => Err(RemoteError::Failed(format!(
            "{}: the ssh transport is not wired into scans yet",
            host.name
        ))),
    }
}

/// WinRM for commands, SMB (`C$`) for files: what every Windows server offers out of the box.
pub struct WinrmTarget {
    name: String,
    address: String,
    smb_port: u16,
    smb_share: String,
    smb_root: String,
    user: String,
    secret: Secret,
    timeouts: Timeouts,
    session: hive_winrm::Session,
    smb: Option<hive_smb::SmbShare>,
    /// Files go to this local folder (standing for C:) instead of over SMB: only `hive demo`,
    /// whose simulated hosts live in this process, uses it. Tests use real Samba.
    local_drive: Option<std::path::PathBuf>,
}

impl WinrmTarget {
    pub fn new(host: &Host, secret: &Secret, timeouts: Timeouts) -> Result<Self, RemoteError> {
        let endpoint = match host.transport {
            Transport::WinrmHttps => hive_winrm::Endpoint {
                port: host.port,
                ..hive_winrm::Endpoint::https(&host.address)
            },
            _ => hive_winrm::Endpoint {
                port: host.port,
                ..hive_winrm::Endpoint::http(&host.address)
            },
        };
        let mut cfg = hive_winrm::ClientConfig::new(
            endpoint,
            hive_winrm::Credentials::ntlm(&host.user, secret.expose()),
        );
        cfg.connect_timeout = timeouts.connect;
        cfg.operation_timeout = timeouts.operation;
        if let Some(pin) = &host.pin {
            cfg.trust = hive_winrm::ServerTrust::thumbprint(pin)
                .map_err(|e| RemoteError::Failed(format!("{}: {e}", host.name)))?;
        }
        Ok(WinrmTarget {
            name: host.name.clone(),
            address: host.smb_address.clone(),
            smb_port: host.smb_port,
            smb_share: host.smb_share.clone(),
            smb_root: host.smb_root.clone(),
            user: host.user.clone(),
            secret: secret.clone(),
            timeouts,
            session: hive_winrm::Session::new(cfg).map_err(RemoteError::from)?,
            smb: None,
            local_drive: None,
        })
    }

    /// A target whose C: drive is a local folder (the in-process simulated fleet of `hive demo`).
    pub fn with_local_drive(
        host: &Host,
        secret: &Secret,
        timeouts: Timeouts,
        drive: &Path,
    ) -> Result<Self, RemoteError> {
        let mut t = Self::new(host, secret, timeouts)?;
        t.local_drive = Some(drive.to_path_buf());
        Ok(t)
    }

    fn local_path(&self, drive: &Path, remote: &str) -> Result<std::path::PathBuf, RemoteError> {
        let rel = share_path("", remote).ok_or_else(|| {
            RemoteError::Failed(format!("{}: {remote} is not a C:\\ path", self.name))
        })?;
        Ok(rel.split('\\').fold(drive.to_path_buf(), |p, c| p.join(c)))
    }

    async fn share(&mut self) -> Result<&hive_smb::SmbShare, RemoteError> {
        if self.smb.is_none() {
            let config = hive_smb::SmbConfig {
                connect_timeout: self.timeouts.connect,
                ..hive_smb::SmbConfig::default()
            };
            let creds = hive_smb::Credentials::password(&self.user, self.secret.expose());
            let share = hive_smb::SmbShare::connect(
                &self.address,
                self.smb_port,
                &self.smb_share,
                &creds,
                &config,
            )
            .await?;
            self.smb = Some(share);
        }
        self.smb
            .as_ref()
            .ok_or_else(|| RemoteError::Failed(format!("{}: SMB share not connected", self.name)))
    }

    /// `C:\Windows\Temp\x` → the path inside the `C$` share (below `smb_root`).
    fn share_path(&self, remote: &str) -> Result<String, RemoteError> {
        share_path(&self.smb_root, remote).ok_or_else(|| {
            RemoteError::Failed(format!("{}: {remote} is not a C:\\ path", self.name))
        })
    }
}

/// Map a `C:\...` path into a share rooted at `root` (the share's folder standing for C:).
pub fn share_path(root: &str, remote: &str) -> Option<String> {
    let rest = remote
        .strip_prefix("C:\\")
        .or_else(|| remote.strip_prefix("c:\\"))
        .or_else(|| remote.strip_prefix("C:/"))?;
    if rest.split(['\\', '/']).any(|p| p == "..") {
        return None;
    }
    let root = root.trim_matches(['\\', '/']);
    Some(if root.is_empty() {
        rest.to_string()
    } else {
        format!("{root}\\{rest}")
    })
}

impl Target for WinrmTarget {
    fn host(&self) -> &str {
        &self.name
    }

    fn exec<'a>(
        &'a mut self,
        command: &'a Command,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, RemoteError>> {
        Box::pin(async move {
            let out = match command {
                Command::Cmd(line) => self.session.run_cmd(line, Some(timeout)).await?,
                Command::PowerShell(script) => {
                    self.session.run_powershell(script, Some(timeout)).await?
                }
            };
            Ok(ExecOutput {
                stdout: out.stdout_text(),
                stderr: out.stderr_text(),
                exit_code: out.exit_code,
            })
        })
    }

    fn put_file<'a>(
        &'a mut self,
        local: &'a Path,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<PutReport, RemoteError>> {
        Box::pin(async move {
            if let Some(drive) = self.local_drive.clone() {
                return local::put(&self.local_path(&drive, remote)?, local);
            }
            let path = self.share_path(remote)?;
            let share = self.share().await?;
            if let Some((dir, _)) = path.rsplit_once('\\') {
                share.create_dir_all(dir).await?;
            }
            let r = share.upload(local, &path).await?;
            Ok(PutReport {
                bytes: r.bytes,
                resumed_from: r.resumed_from,
                sha256: r.sha256_hex(),
            })
        })
    }

    fn read_file_range<'a>(
        &'a mut self,
        remote: &'a str,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, RemoteError>> {
        Box::pin(async move {
            if let Some(drive) = self.local_drive.clone() {
                return local::read_range(&self.local_path(&drive, remote)?, offset, len);
            }
            let path = self.share_path(remote)?;
            Ok(self.share().await?.read_range(&path, offset, len).await?)
        })
    }

    fn remote_sha256<'a>(
        &'a mut self,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, RemoteError>> {
        Box::pin(async move {
            if let Some(drive) = self.local_drive.clone() {
                return local::sha256(&self.local_path(&drive, remote)?);
            }
            let path = self.share_path(remote)?;
            let share = self.share().await?;
            match share.sha256(&path).await {
                Ok((_, hash)) => Ok(Some(hex::encode(hash))),
                Err(hive_smb::SmbError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn disconnect(&mut self) {
        self.session.client().disconnect();
        self.smb = None;
    }

    fn remove_file<'a>(&'a mut self, remote: &'a str) -> BoxFuture<'a, Result<(), RemoteError>> {
        Box::pin(async move {
            if let Some(drive) = self.local_drive.clone() {
                let p = self.local_path(&drive, remote)?;
                return std::fs::remove_file(&p).map_err(|e| local::io(&p, e));
            }
            let path = self.share_path(remote)?;
            Ok(self.share().await?.remove_file(&path).await?)
        })
    }

    fn remove_dir<'a>(&'a mut self, remote: &'a str) -> BoxFuture<'a, Result<(), RemoteError>> {
        Box::pin(async move {
            if let Some(drive) = self.local_drive.clone() {
                let p = self.local_path(&drive, remote)?;
                return std::fs::remove_dir(&p).map_err(|e| local::io(&p, e));
            }
            let path = self.share_path(remote)?;
            Ok(self.share().await?.remove_dir(&path).await?)
        })
    }
}

/// File operations on a local folder standing for a drive (`hive demo` only).
mod local {
    use std::io::{Read, Seek, SeekFrom};
    use std::path::Path;

    use sha2::{Digest, Sha256};

    use super::{PutReport, RemoteError};

    pub fn io(path: &Path, e: std::io::Error) -> RemoteError {
        if e.kind() == std::io::ErrorKind::NotFound {
            RemoteError::NotFound(format!("{}: not found", path.display()))
        } else {
            RemoteError::Failed(format!("{}: {e}", path.display()))
        }
    }

    pub fn put(dest: &Path, src: &Path) -> Result<PutReport, RemoteError> {
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        let bytes = std::fs::copy(src, dest).map_err(|e| io(dest, e))?;
        let sha256 = sha256(dest)?.unwrap_or_default();
        Ok(PutReport {
            bytes,
            resumed_from: 0,
            sha256,
        })
    }

    pub fn read_range(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, RemoteError> {
        let mut f = std::fs::File::open(path).map_err(|e| io(path, e))?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| io(path, e))?;
        let mut buf = Vec::new();
        f.take(len).read_to_end(&mut buf).map_err(|e| io(path, e))?;
        Ok(buf)
    }

    pub fn sha256(path: &Path) -> Result<Option<String>, RemoteError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(hex::encode(Sha256::digest(&bytes)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_drive_paths_map_into_the_share() {
        assert_eq!(
            share_path("", r"C:\Windows\Temp\hive\r1\Q1.exe").as_deref(),
            Some(r"Windows\Temp\hive\r1\Q1.exe")
        );
        assert_eq!(
            share_path("W2K01", r"C:\Windows\x.dll").as_deref(),
            Some(r"W2K01\Windows\x.dll")
        );
        assert_eq!(share_path("", r"D:\x"), None);
        assert_eq!(share_path("", r"C:\Windows\..\..\etc"), None);
    }
}
