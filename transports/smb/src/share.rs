//! One authenticated connection to one share, and the file operations on it. Every SMB call goes
//! through [`SmbShare::bounded`], so none can hang past [`SmbConfig::op_timeout`].

use std::future::Future;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use smb::connection::AuthMethodsConfig;
use smb::{
    Client, ClientConfig, CreateDisposition, CreateOptions, Directory, File, FileAccessMask,
    FileAttributes, FileBasicInformation, FileCreateArgs, FileDirectoryInformation,
    FileDispositionInformation, FileStandardInformation, Resource, Tree, UncPath,
};

use crate::config::{Credentials, SmbConfig};
use crate::connect::{SETUP_SLOTS, backoff, jitter_seed};
use crate::error::{Ctx, Kind, SmbError, kind_of};
use crate::path::RemotePath;

/// An authenticated connection to `\\host\share`. Cheap to open again: after a
/// [`SmbError::ConnectionLost`] or [`SmbError::Timeout`], drop it and connect anew.
pub struct SmbShare {
    client: Client,
    tree: Arc<Tree>,
    pub(crate) host: String,
    pub(crate) share: String,
    pub(crate) config: SmbConfig,
    /// The server's largest read and write request (8 MiB on Samba); requests are cut to fit.
    pub(crate) max_read: usize,
    pub(crate) max_write: usize,
    session_id: u64,
}

/// What [`SmbShare::stat`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub size: u64,
    pub is_dir: bool,
    pub modified: Option<SystemTime>,
}

/// One entry of [`SmbShare::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub size: u64,
    pub is_dir: bool,
}

impl SmbShare {
    /// Connects to `\\host\share` on `port` and logs on. Waits for a set-up slot (bounded per
    /// process, see `connect.rs`); retries set-ups the server reset or that timed out; never
    /// retries a refused logon or a missing share.
    pub async fn connect(
        host: &str,
        port: u16,
        share: &str,
        creds: &Credentials,
        config: &SmbConfig,
    ) -> Result<SmbShare, SmbError> {
        let unc = format!(r"\\{host}\{share}");
        let ctx = Ctx {
            host,
            path: &unc,
            op: "connect",
        };
        let mut attempt = 0;
        loop {
            let outcome = {
                let _slot = SETUP_SLOTS
                    .acquire()
                    .await
                    .map_err(|e| ctx.other(format!("connection limiter closed: {e}")))?;
                tokio::time::timeout(
                    config.connect_timeout,
                    Self::connect_once(host, port, share, creds, config),
                )
                .await
            };
            let err = match outcome {
                Ok(Ok(share)) => return Ok(share),
                Ok(Err(e)) => e,
                Err(_) => ctx.timeout(config.connect_timeout),
            };
            // A bad signature is never retried: the crate's set-up race that once caused it is
            // fixed (vendor/smb, tests/setup_race.rs), so it now means tampering or a key mismatch.
            if !err.is_transient() || attempt >= config.connect_retries {
                return Err(err);
            }
            tracing::debug!(host, attempt, error = %err, "SMB connection set-up failed; retrying");
            tokio::time::sleep(backoff(attempt, jitter_seed(attempt))).await;
            attempt += 1;
        }
    }

