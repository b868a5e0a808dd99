//! The demo's way into its simulated hosts: commands over real WinRM, files straight into the
//! local folder that is the host's C: drive. No Samba runs inside the demo's process, so the SMB
//! half of the production adapter is replaced here, not branched around in it; the integration
//! tests cover the SMB path with a real Samba.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use hive::inventory::{Host, Secret};
use hive::remote::{
    BoxFuture, Command, Connector, ExecOutput, PutReport, RemoteError, Target, Timeouts,
    WinrmTarget, share_path,
};

/// Opens a [`LocalDriveTarget`] per host; host `H`'s drive is `<root>/H`, the layout
/// `winsim::Fleet::start` creates.
pub struct LocalDriveConnector {
    root: PathBuf,
    timeouts: Timeouts,
}

impl LocalDriveConnector {
    pub fn new(root: &Path, timeouts: Timeouts) -> Self {
        LocalDriveConnector {
            root: root.to_path_buf(),
            timeouts,
        }
    }
}

impl Connector for LocalDriveConnector {
    fn open(&self, host: &Host, secret: &Secret) -> Result<Box<dyn Target>, RemoteError> {
        Ok(Box::new(LocalDriveTarget {
            commands: WinrmTarget::new(host, secret, self.timeouts)?,
            drive: self.root.join(&host.name),
        }))
    }
}

/// A simulated host: WinRM for commands, a local folder standing for C: for files.
pub struct LocalDriveTarget {
    commands: WinrmTarget,
    drive: PathBuf,
}

impl LocalDriveTarget {
    /// `C:\Windows\Temp\x` → `<drive>/Windows/Temp/x`; anything else (another drive, `..`) is
    /// refused with the host named.
    fn local_path(&self, remote: &str) -> Result<PathBuf, RemoteError> {
        let rel = share_path("", remote).ok_or_else(|| {
            RemoteError::Failed(format!(
                "{}: {remote} is not a C:\\ path",
                self.commands.host()
            ))
        })?;
        Ok(rel.split('\\').fold(self.drive.clone(), |p, c| p.join(c)))
    }
}

fn io_error(path: &Path, e: std::io::Error) -> RemoteError {
    if e.kind() == std::io::ErrorKind::NotFound {
        RemoteError::NotFound(format!("{}: not found", path.display()))
    } else {
        RemoteError::Failed(format!("{}: {e}", path.display()))
    }
}

fn sha256_of(path: &Path) -> Result<Option<String>, RemoteError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(hex::encode(Sha256::digest(&bytes)))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, e)),
    }
}

fn copy_into(dest: &Path, src: &Path) -> Result<PutReport, RemoteError> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    let bytes = std::fs::copy(src, dest).map_err(|e| io_error(dest, e))?;
    let sha256 = sha256_of(dest)?.unwrap_or_default();
    Ok(PutReport {
        bytes,
        resumed_from: 0,
        sha256,
    })
}

fn read_range(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, RemoteError> {
    let mut f = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| io_error(path, e))?;
    let mut buf = Vec::new();
    f.take(len)
        .read_to_end(&mut buf)
        .map_err(|e| io_error(path, e))?;
    Ok(buf)
}

impl Target for LocalDriveTarget {
    fn host(&self) -> &str {
        self.commands.host()
    }

    fn exec<'a>(
        &'a mut self,
        command: &'a Command,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, RemoteError>> {
        self.commands.exec(command, timeout)
    }

    fn put_file<'a>(
        &'a mut self,
        local: &'a Path,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<PutReport, RemoteError>> {
        let done = self
            .local_path(remote)
            .and_then(|dest| copy_into(&dest, local));
        Box::pin(async move { done })
    }

    fn read_file_range<'a>(
        &'a mut self,
        remote: &'a str,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, RemoteError>> {
        let done = self
            .local_path(remote)
            .and_then(|p| read_range(&p, offset, len));
        Box::pin(async move { done })
    }

    fn remote_sha256<'a>(
        &'a mut self,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, RemoteError>> {
        let done = self.local_path(remote).and_then(|p| sha256_of(&p));
        Box::pin(async move { done })
    }

    fn disconnect(&mut self) {
        self.commands.disconnect();
    }

    fn remove_file<'a>(&'a mut self, remote: &'a str) -> BoxFuture<'a, Result<(), RemoteError>> {
        let done = self
            .local_path(remote)
            .and_then(|p| std::fs::remove_file(&p).map_err(|e| io_error(&p, e)));
        Box::pin(async move { done })
    }

    fn remove_dir<'a>(&'a mut self, remote: &'a str) -> BoxFuture<'a, Result<(), RemoteError>> {
        let done = self
            .local_path(remote)
            .and_then(|p| std::fs::remove_dir(&p).map_err(|e| io_error(&p, e)));
        Box::pin(async move { done })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing is sent when a target opens, so no WinRM listener is needed for file calls.
    fn target(drive: &Path) -> Box<dyn Target> {
        let inv = hive::inventory::Inventory::parse(
            "[[host]]\nname=\"WEB001\"\naddress=\"127.0.0.1\"\ncredential=\"prompt\"\n",
            Path::new("inv.toml"),
        )
        .expect("a one-host inventory");
        LocalDriveConnector::new(drive, Timeouts::default())
            .open(&inv.hosts[0], &Secret::new("x"))
            .expect("a target")
    }

    #[tokio::test]
    async fn files_land_in_the_hosts_folder_and_read_back() {
        let dir = tempfile::tempdir().expect("a temp folder");
        let src = dir.path().join("Q300972.exe");
        std::fs::write(&src, b"MZ hotfix").expect("write the installer");
        let mut t = target(dir.path());
        let remote = r"C:\Windows\Temp\hive\r1\Q300972.exe";
        let put = t.put_file(&src, remote).await.expect("copied");
        assert_eq!(put.bytes, 9);
        assert!(
            dir.path()
                .join("WEB001/Windows/Temp/hive/r1/Q300972.exe")
                .is_file()
        );
        assert_eq!(t.read_file_range(remote, 3, 3).await.expect("read"), b"hot");
        assert_eq!(
            t.remote_sha256(remote).await.expect("hash"),
            Some(put.sha256)
        );
        t.remove_file(remote).await.expect("removed");
        assert_eq!(t.remote_sha256(remote).await.expect("hash"), None);
        assert!(matches!(
            t.put_file(&src, r"D:\x.exe").await,
            Err(RemoteError::Failed(m)) if m.starts_with("WEB001: ")
        ));
        assert!(matches!(
            t.read_file_range(r"C:\Windows\..\..\etc\passwd", 0, 10)
                .await,
            Err(RemoteError::Failed(_))
        ));
    }
}
