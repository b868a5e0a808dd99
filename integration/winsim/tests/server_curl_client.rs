//! The simulator driven by curl's own NTLM (`--ntlm`, Debian's curl, unmodified): its NEGOTIATE
//! offers only OEM strings, so the CHALLENGE must choose OEM and come back under the `NTLM` scheme
//! curl spoke; then WinRS by hand, one curl per request (a fresh connection and handshake each
//! time, the shell living on in the host): a quoted command line, output over several Receives,
//! exit codes. curl cannot seal messages, so it talks to the HTTPS listener, as it must to
//! Windows with AllowUnencrypted=false.

mod server_common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use server_common::envelopes as env;
use server_common::{FakeHost, PASSWORD, USER, element};
use winsim::host::SimHost;
use winsim::server::{FleetOptions, WinrmFleet};

fn curl_binary() -> PathBuf {
    match std::env::var_os("HIVE_TEST_CURL") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "HIVE_TEST_CURL is not set: run these tests through integration/test.sh (its curl service \
             installs curl), or set it to a curl binary"
        ),
    }
}

/// A WinRM endpoint as curl reaches it, with its credentials in a curl config file (never on a
/// command line).
struct Curl {
    url: String,
    config: tempfile::NamedTempFile,
    /// `--negotiate` (GSS-API) with this NTLM_USER_FILE instead of curl's own `--ntlm`.
    negotiate: Option<PathBuf>,
}

impl Curl {
    fn new(url: &str, user: &str, password: &str) -> Curl {
        let config = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(config.path(), format!("user = \"{user}:{password}\"\n")).unwrap();
        Curl {
            url: url.to_string(),
            config,
            negotiate: None,
        }
    }

