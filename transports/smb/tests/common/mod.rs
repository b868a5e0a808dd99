//! Shared by the SMB integration tests: the real Samba the harness started
//! (integration/services/samba.sh), test data, and a TCP proxy that can break or stall
//! connections on demand.
#![allow(dead_code)]

pub mod proxy;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hive_smb::{Credentials, SmbConfig, SmbShare};

/// A variable the harness exports; missing means the test was not started by the harness, which
/// is a failure, never a skip.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the SMB tests need the real Samba that integration/test.sh starts \
             (run `integration/test.sh samba -- -p hive-smb`)"
        )
    })
}

pub fn host() -> String {
    env("HIVE_TEST_SMB_HOST")
}
pub fn port() -> u16 {
    env("HIVE_TEST_SMB_PORT")
        .parse()
        .expect("HIVE_TEST_SMB_PORT is a port")
}
pub fn strict_port() -> u16 {
    env("HIVE_TEST_SMB_STRICT_PORT")
        .parse()
        .expect("HIVE_TEST_SMB_STRICT_PORT is a port")
}
pub fn creds() -> Credentials {
    Credentials::password(env("HIVE_TEST_SMB_USER"), env("HIVE_TEST_SMB_PASSWORD"))
}

/// Share name and local root of share `kind` (ADMIN, FLEET, FULL, SIGNED, SEALED).
pub fn share(kind: &str) -> (String, PathBuf) {
    (
        env(&format!("HIVE_TEST_SMB_{kind}_SHARE")),
        PathBuf::from(env(&format!("HIVE_TEST_SMB_{kind}_ROOT"))),
    )
}

pub async fn connect(kind: &str) -> SmbShare {
    connect_with(kind, &SmbConfig::default()).await
}

pub async fn connect_with(kind: &str, config: &SmbConfig) -> SmbShare {
    let port = if matches!(kind, "SIGNED" | "SEALED") {
        strict_port()
    } else {
        port()
    };
    connect_at(port, kind, config).await
}

/// Share `kind` reached on `port`: the test Samba's own, or a proxy in front of it.
pub async fn connect_at(port: u16, kind: &str, config: &SmbConfig) -> SmbShare {
    let (name, _) = share(kind);
    SmbShare::connect(&host(), port, &name, &creds(), config)
        .await
        .expect("connect to the test Samba")
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Deterministic pseudo-random bytes (incompressible, so no layer can cheat on zeros).
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Writes `bytes` to a local file (outside any share).
pub fn local_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Gives a file created by the test (as root) to the Samba user, as if it had uploaded it.
pub fn give_to_smb_user(path: &Path) {
    let uid: u32 = env("HIVE_TEST_SMB_UID").parse().unwrap();
    let gid: u32 = env("HIVE_TEST_SMB_GID").parse().unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

/// Writes a file straight into a share's directory and drops it from the page cache, so the
/// server's read must wait for the disk (Samba then answers with STATUS_PENDING first).
pub fn write_cold(path: &Path, bytes: &[u8]) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::create(path).unwrap();
    std::io::Write::write_all(&mut &f, bytes).unwrap();
    f.sync_all().unwrap();
    // SAFETY: plain syscall on an open descriptor we own.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise(DONTNEED) failed");
}

/// A raw `smb` crate client on a share of the default instance, for the tests of the crate's own
/// defects (below hive-smb's wrapper).
pub async fn raw_tree(kind: &str) -> (smb::Client, Arc<smb::Tree>) {
    let (name, _) = share(kind);
    let port = if matches!(kind, "SIGNED" | "SEALED") {
        strict_port()
    } else {
        port()
    };
    raw_tree_at(port, &name).await.unwrap()
}

/// A raw `smb` client (NTLM, no DFS) logged on as the harness's user to share `name` through
/// `port`, which may be a proxy's.
pub async fn raw_tree_at(
    port: u16,
    name: &str,
) -> Result<(smb::Client, Arc<smb::Tree>), smb::Error> {
    let mut cfg = smb::ClientConfig {
        dfs: false,
        ..Default::default()
    };
    cfg.connection.port = Some(port);
    cfg.connection.auth_methods = smb::connection::AuthMethodsConfig {
        ntlm: true,
        kerberos: false,
    };
    let client = smb::Client::new(cfg);
    let unc = smb::UncPath::from_str(&format!(r"\\{}\{}", host(), name)).unwrap();
    client
        .share_connect(
            &unc,
            &env("HIVE_TEST_SMB_USER"),
            env("HIVE_TEST_SMB_PASSWORD"),
        )
        .await?;
    let tree = client.get_tree(&unc).await?;
    Ok((client, tree))
}

pub fn rw_args(disposition: smb::CreateDisposition) -> smb::FileCreateArgs {
    smb::FileCreateArgs {
        disposition,
        attributes: smb::FileAttributes::new(),
        options: smb::CreateOptions::new(),
        desired_access: smb::FileAccessMask::new()
            .with_generic_read(true)
            .with_generic_write(true),
        share_access: None,
    }
}

pub fn read_args() -> smb::FileCreateArgs {
    smb::FileCreateArgs::make_open_existing(smb::FileAccessMask::new().with_generic_read(true))
}

pub async fn raw_file(tree: &smb::Tree, name: &str, args: &smb::FileCreateArgs) -> smb::File {
    match tree.create(name, args).await.unwrap() {
        smb::Resource::File(f) => f,
        _ => panic!("{name} is not a file"),
    }
}
