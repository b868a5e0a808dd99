//! The IO layer: one pinned HTTP/1.1 connection per host, authenticated, sealed or over TLS.
//!
//! NTLM authenticates a TCP connection, not a request, and the sealing keystreams run across every
//! message on it. So we own the connection (hyper's low-level HTTP/1 client, no pool): when it
//! breaks or the server answers 401, we reconnect, authenticate again and start fresh sealing
//! state. The handshake mirrors pywinrm/pypsrp (empty-bodied legs, then sealed messages), which is
//! what Windows' http.sys expects.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tracing::debug;

use crate::envelope::{self, Headers, Request};
use crate::error::{Error, Result};
use crate::framing::{self, Sealing};
use crate::kerberos::{self, KerberosCredentials};
use crate::ns;
use crate::ntlm::{self, NtlmCredentials};
use crate::response::{self, ResponseError, ServiceConfig};
use crate::tls::{self, ClientCertificate, ServerTrust};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";
const CERT_AUTH: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual";

/// Where the WinRM listener is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// HTTPS (5986) rather than HTTP (5985).
    pub tls: bool,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// URL path, `/wsman` on Windows.
    pub path: String,
}

impl Endpoint {
    /// `http://host:5985/wsman`.
    pub fn http(host: &str) -> Self {
        Endpoint {
            tls: false,
            host: host.into(),
            port: 5985,
            path: "/wsman".into(),
        }
    }

    /// `https://host:5986/wsman`.
    pub fn https(host: &str) -> Self {
        Endpoint {
            tls: true,
            host: host.into(),
            port: 5986,
            path: "/wsman".into(),
        }
    }

    /// Parse `http(s)://host[:port][/path]`.
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "{url}: WinRM URL must start with http:// or https://"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/wsman"),
        };
        let default_port = if tls { 5986 } else { 5985 };
        let parse_port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("{url}: port {p:?} is not a number"))
        };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            // IPv6 literal: [::1] or [::1]:5986
            let (h, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("{url}: unclosed [ in the host"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, parse_port(p)?),
                None if after.is_empty() => (h, default_port),
                None => return Err(format!("{url}: unexpected {after:?} after the host")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, parse_port(p)?),
                None => (authority, default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        Ok(Endpoint {
            tls,
            host: host.into(),
            port,
            path: path.into(),
        })
    }

    /// `host:port` as written in a URL or Host header (IPv6 literals in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL, as sent in `wsa:To`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            if self.tls { "https" } else { "http" },
            self.authority(),
            self.path
        )
    }

    /// `host:port`, the label in every error.
    pub fn label(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// How to log on.
#[derive(Clone)]
pub enum Credentials {
    /// Negotiate with NTLMv2: sealed messages over HTTP (Windows' default), plain over HTTPS.
    Ntlm(NtlmCredentials),
    /// Basic over HTTPS only (Windows refuses Basic over HTTP unless AllowUnencrypted is set, and
    /// we refuse to send a password in clear anyway).
    Basic {
        /// User name (`DOMAIN\user` or a local user).
        user: String,
        /// Password.
        password: String,
    },
    /// A client certificate mapped to a local user on the server (HTTPS only).
    Certificate(ClientCertificate),
    /// Kerberos through the system's GSSAPI: sealed messages over HTTP, plain over HTTPS.
    Kerberos(KerberosCredentials),
}

impl Credentials {
    /// NTLM credentials from `DOMAIN\user` (or `user`) and a password.
    pub fn ntlm(user: &str, password: &str) -> Self {
        Credentials::Ntlm(NtlmCredentials::new(user, password))
    }

    fn user(&self) -> String {
        match self {
            Credentials::Ntlm(c) => c.display_user(),
            Credentials::Basic { user, .. } => user.clone(),
            Credentials::Certificate(c) => c.subject(),
            Credentials::Kerberos(c) => c.display_user(),
        }
    }

    /// Negotiate logons: they authenticate the connection and seal messages over HTTP.
    fn seals(&self) -> bool {
        matches!(self, Credentials::Ntlm(_) | Credentials::Kerberos(_))
    }

    fn method(&self) -> &'static str {
        match self {
            Credentials::Ntlm(_) => "Negotiate/NTLM",
            Credentials::Basic { .. } => "Basic",
            Credentials::Certificate(_) => "certificate",
            Credentials::Kerberos(_) => "Negotiate/Kerberos",
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Ntlm(c) => f.debug_tuple("Ntlm").field(c).finish(),
            Credentials::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Certificate(c) => f.debug_tuple("Certificate").field(c).finish(),
            Credentials::Kerberos(c) => f.debug_tuple("Kerberos").field(c).finish(),
        }
    }
}

