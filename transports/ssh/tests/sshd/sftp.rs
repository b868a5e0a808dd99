use std::io::Write;
use std::path::{Path, PathBuf};

use hive_ssh::SshError;
use sha2::{Digest, Sha256};

use crate::common::{connect, env, nonce};

/// A local file of `len` pseudo-random bytes (incompressible, so no layer can cheat).
fn random_file(len: usize, seed: u64) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let mut x = seed | 1;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut left = len;
    while left > 0 {
        buf.clear();
        while buf.len() < (1 << 20).min(left) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.extend_from_slice(&x.to_le_bytes());
        }
        buf.truncate((1 << 20).min(left));
        f.write_all(&buf).unwrap();
        left -= buf.len();
    }
    f.flush().unwrap();
    f
}

fn sha256_of(path: &Path) -> String {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

fn upload_dir() -> PathBuf {
    PathBuf::from(env("HIVE_TEST_SSH_UPLOAD_DIR"))
}

#[tokio::test]
async fn upload_64_mib_arrives_intact_and_reads_back() {
    let len = 64 * 1024 * 1024;
    let local = random_file(len, nonce());
    let remote = upload_dir().join(format!("upload-{}.bin", nonce()));
    let remote_str = remote.to_str().unwrap();
    let ssh = connect().await;
    let sftp = ssh.sftp().await.unwrap();

    let sent = sftp.upload(local.path(), remote_str).await.unwrap();
    assert_eq!(sent, len as u64);
    // The server side is this machine: hash the file sshd wrote.
    assert_eq!(std::fs::metadata(&remote).unwrap().len(), len as u64);
    assert_eq!(sha256_of(&remote), sha256_of(local.path()));
    assert_eq!(sftp.size(remote_str).await.unwrap(), len as u64);

    // Ranged reads: the head, a window across chunk boundaries, and past the end.
    let original = std::fs::read(local.path()).unwrap();
    assert_eq!(
        sftp.read_range(remote_str, 0, 4096).await.unwrap(),
        &original[..4096]
    );
    let (off, n) = (3 * 262_144 - 100, 600_000);
    assert_eq!(
        sftp.read_range(remote_str, off as u64, n).await.unwrap(),
        &original[off..off + n]
    );
    assert_eq!(
        sftp.read_range(remote_str, len as u64 - 10, 100)
            .await
            .unwrap(),
        &original[len - 10..]
    );

    // And the whole file back down.
    let back = tempfile::NamedTempFile::new().unwrap();
    assert_eq!(
        sftp.download(remote_str, back.path()).await.unwrap(),
        len as u64
    );
    assert_eq!(sha256_of(back.path()), sha256_of(local.path()));

    sftp.remove(remote_str).await.unwrap();
    assert!(!remote.exists());
    sftp.close().await.unwrap();
}

#[tokio::test]
async fn upload_overwrites_a_longer_file() {
    let remote = upload_dir().join(format!("overwrite-{}.bin", nonce()));
    let remote_str = remote.to_str().unwrap();
    let ssh = connect().await;
    let sftp = ssh.sftp().await.unwrap();
    let big = random_file(1_000_000, 1);
    let small = random_file(1000, 2);
    sftp.upload(big.path(), remote_str).await.unwrap();
    sftp.upload(small.path(), remote_str).await.unwrap();
    assert_eq!(
        std::fs::read(&remote).unwrap(),
        std::fs::read(small.path()).unwrap()
    );
    sftp.remove(remote_str).await.unwrap();
}

#[tokio::test]
async fn a_full_disk_fails_the_upload_instead_of_reporting_success() {
    // HIVE_TEST_SSH_FULL_DIR is a small tmpfs: the server's writes fail with ENOSPC part-way, and
    // only checking every write reply and the close reveals it.
    let full = PathBuf::from(env("HIVE_TEST_SSH_FULL_DIR"));
    let remote = full.join(format!("too-big-{}.bin", nonce()));
    let remote_str = remote.to_str().unwrap();
    let local = random_file(32 * 1024 * 1024, 3);
    let ssh = connect().await;
    let sftp = ssh.sftp().await.unwrap();
    let err = sftp.upload(local.path(), remote_str).await.unwrap_err();
    assert!(matches!(err, SshError::SftpIo { .. }), "{err:?}");
    assert!(
        err.to_string().contains(remote_str),
        "names the path: {err}"
    );
    let _ = sftp.remove(remote_str).await;
}

#[tokio::test]
async fn errors_name_host_and_path() {
    let ssh = connect().await;
    let sftp = ssh.sftp().await.unwrap();
    let missing = format!("/nonexistent-{}/x", nonce());
    let err = sftp.read_range(&missing, 0, 10).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&missing) && msg.contains(&env("HIVE_TEST_SSH_PORT")),
        "{msg}"
    );
    let local = random_file(10, 4);
    let err = sftp
        .upload(local.path(), "/root/hive-forbidden")
        .await
        .unwrap_err();
    assert!(
        matches!(err, SshError::Sftp { op: "create", .. }),
        "{err:?}"
    );
}
