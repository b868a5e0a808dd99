//! Moving bytes: verified, resumable uploads; ranged reads; downloads that never leave a partial
//! file behind.
//!
//! Requests are pipelined: up to `in_flight` reads or writes of `chunk_size` run at once on the
//! connection, each a spawned task under the operation timeout, so the link is busy while the
//! next local chunk is read. Writes may complete in any order, but none is issued that would end
//! more than `in_flight` × `chunk_size` past the lowest write not yet answered (see [`may_issue`]);
//! reads are consumed in order.

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use smb::FileEndOfFileInformation;
use smb::{
    CreateDisposition, CreateOptions, File, FileAccessMask, FileAttributes, FileCreateArgs,
    ShareAccessFlags,
};
use tokio::task::{JoinHandle, JoinSet};

use crate::error::{Ctx, SmbError};
use crate::path::RemotePath;
use crate::share::SmbShare;

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReport {
    /// Size of the file, now on the server.
    pub bytes: u64,
    /// Bytes that were already on the server, verified equal to the local file, and not sent
    /// again (0 for a fresh upload).
    pub resumed_from: u64,
    /// SHA-256 of the local file; equal to the remote file's when `verified_by_reading_back`.
    pub sha256: [u8; 32],
    pub verified_by_reading_back: bool,
}

impl UploadReport {
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// What a download did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadReport {
    pub bytes: u64,
    pub sha256: [u8; 32],
}

/// What [`HeldUpload::send`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReport {
    /// Size of the file, now on the server (equal to the local file's).
    pub bytes: u64,
    /// Bytes that were already on the server, verified equal to the local file, and not sent
    /// again (0 for a fresh upload).
    pub resumed_from: u64,
    /// SHA-256 of the local file (the verified prefix and the bytes sent), or `None` when the
    /// send was asked not to hash: a caller that has the host hash the file end to end does not
    /// need it, and it costs a core ~0.23 s per 256 MiB.
    pub sha256: Option<[u8; 32]>,
}

/// An upload whose remote file stays open from [`SmbShare::begin_upload`] until
/// [`HeldUpload::close`], with every other writer shut out (see [`SmbShare::begin_upload`] for
/// why and for the guarantees a reader on the host can rely on meanwhile).
///
/// Call [`HeldUpload::send`] once, then [`HeldUpload::close`]. Dropped without `close`, the
/// handle is closed in the background by the `smb` crate, without waiting or reporting.
pub struct HeldUpload<'a> {
    share: &'a SmbShare,
    path: RemotePath,
    local: PathBuf,
    local_file: Arc<std::fs::File>,
    /// The local file's size when the upload began.
    local_len: u64,
    file: Arc<File>,
    resumed_from: u64,
    /// The verified prefix's SHA-256 state, when hashing locally (see
    /// [`SmbShare::begin_upload`]), until [`HeldUpload::send`] takes it.
    prefix_hash: Option<Sha256>,
    /// Set by [`HeldUpload::send`]: a second send is refused.
    sent: bool,
}

/// The share access of a held upload's open: other opens may read the file (the host's follower
/// hashing it as it grows) and delete or rename it, never write or append to it, so no byte hive
/// wrote can change until the upload is closed.
fn held_share_access() -> ShareAccessFlags {
    ShareAccessFlags::new().with_read(true).with_delete(true)
}

/// Whether a write of `len` bytes at `offset` may be issued now, given the lowest offset of the
/// writes issued and not yet answered (`None`: nothing outstanding).
///
/// Why: a reader on the host follows a held upload as it grows and must know which bytes are
/// final. A write is issued only if it ends at most `lag_bound` bytes past the lowest write not
/// yet answered, so the file on the server is never longer than that write's offset plus
/// `lag_bound`, and every byte below (its size − `lag_bound`) has been written. Refilling the
/// pipeline whenever any write finished instead let a slow early write fall arbitrarily far
/// behind the later ones. With nothing outstanding the write is itself the lowest unanswered
/// one, and allowed (a single chunk never exceeds the bound).
fn may_issue(lowest_unanswered: Option<u64>, offset: u64, len: u64, lag_bound: u64) -> bool {
    match lowest_unanswered {
        None => true,
        Some(low) => offset.saturating_add(len) <= low.saturating_add(lag_bound),
    }
}

/// The offsets of an upload's writes that are issued and not yet answered.
#[derive(Default)]
struct Outstanding {
    offsets: std::collections::BTreeSet<u64>,
}

impl Outstanding {
    fn may_issue(&self, offset: u64, len: u64, lag_bound: u64) -> bool {
        may_issue(self.offsets.first().copied(), offset, len, lag_bound)
    }

    fn issued(&mut self, offset: u64) {
        self.offsets.insert(offset);
    }

    fn answered(&mut self, offset: u64) {
        self.offsets.remove(&offset);
    }
}

/// Spawned request tasks, consumed in the order they were started. Dropping it aborts whatever is
/// still running, so an error never leaves requests going in the background.
struct Ordered<T: Send + 'static> {
    tasks: VecDeque<JoinHandle<T>>,
}

impl<T: Send + 'static> Ordered<T> {
    fn new() -> Self {
        Ordered {
            tasks: VecDeque::new(),
        }
    }
}

impl<T: Send + 'static> Drop for Ordered<T> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

type ChunkResult = Result<Vec<u8>, SmbError>;

/// An answered write of an upload: its offset and its buffer (for reuse).
type WriteResult = Result<(u64, Arc<[u8]>), SmbError>;

