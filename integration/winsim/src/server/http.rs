//! One HTTP/1.1 connection to a simulated host's WinRM listener: authentication bound to the
//! connection (NTLM over HTTP with sealing, Basic over HTTPS), decryption, fault injection from the
//! host's plan, dispatch, encryption of the answer.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request as HttpRequest, Response, StatusCode};
use tokio::sync::Mutex;

use super::certmap::{self, CertMap};
use super::framing;
use super::identify;
use super::kerberos::{self, KerberosAcceptor};
use super::ntlm::{NtlmAcceptor, ServerIdentity, Step};
use super::request::{Action, Request, RequestError};
use super::response::Fault;
use super::shells::{Caller, HostShells};
use super::spnego;
use crate::host::{WireFault, WsmanOp};

/// The service asks hyper to drop the connection without an answer (host down, injected reset).
#[derive(Debug, thiserror::Error)]
#[error("connection to {host} dropped: {why}")]
pub struct Dropped {
    host: String,
    why: &'static str,
}

type HttpResponse = Response<Full<Bytes>>;

const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";

/// How the current request proved who it is.
enum Authenticated {
    /// NTLM on this connection; the body must be sealed over HTTP. Under SPNEGO the last leg
    /// carries the acceptor's final token (with its mechListMIC) back in WWW-Authenticate.
    Ntlm(Option<Vec<u8>>),
    /// Basic over TLS; the body is plain SOAP.
    Basic,
    /// A mapped client certificate over TLS; the body is plain SOAP.
    Certificate,
    /// Kerberos on this connection; sealed over HTTP. Carries the AP-REP (or SPNEGO reply) when
    /// the client asked for mutual authentication.
    Kerberos(Option<Vec<u8>>),
}

/// The state of one TCP connection.
pub struct Connection {
    shells: Arc<HostShells>,
    https: bool,
    /// Over HTTPS: the listener certificate's channel binding, which NTLM logons are checked
    /// against.
    channel_binding: Option<[u8; 16]>,
    peer: SocketAddr,
    local: SocketAddr,
    ntlm: Mutex<Option<NtlmAcceptor>>,
    krb: Mutex<Option<KerberosAcceptor>>,
    /// The listener's certificate-mapping table (certificate logons on).
    certmap: Option<Arc<CertMap>>,
    /// The client certificate the TLS handshake delivered (DER), already verified against the
    /// table's issuers.
    client_cert: Option<Vec<u8>>,
    /// Over HTTPS: the `tls-server-end-point` application data Kerberos logons are checked
    /// against.
    kerberos_binding: Option<Vec<u8>>,
}

impl Connection {
    pub fn new(
        shells: Arc<HostShells>,
        channel_binding: Option<[u8; 16]>,
        https: bool,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Connection {
        Connection {
            shells,
            https,
            channel_binding,
            peer,
            local,
            ntlm: Mutex::new(None),
            krb: Mutex::new(None),
            certmap: None,
            client_cert: None,
            kerberos_binding: None,
        }
    }

    /// Check Kerberos logons against this TLS channel's `tls-server-end-point` binding.
    pub fn with_kerberos_binding(mut self, application_data: Vec<u8>) -> Connection {
        self.kerberos_binding = Some(application_data);
        self
    }

    /// Certificate logons on this connection: the host's mapping table and the certificate the
    /// client presented, if any.
    pub fn with_client_certificate(
        mut self,
        certmap: Option<Arc<CertMap>>,
        client_cert: Option<Vec<u8>>,
    ) -> Connection {
        self.certmap = certmap;
        self.client_cert = client_cert;
        self
    }

    fn dropped(&self, why: &'static str) -> Dropped {
        tracing::debug!(host = self.shells.host().name(), peer = %self.peer, why, "dropping the connection");
        Dropped {
            host: self.shells.host().name().to_string(),
            why,
        }
    }

    /// Serve one HTTP request.
    pub async fn handle(&self, req: HttpRequest<Incoming>) -> Result<HttpResponse, Dropped> {
        let host = Arc::clone(self.shells.host());
        self.shells.count_request();
        if !host.accepting() {
            self.shells.clear();
            return Err(self.dropped("the host is down"));
        }
        if req.uri().path() != "/wsman" {
            return Ok(plain(StatusCode::NOT_FOUND));
        }
        if req.method() != Method::POST {
            return Ok(plain(StatusCode::METHOD_NOT_ALLOWED));
        }
        let authorization = header(&req, AUTHORIZATION.as_str());
        let content_type = header(&req, CONTENT_TYPE.as_str());
        let host_header = header(&req, HOST.as_str()).unwrap_or_else(|| self.local.to_string());
        // Twice the envelope limit leaves room for the MIME framing around a sealed envelope.
        let limit = self.shells.limits().max_envelope_size_kb as usize * 2048 + 65_536;
        let body = match Limited::new(req.into_body(), limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE)),
        };

