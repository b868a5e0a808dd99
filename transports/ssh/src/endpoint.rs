//! Who to connect to and how: the host, its pinned key, the account and its credentials, and the
//! time limits. Plain data; nothing here does IO except loading a key file when asked.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use russh::keys::ssh_key::Fingerprint;

use crate::error::SshError;

/// A password or passphrase. Its `Debug` prints `Secret(<redacted>)`, so a credential never lands
/// in a log line, a panic message or an error, even when a whole endpoint is debug-printed. hive
/// uses this one type for every credential, whatever the transport.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret string.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How to prove who we are.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Password authentication (the `password` method, not keyboard-interactive).
    Password(Secret),
    /// A private key file in OpenSSH or PEM format, optionally encrypted with a passphrase.
    KeyFile {
        path: PathBuf,
        passphrase: Option<Secret>,
    },
    /// A private key (OpenSSH or PEM text, not encrypted) the caller has already read, e.g. after
    /// checking that only its owner can read the file; `origin` names that file in errors.
    Key { text: Secret, origin: PathBuf },
    /// The keys an SSH agent holds (`ssh-agent`, listening on the unix socket `SSH_AUTH_SOCK`
    /// names), tried in the agent's order: the private keys never enter hive's memory.
    Agent { socket: PathBuf },
}

impl Auth {
    /// The SSH method name, for error messages.
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Auth::Password(_) => "password",
            Auth::KeyFile { .. } | Auth::Key { .. } => "publickey",
            Auth::Agent { .. } => "publickey from the SSH agent",
        }
    }
}

/// The server's host key, pinned by the SHA256 fingerprint `ssh-keygen -l -E sha256` prints
/// (`SHA256:` + 43 base64 characters). Pinning instead of trust-on-first-use, because an
/// orchestrator that pushes installers as Administrator must never talk to an impostor.
#[derive(Clone, PartialEq, Eq)]
pub struct HostKeyPin(Fingerprint);

impl HostKeyPin {
    /// Parses `SHA256:...`; `host` only names the target in the error.
    pub fn parse(host: &str, pin: &str) -> Result<Self, SshError> {
        match Fingerprint::from_str(pin.trim()) {
            Ok(fp) if fp.is_sha256() => Ok(HostKeyPin(fp)),
            _ => Err(SshError::BadHostKeyPin {
                host: host.to_owned(),
                pin: pin.to_owned(),
            }),
        }
    }

    pub(crate) fn fingerprint(&self) -> &Fingerprint {
        &self.0
    }
}

impl fmt::Display for HostKeyPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for HostKeyPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostKeyPin({})", self.0)
    }
}

/// One SSH target: where, which key it must show, and as whom we log on.
#[derive(Debug, Clone)]
pub struct SshEndpoint {
    /// Host name or address.
    pub host: String,
    pub port: u16,
    pub host_key: HostKeyPin,
    pub user: String,
    pub auth: Auth,
}

impl SshEndpoint {
    /// `host:port`, the name every error and log line uses.
    pub fn label(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Time limits and transfer sizes. The defaults suit a LAN fleet; every limit exists because its
/// absence hangs a fleet run on one dead host.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// TCP connect + key exchange + authentication (russh has no connect timeout of its own).
    pub connect_timeout: Duration,
    /// Close the connection when the server has sent nothing for this long (keepalives answered
    /// count, so this only fires on a dead or hung peer).
    pub inactivity_timeout: Duration,
    /// Send an OpenSSH keepalive after this much silence from the server.
    pub keepalive_interval: Duration,
    /// After SIGTERM to a timed-out command's process group, how long to wait before SIGKILL.
    pub kill_grace: Duration,
    /// Time limit for the second exec that kills a timed-out command.
    pub kill_timeout: Duration,
    /// Bytes read from the local file at a time, each sent as one SFTP write. The default is
    /// 255 KiB, exactly the largest write OpenSSH accepts (256 KiB messages less 1 KiB of room):
    /// a 256 KiB read would go out as a 255 KiB write plus a 1 KiB one, twice the requests.
    pub sftp_chunk: usize,
    /// SFTP write (and read) requests kept in flight at once.
    pub sftp_requests_in_flight: usize,
    /// Time limit for one SFTP request's answer.
    pub sftp_request_timeout: Duration,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            connect_timeout: Duration::from_secs(15),
            inactivity_timeout: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(15),
            kill_grace: Duration::from_secs(2),
            kill_timeout: Duration::from_secs(15),
            sftp_chunk: 255 * 1024,
            sftp_requests_in_flight: 16,
            sftp_request_timeout: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_shows_in_debug() {
        let auth = Auth::Password(Secret::new("hunter2"));
        let shown = format!("{auth:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("Secret(<redacted>)"), "{shown}");
    }

    #[test]
    fn pin_parses_ssh_keygen_output() {
        let pin = HostKeyPin::parse("h:22", "SHA256:rnFg9lQzp3LxgVJUzqLppEBgc8FoGJOdzmX8/FYqyks")
            .unwrap();
        assert_eq!(
            pin.to_string(),
            "SHA256:rnFg9lQzp3LxgVJUzqLppEBgc8FoGJOdzmX8/FYqyks"
        );
    }

    #[test]
    fn pin_rejects_md5_and_garbage_naming_the_host() {
        for bad in [
            "MD5:aa:bb",
            "rnFg9lQzp3LxgVJUzqLppEBgc8FoGJOdzmX8/FYqyks",
            "SHA256:short",
            "",
        ] {
            let err = HostKeyPin::parse("web1:22", bad).unwrap_err();
            assert!(
                err.to_string().starts_with("web1:22: host key pin"),
                "{err}"
            );
        }
    }

    #[test]
    fn label_brackets_ipv6() {
        let t = SshEndpoint {
            host: "::1".into(),
            port: 2222,
            host_key: HostKeyPin::parse("x", "SHA256:rnFg9lQzp3LxgVJUzqLppEBgc8FoGJOdzmX8/FYqyks")
                .unwrap(),
            user: "u".into(),
            auth: Auth::Password(Secret::new("p")),
        };
        assert_eq!(t.label(), "[::1]:2222");
    }
}