impl SmbShare {
    fn ctx<'a>(&'a self, unc: &'a str, op: &'static str) -> Ctx<'a> {
        Ctx {
            host: &self.host,
            path: unc,
            op,
        }
    }

    /// Uploads `local` to `remote` and verifies it: the remote size must equal the local size
    /// and, unless `verify_by_reading_back` is off, the SHA-256 of the file read back from the
    /// server must equal the local file's.
    ///
    /// Resumable: when `remote` already holds a prefix of the file (an earlier upload broke off),
    /// that prefix is read back and compared chunk by chunk, and sending resumes after the last
    /// chunk that matches. A differing or longer remote file is overwritten.
    pub async fn upload(&self, local: &Path, remote: &str) -> Result<UploadReport, SmbError> {
        self.upload_counting(local, remote, &AtomicU64::new(0))
            .await
    }

    /// [`SmbShare::upload`], keeping `sent` at the bytes the server holds so far (a verified
    /// prefix counts at once, then each chunk as its write is answered), so a caller can show
    /// the copy's progress while it runs.
    ///
    /// A [`HeldUpload`] underneath (one code path for both): while it runs, every other opener
    /// that wants to write the file gets [`SmbError::SharingViolation`].
    pub async fn upload_counting(
        &self,
        local: &Path,
        remote: &str,
        sent: &AtomicU64,
    ) -> Result<UploadReport, SmbError> {
        sent.store(0, Ordering::Relaxed);
        let mut held = self.begin_upload(local, remote, true).await?;
        let result = held.send_and_verify(sent).await;
        let closed = held.close().await;
        let report = result?;
        closed?;
        Ok(report)
    }

    /// Opens `remote` (creating it if missing) for an upload of `local` that the caller finishes
    /// with [`HeldUpload::send`] and [`HeldUpload::close`], and settles where sending resumes
    /// (see [`SmbShare::upload`]: a verified prefix is kept, a longer remote file is emptied).
    ///
    /// Why hold it: a script on the host can then hash the file while hive writes it, as strongly
    /// as after the copy, because
    /// - nobody but this upload can write the file until [`HeldUpload::close`]: the open's share
    ///   access is read | delete, without write, so every other open for writing or appending
    ///   (another client, another hive, a program on the host) fails with a sharing violation,
    ///   while readers (the host's follower) can still open it;
    /// - [`HeldUpload::send`] never issues a write that ends more than
    ///   [`HeldUpload::lag_bound`] bytes past the lowest write not yet answered, so every byte
    ///   below the file's current size on the server minus the lag bound is written and final.
    ///   For that to hold from the start, an unverified tail left by an earlier, broken upload
    ///   is cut off here (the file is truncated to the verified prefix).
    ///
    /// `hash_locally`: compute the local file's SHA-256 on the way, verified prefix included
    /// (needed to verify by reading back, or to compare with a catalog); off when the host
    /// hashes the file itself, which spares a core a full pass over the file.
    pub async fn begin_upload(
        &self,
        local: &Path,
        remote: &str,
        hash_locally: bool,
    ) -> Result<HeldUpload<'_>, SmbError> {
        let path = self.parse(remote, "upload")?;
        let unc = self.unc(&path);
        let ctx = self.ctx(&unc, "upload");
        let local_file = std::fs::File::open(local).map_err(|e| ctx.local(local, e))?;
        let local_len = local_file
            .metadata()
            .map_err(|e| ctx.local(local, e))?
            .len();
        let args = FileCreateArgs {
            disposition: CreateDisposition::OpenIf,
            attributes: FileAttributes::new(),
            options: CreateOptions::new().with_non_directory_file(true),
            // Read + write, not GENERIC_ALL: Samba refuses GENERIC_ALL on an existing 0644 file.
            desired_access: FileAccessMask::new()
                .with_generic_read(true)
                .with_generic_write(true),
            share_access: Some(held_share_access()),
        };
        let file = Arc::new(self.open_file(&path, args, "upload").await?);
        let mut held = HeldUpload {
            share: self,
            path,
            local: local.to_path_buf(),
            local_file: Arc::new(local_file),
            local_len,
            file,
            resumed_from: 0,
            prefix_hash: None,
            sent: false,
        };
        match held.settle(hash_locally).await {
            Ok(()) => Ok(held),
            Err(e) => {
                // The data calls' error is the one to report; a failed close is only logged.
                if let Err(closing) = held.close().await {
                    tracing::warn!(error = %closing, "closing a held upload failed");
                }
                Err(e)
            }
        }
    }

    /// Empties a file whose upload failed for want of space: a partial installer is useless,
    /// and the disk is full.
    async fn truncate(&self, file: &File, path: &RemotePath) {
        let unc = self.unc(path);
        let ctx = self.ctx(&unc, "truncate");
        if let Err(e) = self
            .bounded(
                ctx,
                file.set_info(FileEndOfFileInformation { end_of_file: 0 }),
            )
            .await
        {
            tracing::warn!(error = %e, "could not truncate a partial upload");
        }
    }

    /// Bytes a held upload's writes may run ahead of its lowest write not yet answered:
    /// `in_flight` requests of `chunk_size`, so the normal pipeline is never held back.
    pub(crate) fn lag_bound(&self) -> u64 {
        self.config.in_flight.max(1) as u64 * self.chunk_size() as u64
    }

    /// Reads the remote file's first `remote_len` bytes back and returns how many of them, in
    /// whole chunks from the start, equal the local file; feeds those into `hasher`, if any.
    async fn verified_prefix(
        &self,
        file: &Arc<File>,
        path: &RemotePath,
        local: &Path,
        local_file: &Arc<std::fs::File>,
        remote_len: u64,
        mut hasher: Option<&mut Sha256>,
    ) -> Result<u64, SmbError> {
        let chunk = self.chunk_size() as u64;
        let mut reads = self.start_reads(file, path, 0, remote_len);
        let mut offset = 0u64;
        while offset < remote_len {
            let Some(remote_chunk) = self.next_read(&mut reads, path).await? else {
                break;
            };
            let want = remote_chunk.len();
            let local_chunk = read_local(local_file, offset, want)
                .await
                .map_err(|e| self.ctx(&self.unc(path), "upload").local(local, e))?;
            if local_chunk != remote_chunk || (want as u64) < chunk.min(remote_len - offset) {
                break;
            }
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(&local_chunk);
            }
            offset += want as u64;
            self.refill_reads(&mut reads, file, path, remote_len);
        }
        Ok(offset)
    }

    /// Starts reads of `[from, to)`, `in_flight` at a time; `refill_reads` keeps the pipe full.
    fn start_reads(&self, file: &Arc<File>, path: &RemotePath, from: u64, to: u64) -> ReadPipe {
        let mut pipe = ReadPipe {
            tasks: Ordered::new(),
            next: from,
        };
        self.refill_reads(&mut pipe, file, path, to);
        pipe
    }

    fn refill_reads(&self, pipe: &mut ReadPipe, file: &Arc<File>, path: &RemotePath, to: u64) {
        let chunk = self.chunk_size() as u64;
        while pipe.next < to && pipe.tasks.tasks.len() < self.config.in_flight.max(1) {
            let offset = pipe.next;
            let len = chunk.min(to - offset) as usize;
            let (file, host, unc) = (file.clone(), self.host.clone(), self.unc(path));
            pipe.tasks.tasks.push_back(tokio::spawn(async move {
                let ctx = Ctx {
                    host: &host,
                    path: &unc,
                    op: "read",
                };
                read_exactly(&file, offset, len, ctx).await
            }));
            pipe.next += len as u64;
        }
    }

    /// The next chunk in order. The wait for it is bounded by the operation timeout, not each
    /// read from when it was sent: with `in_flight` reads out, the last of a window arrives only
    /// after the ones ahead of it, so on a slow link it may take `in_flight` times longer, while
    /// answers keep coming. A dead link answers none, and times out.
    async fn next_read(
        &self,
        pipe: &mut ReadPipe,
        path: &RemotePath,
    ) -> Result<Option<Vec<u8>>, SmbError> {
        let Some(mut task) = pipe.tasks.tasks.pop_front() else {
            return Ok(None);
        };
        let stall = self.op_timeout();
        match tokio::time::timeout(stall, &mut task).await {
            Ok(Ok(r)) => r.map(Some),
            Ok(Err(join)) => Err(self
                .ctx(&self.unc(path), "read")
                .other(format!("read task failed: {join}"))),
            Err(_) => {
                // The rest of the pipe is aborted when it is dropped.
                task.abort();
                Err(self.ctx(&self.unc(path), "read").timeout(stall))
            }
        }
    }

    /// Reads `[0, len)` back and hashes it; stops early at a short read (end of file).
    async fn hash_remote(
        &self,
        file: &Arc<File>,
        path: &RemotePath,
        len: u64,
    ) -> Result<(u64, [u8; 32]), SmbError> {
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut reads = self.start_reads(file, path, 0, len);
        while let Some(data) = self.next_read(&mut reads, path).await? {
            hasher.update(&data);
            total += data.len() as u64;
            if data.is_empty() || (total < len && data.len() < self.chunk_size()) {
                break;
            }
            self.refill_reads(&mut reads, file, path, len);
        }
        Ok((total, hasher.finalize().into()))
    }

    fn read_args() -> FileCreateArgs {
        FileCreateArgs {
            disposition: CreateDisposition::Open,
            attributes: FileAttributes::new(),
            options: CreateOptions::new().with_non_directory_file(true),
            desired_access: FileAccessMask::new().with_generic_read(true),
            share_access: None,
        }
    }

    /// SHA-256 and size of the remote file, read from the server.
    pub async fn sha256(&self, remote: &str) -> Result<(u64, [u8; 32]), SmbError> {
        let path = self.parse(remote, "hash")?;
        let file = Arc::new(self.open_file(&path, Self::read_args(), "hash").await?);
        let result = async {
            let len = self.file_size(&file, &path).await?;
            self.hash_remote(&file, &path, len).await
        }
        .await;
        let closed = self.close_file(&file, &path).await;
        let r = result?;
        closed?;
        Ok(r)
    }

    /// Reads `len` bytes at `offset` (fewer when the file ends first), e.g. the PE header of a
    /// remote DLL to learn its version without copying the file.
    pub async fn read_range(
        &self,
        remote: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, SmbError> {
        let path = self.parse(remote, "read")?;
        let file = Arc::new(self.open_file(&path, Self::read_args(), "read").await?);
        let result = async {
            let size = self.file_size(&file, &path).await?;
            let end = offset.saturating_add(len).min(size);
            let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
            if end <= offset {
                return Ok(out);
            }
            let mut reads = self.start_reads(&file, &path, offset, end);
            while let Some(data) = self.next_read(&mut reads, &path).await? {
                let short = (data.len() as u64) < self.chunk_size() as u64
                    && (offset + out.len() as u64 + data.len() as u64) < end;
                out.extend_from_slice(&data);
                if data.is_empty() || short {
                    break;
                }
                self.refill_reads(&mut reads, &file, &path, end);
            }
            Ok(out)
        }
        .await;
        let closed = self.close_file(&file, &path).await;
        let out = result?;
        closed?;
        Ok(out)
    }

    /// Copies remote file `remote` to `local`. The data goes to a temporary file beside `local`
    /// that is renamed into place only when every byte arrived; on any failure it is removed, so
    /// a failed download never leaves a partial or zero-filled file.
    pub async fn download(&self, remote: &str, local: &Path) -> Result<DownloadReport, SmbError> {
        let path = self.parse(remote, "download")?;
        let unc = self.unc(&path);
        let ctx = self.ctx(&unc, "download");
        let tmp = partial_name(local);
        let file = Arc::new(self.open_file(&path, Self::read_args(), "download").await?);
        let result = self.download_into(&file, &path, &tmp).await;
        let closed = self.close_file(&file, &path).await;
        let outcome = match (result, closed) {
            (Ok(report), Ok(())) => std::fs::rename(&tmp, local)
                .map(|_| report)
                .map_err(|e| ctx.local(local, e)),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        };
        if outcome.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        outcome
    }

    async fn download_into(
        &self,
        file: &Arc<File>,
        path: &RemotePath,
        tmp: &Path,
    ) -> Result<DownloadReport, SmbError> {
        let unc = self.unc(path);
        let ctx = self.ctx(&unc, "download");
        let size = self.file_size(file, path).await?;
        let local = std::fs::File::create(tmp).map_err(|e| ctx.local(tmp, e))?;
        // The local disk is written (and the data hashed) on a blocking thread of its own, so a
        // write(2) held up by the page cache never stalls the requests in flight.
        let (chunks, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(self.config.in_flight.max(1) * 2);
        let writer = tokio::task::spawn_blocking(move || write_and_hash(local, rx));
        let received: Result<u64, SmbError> = async {
            let chunks = chunks; // dropped when the block ends: the writer then finishes
            let mut total = 0u64;
            let mut reads = self.start_reads(file, path, 0, size);
            while let Some(data) = self.next_read(&mut reads, path).await? {
                let len = data.len();
                total += len as u64;
                if chunks.send(data).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
                if len == 0 || (total < size && len < self.chunk_size()) {
                    break;
                }
                self.refill_reads(&mut reads, file, path, size);
            }
            Ok(total)
        }
        .await;
        let written = writer
            .await
            .map_err(|e| ctx.other(format!("local writer failed: {e}")))?
            .map_err(|e| ctx.local(tmp, e))?;
        let total = received?;
        if total != size || written.0 != size {
            return Err(ctx.verify(format!("received {total} of {size} bytes")));
        }
        Ok(DownloadReport {
            bytes: written.0,
            sha256: written.1,
        })
    }
}

impl HeldUpload<'_> {
    /// Bytes already on the server, verified equal to the local file, that [`HeldUpload::send`]
    /// will not send again (0 for a fresh upload).
    pub fn resumed_from(&self) -> u64 {
        self.resumed_from
    }

    /// Size of the local file, i.e. of the remote file once sent.
    pub fn len(&self) -> u64 {
        self.local_len
    }

    /// Whether the local file is empty.
    pub fn is_empty(&self) -> bool {
        self.local_len == 0
    }

    /// How far the writes may run ahead of the lowest write not yet answered (`in_flight` ×
    /// `chunk_size`): while this upload is open, every byte of the remote file below its current
    /// size minus this bound is written and will not change.
    pub fn lag_bound(&self) -> u64 {
        self.share.lag_bound()
    }

    /// Sends what the server does not hold yet, keeping `sent` at the bytes the server holds
    /// (the verified prefix at once, then each chunk as its write is answered), and checks that
    /// the server's size then equals the local file's. Does not close: until
    /// [`HeldUpload::close`], other writers stay shut out.
    ///
    /// The report carries the local file's SHA-256 when the upload was begun with
    /// `hash_locally`.
    ///
    /// On a full disk the file is emptied before the error is returned (a partial installer is
    /// useless, and the space is needed). Call it once: a second call is refused.
    pub async fn send(&mut self, sent: &AtomicU64) -> Result<SentReport, SmbError> {
        let share = self.share;
        let unc = share.unc(&self.path);
        let ctx = share.ctx(&unc, "upload");
        if std::mem::replace(&mut self.sent, true) {
            return Err(ctx.other("this held upload was already sent".into()));
        }
        sent.store(self.resumed_from, Ordering::Relaxed);
        let hasher = self.prefix_hash.take();
        let hasher = match self.send_range(hasher, sent).await {
            Ok(h) => h,
            Err(e) => {
                if let SmbError::DiskFull { .. } = &e {
                    share.truncate(&self.file, &self.path).await;
                }
                return Err(e);
            }
        };
        let now = share.file_size(&self.file, &self.path).await?;
        if now != self.local_len {
            return Err(ctx.verify(format!(
                "server reports {now} bytes, local file has {}",
                self.local_len
            )));
        }
        Ok(SentReport {
            bytes: self.local_len,
            resumed_from: self.resumed_from,
            sha256: hasher.map(|h| h.finalize().into()),
        })
    }

    /// Closes the remote file: from now on others may write it again.
    pub async fn close(self) -> Result<(), SmbError> {
        self.share.close_file(&self.file, &self.path).await
    }

    /// Where sending resumes: a remote file longer than the local one is emptied; otherwise its
    /// prefix equal to the local file (whole chunks, read back) is kept (and hashed, when hashing
    /// locally), and anything after it is cut off, so that no byte on the server is one hive may
    /// still overwrite beyond the lag bound.
    async fn settle(&mut self, hash_locally: bool) -> Result<(), SmbError> {
        let share = self.share;
        let unc = share.unc(&self.path);
        let ctx = share.ctx(&unc, "upload");
        let remote_len = share.file_size(&self.file, &self.path).await?;
        let mut hasher = hash_locally.then(Sha256::new);
        let resumed_from = if remote_len == 0 || remote_len > self.local_len {
            0
        } else {
            share
                .verified_prefix(
                    &self.file,
                    &self.path,
                    &self.local,
                    &self.local_file,
                    remote_len,
                    hasher.as_mut(),
                )
                .await?
        };
        if remote_len > resumed_from {
            let truncated = self.file.set_info(FileEndOfFileInformation {
                end_of_file: resumed_from,
            });
            share.bounded(ctx, truncated).await?;
        }
        if resumed_from > 0 {
            tracing::info!(path = %unc, resumed_from, "resuming upload after the verified prefix");
        }
        self.resumed_from = resumed_from;
        self.prefix_hash = hasher;
        Ok(())
    }

    /// [`HeldUpload::send`] with the local hash, then, unless `verify_by_reading_back` is off,
    /// the file read back from the server and its SHA-256 compared with the local file's.
    async fn send_and_verify(&mut self, sent: &AtomicU64) -> Result<UploadReport, SmbError> {
        let share = self.share;
        let unc = share.unc(&self.path);
        let ctx = share.ctx(&unc, "upload");
        let report = self.send(sent).await?;
        let Some(sha256) = report.sha256 else {
            return Err(ctx.other("the upload computed no local SHA-256".into()));
        };
        if share.config.verify_by_reading_back {
            let (read_len, remote_sha) = share
                .hash_remote(&self.file, &self.path, self.local_len)
                .await?;
            if read_len != self.local_len || remote_sha != sha256 {
                return Err(ctx.verify(format!(
                    "read back {read_len} bytes with SHA-256 {}, local file has {} bytes with {}",
                    hex::encode(remote_sha),
                    self.local_len,
                    hex::encode(sha256)
                )));
            }
        }
        Ok(UploadReport {
            bytes: report.bytes,
            resumed_from: report.resumed_from,
            sha256,
            verified_by_reading_back: share.config.verify_by_reading_back,
        })
    }

    /// Sends `[resumed_from, len)` of the local file, up to `in_flight` writes at a time and never
    /// past the lag bound (see [`may_issue`]), and returns `hasher` fed with those bytes. The
    /// local file is read (and hashed, when there is a hasher) on a thread of its own, a few
    /// chunks ahead, straight into the buffers the writes send: hashing overlaps the network,
    /// and no chunk is copied on its way from the page cache to the socket.
    async fn send_range(
        &self,
        hasher: Option<Sha256>,
        sent: &AtomicU64,
    ) -> Result<Option<Sha256>, SmbError> {
        let share = self.share;
        let unc = share.unc(&self.path);
        let chunk = share.chunk_size();
        let depth = share.config.in_flight.max(1);
        let lag_bound = share.lag_bound();
        let stall = share.op_timeout();
        let (from, to) = (self.resumed_from, self.local_len);
        let (tx, chunks) = tokio::sync::mpsc::channel(READ_AHEAD);
        // Buffers whose write is done go back to the reader: no fresh zeroed megabyte per chunk.
        let (spent, reuse) = std::sync::mpsc::channel::<Arc<[u8]>>();
        let reader = {
            let local_file = self.local_file.clone();
            let pipe = Chunks { chunks: tx, reuse };
            tokio::task::spawn_blocking(move || {
                read_and_hash(&local_file, from, to, chunk, hasher, pipe)
            })
        };
        let (file, host) = (&self.file, &share.host);
        let written = issue_writes(
            chunks,
            depth,
            lag_bound,
            stall,
            |offset, data| {
                let (file, host, unc) = (file.clone(), host.clone(), unc.clone());
                write_chunk(file, host, unc, offset, data)
            },
            |buf| {
                sent.fetch_add(buf.len() as u64, Ordering::Relaxed);
                let _ = spent.send(buf);
            },
            share.ctx(&unc, "write"),
        )
        .await;
        if let Err(e) = written {
            // `issue_writes` dropped the channel, so the reader stops.
            let _ = reader.await;
            return Err(e);
        }
        let hasher = reader
            .await
            .map_err(|e| {
                share
                    .ctx(&unc, "upload")
                    .other(format!("local reader failed: {e}"))
            })?
            .map_err(|e| share.ctx(&unc, "upload").local(&self.local, e))?;
        Ok(hasher)
    }
}

