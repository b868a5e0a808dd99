//! The WinRM face of the simulated fleet: one WS-Management/WinRS listener per simulated host, on
//! the host's own 127.x.y.z address, speaking what Windows Server speaks (NTLM with message
//! encryption over HTTP, Basic over HTTPS, the real fault envelopes).
//!
//! What a client meets, as on Windows Server with its default WinRM configuration:
//! - **Auth**: `Negotiate` with raw NTLMSSP or SPNEGO-wrapped NTLM (NTLMv2 only; the proof is
//!   checked, wrong user or password → 401), bound to the TCP connection; `Basic` only over HTTPS
//!   (AllowUnencrypted=false: Basic or unsealed SOAP over HTTP → 401); Kerberos; client
//!   certificates over HTTPS when the host has a certificate-mapping table ([`certmap`]). No
//!   CredSSP.
//! - **Sealing**: MS-WSMV `multipart/encrypted` bodies both ways over HTTP.
//! - **WinRS**: Create/Command/Send/Receive/Signal/Delete on cmd shells, config Get. The command
//!   runs ([`SimHost::run`]) at the first Receive with all stdin sent so far; a Receive that waits
//!   longer than OperationTimeout gets `w:TimedOut` (2150858793); output is sliced to the client's
//!   MaxEnvelopeSize; exit codes are DWORDs. MaxShellsPerUser (30) → 2150859173 (in the CIM
//!   `MSFT_WmiError` form current Windows uses for quota faults), unknown
//!   shell/command → 2150858843, bad OperationTimeout → 2150858767, envelope over
//!   MaxEnvelopeSizekb (500) → HTTP 413, non-cmd resource (PowerShell remoting) → 2150858752.
//! - **Faults** from [`SimHost::wire_fault`] per request: reset (a Receive starts its command
//!   first), SOAP 500, 401 (drops the NTLM context), 413, delay. While [`SimHost::accepting`] is
//!   false, new connections are closed at once and open ones (also a client blocked in a
//!   Receive) are reset; the host's shells die with it.
//!
//! ```no_run
//! # async fn demo(hosts: Vec<std::sync::Arc<dyn winsim::host::SimHost>>) -> Result<(), winsim::server::ServerError> {
//! use winsim::server::{FleetOptions, WinrmFleet};
//! let fleet = WinrmFleet::start(hosts, FleetOptions::default()).await?;
//! for e in fleet.endpoints() {
//!     println!("{} listens on {}", e.name, e.http_url);
//! }
//! fleet.shutdown().await;
//! # Ok(()) }
//! ```

pub mod certmap;
pub mod client_ca;
pub mod framing;
pub mod kerberos;
mod http;
pub mod identify;
pub mod ntlm;
pub mod request;
pub mod response;
pub mod sealing;
pub mod shells;
pub mod spnego;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub use shells::{HostShells, ServiceLimits};
pub use tls::TlsIdentity;

use crate::host::SimHost;

/// How to run the fleet's WinRM service.
#[derive(Debug, Clone, Default)]
pub struct FleetOptions {
    pub limits: ServiceLimits,
    /// The HTTPS certificate; generated (self-signed, for every HTTPS address) when absent and a
    /// host has an HTTPS listener.
    pub tls: Option<TlsIdentity>,
}

/// Where one host's WinRM service listens.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub http_url: String,
    pub https_url: Option<String>,
}

impl Endpoint {
    /// The HTTP listener's port (every host of a fleet listens on the same one, each on its own
    /// address), which is what an inventory needs.
    pub fn http_port(&self) -> Option<u16> {
        url_port(&self.http_url)
    }
}

