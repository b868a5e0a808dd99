//! SFTP: upload, download and ranged reads of remote files, with many requests in flight.
//!
//! Speed comes from pipelining: the local file is read 255 KiB at a time and each piece sent as one
//! SFTP write, the largest OpenSSH allows (announced by its `limits@openssh.com` extension), with
//! up to [`SshOptions::sftp_requests_in_flight`](crate::SshOptions) unanswered. With 8 KiB
//! writes, a common default, the same upload runs at about half the speed.
//!
//! Correctness comes from `shutdown()`: write errors (a full disk, a quota) come back in replies
//! that only the final drain and CLOSE collect. A file that is merely dropped loses them, and the
//! upload would look good.

use std::io::SeekFrom;
use std::path::Path;

use russh_sftp::client::SftpSession;
use russh_sftp::client::fs::File as RemoteFile;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::error::SshError;
use crate::session::SshSession;

/// An SFTP session on its own channel of an [`SshSession`].
pub struct Sftp {
    session: SftpSession,
    label: String,
    chunk: usize,
}

impl std::fmt::Debug for Sftp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sftp")
            .field("host", &self.label)
            .finish_non_exhaustive()
    }
}

impl SshSession {
    /// Opens the `sftp` subsystem on a new channel.
    pub async fn sftp(&self) -> Result<Sftp, SshError> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.protocol_error("opening the SFTP channel", e))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| self.protocol_error("starting the SFTP subsystem", e))?;
        let opts = &self.options;
        let config = russh_sftp::client::Config {
            max_concurrent_writes: opts.sftp_requests_in_flight,
            max_concurrent_reads: opts.sftp_requests_in_flight,
            // Ask for whole-chunk writes; the server's advertised limit still caps them.
            max_write_packet_len: u32::try_from(opts.sftp_chunk + 1024).unwrap_or(u32::MAX),
            request_timeout_secs: opts.sftp_request_timeout.as_secs().max(1),
            ..russh_sftp::client::Config::default()
        };
        let session = SftpSession::new_with_config(channel.into_stream(), config)
            .await
            .map_err(|source| SshError::Sftp {
                host: self.label.clone(),
                op: "start",
                path: String::new(),
                source,
            })?;
        Ok(Sftp {
            session,
            label: self.label.clone(),
            chunk: opts.sftp_chunk.max(4096),
        })
    }
}

impl Sftp {
    fn sftp_err(
        &self,
        op: &'static str,
        path: &str,
        source: russh_sftp::client::error::Error,
    ) -> SshError {
        SshError::Sftp {
            host: self.label.clone(),
            op,
            path: path.to_owned(),
            source,
        }
    }

    fn io_err(&self, op: &'static str, path: &str, source: std::io::Error) -> SshError {
        SshError::SftpIo {
            host: self.label.clone(),
            op,
            path: path.to_owned(),
            source,
        }
    }

    fn local_err(&self, path: &Path, source: std::io::Error) -> SshError {
        SshError::LocalFile {
            host: self.label.clone(),
            path: path.to_owned(),
            source,
        }
    }

    /// Copies local file `local` to `remote` (created or truncated) and returns the bytes written.
    /// Returns only after the server confirmed every write and the close.
    pub async fn upload(&self, local: &Path, remote: &str) -> Result<u64, SshError> {
        // The local file first: a missing one must not truncate the remote copy.
        let source = self.open_local(local, 0).await?;
        let file = self
            .session
            .create(remote)
            .await
            .map_err(|e| self.sftp_err("create", remote, e))?;
        self.send(local, source, file, remote).await
    }

    /// Resumes an upload: sends the bytes of `local` from `offset` on into `remote`, which the
    /// caller has checked holds exactly the first `offset` bytes already. Returns the bytes sent
    /// now (the file's total is `offset` + that).
    pub async fn upload_from(
        &self,
        local: &Path,
        remote: &str,
        offset: u64,
    ) -> Result<u64, SshError> {
        let source = self.open_local(local, offset).await?;
        let mut file = self
            .session
            .open_with_flags(remote, russh_sftp::protocol::OpenFlags::WRITE)
            .await
            .map_err(|e| self.sftp_err("open for writing", remote, e))?;
        if let Err(e) = file.seek(SeekFrom::Start(offset)).await {
            let _ = file.shutdown().await;
            return Err(self.io_err("seek", remote, e));
        }
        self.send(local, source, file, remote).await
    }

    /// The local file positioned at `offset`, and the number of bytes from there to its end.
    async fn open_local(
        &self,
        local: &Path,
        offset: u64,
    ) -> Result<(tokio::fs::File, u64), SshError> {
        let opened = async {
            let mut source = tokio::fs::File::open(local).await?;
            let size = source.metadata().await?.len();
            source.seek(SeekFrom::Start(offset)).await?;
            Ok::<_, std::io::Error>((source, size.saturating_sub(offset)))
        };
        opened.await.map_err(|e| self.local_err(local, e))
    }