        if authorization.is_none() && identify::is_identify(&body) {
            // The one request WinRM answers without a logon (`winrm id -auth:none`).
            let xml = identify::response(&host.wsman_identity(), false);
            return Ok(with_type(
                StatusCode::OK,
                SOAP_CONTENT_TYPE,
                xml.into_bytes(),
            ));
        }
        let mut ntlm = self.ntlm.lock().await;
        let mut krb = self.krb.lock().await;
        let auth = match self.authenticate_kerberos(&mut krb, authorization.as_deref()) {
            Some(Ok(auth)) => auth,
            Some(Err(response)) => return Ok(*response),
            None => match self.authenticate(&mut ntlm, authorization.as_deref()) {
                Ok(auth) => auth,
                Err(response) => return Ok(*response),
            },
        };
        let final_token = match &auth {
            Authenticated::Ntlm(t) | Authenticated::Kerberos(t) => t.clone(),
            Authenticated::Basic | Authenticated::Certificate => None,
        };
        let kerberos_framing = content_type
            .as_deref()
            .is_some_and(|c| c.contains(framing::KERBEROS_PROTOCOL));
        let response = async {
        let sealed = content_type.as_deref().is_some_and(framing::is_encrypted);
        let plaintext = match (&auth, sealed) {
            (Authenticated::Ntlm(_), true) => match ntlm.as_mut().map(|a| unseal(a, &body)) {
                Some(Ok(p)) => p,
                _ => return Ok(plain(StatusCode::BAD_REQUEST)),
            },
            (Authenticated::Kerberos(_), true) => {
                match krb.as_mut().map(|a| unseal_kerberos(a, &body)) {
                    Some(Ok(p)) => p,
                    _ => return Ok(plain(StatusCode::BAD_REQUEST)),
                }
            }
            (Authenticated::Basic | Authenticated::Certificate, true) => {
                return Ok(plain(StatusCode::BAD_REQUEST));
            }
            (_, false) if body.is_empty() => return Ok(plain(StatusCode::OK)),
            // AllowUnencrypted=false: plain SOAP is accepted over TLS only.
            (_, false) if !self.https => return Ok(self.challenge(None)),
            (_, false) => body.to_vec(),
        };
        if plaintext.len() > self.shells.limits().max_envelope_size_kb as usize * 1024 {
            return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE));
        }

        let scheme = if self.https { "https" } else { "http" };
        let address = format!("{scheme}://{host_header}/wsman");
        let machine = host_header
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or(host_header.clone());
        let client_ip = self.peer.ip().to_string();
        let caller = Caller {
            address: &address,
            client_ip: &client_ip,
            machine: &machine,
        };

        let parsed = if identify::is_identify(&plaintext) {
            Err(identify::response(&host.wsman_identity(), true))
        } else {
            Ok(Request::parse(&plaintext))
        };
        let (status, xml) = match parsed {
            Err(identify) => (200, identify),
            Ok(Err(e)) => {
                let fault = match &e {
                    RequestError::Malformed(what) => Fault::malformed(what),
                    RequestError::MissingHeader(h) => {
                        Fault::bad_header(&format!("The request has no {h} header."))
                    }
                };
                (500, fault.render(None, &machine))
            }
            Ok(Ok(parsed)) => {
                let planned = parsed
                    .action
                    .as_ref()
                    .and_then(op_of)
                    .and_then(|op| host.wire_fault(op));
                if let Some(f) = &planned {
                    tracing::debug!(host = host.name(), fault = ?f, "injecting a planned wire fault");
                }
                match planned {
                    Some(WireFault::ResetConnection) => {
                        // A reset "mid-Receive": the command starts (a reboot really happens),
                        // then the connection dies under the waiting client.
                        if parsed.action == Some(Action::Receive) {
                            let _ = self.shells.start(&parsed);
                        }
                        *ntlm = None;
                        *krb = None;
                        return Err(self.dropped("injected connection reset"));
                    }
                    Some(WireFault::Unauthorized) => {
                        *ntlm = None;
                        *krb = None;
                        return Ok(self.challenge(None));
                    }
                    Some(WireFault::EnvelopeTooBig) => {
                        return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE));
                    }
                    Some(WireFault::SoapFault { code, text }) => (
                        500,
                        Fault::injected(code, &text).render(parsed.message_id.as_deref(), &machine),
                    ),
                    Some(WireFault::Delay(d)) => {
                        tokio::time::sleep(d).await;
                        let a = self.shells.dispatch(&parsed, &caller).await;
                        (a.status, a.body)
                    }
                    None => {
                        let a = self.shells.dispatch(&parsed, &caller).await;
                        (a.status, a.body)
                    }
                }
            }
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if sealed && let Authenticated::Kerberos(_) = auth {
            let Some(acceptor) = krb.as_mut() else {
                return Err(self.dropped("the Kerberos context vanished while answering"));
            };
            let (protocol, content_type) = if kerberos_framing {
                (framing::KERBEROS_PROTOCOL, framing::KERBEROS_CONTENT_TYPE)
            } else {
                (framing::SPNEGO_PROTOCOL, framing::ENCRYPTED_CONTENT_TYPE)
            };
            return match acceptor.seal(xml.as_bytes()) {
                Ok((header, data)) => {
                    let body = framing::build_as(protocol, &header, &data, xml.len());
                    Ok(with_type(status, content_type, body))
                }
                Err(_) => Err(self.dropped("sealing the answer failed")),
            };
        }
        if sealed {
            let Some(acceptor) = ntlm.as_mut() else {
                return Err(self.dropped("the NTLM context vanished while answering"));
            };
            match acceptor.seal(xml.as_bytes()) {
                Ok((signature, data)) => {
                    let body = framing::build(&signature, &data, xml.len());
                    Ok(with_type(status, framing::ENCRYPTED_CONTENT_TYPE, body))
                }
                Err(_) => Err(self.dropped("sealing the answer failed")),
            }
        } else {
            Ok(with_type(
                status,
                SOAP_CONTENT_TYPE,
                xml.into_bytes(),
            ))
        }
        }
        .await;
        response.map(|mut r| {
            if let Some(t) = final_token
                && let Ok(v) = HeaderValue::from_str(&format!("Negotiate {}", B64.encode(t)))
            {
                r.headers_mut().append(WWW_AUTHENTICATE, v);
            }
            r
        })
    }

    /// Kerberos's part of the Authorization check: `None` when the request is no Kerberos logon
    /// and the connection has no Kerberos context (NTLM and Basic then decide).
    fn authenticate_kerberos(
        &self,
        krb: &mut Option<KerberosAcceptor>,
        authorization: Option<&str>,
    ) -> Option<Result<Authenticated, Box<HttpResponse>>> {
        let Some(value) = authorization else {
            return krb
                .as_ref()
                .is_some_and(KerberosAcceptor::is_authenticated)
                .then_some(Ok(Authenticated::Kerberos(None)));
        };
        let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if !(scheme.eq_ignore_ascii_case("Negotiate") || scheme.eq_ignore_ascii_case("Kerberos")) {
            *krb = None;
            return None;
        }
        let token = B64.decode(credentials.trim()).ok()?;
        let wrapped = spnego::is_spnego(&token)
            && spnego::parse_init(&token)
                .ok()
                .and_then(|init| init.mech_token)
                .is_some_and(|inner| kerberos::is_krb5_token(&inner));
        if !(kerberos::is_krb5_token(&token) || wrapped) {
            *krb = None;
            return None;
        }
        let mut acceptor = KerberosAcceptor::new();
        let strict = self.shells.host().cbt_hardening() == crate::fleet::CbtHardening::Strict;
        Some(
            match acceptor.accept(&token, self.kerberos_binding.as_deref(), strict) {
                Ok(reply) => {
                    tracing::debug!(host = self.shells.host().name(), peer = %self.peer, client = ?acceptor.client, "Kerberos logon");
                    *krb = Some(acceptor);
                    Ok(Authenticated::Kerberos(reply))
                }
                Err(why) => {
                    tracing::info!(host = self.shells.host().name(), peer = %self.peer, why, "Kerberos logon refused");
                    *krb = None;
                    Err(Box::new(self.challenge(None)))
                }
            },
        )
    }

    /// Check the Authorization header against this connection's state. `Err` is the 401 (or
    /// challenge) to send instead of processing the request.
    fn authenticate(
        &self,
        ntlm: &mut Option<NtlmAcceptor>,
        authorization: Option<&str>,
    ) -> Result<Authenticated, Box<HttpResponse>> {
        let (user, password) = self.shells.host().account();
        let Some(value) = authorization else {
            return match ntlm {
                Some(a) if a.is_authenticated() => Ok(Authenticated::Ntlm(None)),
                _ => Err(Box::new(self.challenge(None))),
            };
        };
        if value.trim() == certmap::MUTUAL_SCHEME {
            return self.authenticate_certificate();
        }
        let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if scheme.eq_ignore_ascii_case("Basic") {
            // Windows refuses Basic over HTTP while AllowUnencrypted=false.
            if !self.https {
                return Err(Box::new(self.challenge(None)));
            }
            let decoded = B64
                .decode(credentials.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let ok = decoded
                .as_deref()
                .and_then(|d| d.split_once(':'))
                .is_some_and(|(u, p)| {
                    let u = u.rsplit('\\').next().unwrap_or(u);
                    u.eq_ignore_ascii_case(user) && p == password
                });
            return if ok {
                Ok(Authenticated::Basic)
            } else {
                Err(Box::new(self.challenge(None)))
            };
        }
        if !(scheme.eq_ignore_ascii_case("Negotiate") || scheme.eq_ignore_ascii_case("NTLM")) {
            return Err(Box::new(self.challenge(None)));
        }
        let Ok(token) = B64.decode(credentials.trim()) else {
            return Err(Box::new(plain(StatusCode::BAD_REQUEST)));
        };
        if spnego::is_spnego(&token) {
            return self.authenticate_spnego(ntlm, &token);
        }
        if ntlm_message_type(&token) == Some(1) {
            // A NEGOTIATE starts a fresh context, also on a connection that was authenticated.
            match NtlmAcceptor::new(user, password) {
                Ok(a) => *ntlm = Some(self.bind(a.for_host(self.identity()))),
                Err(_) => return Err(Box::new(plain(StatusCode::INTERNAL_SERVER_ERROR))),
            }
        }
        let Some(acceptor) = ntlm.as_mut() else {
            return Err(Box::new(self.challenge(None)));
        };
        match acceptor.step(&token) {
            // A client that spoke the NTLM scheme (curl --ntlm) reads its CHALLENGE under it.
            Ok(Step::Challenge(challenge)) if scheme.eq_ignore_ascii_case("NTLM") => {
                Err(Box::new(self.challenge_under("NTLM", &challenge)))
            }
            Ok(Step::Challenge(challenge)) => Err(Box::new(self.challenge(Some(&challenge)))),
            Ok(Step::Authenticated) => Ok(Authenticated::Ntlm(None)),
            Err(e) => {
                // The error names the user and the reason, never the password.
                tracing::info!(host = self.shells.host().name(), peer = %self.peer, error = %e, "NTLM logon refused");
                *ntlm = None;
                Err(Box::new(self.challenge(None)))
            }
        }
    }

    /// A certificate logon: over HTTPS, with a client certificate the handshake verified, that
    /// the host's mapping table maps to its account. Anything else is the 401 Windows answers.
    fn authenticate_certificate(&self) -> Result<Authenticated, Box<HttpResponse>> {
        let refuse = |why: &str| {
            tracing::info!(host = self.shells.host().name(), peer = %self.peer, why, "certificate logon refused");
            Box::new(self.challenge(None))
        };
        let Some(map) = self.certmap.as_ref().filter(|_| self.https) else {
            return Err(refuse("certificate authentication is off on this listener"));
        };
        let Some(cert) = &self.client_cert else {
            return Err(refuse("the client presented no certificate"));
        };
        match map.map(cert) {
            Ok(user) => {
                tracing::debug!(host = self.shells.host().name(), peer = %self.peer, user, "certificate logon");
                Ok(Authenticated::Certificate)
            }
            Err(why) => Err(refuse(&why)),
        }
    }

    /// NTLM wrapped in SPNEGO (pyspnego's and Windows' `Negotiate` when Kerberos is out of reach).
    fn authenticate_spnego(
        &self,
        ntlm: &mut Option<NtlmAcceptor>,
        token: &[u8],
    ) -> Result<Authenticated, Box<HttpResponse>> {
        let (user, password) = self.shells.host().account();
        let refuse = |why: String| {
            tracing::info!(host = self.shells.host().name(), peer = %self.peer, why, "SPNEGO logon refused");
            Box::new(self.challenge(None))
        };
        if token.first() == Some(&0x60) {
            let init = spnego::parse_init(token).map_err(|e| refuse(e.to_string()))?;
            let inner = init
                .mech_token
                .ok_or_else(|| refuse("NegTokenInit carries no NTLM token".into()))?;
            if ntlm_message_type(&inner) != Some(1) {
                return Err(refuse(
                    "the first SPNEGO token is not an NTLM NEGOTIATE".into(),
                ));
            }
            let mut acceptor = self.bind(
                NtlmAcceptor::new(user, password)
                    .map_err(|e| refuse(e.to_string()))?
                    .for_host(self.identity()),
            );
            acceptor.set_mech_types(init.mech_types);
            let step = acceptor.step(&inner).map_err(|e| refuse(e.to_string()))?;
            *ntlm = Some(acceptor);
            return match step {
                Step::Challenge(c) => {
                    let resp = spnego::build_resp(spnego::ACCEPT_INCOMPLETE, true, Some(&c), None);
                    Err(Box::new(self.challenge(Some(&resp))))
                }
                Step::Authenticated => Err(refuse("NTLM finished on its first token".into())),
            };
        }
        let resp = spnego::parse_resp(token).map_err(|e| refuse(e.to_string()))?;
        let inner = resp
            .response_token
            .ok_or_else(|| refuse("NegTokenResp carries no NTLM token".into()))?;
        let Some(acceptor) = ntlm.as_mut() else {
            return Err(refuse("SPNEGO continuation without a NegTokenInit".into()));
        };
        let mech_types = acceptor
            .mech_types()
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let outcome = acceptor.step(&inner).and_then(|_| {
            acceptor.exchange_mech_list_mic(&mech_types, resp.mech_list_mic.as_deref())
        });
        match outcome {
            Ok(mic) => Ok(Authenticated::Ntlm(Some(spnego::build_resp(
                spnego::ACCEPT_COMPLETED,
                false,
                None,
                Some(&mic),
            )))),
            Err(e) => {
                *ntlm = None;
                Err(refuse(e.to_string()))
            }
        }
    }

    /// An acceptor that checks this TLS connection's channel binding, at the host's level.
    fn bind(&self, acceptor: NtlmAcceptor) -> NtlmAcceptor {
        match self.channel_binding {
            Some(cbt) => acceptor.bound_to_channel(cbt, self.shells.host().cbt_hardening()),
            None => acceptor,
        }
    }

    /// How this host names itself in an NTLM CHALLENGE.
    fn identity(&self) -> ServerIdentity {
        let host = self.shells.host();
        ServerIdentity {
            computer: host.name().to_string(),
            os_version: host.windows_version(),
        }
    }

    /// A 401 offering the schemes this listener accepts (or carrying the NTLM challenge).
    fn challenge(&self, token: Option<&[u8]>) -> HttpResponse {
        if let Some(t) = token {
            return self.challenge_under("Negotiate", t);
        }
        let mut response = plain(StatusCode::UNAUTHORIZED);
        let headers = response.headers_mut();
        headers.append(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
        if self.https {
            headers.append(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"WSMAN\""),
            );
        }
        response
    }

    /// A 401 carrying one handshake token under `scheme`.
    fn challenge_under(&self, scheme: &str, token: &[u8]) -> HttpResponse {
        let mut response = plain(StatusCode::UNAUTHORIZED);
        if let Ok(v) = HeaderValue::from_str(&format!("{scheme} {}", B64.encode(token))) {
            response.headers_mut().append(WWW_AUTHENTICATE, v);
        }
        response
    }
}

