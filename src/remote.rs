//! The one interface the orchestrator talks to a host through, whatever the transport.
//!
//! A [`Target`] runs commands, copies files in, reads byte ranges of remote files and tells the
//! boot time. Adapters map it onto the transport crates: WinRM for commands with SMB for files
//! (Windows' defaults), or SSH with SFTP. Each adapter keeps ONE authenticated connection and ONE
//! shell per host for the whole run: re-authenticating per command is what makes the peers slow.
//!
//! Remote paths are Windows paths (`C:\Windows\Temp\hive\run1\Q300972.exe`); an adapter maps them
//! onto its file channel (the `C$` share, or `/C:/...` for Windows OpenSSH's SFTP; see
//! [`SshTarget`]).

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
    /// A cmd.exe command line; the caller quotes arguments (see [`crate::deploy::quote`]).
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

impl From<hive_ssh::SshError> for RemoteError {
    fn from(e: hive_ssh::SshError) -> Self {
        use hive_ssh::SshError as E;
        let text = e.to_string();
        if e.is_not_found() {
            return RemoteError::NotFound(text);
        }
        match e {
            // A dropped connection, or one closed at once (a host going down or rebooting):
            // the host may come back, as with WinRM.
            E::Unreachable { .. } | E::Protocol { .. } | E::NoExitStatus { .. } => {
                RemoteError::Unreachable(text)
            }
            // A host presenting another key will not fix itself either: never retried as if
            // it were down.
            E::AuthRefused { .. } | E::HostKeyMismatch { .. } | E::KeyFile { .. } => {
                RemoteError::AuthFailed(text)
            }
            E::ConnectTimeout { .. } | E::CommandTimedOut { .. } => RemoteError::TimedOut(text),
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
        Transport::Ssh => Ok(Box::new(SshTarget::new(host, secret, timeouts)?)),
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
                // Every staged file is then hashed by the host itself (deploy::stage's
                // verify_on_target: certutil, Get-FileHash, or a read-back where the host has
                // neither), so reading every byte back here would only check the same thing twice.
                verify_by_reading_back: false,
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

/// Windows OpenSSH for commands and SFTP for files: hosts where SSH is the way in (no WinRM, no
/// SMB). One SSH connection per host carries both; it opens at the first call and again after a
/// [`Target::disconnect`] or a dropped connection.
///
/// Commands go to the server's default shell, `cmd.exe` on Windows OpenSSH. PowerShell scripts
/// go as `powershell.exe -EncodedCommand` while that fits cmd.exe's 8191-character line, else
/// on stdin to `powershell.exe -` (the same choice hive's WinRM client makes). Exit codes are
/// the whole DWORD Windows OpenSSH reports.
///
/// Files: `C:\X\Y` is `<sftp_root>/X/Y`, `/C:/X/Y` on Windows OpenSSH. An upload is verified by
/// reading the file back and hashing it here (SFTP has no hash request; the staged file's hash is
/// checked again on the host by deploy). A failed write on a file system that has less room left
/// than the file needs is [`RemoteError::DiskFull`]. An upload cut off earlier resumes: a shorter
/// remote copy whose bytes hash like the start of the local file is completed, not sent again.
pub struct SshTarget {
    name: String,
    target: hive_ssh::SshTarget,
    options: hive_ssh::SshOptions,
    sftp_root: String,
    session: Option<hive_ssh::SshSession>,
    sftp: Option<hive_ssh::Sftp>,
}

impl SshTarget {
    pub fn new(host: &Host, secret: &Secret, timeouts: Timeouts) -> Result<Self, RemoteError> {
        let pin = host.pin.as_deref().ok_or_else(|| {
            RemoteError::Failed(format!(
                "{}: an ssh host needs `host_key` in the inventory (its SHA256 fingerprint, as \
                 `ssh-keygen -l -E sha256 -f ssh_host_ed25519_key.pub` prints it): hive never \
                 trusts a host key on first use",
                host.name
            ))
        })?;
        let host_key = hive_ssh::HostKeyPin::parse(&host.name, pin)
            .map_err(|e| RemoteError::Failed(e.to_string()))?;
        let options = hive_ssh::SshOptions {
            connect_timeout: timeouts.connect,
            sftp_request_timeout: timeouts.operation,
            ..hive_ssh::SshOptions::default()
        };
        Ok(SshTarget {
            name: host.name.clone(),
            target: hive_ssh::SshTarget {
                host: host.address.clone(),
                port: host.port,
                host_key,
                user: host.user.clone(),
                auth: hive_ssh::Auth::Password(hive_ssh::Secret::new(secret.expose())),
            },
            options,
            sftp_root: host.sftp_root.clone(),
            session: None,
            sftp: None,
        })
    }

    async fn session(&mut self) -> Result<&hive_ssh::SshSession, RemoteError> {
        if self.session.is_none() {
            let s = hive_ssh::SshSession::connect(&self.target, &self.options).await;
            self.session = Some(s.map_err(|e| self.named(e))?);
        }
        self.session
            .as_ref()
            .ok_or_else(|| RemoteError::Failed(format!("{}: SSH not connected", self.name)))
    }

    async fn sftp(&mut self) -> Result<&hive_ssh::Sftp, RemoteError> {
        if self.sftp.is_none() {
            let opened = self.session().await?.sftp().await;
            let sftp = opened.map_err(|e| self.failed(e))?;
            self.sftp = Some(sftp);
        }
        self.sftp
            .as_ref()
            .ok_or_else(|| RemoteError::Failed(format!("{}: SFTP not open", self.name)))
    }

    /// The error with the inventory name in front (hive-ssh names `address:port`).
    fn named(&self, e: hive_ssh::SshError) -> RemoteError {
        let e = RemoteError::from(e);
        let prefix = |m: String| format!("{}: {m}", self.name);
        match e {
            RemoteError::Unreachable(m) => RemoteError::Unreachable(prefix(m)),
            RemoteError::AuthFailed(m) => RemoteError::AuthFailed(prefix(m)),
            RemoteError::TimedOut(m) => RemoteError::TimedOut(prefix(m)),
            RemoteError::DiskFull(m) => RemoteError::DiskFull(prefix(m)),
            RemoteError::NotFound(m) => RemoteError::NotFound(prefix(m)),
            RemoteError::Failed(m) => RemoteError::Failed(prefix(m)),
        }
    }

    /// [`named`](Self::named), dropping the connection when it is the connection that failed, so
    /// the next call reconnects (a host back from a reboot).
    fn failed(&mut self, e: hive_ssh::SshError) -> RemoteError {
        let e = self.named(e);
        if matches!(e, RemoteError::Unreachable(_)) {
            self.sftp = None;
            self.session = None;
        }
        e
    }

    fn sftp_path(&self, remote: &str) -> Result<String, RemoteError> {
        sftp_path(&self.sftp_root, remote).ok_or_else(|| {
            RemoteError::Failed(format!("{}: {remote} is not a C:\\ path", self.name))
        })
    }

    /// Creates the folders above `path` that are missing (SFTP makes one level at a time).
    async fn create_parents(&mut self, path: &str) -> Result<(), RemoteError> {
        let Some((dir, _)) = path.rsplit_once('/') else {
            return Ok(());
        };
        let root = self.sftp_root_path();
        let mut at = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            at.push('/');
            at.push_str(part);
            if at.len() <= root.len() {
                continue;
            }
            let sftp = self.sftp().await?;
            if sftp.size(&at).await.is_err() {
                // A concurrent creator or an existing folder both end well; a real failure
                // shows up at the upload with the path named.
                let _ = sftp.create_dir(&at).await;
            }
        }
        Ok(())
    }

    fn sftp_root_path(&self) -> String {
        let root = self.sftp_root.trim_end_matches('/');
        if root.is_empty() {
            "/C:".to_string()
        } else {
            root.to_string()
        }
    }

    /// Sends `local` to `path`, from `offset` on when the first `offset` bytes are there already.
    async fn upload(&mut self, local: &Path, path: &str, offset: u64) -> Result<u64, RemoteError> {
        let sftp = self.sftp().await?;
        let sent = if offset > 0 {
            sftp.upload_from(local, path, offset).await
        } else {
            sftp.upload(local, path).await
        };
        match sent {
            Ok(n) => Ok(n),
            Err(e) => {
                let need = std::fs::metadata(local)
                    .map(|m| m.len().saturating_sub(offset))
                    .unwrap_or(0);
                let dir = path.rsplit_once('/').map_or("/", |(d, _)| d).to_string();
                let free = match self.sftp.as_ref() {
                    Some(s) => s.free_bytes(&dir).await.ok().flatten(),
                    None => None,
                };
                match free {
                    Some(free) if matches!(e, hive_ssh::SshError::SftpIo { .. }) && free < need => {
                        Err(RemoteError::DiskFull(format!(
                            "{}: {e} (the disk has {free} bytes free, the file needs {need})",
                            self.name
                        )))
                    }
                    _ => Err(self.failed(e)),
                }
            }
        }
    }

    /// The size of `path`, or `None` if it does not exist.
    async fn remote_size(&mut self, path: &str) -> Result<Option<u64>, RemoteError> {
        match self.sftp().await?.size(path).await {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// SHA-256 of the first `len` bytes of `path` (fewer if it is shorter), read back over SFTP,
    /// and how many bytes that was.
    async fn remote_prefix_hash(
        &mut self,
        path: &str,
        len: u64,
    ) -> Result<(u64, String), RemoteError> {
        use sha2::Digest;
        const PIECE: u64 = 4 * 1024 * 1024;
        let mut hash = sha2::Sha256::new();
        let mut offset = 0u64;
        while offset < len {
            let want = usize::try_from(PIECE.min(len - offset)).unwrap_or(usize::MAX);
            let got = self.sftp().await?.read_range(path, offset, want).await;
            let bytes = got.map_err(|e| self.failed(e))?;
            if bytes.is_empty() {
                break;
            }
            offset += bytes.len() as u64;
            hash.update(&bytes);
        }
        Ok((offset, hex::encode(hash.finalize())))
    }

    async fn sha256_of(&mut self, path: &str) -> Result<Option<(u64, String)>, RemoteError> {
        match self.remote_size(path).await? {
            None => Ok(None),
            Some(size) => Ok(Some(self.remote_prefix_hash(path, size).await?)),
        }
    }

    /// How much of `local` is already at `path` and need not be sent again: a shorter remote
    /// copy whose bytes are the local file's first bytes (an upload cut off by a dropped
    /// connection or a reboot). 0 when there is nothing to resume.
    async fn resumable(
        &mut self,
        local: &Path,
        path: &str,
        local_len: u64,
    ) -> Result<u64, RemoteError> {
        let have = match self.remote_size(path).await? {
            Some(n) if n > 0 && n < local_len => n,
            _ => return Ok(0),
        };
        let (read, remote_hash) = self.remote_prefix_hash(path, have).await?;
        let local_hash = local::prefix_sha256(local, have)?;
        Ok(if read == have && remote_hash == local_hash {
            have
        } else {
            0
        })
    }
}

/// Map a `C:\...` path onto SFTP below `root` (`/C:` when empty: Windows OpenSSH's form).
pub fn sftp_path(root: &str, remote: &str) -> Option<String> {
    let rel = share_path("", remote)?;
    let root = root.trim_end_matches('/');
    let root = if root.is_empty() { "/C:" } else { root };
    let rest = rel.replace('\\', "/");
    Some(if rest.is_empty() {
        root.to_string()
    } else {
        format!("{root}/{rest}")
    })
}

impl Target for SshTarget {
    fn host(&self) -> &str {
        &self.name
    }

    fn exec<'a>(
        &'a mut self,
        command: &'a Command,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, RemoteError>> {
        Box::pin(async move {
            let (line, input) = match command {
                Command::Cmd(line) => (line.clone(), Vec::new()),
                Command::PowerShell(script) => {
                    let inv = hive_winrm::powershell::invocation(script);
                    let mut line = inv.command;
                    for a in &inv.args {
                        line.push(' ');
                        line.push_str(a);
                    }
                    (line, inv.stdin)
                }
            };
            let shell = hive_ssh::RemoteShell::Verbatim;
            let ran = self
                .session()
                .await?
                .exec_with_input(shell, &line, &input, timeout)
                .await;
            let out = ran.map_err(|e| self.failed(e))?;
            let exit_code = match out.status {
                hive_ssh::ExitStatus::Code(c) => c,
                hive_ssh::ExitStatus::Signal { name, .. } => {
                    return Err(RemoteError::Failed(format!(
                        "{}: {} ended by signal {name}",
                        self.name,
                        command.label()
                    )));
                }
            };
            Ok(ExecOutput {
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                exit_code,
            })
        })
    }

    fn put_file<'a>(
        &'a mut self,
        local: &'a Path,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<PutReport, RemoteError>> {
        Box::pin(async move {
            let path = self.sftp_path(remote)?;
            let local_len = std::fs::metadata(local)
                .map_err(|e| local::io(local, e))?
                .len();
            self.create_parents(&path).await?;
            let resumed_from = self.resumable(local, &path, local_len).await?;
            self.upload(local, &path, resumed_from).await?;
            let (size, sha256) = self.sha256_of(&path).await?.ok_or_else(|| {
                RemoteError::Failed(format!("{}: {remote} vanished after the upload", self.name))
            })?;
            if size != local_len {
                return Err(RemoteError::Failed(format!(
                    "{}: {remote} holds {size} bytes after sending a file of {local_len}",
                    self.name
                )));
            }
            Ok(PutReport {
                bytes: local_len,
                resumed_from,
                sha256,
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
            let path = self.sftp_path(remote)?;
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            let got = self.sftp().await?.read_range(&path, offset, len).await;
            got.map_err(|e| self.failed(e))
        })
    }

    fn remote_sha256<'a>(
        &'a mut self,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, RemoteError>> {
        Box::pin(async move {
            let path = self.sftp_path(remote)?;
            Ok(self.sha256_of(&path).await?.map(|(_, h)| h))
        })
    }

    fn file_channel(&self) -> &'static str {
        "sftp"
    }

    fn disconnect(&mut self) {
        // Dropping the handle closes the connection; a polite goodbye would need to wait for a
        // host that may be going down.
        self.sftp = None;
        self.session = None;
    }

    fn remove_file<'a>(&'a mut self, remote: &'a str) -> BoxFuture<'a, Result<(), RemoteError>> {
        Box::pin(async move {
            let path = self.sftp_path(remote)?;
            let done = self.sftp().await?.remove(&path).await;
            done.map_err(|e| self.failed(e))
        })
    }

    fn remove_dir<'a>(&'a mut self, remote: &'a str) -> BoxFuture<'a, Result<(), RemoteError>> {
        Box::pin(async move {
            let path = self.sftp_path(remote)?;
            let done = self.sftp().await?.remove_dir(&path).await;
            done.map_err(|e| self.failed(e))
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

    /// SHA-256 of the first `len` bytes of a local file.
    pub fn prefix_sha256(path: &Path, len: u64) -> Result<String, RemoteError> {
        use sha2::Digest;
        let f = std::fs::File::open(path).map_err(|e| io(path, e))?;
        let mut hash = Sha256::new();
        let mut limited = f.take(len);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = limited.read(&mut buf).map_err(|e| io(path, e))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
        }
        Ok(hex::encode(hash.finalize()))
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

    #[test]
    fn c_drive_paths_map_onto_sftp() {
        assert_eq!(
            sftp_path("", r"C:\Windows\Temp\hive\r1\Q1.exe").as_deref(),
            Some("/C:/Windows/Temp/hive/r1/Q1.exe")
        );
        assert_eq!(
            sftp_path("/srv/fleet/W2K01/", r"C:\Windows\x.dll").as_deref(),
            Some("/srv/fleet/W2K01/Windows/x.dll")
        );
        assert_eq!(sftp_path("", r"D:\x"), None);
        assert_eq!(sftp_path("", r"C:\Windows\..\..\etc\passwd"), None);
    }

    #[test]
    fn ssh_errors_are_classified_for_the_orchestrator() {
        use hive_ssh::SshError as E;
        let refused = E::AuthRefused {
            host: "h:22".into(),
            user: "u".into(),
            method: "password",
        };
        assert!(matches!(
            RemoteError::from(refused),
            RemoteError::AuthFailed(_)
        ));
        let mismatch = E::HostKeyMismatch {
            host: "h:22".into(),
            expected: "SHA256:a".into(),
            presented: "SHA256:b".into(),
        };
        assert!(matches!(
            RemoteError::from(mismatch),
            RemoteError::AuthFailed(_)
        ));
        let down = E::Unreachable {
            host: "h:22".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert!(matches!(
            RemoteError::from(down),
            RemoteError::Unreachable(_)
        ));
        let dropped = E::NoExitStatus {
            host: "h:22".into(),
        };
        assert!(matches!(
            RemoteError::from(dropped),
            RemoteError::Unreachable(_)
        ));
        let slow = E::ConnectTimeout {
            host: "h:22".into(),
            after: Duration::from_secs(1),
        };
        assert!(matches!(RemoteError::from(slow), RemoteError::TimedOut(_)));
    }

    #[test]
    fn an_ssh_host_without_a_pinned_key_is_refused() {
        let inv = crate::inventory::Inventory::parse(
            "[[host]]\nname=\"a\"\ntransport=\"ssh\"\ncredential=\"prompt\"\n",
            Path::new("inv.toml"),
        )
        .unwrap();
        let err = connect(&inv.hosts[0], &Secret::new("x"), Timeouts::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("host_key"), "{err}");
    }
}
