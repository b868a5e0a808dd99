//! The SSH + SFTP adapter, with the SFTP upload that resumes a copy cut off earlier.

use std::path::Path;
use std::time::Duration;

use super::{BoxFuture, Command, ExecOutput, PutReport, RemoteError, Target, Timeouts, share_path};
use crate::inventory::{CredentialRef, Host, Secret};

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
    endpoint: hive_ssh::SshEndpoint,
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
            endpoint: hive_ssh::SshEndpoint {
                host: host.address.clone(),
                port: host.port,
                host_key,
                user: host.user.clone(),
                auth: ssh_auth(host, secret),
            },
            options,
            sftp_root: host.sftp_root.clone(),
            session: None,
            sftp: None,
        })
    }

    async fn session(&mut self) -> Result<&hive_ssh::SshSession, RemoteError> {
        if self.session.is_none() {
            let s = hive_ssh::SshSession::connect(&self.endpoint, &self.options).await;
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

/// How the host's credential logs on: a key file's text or the agent socket it resolved to, else
/// a password.
fn ssh_auth(host: &Host, secret: &Secret) -> hive_ssh::Auth {
    match &host.credential {
        CredentialRef::SshKey(path) => hive_ssh::Auth::Key {
            text: secret.clone(),
            origin: path.clone(),
        },
        CredentialRef::SshAgent => hive_ssh::Auth::Agent {
            socket: std::path::PathBuf::from(secret.expose()),
        },
        _ => hive_ssh::Auth::Password(secret.clone()),
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
            let encoded;
            let (line, input): (&str, &[u8]) = match command {
                Command::Cmd(line) => (line, &[]),
                Command::PowerShell(script) => {
                    encoded = hive_winrm::powershell::cmd_line(script);
                    (&encoded.0, &encoded.1)
                }
                Command::Prepared(script) => script.cmd_line(),
            };
            let shell = hive_ssh::RemoteShell::Verbatim;
            let ran = self
                .session()
                .await?
                .exec_with_input(shell, line, input, timeout)
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

/// The local file an upload sends: its errors in [`RemoteError`] terms, and the hash of its first
/// bytes (what a cut-off remote copy must match to be resumed).
mod local {
    use std::io::Read;
    use std::path::Path;

    use sha2::{Digest, Sha256};

    use super::RemoteError;

    pub fn io(path: &Path, e: std::io::Error) -> RemoteError {
        if e.kind() == std::io::ErrorKind::NotFound {
            RemoteError::NotFound(format!("{}: not found", path.display()))
        } else {
            RemoteError::Failed(format!("{}: {e}", path.display()))
        }
    }

    /// SHA-256 of the first `len` bytes of a local file.
    pub fn prefix_sha256(path: &Path, len: u64) -> Result<String, RemoteError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