/// The issuing loop of an upload: takes the chunks in order from `chunks` and runs `write` on
/// each as a task of its own, at most `depth` at once and never one that [`may_issue`] refuses
/// (it then waits for answers), and hands every answered write's buffer to `answered`. On the
/// first failure it drops `chunks` (the reader stops), lets the writes already issued finish,
/// and returns the failure.
///
/// `stall` bounds the wait for the next answer, not each write: with `depth` writes in flight,
/// the last of a window is answered only after the ones ahead of it, so on a slow link a single
/// write may take `depth` times longer than a quiet moment allows. What marks a dead link is
/// that no write at all is answered for `stall`; the writes still out are then abandoned.
async fn issue_writes<W, F>(
    mut chunks: tokio::sync::mpsc::Receiver<(u64, Arc<[u8]>)>,
    depth: usize,
    lag_bound: u64,
    stall: std::time::Duration,
    mut write: W,
    mut answered: impl FnMut(Arc<[u8]>),
    ctx: Ctx<'_>,
) -> Result<(), SmbError>
where
    W: FnMut(u64, Arc<[u8]>) -> F,
    F: Future<Output = WriteResult> + Send + 'static,
{
    let mut writes: JoinSet<WriteResult> = JoinSet::new();
    let mut outstanding = Outstanding::default();
    // A chunk read but not issued yet: it would have run past the lag bound.
    let mut held_back: Option<(u64, Arc<[u8]>)> = None;
    let mut reading = true;
    while reading || held_back.is_some() || !writes.is_empty() {
        while writes.len() < depth {
            let (offset, data) = match held_back.take() {
                Some(next) => next,
                None if reading => match chunks.recv().await {
                    Some(next) => next,
                    None => {
                        reading = false;
                        break;
                    }
                },
                None => break,
            };
            if !outstanding.may_issue(offset, data.len() as u64, lag_bound) {
                held_back = Some((offset, data));
                break;
            }
            outstanding.issued(offset);
            writes.spawn(write(offset, data));
        }
        let next = match tokio::time::timeout(stall, writes.join_next()).await {
            Ok(next) => next,
            Err(_) => {
                // The reader stops when `chunks` is dropped on return.
                writes.abort_all();
                return Err(ctx.timeout(stall));
            }
        };
        let failed = match next {
            Some(Ok(Ok((offset, buf)))) => {
                outstanding.answered(offset);
                answered(buf);
                None
            }
            None => None,
            Some(Ok(Err(e))) => Some(e),
            Some(Err(join)) => Some(ctx.other(format!("write task failed: {join}"))),
        };
        if let Some(e) = failed {
            // Stop the reader, then let the writes already sent finish before reporting:
            // otherwise they land after the caller's clean-up, e.g. re-extend a file truncated
            // to give a full disk its space back. A link that stops answering meanwhile is
            // not waited for longer than `stall` per answer.
            drop(chunks);
            while let Ok(Some(_)) = tokio::time::timeout(stall, writes.join_next()).await {}
            writes.abort_all();
            return Err(e);
        }
    }
    Ok(())
}

