//! Starts integration/winrm_peer/server.py (a real WinRM server using pyspnego's NTLM acceptor)
//! on a free 127.0.0.1 port for one test, and kills it when the test ends.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const USER: &str = "HIVE\\alice";
pub const PASSWORD: &str = "Corr3ct-Horse!";

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv python with pywinrm/pypsrp/pyspnego, or a failure naming the harness.
pub fn python() -> String {
    std::env::var("HIVE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HIVE_TEST_PYTHON is not set: run these tests through integration/test.sh \
             (it builds the venv with pyspnego/pywinrm/pypsrp), or set it to .venv/bin/python"
        )
    })
}

pub struct Peer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Peer {
    /// Start the server with extra arguments (e.g. TLS files, quotas).
    pub fn start(extra: &[&str]) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Peer {
        let users = dir.path().join("users");
        let (dom, user) = USER.split_once('\\').unwrap();
        std::fs::write(&users, format!("{dom}:{user}:{PASSWORD}\n")).unwrap();
        let script = workspace_root().join("integration/winrm_peer/server.py");
        let mut child = Command::new(python())
            .arg(&script)
            .arg("--users")
            .arg(&users)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("winrm_peer did not start: {line:?}"))
            .parse()
            .unwrap();
        Peer { child, port, dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}
