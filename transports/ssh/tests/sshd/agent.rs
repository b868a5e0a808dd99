//! An `ssh-agent` of a test's own. Shared by this crate's sshd tests and hive's SSH key scans
//! (`tests/scan_ssh_keys.rs` includes this file by path), so both drive the agent one way.

use std::path::PathBuf;
use std::time::Duration;

/// An `ssh-agent` of the test's own on a socket in a temporary folder, stopped when dropped.
pub struct TestAgent {
    child: std::process::Child,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestAgent {
    /// Starts the agent in the foreground (`-D`) and loads `keys` into it with `ssh-add`.
    pub fn start(keys: &[&std::path::Path]) -> TestAgent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent (Debian openssh-client) runs");
        let agent = TestAgent {
            child,
            socket,
            _dir: dir,
        };
        // The socket file appears when ssh-agent binds it, a moment before it listens: until a
        // connection is accepted, ssh-add may meet "Connection refused".
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&agent.socket).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "ssh-agent never accepted a connection on its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for key in keys {
            let added = std::process::Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &agent.socket)
                .output()
                .expect("ssh-add runs");
            assert!(
                added.status.success(),
                "ssh-add {}: {added:?}",
                key.display()
            );
        }
        agent
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