/// Writes the chunks to `file` in order, hashing them; returns bytes written and SHA-256.
fn write_and_hash(
    file: std::fs::File,
    mut chunks: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<(u64, [u8; 32])> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    while let Some(chunk) = chunks.blocking_recv() {
        hasher.update(&chunk);
        out.write_all(&chunk)?;
        total += chunk.len() as u64;
    }
    out.flush()?;
    Ok((total, hasher.finalize().into()))
}

struct ReadPipe {
    tasks: Ordered<ChunkResult>,
    next: u64,
}

/// One read request of up to `len` bytes at `offset`, retried until `len` bytes or end of file:
/// a server may return fewer bytes than asked.
async fn read_exactly(file: &File, offset: u64, len: usize, ctx: Ctx<'_>) -> ChunkResult {
    // The first answer's buffer is kept as it is (no zeroed buffer to copy it into); a short
    // answer (the server's max read size, or the end of the file) is completed by more reads.
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        // No bound of its own: the caller bounds the wait for each chunk (see `next_read`).
        let data = match file
            .read_block_owned(at, len - buf.len(), None, false)
            .await
        {
            Ok(data) => data,
            Err(e) => return Err(ctx.smb(smb::Error::IoError(e))),
        };
        if data.is_empty() {
            break;
        }
        if buf.is_empty() {
            buf = data;
        } else {
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// Local chunks read ahead of the writes: enough to keep the writes fed while the reader thread
/// waits for its CPU, few enough to bound the memory (chunk size each).
const READ_AHEAD: usize = 4;

/// The reader thread's two channels: chunks out, spent buffers back.
struct Chunks {
    chunks: tokio::sync::mpsc::Sender<(u64, Arc<[u8]>)>,
    reuse: std::sync::mpsc::Receiver<Arc<[u8]>>,
}

/// The reader thread of an upload: reads `[from, to)` in `chunk`-sized pieces, in order, each into
/// a buffer that the write request sends as is (a spent one when its write let go of it, else a
/// new one), and feeds `hasher` (if any) on the way. Stops early, without error, when the
/// receiver is gone (the upload failed).
fn read_and_hash(
    file: &std::fs::File,
    from: u64,
    to: u64,
    chunk: usize,
    mut hasher: Option<Sha256>,
    pipe: Chunks,
) -> std::io::Result<Option<Sha256>> {
    use std::os::unix::fs::FileExt;
    let mut offset = from;
    while offset < to {
        let len = (chunk as u64).min(to - offset) as usize;
        let mut buf = pipe
            .reuse
            .try_iter()
            .find(|b| b.len() == len && Arc::strong_count(b) == 1)
            // Collected in place (no intermediate Vec), so a new buffer is unshared.
            .unwrap_or_else(|| std::iter::repeat_n(0u8, len).collect());
        let data = Arc::get_mut(&mut buf)
            .ok_or_else(|| std::io::Error::other("a read buffer is still shared"))?;
        file.read_exact_at(data, offset)?;
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&*data);
        }
        if pipe.chunks.blocking_send((offset, buf)).is_err() {
            break;
        }
        offset += len as u64;
    }
    Ok(hasher)
}