    /// POST one plain SOAP envelope with `--ntlm`; returns (HTTP status, body).
    async fn post(&self, envelope: &str) -> (u16, String) {
        let mut command = tokio::process::Command::new(curl_binary());
        match &self.negotiate {
            None => command.args(["--silent", "--insecure", "--ntlm", "--config"]),
            Some(users) => command.env("NTLM_USER_FILE", users).args([
                "--silent",
                "--insecure",
                "--negotiate",
                "--config",
            ]),
        };
        let mut child = command
            .arg(self.config.path())
            .args([
                "--header",
                "Content-Type: application/soap+xml;charset=UTF-8",
                "--data-binary",
                "@-",
                "--write-out",
                "\n%{http_code}",
            ])
            .arg(&self.url)
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run curl");
        {
            use tokio::io::AsyncWriteExt as _;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(envelope.as_bytes()).await.unwrap();
        }
        let out = child.wait_with_output().await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (status.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Run one command line (sent as the Command element, no arguments) in `shell`: stdout and
    /// the exit code, reading Receive after Receive until the command is done.
    async fn run(&self, shell: &str, line: &str, id: &str) -> (Vec<u8>, u32, usize) {
        let escaped = line.replace('&', "&amp;");
        let (status, xml) = self
            .post(&env::command_raw(&format!("{id}-c"), shell, &escaped, &[]))
            .await;
        assert_eq!(status, 200, "{xml}");
        let command = element(&xml, "CommandId").unwrap().to_string();
        let mut stdout = Vec::new();
        for n in 0.. {
            let (status, xml) = self
                .post(&env::receive(&format!("{id}-r{n}"), shell, &command))
                .await;
            assert_eq!(status, 200, "{xml}");
            stdout.extend(streams(&xml, "stdout"));
            if let Some(code) = element(&xml, "ExitCode") {
                return (stdout, code.parse().unwrap(), n + 1);
            }
        }
        unreachable!()
    }
}

/// The decoded bytes of every `Stream Name="NAME"` in a ReceiveResponse.
fn streams(xml: &str, name: &str) -> Vec<u8> {
    use base64::Engine as _;
    let mut out = Vec::new();
    for part in xml.split(&format!("<rsp:Stream Name=\"{name}\"")).skip(1) {
        let Some((_, rest)) = part.split_once('>') else {
            continue;
        };
        let data = rest.split('<').next().unwrap_or("");
        out.extend(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_ntlm_logs_on_and_runs_quoted_lines_on_the_real_model() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[defaults]
user = "Administrator"
password = "Curl-Passw0rd!"

[[host]]
name = "SRV2019-CURL"
address = "127.0.0.1"
winrm_port = 0
winrm_https_port = 0
product = "Windows Server 2019 Datacenter"
version = "10.0.17763"
ubr = 5206
"#;
    let configs = winsim::fleet::parse(toml, Path::new("curl.toml")).unwrap();
    let model = winsim::Fleet::start(&configs, dir.path()).unwrap();
    let fleet = WinrmFleet::start(model.sim_hosts(), FleetOptions::default())
        .await
        .unwrap();
    let url = fleet.endpoints()[0].https_url.clone().unwrap();
    let curl = Curl::new(&url, "Administrator", "Curl-Passw0rd!");

    let (status, xml) = curl.post(&env::create("create")).await;
    assert_eq!(status, 200, "curl --ntlm logs on: {xml}");
    let shell = element(&xml, "ShellId").unwrap().to_string();

    let query =
        r#""reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion" /v CurrentBuildNumber""#;
    let (out, code, _) = curl.run(&shell, query, "q").await;
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("CurrentBuildNumber") && out.contains("17763"),
        "{out}"
    );
    assert_eq!(code, 0);
    let (out, code, _) = curl.run(&shell, r#""hostname & exit 3""#, "h").await;
    assert_eq!(out, b"SRV2019-CURL\r\n");
    assert_eq!(code, 3);
    let (out, code, _) = curl.run(&shell, r#""""#, "e").await;
    assert!(out.is_empty());
    assert_eq!(code, 0);

    let (status, _) = curl.post(&env::delete("delete", &shell)).await;
    assert_eq!(status, 200);
    assert_eq!(fleet.hosts()[0].open_shells(), 0);

    let wrong = Curl::new(&url, "Administrator", "not-the-password");
    let (status, _) = wrong.post(&env::create("create-wrong")).await;
    assert_eq!(status, 401, "a wrong password is refused");
    fleet.shutdown().await;
}

/// curl `--negotiate` through GSS-API with gss-ntlmssp: SPNEGO-wrapped NTLM from the NTLM
/// implementation Samba's and SSSD's authors wrote, which refuses a CHALLENGE that sets both
/// UNICODE and OEM. Its credentials come from an NTLM_USER_FILE, as gss-ntlmssp reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_negotiate_with_gss_ntlmssp_logs_on() {
    let host = FakeHost::with_https("SIM-GSS");
    let hosts: Vec<Arc<dyn SimHost>> = vec![Arc::clone(&host) as Arc<dyn SimHost>];
    let fleet = WinrmFleet::start(hosts, FleetOptions::default())
        .await
        .unwrap();
    let url = fleet.endpoints()[0].https_url.clone().unwrap();
    let users = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(users.path(), format!(":{USER}:{PASSWORD}\n")).unwrap();
    let mut curl = Curl::new(&url, USER, "");
    curl.negotiate = Some(users.path().to_path_buf());
    let (status, xml) = curl.post(&env::create("create")).await;
    assert_eq!(status, 200, "gss-ntlmssp logs on: {xml}");
    let shell = element(&xml, "ShellId").unwrap().to_string();
    let (out, code, _) = curl.run(&shell, "echo through spnego", "s").await;
    assert_eq!(out, b"through spnego\r\n");
    assert_eq!(code, 0);

    std::fs::write(users.path(), format!(":{USER}:not-the-password\n")).unwrap();
    let (status, _) = curl.post(&env::create("create-wrong")).await;
    assert_eq!(status, 401, "a wrong password is refused");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_ntlm_reads_long_output_over_several_receives() {
    let host = FakeHost::with_https("SIM-CURL");
    let hosts: Vec<Arc<dyn SimHost>> = vec![Arc::clone(&host) as Arc<dyn SimHost>];
    let fleet = WinrmFleet::start(hosts, FleetOptions::default())
        .await
        .unwrap();
    let url = fleet.endpoints()[0].https_url.clone().unwrap();
    let curl = Curl::new(&url, USER, PASSWORD);
    let (status, xml) = curl.post(&env::create("create")).await;
    assert_eq!(status, 200, "{xml}");
    let shell = element(&xml, "ShellId").unwrap().to_string();
    // 400 kB in envelopes of at most 150 KiB: at least three Receives.
    let (out, code, receives) = curl.run(&shell, "big 400000", "b").await;
    assert_eq!(out.len(), 400_000);
    assert!(out.starts_with(b"abcdefghijklmnopqrstuvwxyzabc"));
    assert_eq!(code, 0);
    assert!(receives >= 3, "{receives} Receives");
    let (_, code, _) = curl.run(&shell, "exit 0x80240017", "x").await;
    assert_eq!(code, 0x8024_0017);
    fleet.shutdown().await;
}
