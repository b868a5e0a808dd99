//! Shared by the server_* tests: a tiny SimHost whose commands come from a fixed table, the Python
//! driver runner, and a raw WinRM client (NTLM via sspi's client side, HTTP/1.1 by hand) that can
//! see what pywinrm hides: status codes, dropped connections, timings.
#![allow(dead_code)]

pub mod kdc;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, DataRepresentation,
    EncryptionFlags, Ntlm, SecurityBuffer, SecurityBufferRef, Sspi, SspiImpl, Username,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use winsim::host::{BoxFuture, CommandOutcome, CommandRequest, SimHost, WireFault, WsmanOp};

pub const USER: &str = "Administrator";
pub const PASSWORD: &str = "Sim-Passw0rd!";

/// A fresh loopback address for each host of each test, so parallel tests (and other engineers'
/// servers) never collide: 127.<pid-derived>.<counter>.<counter>, port chosen by the kernel.
pub fn fresh_addr() -> SocketAddr {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let ip = Ipv4Addr::new(
        127,
        100 + (pid % 100) as u8,
        ((pid / 100) % 200) as u8 + (n / 250) as u8,
        (n % 250) as u8 + 1,
    );
    SocketAddr::new(IpAddr::V4(ip), 0)
}

/// A simulated host whose "commands" are a small fixed table (the real model is winsim-model's):
/// `echo TEXT`, `exit N` (decimal or 0x hex), `sleep MS`, `big N`, and `powershell.exe -`
/// (echoes its stdin). Anything else answers as cmd.exe does for an unknown program.
pub struct FakeHost {
    pub name: String,
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub accepting: AtomicBool,
    pub faults: Mutex<HashMap<WsmanOp, VecDeque<WireFault>>>,
    pub runs: AtomicUsize,
    pub killed: Arc<AtomicUsize>,
    pub last_request: Mutex<Option<CommandRequest>>,
    pub cbt_hardening: winsim::fleet::CbtHardening,
}

impl FakeHost {
    pub fn new(name: &str) -> Arc<FakeHost> {
        Arc::new(FakeHost {
            name: name.to_string(),
            http: fresh_addr(),
            https: None,
            accepting: AtomicBool::new(true),
            faults: Mutex::new(HashMap::new()),
            runs: AtomicUsize::new(0),
            killed: Arc::new(AtomicUsize::new(0)),
            last_request: Mutex::new(None),
            cbt_hardening: winsim::fleet::CbtHardening::Relaxed,
        })
    }

    /// An HTTPS host with Extended Protection required (`CbtHardeningLevel=Strict`).
    pub fn with_https_strict(name: &str) -> Arc<FakeHost> {
        let mut h = Arc::try_unwrap(FakeHost::with_https(name)).ok().unwrap();
        h.cbt_hardening = winsim::fleet::CbtHardening::Strict;
        Arc::new(h)
    }

    pub fn with_https(name: &str) -> Arc<FakeHost> {
        let mut h = Arc::try_unwrap(FakeHost::new(name)).ok().unwrap();
        h.https = Some(fresh_addr());
        Arc::new(h)
    }

    /// Inject `fault` into the next request of kind `op`.
    pub fn inject(&self, op: WsmanOp, fault: WireFault) {
        self.faults
            .lock()
            .unwrap()
            .entry(op)
            .or_default()
            .push_back(fault);
    }
}

/// Counts a kill when the command's future is dropped before it finished.
struct KillGuard(Arc<AtomicUsize>, bool);
impl Drop for KillGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl SimHost for FakeHost {
    fn name(&self) -> &str {
        &self.name
    }
    fn winrm_http_addr(&self) -> SocketAddr {
        self.http
    }
    fn winrm_https_addr(&self) -> Option<SocketAddr> {
        self.https
    }
    fn account(&self) -> (&str, &str) {
        (USER, PASSWORD)
    }
    fn cbt_hardening(&self) -> winsim::fleet::CbtHardening {
        self.cbt_hardening
    }
    fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }
    fn wire_fault(&self, op: WsmanOp) -> Option<WireFault> {
        self.faults
            .lock()
            .unwrap()
            .get_mut(&op)
            .and_then(|q| q.pop_front())
    }
    fn run(&self, request: CommandRequest) -> BoxFuture<'_, CommandOutcome> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        *self.last_request.lock().unwrap() = Some(request.clone());
        let killed = Arc::clone(&self.killed);
        Box::pin(async move {
            let mut guard = KillGuard(killed, false);
            let out = fake_command(&request).await;
            guard.1 = true;
            out
        })
    }
}