/// The port of an endpoint URL such as `http://127.0.1.7:5985/wsman`.
pub fn url_port(url: &str) -> Option<u16> {
    url.rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("host {host}: cannot listen on {addr}: {source}")]
    Bind {
        host: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    CertMap(#[from] certmap::CertMapError),
}

/// An HTTPS listener's TLS side: the acceptor, the certificate's NTLM channel binding, and the
/// certificate-mapping table when certificate logons are on.
#[derive(Clone)]
struct TlsListener {
    acceptor: TlsAcceptor,
    cbt: [u8; 16],
    /// The certificate's `tls-server-end-point` binding, for Kerberos.
    end_point: Arc<Vec<u8>>,
    certmap: Option<Arc<certmap::CertMap>>,
}

/// A running fleet of WinRM listeners. Dropping it without [`WinrmFleet::shutdown`] also stops
/// the listeners (their tasks are aborted with the JoinSet).
pub struct WinrmFleet {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    endpoints: Vec<Endpoint>,
    hosts: Vec<Arc<HostShells>>,
    tls: Option<TlsIdentity>,
}

impl WinrmFleet {
    /// Bind every host's listeners and start serving. Fails (naming the host and address) if any
    /// address cannot be bound; nothing keeps listening then.
    pub async fn start(
        hosts: Vec<Arc<dyn SimHost>>,
        options: FleetOptions,
    ) -> Result<WinrmFleet, ServerError> {
        // Each host holds one or two listening sockets plus its clients' connections.
        let _ = raise_fd_limit();
        let tls = match (
            &options.tls,
            hosts.iter().any(|h| h.winrm_https_addr().is_some()),
        ) {
            (Some(t), _) => Some(t.clone()),
            (None, true) => {
                let mut names = vec!["localhost".to_string()];
                for h in &hosts {
                    names.push(h.name().to_string());
                    if let Some(a) = h.winrm_https_addr() {
                        names.push(a.ip().to_string());
                    }
                }
                names.sort();
                names.dedup();
                Some(TlsIdentity::self_signed(&names)?)
            }
            (None, false) => None,
        };
        let acceptor = match &tls {
            Some(t) => Some(TlsListener {
                acceptor: TlsAcceptor::from(t.server_config(None)?),
                cbt: t.channel_bindings(),
                end_point: Arc::new(t.tls_server_end_point()),
                certmap: None,
            }),
            None => None,
        };
        let (stop, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut endpoints = Vec::with_capacity(hosts.len());
        let mut states = Vec::with_capacity(hosts.len());
        for host in hosts {
            let shells = Arc::new(HostShells::new(Arc::clone(&host), options.limits.clone()));
            let http_addr = host.winrm_http_addr();
            let http = bind(&host, http_addr)?;
            let http_url = format!("http://{}/wsman", http.local_addr().unwrap_or(http_addr));
            tasks.spawn(accept_loop(
                http,
                Arc::clone(&shells),
                None,
                stop.subscribe(),
            ));
            let mut https_url = None;
            if let (Some(addr), Some(acceptor), Some(identity)) =
                (host.winrm_https_addr(), &acceptor, &tls)
            {
                let certmap = certmap::CertMap::load(
                    host.name(),
                    host.account().0,
                    host.client_certificates(),
                )?;
                let acceptor = match certmap {
                    None => acceptor.clone(),
                    Some(map) => TlsListener {
                        acceptor: TlsAcceptor::from(identity.server_config(Some(&map))?),
                        cbt: acceptor.cbt,
                        end_point: Arc::clone(&acceptor.end_point),
                        certmap: Some(Arc::new(map)),
                    },
                };
                let https = bind(&host, addr)?;
                https_url = Some(format!(
                    "https://{}/wsman",
                    https.local_addr().unwrap_or(addr)
                ));
                tasks.spawn(accept_loop(
                    https,
                    Arc::clone(&shells),
                    Some(acceptor),
                    stop.subscribe(),
                ));
            }
            endpoints.push(Endpoint {
                name: host.name().to_string(),
                http_url,
                https_url,
            });
            states.push(shells);
        }
        Ok(WinrmFleet {
            tasks,
            stop,
            endpoints,
            hosts: states,
            tls,
        })
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The WinRS state of each host, in the order the hosts were given.
    /// HTTP requests received by all hosts so far (see [`HostShells::http_requests`]).
    pub fn http_requests(&self) -> u64 {
        self.hosts.iter().map(|h| h.http_requests()).sum()
    }

    pub fn hosts(&self) -> &[Arc<HostShells>] {
        &self.hosts
    }

    /// The HTTPS certificate in use, if any listener speaks HTTPS.
    pub fn tls(&self) -> Option<&TlsIdentity> {
        self.tls.as_ref()
    }

    /// Stop accepting, close every connection, and wait for the listeners to be gone.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

fn bind(host: &Arc<dyn SimHost>, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let err = |source| ServerError::Bind {
        host: host.name().to_string(),
        addr,
        source,
    };
    let socket = std::net::TcpListener::bind(addr).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    TcpListener::from_std(socket).map_err(err)
}

async fn accept_loop(
    listener: TcpListener,
    shells: Arc<HostShells>,
    tls: Option<TlsListener>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            a = listener.accept() => a,
            // Reap finished connection tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((stream, peer)) = accepted else {
            // EMFILE and friends: back off a little instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        if !shells.host().accepting() {
            // A host that is down: the connection dies at once (its shells died with the host).
            shells.clear();
            drop(stream);
            continue;
        }
        let shells = Arc::clone(&shells);
        let tls = tls.clone();
        connections.spawn(serve(stream, peer, shells, tls));
    }
    connections.shutdown().await;
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shells: Arc<HostShells>,
    tls: Option<TlsListener>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let connection = async {
        match tls {
            None => {
                let conn = http::Connection::new(Arc::clone(&shells), None, false, peer, local);
                serve_http(stream, conn).await;
            }
            Some(listener) => {
                // A client certificate no mapped issuer signed fails here, in the handshake.
                let Ok(stream) = listener.acceptor.accept(stream).await else {
                    return;
                };
                let client_cert = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.to_vec());
                let conn = http::Connection::new(
                    Arc::clone(&shells),
                    Some(listener.cbt),
                    true,
                    peer,
                    local,
                )
                .with_client_certificate(listener.certmap, client_cert)
                .with_kerberos_binding(listener.end_point.to_vec());
                serve_http(stream, conn).await;
            }
        }
    };
    // A host that goes down (reboot, power off) takes its connections with it, also one whose
    // client is blocked in a Receive: that is the "reboot killed my WinRM call" every patcher meets.
    tokio::select! {
        _ = connection => {}
        _ = host_goes_down(&shells) => {
            tracing::debug!(host = shells.host().name(), peer = %peer, "host went down: connection reset");
        }
    }
}

async fn serve_http<S>(stream: S, conn: http::Connection)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(conn);
    let service = hyper::service::service_fn(move |req| {
        let conn = Arc::clone(&conn);
        async move { conn.handle(req).await }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Resolves when the host stops accepting (checked every 200 ms); its shells die with it.
async fn host_goes_down(shells: &HostShells) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if !shells.host().accepting() {
            shells.clear();
            return;
        }
    }
}

/// Raise the soft RLIMIT_NOFILE to the hard limit: 1,000 hosts need 1,000+ listening sockets and
/// the default soft limit is often 1,024. Returns the new soft limit.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass, which lives on our stack.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}