/// One write request of an upload (the issuing loop bounds the wait); a short write is an error.
/// Returns the offset (so the caller knows which write was answered) and the buffer, for reuse.
async fn write_chunk(
    file: Arc<File>,
    host: String,
    unc: String,
    offset: u64,
    data: Arc<[u8]>,
) -> WriteResult {
    let ctx = Ctx {
        host: &host,
        path: &unc,
        op: "write",
    };
    // No bound of its own: `issue_writes` bounds the wait for answers (see its `stall`).
    let written = match file.write_block_zc(data.clone(), offset, None).await {
        Ok(n) => n,
        Err(e) => return Err(ctx.smb(smb::Error::IoError(e))),
    };
    if written != data.len() {
        return Err(ctx.other(format!(
            "server wrote {written} of {} bytes at offset {offset}",
            data.len()
        )));
    }
    Ok((offset, data))
}

async fn read_local(
    file: &Arc<std::fs::File>,
    offset: u64,
    len: usize,
) -> std::io::Result<Vec<u8>> {
    let file = file.clone();
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    })
    .await
    .map_err(std::io::Error::other)?
}

fn partial_name(local: &Path) -> PathBuf {
    let mut name = local
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".hive-partial");
    local.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: u64 = 1 << 20;

    #[test]
    fn a_write_may_end_at_most_lag_bound_past_the_lowest_unanswered_one() {
        let lag = 4 * CHUNK;
        // Nothing outstanding: the write is itself the lowest unanswered one.
        assert!(may_issue(None, 100 * CHUNK, CHUNK, lag));
        // Write 0 outstanding: writes 1..=3 end within 0 + 4 chunks, write 4 would not.
        assert!(may_issue(Some(0), 3 * CHUNK, CHUNK, lag));
        assert!(!may_issue(Some(0), 4 * CHUNK, CHUNK, lag));
        // A short last chunk counts by its end, not its start.
        assert!(may_issue(Some(CHUNK), 4 * CHUNK, CHUNK / 2, lag));
        assert!(!may_issue(Some(CHUNK), 4 * CHUNK + 1, CHUNK, lag));
    }

    /// What [`HeldUpload::send_range`] issues for `n` writes of one chunk, `depth` at most at once,
    /// when the server answers the outstanding write that `answer` picks each time. Returns the
    /// writes in flight after each refill, and checks the guarantee at every issue: the write
    /// ends at most `lag` past the lowest unanswered one.
    fn simulate(
        n: u64,
        depth: usize,
        lag: u64,
        mut answer: impl FnMut(&Outstanding) -> u64,
    ) -> Vec<usize> {
        let mut outstanding = Outstanding::default();
        let mut next = 0u64;
        let mut in_flight_after_refill = Vec::new();
        while next < n || !outstanding.offsets.is_empty() {
            while next < n
                && outstanding.offsets.len() < depth
                && outstanding.may_issue(next * CHUNK, CHUNK, lag)
            {
                let lowest = outstanding.offsets.first().copied().unwrap_or(next * CHUNK);
                assert!(
                    next * CHUNK + CHUNK <= lowest + lag,
                    "write {next} issued with write at {lowest} unanswered"
                );
                outstanding.issued(next * CHUNK);
                next += 1;
            }
            in_flight_after_refill.push(outstanding.offsets.len());
            let done = answer(&outstanding);
            outstanding.answered(done);
        }
        in_flight_after_refill
    }

    #[test]
    fn a_slow_first_write_holds_the_later_ones_back() {
        let depth = 4;
        let lag = depth as u64 * CHUNK;
        // Write 0 is answered only when nothing else is outstanding; every other write at once.
        let mut issued_while_first_waits = 0u64;
        let in_flight = simulate(32, depth, lag, |o| {
            let highest = *o.offsets.last().unwrap();
            if o.offsets.contains(&0) && highest != 0 {
                issued_while_first_waits = issued_while_first_waits.max(highest / CHUNK + 1);
                highest
            } else {
                *o.offsets.first().unwrap()
            }
        });
        // While write 0 waited, nothing past the first `depth` chunks was issued (refilling as
        // any write finishes would have run through all 32).
        assert_eq!(issued_while_first_waits, depth as u64);
        assert_eq!(in_flight[0], depth);
        // Once it was answered, the pipeline was full again.
        assert_eq!(in_flight[depth], depth);
    }

    #[test]
    fn answers_in_order_keep_the_pipeline_full() {
        let depth = 16;
        let in_flight = simulate(100, depth, depth as u64 * CHUNK, |o| {
            *o.offsets.first().unwrap()
        });
        // Full until the last writes drain: no loss of throughput in the normal case.
        assert!(
            in_flight[..100 - depth].iter().all(|&n| n == depth),
            "{in_flight:?}"
        );
    }

    #[test]
    fn answers_in_any_order_never_break_the_bound() {
        // A fixed pseudo-random order of answers; `simulate` asserts the bound at every issue.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for depth in [1, 2, 3, 8, 16] {
            let in_flight = simulate(200, depth, depth as u64 * CHUNK, |o| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *o.offsets
                    .iter()
                    .nth((x % o.offsets.len() as u64) as usize)
                    .unwrap()
            });
            assert!(in_flight.iter().all(|&n| n <= depth));
        }
    }

    /// The real issuing loop, with writes that answer at once except the first, which is slow:
    /// while it is outstanding no write may end past the lag bound; after it, the rest go out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_issuing_loop_waits_for_a_slow_first_write() {
        use std::sync::Mutex;
        use std::sync::atomic::AtomicBool;
        let (depth, chunk, n) = (4usize, 4096u64, 64u64);
        let lag = depth as u64 * chunk;
        let first_answered = Arc::new(AtomicBool::new(false));
        // (end of the write, whether write 0 had been answered when it was issued)
        let issued = Arc::new(Mutex::new(Vec::new()));
        let answered = AtomicU64::new(0);
        let result = issue_writes(
            feed(n, chunk as usize),
            depth,
            lag,
            std::time::Duration::from_secs(30),
            |offset, data| {
                let first = first_answered.clone();
                issued
                    .lock()
                    .unwrap()
                    .push((offset + data.len() as u64, first.load(Ordering::SeqCst)));
                async move {
                    if offset == 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        first.store(true, Ordering::SeqCst);
                    }
                    Ok((offset, data))
                }
            },
            |buf| {
                answered.fetch_add(buf.len() as u64, Ordering::Relaxed);
            },
            write_ctx(),
        )
        .await;
        assert!(result.is_ok());
        assert_eq!(answered.load(Ordering::Relaxed), n * chunk);
        let issued = issued.lock().unwrap();
        assert_eq!(issued.len(), n as usize);
        let while_slow: Vec<u64> = issued.iter().filter(|w| !w.1).map(|w| w.0).collect();
        // Writes 0..4 went out at once (the window was full), none past the bound.
        assert_eq!(while_slow, vec![chunk, 2 * chunk, 3 * chunk, 4 * chunk]);
        assert!(while_slow.iter().all(|&end| end <= lag));
    }

    #[tokio::test]
    async fn the_issuing_loop_stops_at_the_first_failed_write() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let feeder = tokio::spawn(async move {
            let mut sent = 0u64;
            for i in 0..1000u64 {
                let buf: Arc<[u8]> = vec![0u8; 16].into();
                if tx.send((i * 16, buf)).await.is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        });
        let result = issue_writes(
            rx,
            4,
            64,
            std::time::Duration::from_secs(30),
            |offset, data| async move {
                if offset == 5 * 16 {
                    Err(Ctx {
                        host: "h",
                        path: "p",
                        op: "write",
                    }
                    .error(crate::error::Kind::DiskFull, String::new()))
                } else {
                    Ok((offset, data))
                }
            },
            |_| {},
            write_ctx(),
        )
        .await;
        assert!(
            matches!(result, Err(SmbError::DiskFull { .. })),
            "{result:?}"
        );
        // The reader side saw the channel close instead of feeding all 1000 chunks.
        assert!(feeder.await.unwrap() < 1000);
    }

    /// Feeds `n` chunks of `chunk` bytes to an issuing loop, as the local reader does.
    fn feed(n: u64, chunk: usize) -> tokio::sync::mpsc::Receiver<(u64, Arc<[u8]>)> {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            for i in 0..n {
                let buf: Arc<[u8]> = vec![0u8; chunk].into();
                if tx.send((i * chunk as u64, buf)).await.is_err() {
                    return;
                }
            }
        });
        rx
    }

    fn write_ctx() -> Ctx<'static> {
        Ctx {
            host: "h",
            path: r"\\h\s\f",
            op: "write",
        }
    }

    /// A slow link carries one write at a time, 40 ms each: the fourth write of a window is
    /// answered 160 ms after it was issued, longer than the 100 ms stall bound, but an answer
    /// comes every 40 ms, so the upload goes on. (Time is the test clock's: no real waiting.)
    #[tokio::test(start_paused = true)]
    async fn a_slow_link_that_keeps_answering_is_not_a_stall() {
        let link = Arc::new(tokio::sync::Mutex::new(()));
        let longest = Arc::new(std::sync::Mutex::new(std::time::Duration::ZERO));
        let answered = AtomicU64::new(0);
        let result = issue_writes(
            feed(24, 16),
            4,
            4 * 16,
            std::time::Duration::from_millis(100),
            |offset, data| {
                let (link, longest) = (link.clone(), longest.clone());
                async move {
                    let issued = tokio::time::Instant::now();
                    let _wire = link.lock().await;
                    tokio::time::sleep(std::time::Duration::from_millis(40)).await;
                    let took = issued.elapsed();
                    let mut longest = longest.lock().unwrap();
                    *longest = (*longest).max(took);
                    Ok((offset, data))
                }
            },
            |buf| {
                answered.fetch_add(buf.len() as u64, Ordering::Relaxed);
            },
            write_ctx(),
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(answered.load(Ordering::Relaxed), 24 * 16);
        assert!(*longest.lock().unwrap() >= std::time::Duration::from_millis(160));
    }

    /// A link that stops answering: after the third write nothing comes back. The loop gives
    /// up one stall bound after the last answer, with a timeout, instead of waiting for ever.
    #[tokio::test(start_paused = true)]
    async fn a_link_that_stops_answering_times_out_after_the_stall_bound() {
        let started = tokio::time::Instant::now();
        let result = issue_writes(
            feed(100, 16),
            4,
            4 * 16,
            std::time::Duration::from_millis(100),
            |offset, data| async move {
                if offset >= 3 * 16 {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                Ok((offset, data))
            },
            |_| {},
            write_ctx(),
        )
        .await;
        assert!(
            matches!(result, Err(SmbError::Timeout { .. })),
            "{result:?}"
        );
        let waited = started.elapsed();
        assert!(
            waited >= std::time::Duration::from_millis(100)
                && waited < std::time::Duration::from_millis(200),
            "{waited:?}"
        );
    }

    #[test]
    fn held_uploads_let_others_read_and_delete_but_never_write() {
        let access = held_share_access();
        assert!(access.read() && access.delete() && !access.write());
    }

    #[test]
    fn partial_file_sits_beside_the_target() {
        assert_eq!(
            partial_name(Path::new("/tmp/x/kb.msu")),
            PathBuf::from("/tmp/x/kb.msu.hive-partial")
        );
    }
}