    async fn connect_once(
        host: &str,
        port: u16,
        share: &str,
        creds: &Credentials,
        config: &SmbConfig,
    ) -> Result<SmbShare, SmbError> {
        let unc_text = format!(r"\\{host}\{share}");
        let ctx = Ctx {
            host,
            path: &unc_text,
            op: "connect",
        };
        // The crate dials the UNC server part itself and wants an address there.
        let ip = resolve(host, port)
            .await
            .map_err(|e| ctx.error(Kind::ConnectionLost, e))?;
        let mut client_config = ClientConfig {
            dfs: false,
            ..Default::default()
        };
        client_config.connection.port = Some(port);
        // The crate bounds each request from when it was sent. hive-smb bounds every call itself
        // (`bounded`), and a pipelined transfer by its progress: the wait for the next answer
        // (see `issue_writes`, `next_read`). With `in_flight` requests out, the last of a window
        // is answered only after the ones ahead of it, so the crate's bound is only a backstop,
        // long enough for a whole window on a slow link.
        let window = u32::try_from(config.in_flight.max(1) + 1).unwrap_or(u32::MAX);
        client_config.connection.timeout = Some(config.op_timeout.saturating_mul(window));
        client_config.connection.auth_methods = AuthMethodsConfig {
            ntlm: true,
            kerberos: false,
        };
        // Enough credits for `in_flight` requests of 1 MiB (16 credits each) at once.
        client_config.connection.credits_backlog = Some(512);
        client_config.connection.previous_session_id = config.replaces_session;
        let client = Client::new(client_config);
        let unc = UncPath::from_str(&format!(r"\\{ip}\{share}"))
            .map_err(|e| ctx.other(format!("bad UNC path: {e}")))?;
        let logon = client.share_connect(&unc, &creds.user, creds.sspi_secret());
        match logon.await {
            Ok(()) => {}
            Err(e) => {
                let kind = kind_of(&e);
                let detail = if kind == Kind::Auth {
                    creds.user.clone()
                } else {
                    e.to_string()
                };
                return Err(ctx.error(kind, detail));
            }
        }
        let tree = client.get_tree(&unc).await.map_err(|e| ctx.smb(e))?;
        let session_id = client
            .get_session(&unc)
            .await
            .map_err(|e| ctx.smb(e))?
            .session_id();
        let conn = client.get_connection_ip(ip).await.map_err(|e| ctx.smb(e))?;
        let negotiated = conn
            .conn_info()
            .map(|i| (i.negotiation.max_read_size, i.negotiation.max_write_size))
            .ok_or_else(|| ctx.other("connection has no negotiated properties".into()))?;
        Ok(SmbShare {
            client,
            tree,
            host: host.to_string(),
            share: share.to_string(),
            config: config.clone(),
            max_read: (negotiated.0 as usize).max(64 * 1024),
            max_write: (negotiated.1 as usize).max(64 * 1024),
            session_id,
        })
    }