async fn fake_command(request: &CommandRequest) -> CommandOutcome {
    // pywinrm joins all arguments into one rsp:Arguments, pypsrp sends one per word: read the
    // command line as cmd.exe would, as one string.
    let mut line = std::iter::once(request.command.as_str())
        .chain(request.arguments.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    if !request.skip_cmd_shell {
        for prefix in ["cmd.exe ", "/c "] {
            if line.to_ascii_lowercase().starts_with(prefix) {
                line = line[prefix.len()..].trim_start().to_string();
            }
        }
    }
    let (verb, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
    let ok = |s: String| CommandOutcome {
        stdout: s.into_bytes(),
        stderr: Vec::new(),
        exit_code: 0,
    };
    match verb.to_ascii_lowercase().as_str() {
        "echo" => ok(format!("{rest}\r\n")),
        "exit" => {
            let code = match rest.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16).unwrap_or(1),
                None => rest.parse().unwrap_or(1),
            };
            CommandOutcome { stdout: b"before exit\r\n".to_vec(), stderr: b"failing on purpose\r\n".to_vec(), exit_code: code }
        }
        "sleep" => {
            tokio::time::sleep(Duration::from_millis(rest.parse().unwrap_or(0))).await;
            ok("slept\r\n".into())
        }
        "big" => {
            let n: usize = rest.parse().unwrap_or(0);
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(b'a' + (i % 26) as u8);
            }
            CommandOutcome { stdout: out, stderr: Vec::new(), exit_code: 0 }
        }
        "powershell.exe" if rest.trim() == "-" => CommandOutcome { stdout: request.stdin.clone(), stderr: Vec::new(), exit_code: 0 },
        _ => CommandOutcome {
            stdout: Vec::new(),
            stderr: format!("'{verb}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n").into_bytes(),
            exit_code: 1,
        },
    }
}

/// The venv's Python, or a failure that names the harness.
pub fn python() -> PathBuf {
    match std::env::var_os("HIVE_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "HIVE_TEST_PYTHON is not set: run these tests through integration/test.sh (it builds the venv \
             with pywinrm/pypsrp), or set HIVE_TEST_PYTHON=/path/to/.venv/bin/python"
        ),
    }
}

/// Run one of tests/py/*.py with a JSON spec; returns its JSON report.
pub async fn run_driver(script: &str, spec: serde_json::Value) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(&path).arg(spec.to_string());
    run_json_client(cmd, script).await
}

/// Run an independent client (a Python driver, the Go client) that prints one JSON report, with
/// no proxy between it and the simulated hosts; fails the test, naming `what`, when it does not
/// succeed or prints no JSON.
pub async fn run_json_client(mut cmd: tokio::process::Command, what: &str) -> serde_json::Value {
    let out = cmd
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{what} printed no JSON ({e}): {stdout}"))
}

/// Decode a driver's base64 output field.
pub fn b64(v: &serde_json::Value) -> String {
    String::from_utf8(B64.decode(v.as_str().unwrap()).unwrap()).unwrap()
}

/// One HTTP response as the raw client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal WinRM client over one TCP connection: NTLM handshake, sealed SOAP, nothing hidden.
pub struct RawClient {
    stream: TcpStream,
    authority: String,
    ntlm: Option<Ntlm>,
}

impl RawClient {
    pub async fn connect(url: &str) -> std::io::Result<RawClient> {
        let authority = url
            .trim_start_matches("http://")
            .trim_end_matches("/wsman")
            .to_string();
        let stream = TcpStream::connect(&authority).await?;
        Ok(RawClient {
            stream,
            authority,
            ntlm: None,
        })
    }