    /// Writes what is left of `source` (`expected` bytes) into the open remote `file`,
    /// pipelined, then closes it so every write's status is collected.
    async fn send(
        &self,
        local: &Path,
        (mut source, expected): (tokio::fs::File, u64),
        mut file: RemoteFile,
        remote: &str,
    ) -> Result<u64, SshError> {
        let mut buf = vec![0u8; self.chunk];
        let mut sent = 0u64;
        loop {
            let n = match source.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = file.shutdown().await;
                    return Err(self.local_err(local, e));
                }
            };
            if n == 0 {
                break;
            }
            // Partial pipelined writes would be lost if we returned without draining, so the
            // error path still closes the handle (and ignores that close's own error).
            if let Err(e) = file.write_all(&buf[..n]).await {
                let _ = file.shutdown().await;
                return Err(self.io_err("write", remote, e));
            }
            sent += n as u64;
        }
        file.shutdown()
            .await
            .map_err(|e| self.io_err("write", remote, e))?;
        if sent != expected {
            return Err(SshError::ShortTransfer {
                host: self.label.clone(),
                op: "upload (local file changed size)",
                path: remote.to_owned(),
                expected,
                actual: sent,
            });
        }
        Ok(sent)
    }

    /// Copies `remote` to local file `local` and returns the bytes read; checks the count against
    /// the remote size taken at open.
    pub async fn download(&self, remote: &str, local: &Path) -> Result<u64, SshError> {
        let mut file = self.open_read(remote).await?;
        let expected = file
            .metadata()
            .await
            .map_err(|e| self.sftp_err("stat", remote, e))?
            .size;
        let mut dest = tokio::fs::File::create(local)
            .await
            .map_err(|e| self.local_err(local, e))?;
        let mut buf = vec![0u8; self.chunk];
        let mut got = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| self.io_err("read", remote, e))?;
            if n == 0 {
                break;
            }
            dest.write_all(&buf[..n])
                .await
                .map_err(|e| self.local_err(local, e))?;
            got += n as u64;
        }
        dest.flush().await.map_err(|e| self.local_err(local, e))?;
        file.shutdown()
            .await
            .map_err(|e| self.io_err("close", remote, e))?;
        if let Some(expected) = expected.filter(|&e| e != got) {
            return Err(SshError::ShortTransfer {
                host: self.label.clone(),
                op: "download",
                path: remote.to_owned(),
                expected,
                actual: got,
            });
        }
        Ok(got)
    }

    /// Reads up to `len` bytes of `remote` from `offset` (fewer at the end of the file): the head
    /// of a DLL for its version resource, without copying the whole file.
    pub async fn read_range(
        &self,
        remote: &str,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, SshError> {
        let mut file = self.open_read(remote).await?;
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| self.io_err("seek", remote, e))?;
        let mut out = Vec::with_capacity(len.min(self.chunk * 16));
        let mut limited = (&mut file).take(len as u64);
        limited
            .read_to_end(&mut out)
            .await
            .map_err(|e| self.io_err("read", remote, e))?;
        file.shutdown()
            .await
            .map_err(|e| self.io_err("close", remote, e))?;
        Ok(out)
    }

    /// The size of `remote` in bytes.
    pub async fn size(&self, remote: &str) -> Result<u64, SshError> {
        let meta = self
            .session
            .metadata(remote)
            .await
            .map_err(|e| self.sftp_err("stat", remote, e))?;
        Ok(meta.size.unwrap_or(0))
    }

    /// Deletes file `remote`.
    pub async fn remove(&self, remote: &str) -> Result<(), SshError> {
        self.session
            .remove_file(remote)
            .await
            .map_err(|e| self.sftp_err("remove", remote, e))
    }

    /// Bytes free for an unprivileged user on the file system holding `remote`, if the server
    /// offers `statvfs@openssh.com`: OpenSSH answers a write to a full disk with a bare
    /// "Failure", so this is how a caller tells a full disk from other write errors.
    pub async fn free_bytes(&self, remote: &str) -> Result<Option<u64>, SshError> {
        let info = self
            .session
            .fs_info(remote)
            .await
            .map_err(|e| self.sftp_err("statvfs", remote, e))?;
        Ok(info.map(|i| i.blocks_avail.saturating_mul(i.fragment_size)))
    }

    /// Deletes the empty directory `remote`.
    pub async fn remove_dir(&self, remote: &str) -> Result<(), SshError> {
        self.session
            .remove_dir(remote)
            .await
            .map_err(|e| self.sftp_err("rmdir", remote, e))
    }

    /// Creates directory `remote` (its parent must exist).
    pub async fn create_dir(&self, remote: &str) -> Result<(), SshError> {
        self.session
            .create_dir(remote)
            .await
            .map_err(|e| self.sftp_err("mkdir", remote, e))
    }

    /// Ends the SFTP session (its channel closes; the SSH connection stays).
    pub async fn close(self) -> Result<(), SshError> {
        self.session
            .close()
            .await
            .map_err(|e| self.sftp_err("close session", "", e))
    }

    async fn open_read(&self, remote: &str) -> Result<RemoteFile, SshError> {
        self.session
            .open(remote)
            .await
            .map_err(|e| self.sftp_err("open", remote, e))
    }
}