    /// The server's id for this logon. After a network error, pass it to the next connection
    /// as [`SmbConfig::replaces_session`] so the server lets go of this session's files.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// Logs off and closes the connection.
    pub async fn disconnect(self) -> Result<(), SmbError> {
        let unc = format!(r"\\{}\{}", self.host, self.share);
        let ctx = Ctx {
            host: &self.host,
            path: &unc,
            op: "disconnect",
        };
        let after = self.config.op_timeout;
        match tokio::time::timeout(after, self.client.close()).await {
            Ok(r) => r.map_err(|e| ctx.smb(e)),
            Err(_) => Err(ctx.timeout(after)),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn share(&self) -> &str {
        &self.share
    }

    pub(crate) fn unc(&self, path: &RemotePath) -> String {
        path.unc(&self.host, &self.share)
    }

    pub(crate) fn parse(&self, path: &str, op: &'static str) -> Result<RemotePath, SmbError> {
        RemotePath::parse(path).ok_or_else(|| {
            let unc = format!(r"\\{}\{}\{}", self.host, self.share, path);
            Ctx {
                host: &self.host,
                path: &unc,
                op,
            }
            .other("a '..' component is not allowed".into())
        })
    }

    /// Runs one SMB call under the operation timeout, mapping its error with `ctx`.
    pub(crate) async fn bounded<T>(
        &self,
        ctx: Ctx<'_>,
        fut: impl Future<Output = smb::Result<T>>,
    ) -> Result<T, SmbError> {
        match tokio::time::timeout(self.config.op_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ctx.smb(e)),
            Err(_) => Err(ctx.timeout(self.config.op_timeout)),
        }
    }

    pub(crate) async fn open(
        &self,
        path: &RemotePath,
        args: FileCreateArgs,
        op: &'static str,
    ) -> Result<Resource, SmbError> {
        let unc = self.unc(path);
        let ctx = Ctx {
            host: &self.host,
            path: &unc,
            op,
        };
        self.bounded(ctx, self.tree.create(&path.smb(), &args))
            .await
    }

    pub(crate) async fn open_file(
        &self,
        path: &RemotePath,
        args: FileCreateArgs,
        op: &'static str,
    ) -> Result<File, SmbError> {
        match self.open(path, args, op).await? {
            Resource::File(f) => Ok(f),
            other => {
                let unc = self.unc(path);
                self.close_resource(&other, path).await;
                Err(Ctx {
                    host: &self.host,
                    path: &unc,
                    op,
                }
                .other("is a directory, not a file".into()))
            }
        }
    }

    /// Closes a handle; a failure to close is logged, not returned: the data calls before it
    /// already succeeded or failed on their own.
    pub(crate) async fn close_resource(&self, resource: &Resource, path: &RemotePath) {
        let unc = self.unc(path);
        let ctx = Ctx {
            host: &self.host,
            path: &unc,
            op: "close",
        };
        let closed = match resource {
            Resource::File(f) => self.bounded(ctx, f.close()).await,
            Resource::Directory(d) => self.bounded(ctx, d.close()).await,
            Resource::Pipe(p) => self.bounded(ctx, p.close()).await,
        };
        if let Err(e) = closed {
            tracing::warn!(error = %e, "closing an SMB handle failed");
        }
    }

    pub(crate) async fn close_file(&self, file: &File, path: &RemotePath) -> Result<(), SmbError> {
        let unc = self.unc(path);
        self.bounded(
            Ctx {
                host: &self.host,
                path: &unc,
                op: "close",
            },
            file.close(),
        )
        .await
    }

    /// The size the server reports now (not the size the handle had when opened).
    pub(crate) async fn file_size(&self, file: &File, path: &RemotePath) -> Result<u64, SmbError> {
        let unc = self.unc(path);
        let ctx = Ctx {
            host: &self.host,
            path: &unc,
            op: "stat",
        };
        let info: FileStandardInformation = self.bounded(ctx, file.query_info()).await?;
        Ok(info.end_of_file)
    }

    /// Creates `path` and every missing parent directory (like `mkdir -p`).
    pub async fn create_dir_all(&self, path: &str) -> Result<(), SmbError> {
        let path = self.parse(path, "create directory")?;
        for dir in path.prefixes() {
            let args = FileCreateArgs {
                disposition: CreateDisposition::OpenIf,
                attributes: FileAttributes::new().with_directory(true),
                options: CreateOptions::new().with_directory_file(true),
                desired_access: FileAccessMask::new().with_file_read_attributes(true),
                share_access: None,
            };
            let dir_handle = self.open(&dir, args, "create directory").await?;
            self.close_resource(&dir_handle, &dir).await;
        }
        Ok(())
    }

    /// Creates file `path` empty, or empties it when it exists, and closes it.
    ///
    /// Why: a marker with no content says "this happened" to a script on the host that polls for
    /// it, e.g. "every byte of the held upload beside me has been sent" (see
    /// [`SmbShare::begin_upload`]). Overwriting, so a marker left by an earlier run is no older
    /// than this call.
    pub async fn touch(&self, path: &str) -> Result<(), SmbError> {
        let path = self.parse(path, "touch")?;
        let args = FileCreateArgs::make_overwrite(
            FileAttributes::new(),
            CreateOptions::new().with_non_directory_file(true),
        );
        let file = self.open_file(&path, args, "touch").await?;
        self.close_file(&file, &path).await
    }

    /// Size, kind and modification time of `path`.
    pub async fn stat(&self, path: &str) -> Result<Metadata, SmbError> {
        let path = self.parse(path, "stat")?;
        let args = FileCreateArgs::make_open_existing(
            FileAccessMask::new().with_file_read_attributes(true),
        );
        let resource = self.open(&path, args, "stat").await?;
        let result = self.stat_resource(&resource, &path).await;
        self.close_resource(&resource, &path).await;
        result
    }

    async fn stat_resource(
        &self,
        resource: &Resource,
        path: &RemotePath,
    ) -> Result<Metadata, SmbError> {
        let unc = self.unc(path);
        let ctx = Ctx {
            host: &self.host,
            path: &unc,
            op: "stat",
        };
        let handle = match resource {
            Resource::File(f) => &**f,
            Resource::Directory(d) => &**d,
            Resource::Pipe(p) => &**p,
        };
        let standard: FileStandardInformation = self.bounded(ctx, handle.query_info()).await?;
        let basic: FileBasicInformation = self.bounded(ctx, handle.query_info()).await?;
        Ok(Metadata {
            size: standard.end_of_file,
            is_dir: bool::from(standard.directory),
            modified: filetime_to_system(*basic.last_write_time),
        })
    }

    /// Whether `path` exists (a missing parent directory counts as "no").
    pub async fn exists(&self, path: &str) -> Result<bool, SmbError> {
        match self.stat(path).await {
            Ok(_) => Ok(true),
            Err(SmbError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The entries of directory `path` (without `.` and `..`), in server order.
    pub async fn list(&self, path: &str) -> Result<Vec<DirEntry>, SmbError> {
        let path = self.parse(path, "list")?;
        let unc = self.unc(&path);
        let ctx = Ctx {
            host: &self.host,
            path: &unc,
            op: "list",
        };
        let args = FileCreateArgs {
            disposition: CreateDisposition::Open,
            attributes: FileAttributes::new(),
            options: CreateOptions::new().with_directory_file(true),
            desired_access: FileAccessMask::new()
                .with_file_read_data(true)
                .with_file_read_attributes(true)
                .with_synchronize(true),
            share_access: None,
        };
        let dir = match self.open(&path, args, "list").await? {
            Resource::Directory(d) => Arc::new(d),
            other => {
                self.close_resource(&other, &path).await;
                return Err(ctx.other("is not a directory".into()));
            }
        };
        let listing = self.bounded(ctx, collect_listing(&dir)).await;
        let closed = self.bounded(Ctx { op: "close", ..ctx }, dir.close()).await;
        let entries = listing?;
        closed?;
        Ok(entries)
    }

    /// Deletes file `path`.
    pub async fn remove_file(&self, path: &str) -> Result<(), SmbError> {
        self.remove(path, false).await
    }

    /// Deletes the empty directory `path`.
    pub async fn remove_dir(&self, path: &str) -> Result<(), SmbError> {
        self.remove(path, true).await
    }

    async fn remove(&self, path: &str, dir: bool) -> Result<(), SmbError> {
        let path = self.parse(path, "delete")?;
        let unc = self.unc(&path);
        let ctx = Ctx {
            host: &self.host,
            path: &unc,
            op: "delete",
        };
        let args = FileCreateArgs {
            disposition: CreateDisposition::Open,
            attributes: FileAttributes::new(),
            options: if dir {
                CreateOptions::new().with_directory_file(true)
            } else {
                CreateOptions::new().with_non_directory_file(true)
            },
            desired_access: FileAccessMask::new()
                .with_delete(true)
                .with_file_read_attributes(true),
            share_access: None,
        };
        let resource = self.open(&path, args, "delete").await?;
        let handle = match &resource {
            Resource::File(f) => &**f,
            Resource::Directory(d) => &**d,
            Resource::Pipe(p) => &**p,
        };
        let marked = self
            .bounded(ctx, handle.set_info(FileDispositionInformation::default()))
            .await;
        let closed = self
            .bounded(Ctx { op: "close", ..ctx }, handle.close())
            .await;
        marked?;
        closed
    }

    pub(crate) fn chunk_size(&self) -> usize {
        self.config
            .chunk_size
            .clamp(4096, self.max_write.min(self.max_read))
    }

    /// The connection's bound on one call; used by the transfer code.
    pub(crate) fn op_timeout(&self) -> Duration {
        self.config.op_timeout
    }
}

async fn collect_listing(dir: &Arc<Directory>) -> smb::Result<Vec<DirEntry>> {
    let mut stream = Directory::query::<FileDirectoryInformation>(dir, "*").await?;
    let mut entries = Vec::new();
    while let Some(item) = stream.next().await {
        let item = item?;
        let name = item.file_name.to_string();
        if name == "." || name == ".." {
            continue;
        }
        entries.push(DirEntry {
            name,
            size: item.end_of_file,
            is_dir: item.file_attributes.directory(),
        });
    }
    Ok(entries)
}

/// Windows FILETIME (100 ns ticks since 1601) to `SystemTime`; `None` for 0 ("never").
fn filetime_to_system(ticks: u64) -> Option<SystemTime> {
    const EPOCH_DIFF_SECS: u64 = 11_644_473_600;
    if ticks == 0 {
        return None;
    }
    let secs = ticks / 10_000_000;
    let nanos = (ticks % 10_000_000) * 100;
    let unix = secs.checked_sub(EPOCH_DIFF_SECS)?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(unix, nanos as u32))
}

async fn resolve(host: &str, port: u16) -> Result<IpAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let mut addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    addrs
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| format!("{host} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetime_converts() {
        assert_eq!(filetime_to_system(0), None);
        // 2024-01-01T00:00:00Z
        let t = filetime_to_system(133_485_408_000_000_000).unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_704_067_200
        );
    }
}