    /// Send one POST /wsman and read the answer; `Err` when the server dropped the connection.
    pub async fn post(
        &mut self,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let mut head = format!(
            "POST /wsman HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.authority,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.stream.write_all(head.as_bytes()).await?;
        self.stream.write_all(body).await?;
        read_reply(&mut self.stream).await
    }

    /// The three-leg NTLM handshake on this connection, with the password given.
    pub async fn authenticate(&mut self, user: &str, password: &str) -> std::io::Result<Reply> {
        let mut ntlm = Ntlm::new();
        let identity = AuthIdentity {
            username: Username::parse(user).unwrap(),
            password: password.to_string().into(),
        };
        let mut creds = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .unwrap()
            .credentials_handle;
        let flags = ClientRequestFlags::CONFIDENTIALITY
            | ClientRequestFlags::INTEGRITY
            | ClientRequestFlags::ALLOCATE_MEMORY;
        let mut out = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut builder = ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut creds)
            .with_context_requirements(flags)
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name("HTTP/winsim")
            .with_output(&mut out);
        ntlm.initialize_security_context_impl(&mut builder)
            .unwrap()
            .resolve_to_result()
            .unwrap();
        let negotiate = out[0].buffer.clone();
        let reply = self
            .post(
                &[(
                    "Authorization",
                    format!("Negotiate {}", B64.encode(&negotiate)),
                )],
                b"",
            )
            .await?;
        assert_eq!(
            reply.status, 401,
            "the NEGOTIATE leg must be answered with a challenge"
        );
        let challenge = reply
            .header("WWW-Authenticate")
            .and_then(|v| v.strip_prefix("Negotiate "))
            .map(|t| B64.decode(t).unwrap())
            .expect("a Negotiate challenge");
        let mut input = vec![SecurityBuffer::new(challenge, BufferType::Token)];
        let mut out = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut builder = ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut creds)
            .with_context_requirements(flags)
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name("HTTP/winsim")
            .with_input(&mut input)
            .with_output(&mut out);
        ntlm.initialize_security_context_impl(&mut builder)
            .unwrap()
            .resolve_to_result()
            .unwrap();
        let authenticate = out[0].buffer.clone();
        let reply = self
            .post(
                &[(
                    "Authorization",
                    format!("Negotiate {}", B64.encode(&authenticate)),
                )],
                b"",
            )
            .await?;
        self.ntlm = Some(ntlm);
        Ok(reply)
    }

    /// Send one sealed envelope; returns (status, unsealed envelope text).
    pub async fn sealed(&mut self, xml: &str) -> std::io::Result<(u16, String)> {
        let ntlm = self.ntlm.as_mut().expect("authenticate first");
        let mut sig = vec![0u8; 16];
        let mut data = xml.as_bytes().to_vec();
        let mut bufs = [
            SecurityBufferRef::token_buf(&mut sig),
            SecurityBufferRef::data_buf(&mut data),
        ];
        ntlm.encrypt_message(EncryptionFlags::empty(), &mut bufs)
            .unwrap();
        let body = winsim::server::framing::build(&sig, &data, xml.len());
        let reply = self
            .post(
                &[(
                    "Content-Type",
                    winsim::server::framing::ENCRYPTED_CONTENT_TYPE.to_string(),
                )],
                &body,
            )
            .await?;
        if !reply
            .header("Content-Type")
            .is_some_and(winsim::server::framing::is_encrypted)
        {
            return Ok((
                reply.status,
                String::from_utf8_lossy(&reply.body).into_owned(),
            ));
        }
        let part = winsim::server::framing::parse(&reply.body).unwrap();
        let ntlm = self.ntlm.as_mut().unwrap();
        let mut sig = part.signature.to_vec();
        let mut data = part.sealed.to_vec();
        let mut bufs = [
            SecurityBufferRef::token_buf(&mut sig),
            SecurityBufferRef::data_buf(&mut data),
        ];
        ntlm.decrypt_message(&mut bufs).unwrap();
        let plain = bufs[1].data().to_vec();
        assert_eq!(plain.len(), part.declared_length);
        Ok((reply.status, String::from_utf8(plain).unwrap()))
    }
}

