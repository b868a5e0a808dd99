//! The WinRM + SMB adapter: commands over WinRM, files over the `C$` share.

use std::path::Path;
use std::time::Duration;

use super::follow::{self, Followed};
use super::{
    BoxFuture, Command, ExecOutput, FileStamp, HostHashedPut, PutReport, RemoteError, Target,
    Timeouts,
};
use crate::inventory::kerberos::{KerberosRef, spn_for};
use crate::inventory::{CredentialRef, Host, Secret, SecretSource, Transport, resolve_reference};

/// WinRM for commands, SMB (`C$`) for files: what every Windows server offers out of the box.
pub struct WinrmTarget {
    name: String,
    address: String,
    smb_port: u16,
    smb_share: String,
    smb_root: String,
    user: String,
    credential: CredentialRef,
    secret: Secret,
    /// Where the SMB logon's password comes from.
    smb_password: SmbPassword,
    timeouts: Timeouts,
    session: hive_winrm::Session,
    smb: Option<hive_smb::SmbShare>,
    /// The SMB session dropped by the last `disconnect`, named at the next logon so that the
    /// host lets go of its files at once (a held upload's open would otherwise shut out the
    /// copy that resumes it, until the host notices the old connection is gone).
    dropped_session: Option<u64>,
    /// Bytes of the upload in progress on the host so far.
    copied: std::sync::Arc<std::sync::atomic::AtomicU64>,
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
        let mut cfg = hive_winrm::ClientConfig::new(endpoint, winrm_credentials(host, secret));
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
            credential: host.credential.clone(),
            secret: secret.clone(),
            smb_password: smb_password(host),
            timeouts,
            session: hive_winrm::Session::new(cfg).map_err(RemoteError::from)?,
            smb: None,
            dropped_session: None,
            copied: Default::default(),
        })
    }

    async fn share(&mut self) -> Result<&hive_smb::SmbShare, RemoteError> {
        if self.smb.is_none() {
            let config = hive_smb::SmbConfig {
                connect_timeout: self.timeouts.connect,
                // Every staged file is then hashed by the host itself (deploy::stage's
                // verify_on_target: certutil, Get-FileHash, or a read-back where the host has
                // neither), so reading every byte back here would only check the same thing twice.
                verify_by_reading_back: false,
                replaces_session: self.dropped_session,
                ..hive_smb::SmbConfig::default()
            };
            let password = match &self.smb_password {
                SmbPassword::WinrmSecret => {
                    if self.secret.expose().is_empty()
                        && let CredentialRef::Kerberos(k) = &self.credential
                    {
                        return Err(RemoteError::Failed(format!(
                            "{}: file copies go over SMB, which logs on with NTLM and needs a \
                             password, and `{k}` holds none: set smb_credential (env:VAR, \
                             file:/path or prompt) for this host",
                            self.name
                        )));
                    }
                    self.secret.clone()
                }
                SmbPassword::Reference(reference) => self.read_smb_password(reference)?,
                SmbPassword::Missing => {
                    return Err(RemoteError::Failed(format!(
                        "{}: a client certificate logs on to WinRM only; copying files over SMB \
                         needs the password of {}: add smb=env:VAR or smb=file:/path to the \
                         credential",
                        self.name, self.user
                    )));
                }
            };
            let creds = hive_smb::Credentials::password(&self.user, password.expose());
            let share = hive_smb::SmbShare::connect(
                &self.address,
                self.smb_port,
                &self.smb_share,
                &creds,
                &config,
            )
            .await?;
            self.dropped_session = None;
            self.smb = Some(share);
        }
        connected(&self.smb, &self.name)
    }

    /// The SMB password a certificate reference's `smb=` names.
    fn read_smb_password(&self, reference: &CredentialRef) -> Result<Secret, RemoteError> {
        let label = format!("SMB password for {}@{}", self.user, self.name);
        resolve_reference(reference, &label, &mut NoPrompt).map_err(|e| {
            RemoteError::Failed(format!("{}: SMB password ({reference}): {e}", self.name))
        })
    }

    /// `C:\Windows\Temp\x` → the path inside the `C$` share (below `smb_root`).
    fn share_path(&self, remote: &str) -> Result<String, RemoteError> {
        share_path(&self.smb_root, remote).ok_or_else(|| {
            RemoteError::Failed(format!("{}: {remote} is not a C:\\ path", self.name))
        })
    }
}

