//! hive-winrm: a WS-Management / WinRS client (transport crate: knows nothing of patching).
//!
//! Layers, bottom up:
//! - [`envelope`] and [`response`]: pure message code (build requests, parse replies by namespace).
//! - [`ntlm`] and [`framing`]: NTLMv2 authentication and MS-WSMV message encryption, pure.
//! - [`client`]: one pinned HTTP/1.1 connection per host, authenticated, encrypted or over TLS.
//! - [`shell`]: one reused WinRS shell per host; run commands streaming their output.
//!
//! ```no_run
//! # async fn demo() -> hive_winrm::Result<()> {
//! use hive_winrm::{ClientConfig, Credentials, Endpoint, Session};
//!
//! // Windows' default listener: HTTP 5985, Negotiate/NTLM with message encryption.
//! let cfg = ClientConfig::new(Endpoint::http("srv01.corp"), Credentials::ntlm("CORP\\patcher", "pw"));
//! let mut host = Session::new(cfg)?;
//! let kbs = host.run_powershell("Get-HotFix | % HotFixID", None).await?;
//! let build = host.run_cmd("ver", None).await?; // same shell, same connection
//! println!("{}{}", kbs.stdout_text(), build.stdout_text());
//! host.close().await?;
//! # Ok(()) }
//! ```

pub mod client;
pub mod clixml;
pub mod envelope;
pub mod error;
pub mod framing;
pub mod kerberos;
pub mod ns;
pub mod ntlm;
pub mod powershell;
pub mod response;
pub mod shell;
pub mod tls;
pub mod xml;

pub use client::{ClientConfig, Credentials, Endpoint, WinrmClient};
pub use error::{Error, Result};
pub use shell::{Output, RunOptions, Session, Stream};
pub use tls::{ClientCertificate, ServerTrust};