async fn read_reply(stream: &mut TcpStream) -> std::io::Result<Reply> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before an answer",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed mid-body",
            ));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// The envelopes the raw client sends, shaped like pywinrm's.
pub mod envelopes {
    fn envelope(action: &str, message_id: &str, extra_header: &str, body: &str) -> String {
        format!(
            r#"<s:Envelope xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header><wsa:Action s:mustUnderstand="true">{action}</wsa:Action><wsman:MaxEnvelopeSize s:mustUnderstand="true">153600</wsman:MaxEnvelopeSize><wsa:MessageID>uuid:{message_id}</wsa:MessageID><wsman:OperationTimeout>PT2S</wsman:OperationTimeout><wsman:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</wsman:ResourceURI>{extra_header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#
        )
    }
    fn shell_selector(shell: &str) -> String {
        format!(
            r#"<wsman:SelectorSet><wsman:Selector Name="ShellId">{shell}</wsman:Selector></wsman:SelectorSet>"#
        )
    }
    pub fn create(id: &str) -> String {
        envelope(
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create",
            id,
            "",
            "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>",
        )
    }
    pub fn command(id: &str, shell: &str, line: &str) -> String {
        envelope(
            "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command",
            id,
            &shell_selector(shell),
            &format!(
                "<rsp:CommandLine><rsp:Command>cmd.exe</rsp:Command><rsp:Arguments>/c</rsp:Arguments><rsp:Arguments>{line}</rsp:Arguments></rsp:CommandLine>"
            ),
        )
    }
    pub fn receive(id: &str, shell: &str, command: &str) -> String {
        envelope(
            "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive",
            id,
            &shell_selector(shell),
            &format!(
                r#"<rsp:Receive><rsp:DesiredStream CommandId="{command}">stdout stderr</rsp:DesiredStream></rsp:Receive>"#
            ),
        )
    }
    pub fn signal(id: &str, shell: &str, command: &str, code: &str) -> String {
        envelope(
            "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal",
            id,
            &shell_selector(shell),
            &format!(
                r#"<rsp:Signal CommandId="{command}"><rsp:Code>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/{code}</rsp:Code></rsp:Signal>"#
            ),
        )
    }
    pub fn send(id: &str, shell: &str, command: &str, data: &[u8], end: bool) -> String {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        let end = if end { "True" } else { "False" };
        envelope(
            "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send",
            id,
            &shell_selector(shell),
            &format!(
                r#"<rsp:Send><rsp:Stream Name="stdin" CommandId="{command}" End="{end}">{data}</rsp:Stream></rsp:Send>"#
            ),
        )
    }
    pub fn command_raw(id: &str, shell: &str, command: &str, args: &[&str]) -> String {
        let args: String = args
            .iter()
            .map(|a| format!("<rsp:Arguments>{a}</rsp:Arguments>"))
            .collect();
        envelope(
            "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command",
            id,
            &shell_selector(shell),
            &format!(
                "<rsp:CommandLine><rsp:Command>{command}</rsp:Command>{args}</rsp:CommandLine>"
            ),
        )
    }
    pub fn delete(id: &str, shell: &str) -> String {
        envelope(
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete",
            id,
            &shell_selector(shell),
            "",
        )
    }
    pub fn config_get(id: &str) -> String {
        envelope(
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
            id,
            "",
            "",
        )
        .replace(
            "windows/shell/cmd</wsman:ResourceURI>",
            "config</wsman:ResourceURI>",
        )
    }
}

/// The text of the first element with this local name (good enough for test assertions).
pub fn element<'a>(xml: &'a str, local: &str) -> Option<&'a str> {
    let open = format!(":{local}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find('<')? + start;
    Some(&xml[start..end])
}

/// The value of `attr="..."` inside the first element with this local name.
pub fn attribute<'a>(xml: &'a str, local: &str, attr: &str) -> Option<&'a str> {
    let open = format!(":{local} ");
    let start = xml.find(&open)?;
    let tag_end = xml[start..].find('>')? + start;
    let tag = &xml[start..tag_end];
    let key = format!("{attr}=\"");
    let v = tag.find(&key)? + key.len();
    let e = tag[v..].find('"')? + v;
    Some(&tag[v..e])
}
