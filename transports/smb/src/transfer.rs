//! Moving bytes: verified, resumable uploads; ranged reads; downloads that never leave a partial
//! file behind.
//!
//! Requests are pipelined: up to `in_flight` reads or writes of `chunk_size` run at once on the
//! connection, each a spawned task under the operation timeout, so the link is busy while the
//! next local chunk is read. Writes may complete in any order; reads are consumed in order.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use smb::FileEndOfFileInformation;
use smb::{CreateDisposition, CreateOptions, File, FileAccessMask, FileAttributes, FileCreateArgs};
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
    pub async fn upload_counting(
        &self,
        local: &Path,
        remote: &str,
        sent: &AtomicU64,
    ) -> Result<UploadReport, SmbError> {
        sent.store(0, Ordering::Relaxed);
        let path = self.parse(remote, "upload")?;
        let unc = self.unc(&path);
        let ctx = self.ctx(&unc, "upload");
        let local_file = std::fs::File::open(local).map_err(|e| ctx.local(local, e))?;
        let local_len = local_file
            .metadata()
            .map_err(|e| ctx.local(local, e))?
            .len();
        let local_file = Arc::new(local_file);

        let args = FileCreateArgs {
            disposition: CreateDisposition::OpenIf,
            attributes: FileAttributes::new(),
            options: CreateOptions::new().with_non_directory_file(true),
            // Read + write, not GENERIC_ALL: Samba refuses GENERIC_ALL on an existing 0644 file.
            desired_access: FileAccessMask::new()
                .with_generic_read(true)
                .with_generic_write(true),
        };
        let file = Arc::new(self.open_file(&path, args, "upload").await?);
        let result = self
            .upload_into(&file, &path, local, &local_file, local_len, sent)
            .await;
        if let Err(SmbError::DiskFull { .. }) = &result {
            // Give the space back: a partial installer is useless, and the disk is full.
            self.truncate(&file, &path).await;
        }
        let closed = self.close_file(&file, &path).await;
        let report = result?;
        closed?;
        Ok(report)
    }

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

    async fn upload_into(
        &self,
        file: &Arc<File>,
        path: &RemotePath,
        local: &Path,
        local_file: &Arc<std::fs::File>,
        local_len: u64,
        sent: &AtomicU64,
    ) -> Result<UploadReport, SmbError> {
        let unc = self.unc(path);
        let ctx = self.ctx(&unc, "upload");
        let remote_len = self.file_size(file, path).await?;
        let mut hasher = Sha256::new();
        let resumed_from = if remote_len == 0 {
            0
        } else if remote_len > local_len {
            let truncated = file.set_info(FileEndOfFileInformation { end_of_file: 0 });
            self.bounded(ctx, truncated).await?;
            0
        } else {
            self.verified_prefix(file, path, local, local_file, remote_len, &mut hasher)
                .await?
        };
        if resumed_from > 0 {
            tracing::info!(path = %unc, resumed_from, "resuming upload after the verified prefix");
        }
        sent.store(resumed_from, Ordering::Relaxed);
        let hasher = self
            .send_range(
                file,
                path,
                local,
                local_file,
                resumed_from,
                local_len,
                hasher,
                sent,
            )
            .await?;
        let sha256: [u8; 32] = hasher.finalize().into();

        let now = self.file_size(file, path).await?;
        if now != local_len {
            return Err(ctx.verify(format!(
                "server reports {now} bytes, local file has {local_len}"
            )));
        }
        if self.config.verify_by_reading_back {
            let (read_len, remote_sha) = self.hash_remote(file, path, local_len).await?;
            if read_len != local_len || remote_sha != sha256 {
                return Err(ctx.verify(format!(
                    "read back {read_len} bytes with SHA-256 {}, local file has {local_len} bytes with {}",
                    hex::encode(remote_sha),
                    hex::encode(sha256)
                )));
            }
        }
        Ok(UploadReport {
            bytes: local_len,
            resumed_from,
            sha256,
            verified_by_reading_back: self.config.verify_by_reading_back,
        })
    }

    /// Reads the remote file's first `remote_len` bytes back and returns how many of them, in
    /// whole chunks from the start, equal the local file; feeds those into `hasher`.
    async fn verified_prefix(
        &self,
        file: &Arc<File>,
        path: &RemotePath,
        local: &Path,
        local_file: &Arc<std::fs::File>,
        remote_len: u64,
        hasher: &mut Sha256,
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
            hasher.update(&local_chunk);
            offset += want as u64;
            self.refill_reads(&mut reads, file, path, remote_len);
        }
        Ok(offset)
    }

    /// Sends `[from, to)` of the local file, `in_flight` writes at a time, and returns `hasher`
    /// fed with those bytes. The local file is read and hashed on a thread of its own, a few
    /// chunks ahead, straight into the buffers the writes send: hashing overlaps the network, and
    /// no chunk is copied on its way from the page cache to the socket.
    #[allow(clippy::too_many_arguments)]
    async fn send_range(
        &self,
        file: &Arc<File>,
        path: &RemotePath,
        local: &Path,
        local_file: &Arc<std::fs::File>,
        from: u64,
        to: u64,
        hasher: Sha256,
        sent: &AtomicU64,
    ) -> Result<Sha256, SmbError> {
        let unc = self.unc(path);
        let chunk = self.chunk_size();
        let depth = self.config.in_flight.max(1);
        let timeout = self.op_timeout();
        let (tx, mut chunks) = tokio::sync::mpsc::channel(READ_AHEAD);
        // Buffers whose write is done go back to the reader: no fresh zeroed megabyte per chunk.
        let (spent, reuse) = std::sync::mpsc::channel::<Arc<[u8]>>();
        let reader = {
            let local_file = local_file.clone();
            let pipe = Chunks { chunks: tx, reuse };
            tokio::task::spawn_blocking(move || {
                read_and_hash(&local_file, from, to, chunk, hasher, pipe)
            })
        };
        let mut writes: JoinSet<Result<Arc<[u8]>, SmbError>> = JoinSet::new();
        let mut reading = true;
        while reading || !writes.is_empty() {
            while reading && writes.len() < depth {
                let Some((offset, data)) = chunks.recv().await else {
                    reading = false;
                    break;
                };
                let (file, host, unc) = (file.clone(), self.host.clone(), unc.clone());
                writes.spawn(write_chunk(file, host, unc, offset, data, timeout));
            }
            let failed = match writes.join_next().await {
                Some(Ok(Ok(buf))) => {
                    sent.fetch_add(buf.len() as u64, Ordering::Relaxed);
                    let _ = spent.send(buf);
                    None
                }
                None => None,
                Some(Ok(Err(e))) => Some(e),
                Some(Err(join)) => Some(
                    self.ctx(&unc, "write")
                        .other(format!("write task failed: {join}")),
                ),
            };
            if let Some(e) = failed {
                // Stop the reader, then let the writes already sent finish (each is bounded by
                // the op timeout) before reporting: otherwise they land after the caller's
                // clean-up, e.g. re-extend a file truncated to give a full disk its space back.
                drop(chunks);
                while writes.join_next().await.is_some() {}
                let _ = reader.await;
                return Err(e);
            }
        }
        drop(chunks);
        let hasher = reader
            .await
            .map_err(|e| {
                self.ctx(&unc, "upload")
                    .other(format!("local reader failed: {e}"))
            })?
            .map_err(|e| self.ctx(&unc, "upload").local(local, e))?;
        Ok(hasher)
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
        let timeout = self.op_timeout();
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
                read_exactly(&file, offset, len, timeout, ctx).await
            }));
            pipe.next += len as u64;
        }
    }

    async fn next_read(
        &self,
        pipe: &mut ReadPipe,
        path: &RemotePath,
    ) -> Result<Option<Vec<u8>>, SmbError> {
        let Some(task) = pipe.tasks.tasks.pop_front() else {
            return Ok(None);
        };
        match task.await {
            Ok(r) => r.map(Some),
            Err(join) => Err(self
                .ctx(&self.unc(path), "read")
                .other(format!("read task failed: {join}"))),
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
async fn read_exactly(
    file: &File,
    offset: u64,
    len: usize,
    timeout: std::time::Duration,
    ctx: Ctx<'_>,
) -> ChunkResult {
    // The first answer's buffer is kept as it is (no zeroed buffer to copy it into); a short
    // answer (the server's max read size, or the end of the file) is completed by more reads.
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        let read = tokio::time::timeout(
            timeout,
            file.read_block_owned(at, len - buf.len(), None, false),
        )
        .await;
        let data = match read {
            Ok(Ok(data)) => data,
            Ok(Err(e)) => return Err(ctx.smb(smb::Error::IoError(e))),
            Err(_) => return Err(ctx.timeout(timeout)),
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
/// new one), and feeds `hasher` on the way. Stops early, without error, when the receiver is gone
/// (the upload failed).
fn read_and_hash(
    file: &std::fs::File,
    from: u64,
    to: u64,
    chunk: usize,
    mut hasher: Sha256,
    pipe: Chunks,
) -> std::io::Result<Sha256> {
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
        hasher.update(&*data);
        if pipe.chunks.blocking_send((offset, buf)).is_err() {
            break;
        }
        offset += len as u64;
    }
    Ok(hasher)
}

/// One write request of an upload, bounded by the operation timeout; a short write is an error.
async fn write_chunk(
    file: Arc<File>,
    host: String,
    unc: String,
    offset: u64,
    data: Arc<[u8]>,
    timeout: std::time::Duration,
) -> Result<Arc<[u8]>, SmbError> {
    let ctx = Ctx {
        host: &host,
        path: &unc,
        op: "write",
    };
    let written = match tokio::time::timeout(
        timeout,
        file.write_block_zc(data.clone(), offset, None),
    )
    .await
    {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => return Err(ctx.smb(smb::Error::IoError(e))),
        Err(_) => return Err(ctx.timeout(timeout)),
    };
    if written != data.len() {
        return Err(ctx.other(format!(
            "server wrote {written} of {} bytes at offset {offset}",
            data.len()
        )));
    }
    Ok(data)
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

    #[test]
    fn partial_file_sits_beside_the_target() {
        assert_eq!(
            partial_name(Path::new("/tmp/x/kb.msu")),
            PathBuf::from("/tmp/x/kb.msu.hive-partial")
        );
    }
}