/// How WinRM logs on: Kerberos when the inventory asks for it (never NTLM instead), the client
/// certificate, else NTLM with the password.
fn winrm_credentials(host: &Host, secret: &Secret) -> hive_winrm::Credentials {
    let k = match &host.credential {
        CredentialRef::Kerberos(k) => k,
        CredentialRef::Certificate(_) => {
            return hive_winrm::Credentials::Certificate(
                hive_winrm::ClientCertificate::from_bundle(secret.expose()),
            );
        }
        _ => return hive_winrm::Credentials::ntlm(&host.user, secret.expose()),
    };
    use hive_winrm::kerberos::TicketSource;
    let source = match k {
        KerberosRef::Ccache => TicketSource::Ccache,
        KerberosRef::Keytab(path) => TicketSource::Keytab {
            principal: host.user.clone(),
            keytab: path.clone(),
        },
        KerberosRef::Password(_) => TicketSource::Password {
            principal: host.user.clone(),
            password: secret.expose().to_string(),
        },
    };
    hive_winrm::Credentials::Kerberos(hive_winrm::kerberos::KerberosCredentials {
        source,
        spn: Some(
            host.spn
                .clone()
                .unwrap_or_else(|| spn_for(&host.name, &host.address, None)),
        ),
    })
}

/// Where the SMB logon's password comes from.
enum SmbPassword {
    /// The host's secret is the password WinRM logs on with too.
    WinrmSecret,
    /// A certificate reference's `smb=`.
    Reference(CredentialRef),
    /// A certificate reference without `smb=`: commands work, file copies cannot.
    Missing,
}

fn smb_password(host: &Host) -> SmbPassword {
    match &host.credential {
        CredentialRef::Certificate(c) => match c.smb.as_deref() {
            Some(reference) => SmbPassword::Reference(reference.clone()),
            None => SmbPassword::Missing,
        },
        _ => SmbPassword::WinrmSecret,
    }
}

/// `smb=` takes `env:` or `file:` only: there is no terminal to ask on mid-run.
struct NoPrompt;

impl SecretSource for NoPrompt {
    fn prompt(&mut self, _label: &str) -> Result<Secret, String> {
        Err("cannot ask for a password while copying files".into())
    }
}

/// The share [`WinrmTarget::share`] connected (it connects before anyone asks for this).
fn connected<'a>(
    smb: &'a Option<hive_smb::SmbShare>,
    name: &str,
) -> Result<&'a hive_smb::SmbShare, RemoteError> {
    smb.as_ref()
        .ok_or_else(|| RemoteError::Failed(format!("{name}: SMB share not connected")))
}

/// Creates the folders above a path inside the share, as a copy into it needs.
async fn create_parent(share: &hive_smb::SmbShare, path: &str) -> Result<(), RemoteError> {
    if let Some((dir, _)) = path.rsplit_once('\\') {
        share.create_dir_all(dir).await?;
    }
    Ok(())
}

