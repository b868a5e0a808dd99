//! The crate's error type: every variant names the host, so a fleet-wide run can say which
//! server failed and why without the caller adding context.

use crate::framing::FramingError;
use crate::response::{FaultKind, ResponseError, WsmanFault};

/// What went wrong talking to one WinRM host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint or options are unusable.
    #[error("{host}: invalid WinRM configuration: {detail}")]
    Config {
        /// The host as configured.
        host: String,
        /// What is wrong.
        detail: String,
    },
    /// TCP connect failed.
    #[error("{host}: cannot connect to the WinRM listener: {source}")]
    Connect {
        /// host:port.
        host: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// TLS handshake failed (untrusted certificate, pin mismatch, protocol error).
    #[error("{host}: TLS handshake failed: {detail}")]
    Tls {
        /// host:port.
        host: String,
        /// rustls' reason.
        detail: String,
    },
    /// The server refused our credentials.
    #[error("{host}: authentication failed for user {user} ({method}): {detail}")]
    Auth {
        /// host:port.
        host: String,
        /// The user (never the password).
        user: String,
        /// Negotiate/NTLM, Basic or certificate.
        method: &'static str,
        /// What the server said.
        detail: String,
    },
    /// The request was larger than the server's MaxEnvelopeSize.
    #[error(
        "{host}: {action} request of {size} bytes was refused as too large (HTTP 413): raise MaxEnvelopeSizekb or send smaller chunks"
    )]
    EnvelopeTooBig {
        /// host:port.
        host: String,
        /// The request's action.
        action: &'static str,
        /// Request size in bytes.
        size: usize,
    },
    /// An HTTP status without a SOAP fault.
    #[error("{host}: {action}: HTTP {status} from the WinRM service: {detail}")]
    Http {
        /// host:port.
        host: String,
        /// The request's action.
        action: &'static str,
        /// HTTP status code.
        status: u16,
        /// Body text, if any.
        detail: String,
    },
    /// A SOAP fault.
    #[error("{host}: {action}: {fault}")]
    Fault {
        /// host:port.
        host: String,
        /// The request's action.
        action: &'static str,
        /// The parsed fault.
        fault: Box<WsmanFault>,
    },
    /// A reply we could not use (malformed, wrong RelatesTo).
    #[error("{host}: {action}: {source}")]
    Reply {
        /// host:port.
        host: String,
        /// The request's action.
        action: &'static str,
        /// Why.
        source: ResponseError,
    },
    /// Message encryption failed (bad signature: lost sync or tampering).
    #[error("{host}: message encryption: {source}")]
    Encryption {
        /// host:port.
        host: String,
        /// Why.
        source: FramingError,
    },
    /// The connection broke mid-request.
    #[error("{host}: connection lost: {detail}")]
    Connection {
        /// host:port.
        host: String,
        /// Why.
        detail: String,
    },
    /// No reply in time (the HTTP timeout is OperationTimeout plus a margin).
    #[error("{host}: {action}: no reply within {secs} s")]
    Timeout {
        /// host:port.
        host: String,
        /// The request's action.
        action: &'static str,
        /// Seconds waited.
        secs: u64,
    },
    /// A command ran past its deadline and was terminated.
    #[error("{host}: command `{command}` did not finish within {secs} s and was terminated")]
    CommandTimeout {
        /// host:port.
        host: String,
        /// The command (first word only: arguments can hold secrets).
        command: String,
        /// The deadline in seconds.
        secs: u64,
    },
}

impl Error {
    /// The WS-Man fault, if this error is one.
    pub fn fault(&self) -> Option<&WsmanFault> {
        match self {
            Error::Fault { fault, .. } => Some(fault.as_ref()),
            _ => None,
        }
    }

    /// The fault kind, if this error is a fault.
    pub fn fault_kind(&self) -> Option<FaultKind> {
        self.fault().map(WsmanFault::kind)
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
