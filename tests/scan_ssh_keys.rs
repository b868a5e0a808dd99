//! SSH public-key logons end to end: the simulated fleet behind the harness's real OpenSSH sshd,
//! scanned with `credential = "ssh-key:/path"` (an ed25519 key and an RSA key, each a 0600 file)
//! and `credential = "ssh-agent"` (a test `ssh-agent` on a socket of its own), every verdict
//! checked against the state the test gave each host; and the refusals an admin meets: a key the
//! server does not authorize, a key file others can read.
//!
//! Needs the harness's sshd and samba services (`integration/test.sh`).

#[path = "../transports/ssh/tests/sshd/agent.rs"]
mod agent;
mod scan_support;
mod ssh_common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agent::TestAgent;
use hive::inventory::{Host, Inventory, Secret, SecretSource, resolve_credential};
use hive::scan::HostScan;
use hive::scan::run::{FileSource, ScanOptions, scan_fleet};
use scan_support::{W2kState, assert_w2k_verdicts, fleet_toml, ms01_033};
use ssh_common::{SshFleet, env};

struct NoPrompt;

impl SecretSource for NoPrompt {
    fn prompt(&mut self, _: &str) -> Result<Secret, String> {
        Err("no terminal in a test".into())
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/catalogs")
        .join(name)
}

async fn scan(inv: &Inventory, secret: impl Fn(&Host) -> Result<Secret, String>) -> Vec<HostScan> {
    let (mssecure, _) =
        hive::catalog::store::import_file(&fixture("mssecure-2001-10-04.xml")).unwrap();
    let hosts: Vec<_> = inv.hosts.iter().map(|h| (h.clone(), secret(h))).collect();
    let options = ScanOptions {
        parallel: 4,
        files: FileSource::Probe,
        ..ScanOptions::default()
    };
    scan_fleet(hosts.into(), Arc::new(mssecure), options, Arc::new(())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_log_on_with_ed25519_rsa_and_agent_keys() {
    let (mssecure, _) =
        hive::catalog::store::import_file(&fixture("mssecure-2001-10-04.xml")).unwrap();
    let m = ms01_033(&mssecure);
    let w2k: Vec<(String, String, W2kState)> = [W2kState::Unpatched, W2kState::Patched]
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("KEY-{i}"), format!("127.0.0.{}", i + 10), *s))
        .collect();
    let fleet = SshFleet::start("scankeys", 2, &fleet_toml("u", "p", &w2k, &[], &m)).await;

    let check = |how: &str, scans: &[HostScan]| {
        assert_eq!(scans.len(), w2k.len(), "{how}");
        for ((name, _, state), s) in w2k.iter().zip(scans) {
            let r = s
                .result
                .as_ref()
                .unwrap_or_else(|e| panic!("{how}: {name}: {e}"));
            assert_w2k_verdicts(name, *state, r, &m, "sftp");
        }
    };
    for var in ["HIVE_TEST_SSH_KEY", "HIVE_TEST_SSH_KEY_RSA"] {
        let inv = fleet.with_credential(&format!("ssh-key:{}", env(var)));
        let scans = scan(&inv, |h| {
            resolve_credential(h, &mut NoPrompt).map_err(|e| e.to_string())
        })
        .await;
        check(var, &scans);
    }

    // The agent holds both keys; its socket is what `ssh-agent` resolves to from SSH_AUTH_SOCK
    // (this test does not change its own environment: other tests read it at the same time).
    let ed = PathBuf::from(env("HIVE_TEST_SSH_KEY"));
    let rsa = PathBuf::from(env("HIVE_TEST_SSH_KEY_RSA"));
    let agent = TestAgent::start(&[&rsa, &ed]);
    let inv = fleet.with_credential("ssh-agent");
    let socket = agent.socket.to_string_lossy().into_owned();
    let scans = scan(&inv, |_| Ok(Secret::new(socket.clone()))).await;
    check("ssh-agent", &scans);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_and_a_key_file_others_can_read_say_what_to_fix() {
    use std::os::unix::fs::PermissionsExt;
    let (mssecure, _) =
        hive::catalog::store::import_file(&fixture("mssecure-2001-10-04.xml")).unwrap();
    let m = ms01_033(&mssecure);
    let w2k = vec![(
        "STRANGER".to_string(),
        "127.0.0.10".to_string(),
        W2kState::Patched,
    )];
    let fleet = SshFleet::start("scankeys-refused", 3, &fleet_toml("u", "p", &w2k, &[], &m)).await;

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("stranger");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "stranger", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let listed = std::process::Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    let fingerprint = listed.split_whitespace().nth(1).unwrap();

    let inv = fleet.with_credential(&format!("ssh-key:{}", key.display()));
    let scans = scan(&inv, |h| {
        resolve_credential(h, &mut NoPrompt).map_err(|e| e.to_string())
    })
    .await;
    let err = scans[0].result.as_ref().unwrap_err().to_string();
    assert!(
        err.contains("STRANGER") && err.contains(fingerprint) && err.contains("authorized_keys"),
        "names the host, the key and where to authorize it: {err}"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = resolve_credential(&inv.hosts[0], &mut NoPrompt)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("STRANGER") && err.contains("mode 0640") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!err.contains("PRIVATE KEY"), "never shows the key: {err}");
}
