//! The test server's coordinates, from the HIVE_TEST_SSH_* variables of integration/services/sshd.sh.

use std::path::PathBuf;
use std::time::Duration;

pub use super::agent::TestAgent;
use hive_ssh::{Auth, HostKeyPin, Secret, SshEndpoint, SshOptions, SshSession};

/// A HIVE_TEST_SSH_* variable; missing means the test was not started by the harness: fail loudly.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the real sshd that integration/test.sh starts; \
             run `integration/test.sh sshd -- -p hive-ssh`"
        )
    })
}

pub fn password() -> Secret {
    Secret::new(env("HIVE_TEST_SSH_PASSWORD"))
}

pub fn key_auth() -> Auth {
    Auth::KeyFile {
        path: PathBuf::from(env("HIVE_TEST_SSH_KEY")),
        passphrase: None,
    }
}

pub fn target(auth: Auth) -> SshEndpoint {
    let host = env("HIVE_TEST_SSH_HOST");
    let port: u16 = env("HIVE_TEST_SSH_PORT").parse().unwrap();
    let host_key = HostKeyPin::parse(&host, &env("HIVE_TEST_SSH_HOSTKEY_SHA256")).unwrap();
    SshEndpoint {
        host,
        port,
        host_key,
        user: env("HIVE_TEST_SSH_USER"),
        auth,
    }
}

pub fn options() -> SshOptions {
    SshOptions {
        connect_timeout: Duration::from_secs(30),
        kill_grace: Duration::from_millis(500),
        ..SshOptions::default()
    }
}

pub async fn connect() -> SshSession {
    SshSession::connect(&target(key_auth()), &options())
        .await
        .unwrap()
}

/// A string no other test or run uses, to find this test's processes with `ps`.
pub fn nonce() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (u64::from(std::process::id()) << 20) ^ u64::from(t.subsec_nanos()) ^ t.as_secs()
}

/// A fresh ed25519 key no server authorizes, in a temporary folder, with its fingerprint.
pub fn unauthorized_key() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stranger");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "stranger", "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    let out = std::process::Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    let fingerprint = line.split_whitespace().nth(1).unwrap().to_owned();
    (dir, path, fingerprint)
}
