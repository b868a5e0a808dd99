//! hive-ssh: run commands and copy files over SSH, for the targets that offer it (Linux hosts,
//! Windows Server with OpenSSH). It knows nothing of patching.
//!
//! What it guarantees, because an orchestrator touching hundreds of hosts needs each of these:
//! - the host key is pinned by its SHA256 fingerprint; a mismatch is refused with both
//!   fingerprints named ([`SshError::HostKeyMismatch`]);
//! - every step is time-limited: connect+auth, each command (and a timed-out command's remote
//!   processes are killed, not left running: see [`exec`]), each SFTP request;
//! - stdout, stderr and the exit status come back separately, or streamed as they arrive;
//! - an SFTP upload returns only once the server confirmed every write and the close;
//! - passwords never appear in `Debug` output, logs or errors ([`Secret`]).
//!
//! Built on russh + russh-sftp with the `ring` backend.
//!
//! ```no_run
//! use std::time::Duration;
//! use hive_ssh::{Auth, HostKeyPin, Secret, SshOptions, SshSession, SshEndpoint};
//!
//! # async fn demo() -> Result<(), hive_ssh::SshError> {
//! let target = SshEndpoint {
//!     host: "web1.example.net".into(),
//!     port: 22,
//!     host_key: HostKeyPin::parse("web1", "SHA256:rnFg9lQzp3LxgVJUzqLppEBgc8FoGJOdzmX8/FYqyks")?,
//!     user: "deploy".into(),
//!     auth: Auth::Password(Secret::new("from the vault")),
//! };
//! let ssh = SshSession::connect(&target, &SshOptions::default()).await?;
//! let out = ssh.exec("uname -r", Duration::from_secs(30)).await?;
//! println!("{} {}", out.status, String::from_utf8_lossy(&out.stdout));
//! let sftp = ssh.sftp().await?;
//! sftp.upload("KB5034441.msu".as_ref(), "/tmp/KB5034441.msu").await?;
//! ssh.disconnect().await?;
//! # Ok(()) }
//! ```

mod auth;
mod error;
pub mod exec;
mod kill;
mod quickack;
mod session;
mod sftp;
mod endpoint;

pub use endpoint::{Auth, HostKeyPin, Secret, SshEndpoint, SshOptions};
pub use error::SshError;
pub use exec::{ExecOutput, ExitStatus, KillOutcome, OutputStream, RemoteShell};
pub use session::SshSession;
pub use sftp::Sftp;

/// The orchestrator shares sessions across tasks and spawns their futures: keep them `Send + Sync`.
#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn sessions_and_their_futures_cross_threads() {
        assert_send_sync::<crate::SshSession>();
        assert_send_sync::<crate::Sftp>();
        assert_send_sync::<crate::SshError>();
        let _ = |s: &'static crate::SshSession| {
            assert_send(&s.exec("true", std::time::Duration::from_secs(1)));
            assert_send(&s.sftp());
        };
    }
}