fn unseal(acceptor: &mut NtlmAcceptor, body: &[u8]) -> Result<Vec<u8>, ()> {
    let part = framing::parse(body).map_err(|_| ())?;
    let plaintext = acceptor
        .unseal(part.signature, part.sealed)
        .map_err(|_| ())?;
    if plaintext.len() != part.declared_length {
        return Err(());
    }
    Ok(plaintext)
}

fn unseal_kerberos(acceptor: &mut KerberosAcceptor, body: &[u8]) -> Result<Vec<u8>, ()> {
    let part = framing::parse(body).map_err(|_| ())?;
    let plaintext = acceptor
        .unseal(part.signature, part.sealed)
        .map_err(|_| ())?;
    if plaintext.len() != part.declared_length {
        return Err(());
    }
    Ok(plaintext)
}

/// The NTLMSSP message type (1 NEGOTIATE, 2 CHALLENGE, 3 AUTHENTICATE), if this is NTLMSSP at all.
fn ntlm_message_type(token: &[u8]) -> Option<u32> {
    if token.len() < 12 || &token[..8] != b"NTLMSSP\0" {
        return None;
    }
    Some(u32::from_le_bytes([
        token[8], token[9], token[10], token[11],
    ]))
}

fn op_of(action: &Action) -> Option<WsmanOp> {
    Some(match action {
        Action::Create => WsmanOp::Create,
        Action::Command => WsmanOp::Command,
        Action::Send => WsmanOp::Send,
        Action::Receive => WsmanOp::Receive,
        Action::Signal => WsmanOp::Signal,
        Action::Delete => WsmanOp::Delete,
        Action::Get => WsmanOp::Get,
        Action::Other(_) => return None,
    })
}

fn header(req: &HttpRequest<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn plain(status: StatusCode) -> HttpResponse {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("Server", HeaderValue::from_static("Microsoft-HTTPAPI/2.0"));
    r
}

fn with_type(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> HttpResponse {
    let mut r = plain(status);
    *r.body_mut() = Full::new(Bytes::from(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