/// Everything needed to talk to one host.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The listener.
    pub endpoint: Endpoint,
    /// The logon.
    pub credentials: Credentials,
    /// How to check an HTTPS listener's certificate.
    pub trust: ServerTrust,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// WS-Man OperationTimeout: how long one Receive may wait for output.
    pub operation_timeout: Duration,
    /// MaxEnvelopeSize we announce (bytes).
    pub max_envelope_size: u32,
}

impl ClientConfig {
    /// Defaults: 10 s connect, 20 s operation timeout, 150 KiB envelopes, WebPKI trust.
    pub fn new(endpoint: Endpoint, credentials: Credentials) -> Self {
        ClientConfig {
            endpoint,
            credentials,
            trust: ServerTrust::default(),
            connect_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(20),
            max_envelope_size: 153_600,
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// Message sealing state (NTLM or Kerberos) once authenticated over HTTP.
    sealer: Option<Box<dyn Sealing + Send + Sync>>,
    /// The connection has completed its authentication handshake (NTLM) or needs none.
    authenticated: bool,
    /// NTLM channel binding hash (zeros over HTTP).
    cbt: [u8; 16],
    /// Over HTTPS: the `tls-server-end-point` binding Kerberos carries in its authenticator.
    end_point: Option<Vec<u8>>,
    /// Drives the connection; ends with the TLS alert the host closed it with, if any.
    task: tokio::task::JoinHandle<Option<rustls::AlertDescription>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct HttpReply {
    status: u16,
    content_type: String,
    www_authenticate: Vec<String>,
    /// The host's clock, from its `Date` header (to explain a Kerberos clock-skew refusal).
    date: Option<std::time::SystemTime>,
    body: Bytes,
}

/// Why one HTTP exchange failed.
enum Failure {
    /// The connection was unusable before our request went out: safe to retry on a new one.
    Stale(String),
    /// The connection closed after the request went out and before a reply: the host may have
    /// acted on it. Only requests that are safe to repeat are sent again.
    Lost(String),
    /// Anything else.
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

/// A WinRM client for one host: sends requests, returns reply text, turns faults into errors.
pub struct WinrmClient {
    cfg: ClientConfig,
    headers: Headers,
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: Option<Conn>,
    label: String,
    /// Number of TCP connections opened (each with its own authentication).
    pub connections_opened: u32,
}

impl fmt::Debug for WinrmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WinrmClient")
            .field("endpoint", &self.cfg.endpoint)
            .field("credentials", &self.cfg.credentials)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl WinrmClient {
    /// Check the configuration and prepare TLS; connects lazily on the first request.
    pub fn new(cfg: ClientConfig) -> Result<Self> {
        let label = cfg.endpoint.label();
        let config_err = |detail: String| Error::Config {
            host: label.clone(),
            detail,
        };
        if !cfg.endpoint.tls && !cfg.credentials.seals() {
            return Err(config_err(format!(
                "{} authentication needs HTTPS; over HTTP only Negotiate (NTLM or Kerberos) with message encryption is used",
                cfg.credentials.method()
            )));
        }
        let tls = if cfg.endpoint.tls {
            let cert = match &cfg.credentials {
                Credentials::Certificate(c) => Some(c),
                _ => None,
            };
            Some(Arc::new(
                tls::client_config(&cfg.trust, cert).map_err(config_err)?,
            ))
        } else {
            None
        };
        let mut headers = Headers::new(cfg.endpoint.url());
        headers.operation_timeout = cfg.operation_timeout;
        headers.max_envelope_size = cfg.max_envelope_size;
        headers.session_id = Some(format!(
            "uuid:{}",
            uuid::Uuid::new_v4().to_string().to_uppercase()
        ));
        Ok(WinrmClient {
            cfg,
            headers,
            tls,
            conn: None,
            label,
            connections_opened: 0,
        })
    }

    /// The headers every request of this client carries.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// `host:port`.
    pub fn host(&self) -> &str {
        &self.label
    }

    /// Move the connection (and its authentication) into a new client, leaving this one
    /// disconnected: lets a dropped session finish its clean-up in a background task.
    pub fn detach(&mut self) -> WinrmClient {
        WinrmClient {
            cfg: self.cfg.clone(),
            headers: self.headers.clone(),
            tls: self.tls.clone(),
            conn: self.conn.take(),
            label: self.label.clone(),
            connections_opened: self.connections_opened,
        }
    }

    /// Drop the connection (the next request reconnects and re-authenticates).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Send a request and return the reply text. A SOAP fault becomes [`Error::Fault`].
    pub async fn send(&mut self, req: &Request) -> Result<String> {
        let limit = self.headers.operation_timeout + Duration::from_secs(30);
        match tokio::time::timeout(limit, self.send_inner(req)).await {
            Ok(r) => r,
            Err(_) => {
                // The connection may still deliver the late reply: never reuse it.
                self.conn = None;
                Err(Error::Timeout {
                    host: self.label.clone(),
                    action: short_action(req.action),
                    secs: limit.as_secs(),
                })
            }
        }
    }

    /// Ask the service for its limits (MaxEnvelopeSizekb etc.).
    pub async fn get_config(&mut self) -> Result<ServiceConfig> {
        let req = envelope::get(&self.headers.with_resource(ns::RESOURCE_CONFIG), &[]);
        let text = self.send(&req).await?;
        response::parse_config(&text, &req.message_id).map_err(|e| self.reply_err(&req, e))
    }

    /// Map a parse error of the reply to `req` into an [`Error`] naming this host.
    pub fn reply_err(&self, req: &Request, e: ResponseError) -> Error {
        match e {
            ResponseError::Fault(fault) => Error::Fault {
                host: self.label.clone(),
                action: short_action(req.action),
                fault,
            },
            source => Error::Reply {
                host: self.label.clone(),
                action: short_action(req.action),
                source,
            },
        }
    }

    async fn send_inner(&mut self, req: &Request) -> Result<String> {
        let mut retried_stale = false;
        let mut reauthenticated = false;
        loop {
            let fresh = match &self.conn {
                Some(c) if !c.sender.is_closed() => false,
                _ => {
                    self.connect().await?;
                    true
                }
            };
            let reply = match self.exchange(req).await {
                Ok(r) => r,
                Err(Failure::Stale(why)) if !fresh && !retried_stale => {
                    debug!(host = %self.label, %why, "connection went stale; reconnecting");
                    self.conn = None;
                    retried_stale = true;
                    continue;
                }
                Err(Failure::Lost(why))
                    if !fresh && !retried_stale && safe_to_repeat(req.action) =>
                {
                    debug!(host = %self.label, %why, "connection lost before the reply; resending");
                    self.conn = None;
                    retried_stale = true;
                    continue;
                }
                Err(Failure::Stale(why)) => {
                    self.conn = None;
                    return Err(Error::Connection {
                        host: self.label.clone(),
                        detail: why,
                    });
                }
                Err(Failure::Lost(why)) => {
                    self.conn = None;
                    let detail = if safe_to_repeat(req.action) {
                        why
                    } else {
                        format!(
                            "{why}; the {} was sent and not repeated: the host may have started it",
                            short_action(req.action)
                        )
                    };
                    return Err(Error::Connection {
                        host: self.label.clone(),
                        detail,
                    });
                }
                Err(Failure::Fatal(e)) => {
                    self.conn = None;
                    return Err(e);
                }
            };
            if reply.status == 401 {
                self.conn = None;
                if !fresh && !reauthenticated {
                    // The server dropped our security context (service restart, idle timeout).
                    reauthenticated = true;
                    continue;
                }
                return Err(self.auth_error("the server answered 401 to an authenticated request"));
            }
            return self.finish(req, reply);
        }
    }

    fn finish(&mut self, req: &Request, reply: HttpReply) -> Result<String> {
        let action = short_action(req.action);
        let body = if reply.content_type.starts_with("multipart/encrypted") {
            let sealer = self
                .conn
                .as_mut()
                .and_then(|c| c.sealer.as_mut())
                .ok_or_else(|| Error::Connection {
                    host: self.label.clone(),
                    detail: "encrypted reply on a connection without a security context".into(),
                })?;
            match framing::decrypt_body(sealer.as_mut(), &reply.body) {
                Ok(b) => b,
                Err(source) => {
                    self.conn = None;
                    return Err(Error::Encryption {
                        host: self.label.clone(),
                        source,
                    });
                }
            }
        } else {
            reply.body.to_vec()
        };
        let text = String::from_utf8_lossy(&body).into_owned();
        match reply.status {
            200 => Ok(text),
            413 => Err(Error::EnvelopeTooBig {
                host: self.label.clone(),
                action,
                size: req.xml.len(),
            }),
            status => match response::parse_fault(&text) {
                Some(fault) => Err(Error::Fault {
                    host: self.label.clone(),
                    action,
                    fault: Box::new(fault),
                }),
                None => Err(Error::Http {
                    host: self.label.clone(),
                    action,
                    status,
                    detail: text.chars().take(300).collect(),
                }),
            },
        }
    }

    /// A host that does not trust our client certificate's issuer ends the TLS session with an
    /// alert (under TLS 1.3 only once the first request is out): say so instead of reporting a
    /// dropped connection, which would be retried and misread as a network fault. The alert is
    /// in the request's error, or, when the request only saw the connection close, in what the
    /// connection's task ended with.
    async fn refused_certificate(&mut self, e: &hyper::Error) -> Option<Failure> {
        if !matches!(self.cfg.credentials, Credentials::Certificate(_)) {
            return None;
        }
        let alert = match tls::alert_in(e) {
            Some(alert) => alert,
            None => {
                let mut conn = self.conn.take()?;
                let ended =
                    tokio::time::timeout(std::time::Duration::from_secs(2), &mut conn.task).await;
                match ended {
                    Ok(Ok(Some(alert))) => alert,
                    _ => return None,
                }
            }
        };
        Some(Failure::Fatal(self.auth_error(&format!(
            "the host refused the client certificate in the TLS handshake ({alert:?}): it does not \
             trust the certificate's issuer for client logons (import the issuing CA into the \
             host's trusted roots and map the certificate with winrm create \
             winrm/config/service/certmapping)"
        ))))
    }

    fn auth_error(&self, detail: &str) -> Error {
        Error::Auth {
            host: self.label.clone(),
            user: self.cfg.credentials.user(),
            method: self.cfg.credentials.method(),
            detail: detail.into(),
        }
    }

    async fn connect(&mut self) -> Result<()> {
        self.conn = None;
        let ep = &self.cfg.endpoint;
        let label = self.label.clone();
        let tcp = tokio::time::timeout(
            self.cfg.connect_timeout,
            TcpStream::connect((ep.host.as_str(), ep.port)),
        )
        .await
        .map_err(|_| Error::Connect {
            host: label.clone(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        })?
        .map_err(|source| Error::Connect {
            host: label.clone(),
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        let mut cbt = [0u8; 16];
        let mut end_point = None;
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(cfg) => {
                let name =
                    rustls::pki_types::ServerName::try_from(ep.host.clone()).map_err(|e| {
                        Error::Config {
                            host: label.clone(),
                            detail: format!("{} is not a valid TLS server name: {e}", ep.host),
                        }
                    })?;
                let connector = tokio_rustls::TlsConnector::from(cfg.clone());
                let stream =
                    tokio::time::timeout(self.cfg.connect_timeout, connector.connect(name, tcp))
                        .await
                        .map_err(|_| Error::Tls {
                            host: label.clone(),
                            detail: "handshake timed out".into(),
                        })?
                        .map_err(|e| Error::Tls {
                            host: label.clone(),
                            detail: e.to_string(),
                        })?;
                if let Some(cert) = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                {
                    cbt = tls::channel_bindings(cert);
                    end_point = Some(tls::tls_server_end_point(cert));
                }
                Box::new(stream)
            }
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| Error::Connection {
                host: label.clone(),
                detail: e.to_string(),
            })?;
        let task = tokio::spawn(async move { conn.await.err().and_then(|e| tls::alert_in(&e)) });
        self.connections_opened += 1;
        self.conn = Some(Conn {
            sender,
            sealer: None,
            authenticated: !self.cfg.credentials.seals(),
            cbt,
            end_point,
            task,
        });
        Ok(())
    }

    async fn post(
        &mut self,
        auth: Option<String>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> std::result::Result<HttpReply, Failure> {
        let ep = &self.cfg.endpoint;
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| Failure::Stale("not connected".into()))?;
        if let Err(e) = conn.sender.ready().await {
            return Err(match self.refused_certificate(&e).await {
                Some(refused) => refused,
                None => Failure::Stale(e.to_string()),
            });
        }
        let mut b = hyper::Request::builder()
            .method("POST")
            .uri(ep.path.as_str())
            .header(HOST, ep.authority())
            .header(CONTENT_LENGTH, body.len())
            .header("User-Agent", "hive-winrm");
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        if let Some(ct) = content_type {
            b = b.header(CONTENT_TYPE, ct);
        }
        let request = b.body(Full::new(Bytes::from(body))).map_err(|e| {
            Failure::Fatal(Error::Config {
                host: self.label.clone(),
                detail: format!("cannot build the HTTP request: {e}"),
            })
        })?;
        let resp = match conn.sender.send_request(request).await {
            Ok(resp) => resp,
            Err(e) => {
                return Err(if let Some(refused) = self.refused_certificate(&e).await {
                    refused
                } else if e.is_canceled() {
                    Failure::Stale(e.to_string())
                } else if e.is_incomplete_message() {
                    Failure::Lost(e.to_string())
                } else {
                    Failure::Fatal(Error::Connection {
                        host: self.label.clone(),
                        detail: e.to_string(),
                    })
                });
            }
        };
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let www_authenticate = resp
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let date = resp
            .headers()
            .get(hyper::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        // The server must keep replies under the MaxEnvelopeSize we announce; allow generous
        // slack for framing, but never buffer an unbounded body from the network.
        let limit = self.headers.max_envelope_size as usize * 4 + 65_536;
        let body = http_body_util::Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                Failure::Fatal(Error::Connection {
                    host: self.label.clone(),
                    detail: format!("reading the reply (limit {limit} bytes): {e}"),
                })
            })?
            .to_bytes();
        Ok(HttpReply {
            status,
            content_type,
            www_authenticate,
            date,
            body,
        })
    }

    /// NTLM over the current connection: NEGOTIATE → CHALLENGE, then AUTHENTICATE carrying the
    /// first request itself, sealed with the new session key (as Windows' own WinRM client does).
    /// Sending AUTHENTICATE with an empty body first, as pywinrm and pypsrp do, costs every
    /// host one more round trip; the reply returned here is the first request's reply.
    async fn ntlm_handshake(&mut self, first: &Request) -> std::result::Result<HttpReply, Failure> {
        let Credentials::Ntlm(creds) = &self.cfg.credentials else {
            return Err(Failure::Fatal(
                self.auth_error("NTLM handshake without NTLM credentials"),
            ));
        };
        let creds = creds.clone();
        let negotiate = ntlm::negotiate_message();
        let r1 = self
            .post(
                Some(format!("Negotiate {}", B64.encode(&negotiate))),
                None,
                Vec::new(),
            )
            .await?;
        let token = r1
            .www_authenticate
            .iter()
            .find_map(|h| {
                h.strip_prefix("Negotiate ")
                    .or_else(|| h.strip_prefix("NTLM "))
            })
            .map(str::trim);
        let Some(token) = (r1.status == 401).then_some(token).flatten() else {
            return Err(Failure::Fatal(self.auth_error(&format!(
                "expected an NTLM challenge, got HTTP {} offering {:?}",
                r1.status, r1.www_authenticate
            ))));
        };
        let challenge = B64
            .decode(token)
            .map_err(|e| e.to_string())
            .and_then(|raw| ntlm::parse_challenge(&raw).map_err(|e| e.to_string()))
            .map_err(|e| Failure::Fatal(self.auth_error(&e)))?;
        let nonces = ntlm::AuthenticateNonces::fresh()
            .map_err(|e| Failure::Fatal(self.auth_error(&e.to_string())))?;
        let cbt = self.conn.as_ref().map(|c| c.cbt).unwrap_or_default();
        let mut auth = ntlm::authenticate(&creds, &negotiate, &challenge, cbt, &nonces)
            .map_err(|e| Failure::Fatal(self.auth_error(&e.to_string())))?;
        // Over HTTPS, TLS protects the body; over HTTP it is sealed with the new context.
        let (ctype, body) = if self.cfg.endpoint.tls {
            (SOAP_CONTENT_TYPE, first.xml.as_bytes().to_vec())
        } else {
            let body = framing::encrypt_body(&mut auth.sealer, first.xml.as_bytes()).map_err(
                |source| {
                    Failure::Fatal(Error::Encryption {
                        host: self.label.clone(),
                        source,
                    })
                },
            )?;
            (framing::CONTENT_TYPE, body)
        };
        let r3 = self
            .post(
                Some(format!("Negotiate {}", B64.encode(&auth.message))),
                Some(ctype),
                body,
            )
            .await?;
        if r3.status == 401 {
            let why = if self.cfg.endpoint.tls {
                "the server rejected the NTLM response: wrong user name or password, the account \
                 may not log on remotely, or the channel binding was refused (a host with \
                 Extended Protection, CbtHardeningLevel=Strict, refuses a logon bound to another \
                 certificate: connect directly, not through a TLS-intercepting proxy)"
            } else {
                "the server rejected the NTLM response: wrong user name or password, or the account may not log on remotely"
            };
            return Err(Failure::Fatal(self.auth_error(why)));
        }
        if let Some(c) = self.conn.as_mut() {
            c.authenticated = true;
            if !self.cfg.endpoint.tls {
                c.sealer = Some(Box::new(auth.sealer));
            }
        }
        debug!(host = %self.label, "NTLM authenticated");
        Ok(r3)
    }

    /// Kerberos over the current connection: the AP-REQ goes in the `Authorization` header of the
    /// first request itself (sealed under the new context over HTTP), so authenticating costs no
    /// extra round trip. GSSAPI may talk to the KDC, so it runs off the async workers.
    async fn kerberos_handshake(
        &mut self,
        creds: KerberosCredentials,
        first: &Request,
    ) -> std::result::Result<HttpReply, Failure> {
        let spn = creds.spn_for(&self.cfg.endpoint.host);
        let target = spn.clone();
        // Over HTTPS the AP-REQ is bound to this TLS channel (Extended Protection).
        let binding = self.conn.as_ref().and_then(|c| c.end_point.clone());
        let started = tokio::task::spawn_blocking(move || {
            kerberos::initiate(&creds, &target, binding.as_deref())
        })
        .await
        .map_err(|e| Failure::Fatal(self.auth_error(&format!("Kerberos worker failed: {e}"))))?;
        let (mut sealer, token) =
            started.map_err(|e| Failure::Fatal(self.auth_error(&format!("SPN {spn}: {e}"))))?;
        let (ctype, body) = if self.cfg.endpoint.tls {
            (SOAP_CONTENT_TYPE, first.xml.as_bytes().to_vec())
        } else {
            let body = framing::encrypt_body_as(
                &mut sealer,
                first.xml.as_bytes(),
                framing::KERBEROS_PROTOCOL,
            )
            .map_err(|source| {
                Failure::Fatal(Error::Encryption {
                    host: self.label.clone(),
                    source,
                })
            })?;
            (framing::KERBEROS_CONTENT_TYPE, body)
        };
        let reply = self
            .post(
                Some(format!("Negotiate {}", B64.encode(&token))),
                Some(ctype),
                body,
            )
            .await?;
        if reply.status == 401 {
            // A clock out of step is the one refusal the reply itself can explain.
            if let Some(skew) = reply.date.and_then(kerberos::clock_skew) {
                return Err(Failure::Fatal(self.auth_error(&format!(
                    "the host refused the Kerberos ticket for SPN {spn}: {skew}"
                ))));
            }
            return Err(Failure::Fatal(self.auth_error(&format!(
                "the host refused the Kerberos ticket for SPN {spn}: check that the host's keytab holds {spn} (or set `spn` for this host), and that the account may log on remotely"
            ))));
        }
        if let Some(c) = self.conn.as_mut() {
            c.authenticated = true;
            if !self.cfg.endpoint.tls {
                c.sealer = Some(Box::new(sealer));
            }
        }
        debug!(host = %self.label, %spn, "Kerberos authenticated");
        Ok(reply)
    }

    async fn exchange(&mut self, req: &Request) -> std::result::Result<HttpReply, Failure> {
        if !self.conn.as_ref().is_some_and(|c| c.authenticated) {
            if let Credentials::Kerberos(creds) = &self.cfg.credentials {
                let creds = creds.clone();
                return self.kerberos_handshake(creds, req).await;
            }
            return self.ntlm_handshake(req).await;
        }
        let auth = match &self.cfg.credentials {
            Credentials::Basic { user, password } => Some(format!(
                "Basic {}",
                B64.encode(format!("{user}:{password}"))
            )),
            Credentials::Certificate(_) => Some(CERT_AUTH.to_string()),
            Credentials::Ntlm(_) | Credentials::Kerberos(_) => None,
        };
        let sealer = self.conn.as_mut().and_then(|c| c.sealer.as_mut());
        let (protocol, content_type) = match self.cfg.credentials {
            Credentials::Kerberos(_) => {
                (framing::KERBEROS_PROTOCOL, framing::KERBEROS_CONTENT_TYPE)
            }
            _ => (framing::SPNEGO_PROTOCOL, framing::CONTENT_TYPE),
        };
        let (ctype, body) = match sealer {
            Some(s) => {
                let body = framing::encrypt_body_as(s.as_mut(), req.xml.as_bytes(), protocol)
                    .map_err(|source| {
                        Failure::Fatal(Error::Encryption {
                            host: self.label.clone(),
                            source,
                        })
                    })?;
                (content_type, body)
            }
            None => (SOAP_CONTENT_TYPE, req.xml.as_bytes().to_vec()),
        };
        let reply = self.post(auth, Some(ctype), body).await?;
        if reply.status == 401 && matches!(self.cfg.credentials, Credentials::Certificate(_)) {
            return Err(Failure::Fatal(self.auth_error(
                "the server answered 401: no certificate mapping on this host maps this client \
                 certificate to an account (winrm create winrm/config/service/certmapping with \
                 the issuer's thumbprint and this subject), or certificate authentication is off \
                 (Service/Auth/Certificate)",
            )));
        }
        if reply.status == 401 && !self.cfg.credentials.seals() {
            return Err(Failure::Fatal(self.auth_error(
                "the server answered 401: wrong user name or password, or the method is disabled",
            )));
        }
        Ok(reply)
    }
}

/// Whether a request may be sent again when its connection died before the reply. A Command
/// may already have started a process (an installer run twice is the one thing a patching tool
/// must not do) and a Send may already have delivered its input; reading output, creating or
/// deleting a shell, signalling and reading the configuration are harmless to repeat.
fn safe_to_repeat(action: &str) -> bool {
    action != ns::ACTION_COMMAND && action != ns::ACTION_SEND
}

/// The last path segment of an action URI (`Receive`), for messages.
pub fn short_action(action: &'static str) -> &'static str {
    action.rsplit('/').next().unwrap_or(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("https://srv01.corp:5986/wsman").unwrap();
        assert_eq!(e, Endpoint::https("srv01.corp"));
        assert_eq!(Endpoint::parse("http://10.0.0.5").unwrap().port, 5985);
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:40000/wsman")
                .unwrap()
                .url(),
            "http://127.0.0.1:40000/wsman"
        );
        let v6 = Endpoint::parse("https://[::1]:5986/wsman").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 5986));
        assert_eq!(v6.url(), "https://[::1]:5986/wsman");
        assert_eq!(Endpoint::parse("http://[fe80::1]").unwrap().port, 5985);
        assert!(Endpoint::parse("http://[::1/wsman").is_err());
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://h:abc/").is_err());
    }

    #[test]
    fn secrets_are_not_in_debug() {
        let c = Credentials::Basic {
            user: "admin".into(),
            password: "hunter2-secret".into(),
        };
        let cfg = ClientConfig::new(Endpoint::https("h"), c);
        let d = format!("{cfg:?}");
        assert!(!d.contains("hunter2"), "{d}");
        let n = ClientConfig::new(
            Endpoint::http("h"),
            Credentials::ntlm("D\\u", "pa55-secret"),
        );
        let d = format!("{:?}", WinrmClient::new(n).unwrap());
        assert!(!d.contains("pa55"), "{d}");
    }

    #[test]
    fn basic_over_http_is_refused() {
        let c = Credentials::Basic {
            user: "admin".into(),
            password: "x".into(),
        };
        let e = WinrmClient::new(ClientConfig::new(Endpoint::http("h"), c)).unwrap_err();
        assert!(e.to_string().contains("needs HTTPS"), "{e}");
    }
}