/// Runs an SMB open again while another handle refuses it (a sharing violation), for at most
/// `patience`, waiting longer each time.
///
/// Why: hive's uploads refuse other writers, and a server that has not yet noticed a connection
/// hive lost still holds that connection's handle, so the copy resumed on a new connection meets
/// its own old handle until the server lets it go. An antivirus scan of a fresh file can hold it
/// the same way for a moment. Waiting is what copy tools do (robocopy's /R /W).
async fn while_in_use<T, F, Fut>(patience: Duration, mut open: F) -> Result<T, hive_smb::SmbError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, hive_smb::SmbError>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut wait = Duration::from_millis(100);
    loop {
        match open().await {
            Err(hive_smb::SmbError::SharingViolation { .. })
                if tokio::time::Instant::now() + wait < deadline =>
            {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// A file's size and last write time over SMB; `None` when it is gone or has no write time.
async fn stamp_of(
    share: &hive_smb::SmbShare,
    path: &str,
) -> Result<Option<FileStamp>, RemoteError> {
    match share.stat(path).await {
        Ok(m) => Ok(m.modified.map(|modified| FileStamp {
            bytes: m.size,
            modified,
        })),
        Err(hive_smb::SmbError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
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
                Command::Prepared(script) => {
                    self.session.run_prepared(script, Some(timeout)).await?
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
            let path = self.share_path(remote)?;
            let copied = self.copied.clone();
            let patience = self.timeouts.operation;
            let share = self.share().await?;
            create_parent(share, &path).await?;
            let r = while_in_use(patience, || share.upload_counting(local, &path, &copied)).await?;
            Ok(PutReport {
                bytes: r.bytes,
                resumed_from: r.resumed_from,
                sha256: r.sha256_hex(),
            })
        })
    }

    fn hashes_while_copying(&self) -> bool {
        true
    }

    fn put_file_host_hashed<'a>(
        &'a mut self,
        local: &'a Path,
        remote: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<HostHashedPut, RemoteError>> {
        Box::pin(async move {
            let path = self.share_path(remote)?;
            let marker = follow::sent_marker(remote);
            let marker_path = self.share_path(&marker)?;
            self.share().await?;
            let WinrmTarget {
                session,
                smb,
                copied,
                name,
                timeouts,
                ..
            } = self;
            let share = connected(smb, name)?;
            create_parent(share, &path).await?;
            // A marker left by a copy that broke off would end the follower at once.
            match share.remove_file(&marker_path).await {
                Ok(()) | Err(hive_smb::SmbError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            // Opened (and its resume point settled) before the follower starts, so the follower
            // never sees bytes that are about to be cut off.
            let mut upload = while_in_use(timeouts.operation, || {
                share.begin_upload(local, &path, false)
            })
            .await?;
            let script = follow::script(remote, upload.lag_bound(), follow::IDLE);
            let mut follower = Box::pin(session.run_powershell(&script, Some(timeout)));
            let mut copy = Box::pin(async {
                let sent = upload.send(copied).await?;
                share.touch(&marker_path).await?;
                Ok::<_, hive_smb::SmbError>(sent)
            });
            // Both run at once; a copy that fails ends the wait for the follower, which would
            // otherwise wait for its idle limit.
            let mut answer = None;
            let sent = loop {
                tokio::select! {
                    sent = &mut copy => break sent,
                    out = &mut follower, if answer.is_none() => answer = Some(out),
                }
            };
            drop(copy);
            let sent = match sent {
                Ok(sent) => sent,
                Err(e) => {
                    let still_running = answer.is_none();
                    drop(follower);
                    if still_running {
                        // The follower still runs on the host: a new shell for what comes next.
                        session.client().disconnect();
                    }
                    // On a connection that timed out or broke, closing would only wait out the
                    // timeout again: the next logon names this session, and the host closes the
                    // file with it.
                    if !e.is_transient() {
                        let _ = upload.close().await;
                        let _ = share.remove_file(&marker_path).await;
                    }
                    return Err(e.into());
                }
            };
            let answer = match answer {
                Some(out) => out,
                None => follower.await,
            };
            // Closed only now: until the follower answered, nobody else could write the file.
            let closed = upload.close().await;
            // A marker that stays behind is found by the clean-up, which removes the folder.
            let _ = share.remove_file(&marker_path).await;
            closed?;
            let stamp = stamp_of(share, &path).await?;
            let host = match answer {
                Ok(out) => follow::parse(&out.stdout_text(), &out.stderr_text(), out.exit_code),
                Err(e) => Followed::Failed(e.to_string()),
            };
            Ok(HostHashedPut {
                bytes: sent.bytes,
                resumed_from: sent.resumed_from,
                host,
                stamp,
            })
        })
    }

    fn file_stamp<'a>(
        &'a mut self,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<Option<FileStamp>, RemoteError>> {
        Box::pin(async move {
            let path = self.share_path(remote)?;
            let share = self.share().await?;
            stamp_of(share, &path).await
        })
    }

    fn read_file_range<'a>(
        &'a mut self,
        remote: &'a str,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, RemoteError>> {
        Box::pin(async move {
            let path = self.share_path(remote)?;
            Ok(self.share().await?.read_range(&path, offset, len).await?)
        })
    }

    fn remote_sha256<'a>(
        &'a mut self,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, RemoteError>> {
        Box::pin(async move {
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
        if let Some(dropped) = self.smb.take() {
            self.dropped_session = Some(dropped.session_id());
        }
    }

    fn copy_progress(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        Some(self.copied.clone())
    }

    fn remove_file<'a>(&'a mut self, remote: &'a str) -> BoxFuture<'a, Result<(), RemoteError>> {
        Box::pin(async move {
            let path = self.share_path(remote)?;
            Ok(self.share().await?.remove_file(&path).await?)
        })
    }

    fn remove_dir<'a>(&'a mut self, remote: &'a str) -> BoxFuture<'a, Result<(), RemoteError>> {
        Box::pin(async move {
            let path = self.share_path(remote)?;
            Ok(self.share().await?.remove_dir(&path).await?)
        })
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
