//! Connecting: TCP with `TCP_NODELAY`, key exchange with the host key checked against its pin,
//! authentication, all under one time limit. Then a [`SshSession`] that can run commands and open
//! SFTP, many at once over the one connection.

use std::borrow::Cow;
use std::sync::Arc;

use russh::client::{self, Handle};
use russh::keys::{HashAlg, PublicKeyOrCertificate};
use tokio::net::TcpStream;

use crate::endpoint::{HostKeyPin, SshEndpoint, SshOptions};
use crate::error::{HandlerError, SshError};

/// The russh handler of one connection. russh does not tell the handler which host it is checking,
/// so each connection gets its own handler holding the one key that host must present.
pub(crate) struct PinnedHostKey {
    expected: HostKeyPin,
}

impl client::Handler for PinnedHostKey {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, HandlerError> {
        // A certificate is checked by the host key inside it: hive pins keys, not CAs.
        let presented = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256),
            PublicKeyOrCertificate::Certificate(cert) => {
                cert.public_key().fingerprint(HashAlg::Sha256)
            }
        };
        if &presented == self.expected.fingerprint() {
            Ok(true)
        } else {
            Err(HandlerError::HostKeyMismatch {
                presented: presented.to_string(),
            })
        }
    }
}

/// An authenticated SSH connection to one host. Cheap to share (`&self` everywhere): commands and
/// SFTP sessions each get their own channel, so one connection serves many at once.
pub struct SshSession {
    pub(crate) handle: Handle<PinnedHostKey>,
    pub(crate) label: String,
    pub(crate) options: SshOptions,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("host", &self.label)
            .finish_non_exhaustive()
    }
}

impl SshSession {
    /// Connects, checks the host key against its pin and authenticates, all within
    /// `options.connect_timeout`.
    pub async fn connect(
        target: &SshEndpoint,
        options: &SshOptions,
    ) -> Result<SshSession, SshError> {
        let label = target.label();
        match tokio::time::timeout(options.connect_timeout, connect_and_auth(target, options)).await
        {
            Ok(result) => result,
            Err(_) => Err(SshError::ConnectTimeout {
                host: label,
                after: options.connect_timeout,
            }),
        }
    }

    /// `host:port`, as errors name it.
    pub fn host(&self) -> &str {
        &self.label
    }

    /// Says goodbye politely (SSH_MSG_DISCONNECT) so the server logs a clean logout, then waits
    /// briefly for the connection to wind down.
    pub async fn disconnect(self) -> Result<(), SshError> {
        self.handle
            .disconnect(russh::Disconnect::ByApplication, "hive done", "en")
            .await
            .map_err(|source| protocol(&self.label, "disconnecting", source))
    }

    pub(crate) fn protocol_error(&self, doing: &'static str, source: russh::Error) -> SshError {
        protocol(&self.label, doing, source)
    }
}

pub(crate) fn protocol(label: &str, doing: &'static str, source: russh::Error) -> SshError {
    SshError::Protocol {
        host: label.to_owned(),
        doing,
        source,
    }
}

fn russh_config(options: &SshOptions) -> client::Config {
    client::Config {
        client_id: russh::SshId::Standard(Cow::Borrowed(concat!(
            "SSH-2.0-hive_",
            env!("CARGO_PKG_VERSION")
        ))),
        // Nagle's algorithm delays each small request by ~40 ms against delayed ACKs.
        nodelay: true,
        inactivity_timeout: Some(options.inactivity_timeout),
        keepalive_interval: Some(options.keepalive_interval),
        keepalive_max: 3,
        preferred: russh::Preferred {
            cipher: Cow::Borrowed(cipher_order()),
            ..russh::Preferred::default()
        },
        ..client::Config::default()
    }
}

/// Ciphers in order of preference. With AES instructions, AES-GCM first: it costs the server
/// (OpenSSH: OpenSSL's AES-NI GCM against its own portable Poly1305) and hive (ring) less CPU per
/// byte than ChaCha20-Poly1305, and CPU is what limits an upload on a loaded host. Without them,
/// ChaCha20-Poly1305 first, as OpenSSH itself orders them.
fn cipher_order() -> &'static [russh::cipher::Name] {
    use russh::cipher::{AES_128_CTR, AES_128_GCM, AES_256_CTR, AES_256_GCM, CHACHA20_POLY1305};
    const AES_FIRST: &[russh::cipher::Name] = &[
        AES_256_GCM,
        AES_128_GCM,
        CHACHA20_POLY1305,
        AES_256_CTR,
        AES_128_CTR,
    ];
    const CHACHA_FIRST: &[russh::cipher::Name] = &[
        CHACHA20_POLY1305,
        AES_256_GCM,
        AES_128_GCM,
        AES_256_CTR,
        AES_128_CTR,
    ];
    if has_aes_instructions() {
        AES_FIRST
    } else {
        CHACHA_FIRST
    }
}

fn has_aes_instructions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

async fn connect_and_auth(
    target: &SshEndpoint,
    options: &SshOptions,
) -> Result<SshSession, SshError> {
    let label = target.label();
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|source| SshError::Unreachable {
            host: label.clone(),
            source,
        })?;
    stream
        .set_nodelay(true)
        .map_err(|source| SshError::Unreachable {
            host: label.clone(),
            source,
        })?;
    let handler = PinnedHostKey {
        expected: target.host_key.clone(),
    };
    let config = Arc::new(russh_config(options));
    let mut handle =
        client::connect_stream(config, crate::quickack::QuickAck::new(stream), handler)
            .await
            .map_err(|e| match e {
                HandlerError::HostKeyMismatch { presented } => SshError::HostKeyMismatch {
                    host: label.clone(),
                    expected: target.host_key.to_string(),
                    presented,
                },
                HandlerError::Ssh(source) => protocol(&label, "exchanging keys", source),
            })?;
    crate::auth::authenticate(&mut handle, target, &label).await?;
    tracing::debug!(host = %label, user = %target.user, "SSH session established");
    Ok(SshSession {
        handle,
        label,
        options: options.clone(),
    })
}
