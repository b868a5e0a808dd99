//! Every wire fault the host model can ask for, and the faults Windows itself raises, seen by a
//! raw client that hides nothing (status codes, dropped connections, timings).

mod server_common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use server_common::envelopes as env;
use server_common::{FakeHost, PASSWORD, RawClient, USER, attribute, element};
use winsim::host::{SimHost, WireFault, WsmanOp};
use winsim::server::{FleetOptions, ServiceLimits, WinrmFleet};

async fn fleet_of(host: &Arc<FakeHost>, limits: ServiceLimits) -> WinrmFleet {
    let hosts: Vec<Arc<dyn SimHost>> = vec![Arc::clone(host) as Arc<dyn SimHost>];
    WinrmFleet::start(hosts, FleetOptions { limits, tls: None })
        .await
        .unwrap()
}

async fn session(fleet: &WinrmFleet) -> RawClient {
    let mut c = RawClient::connect(&fleet.endpoints()[0].http_url)
        .await
        .unwrap();
    let reply = c.authenticate(USER, PASSWORD).await.unwrap();
    assert_eq!(
        reply.status, 200,
        "the AUTHENTICATE leg with an empty body is answered 200"
    );
    c
}

/// Create a shell and start `line` in it; returns (shell id, command id).
async fn start(c: &mut RawClient, line: &str) -> (String, String) {
    let (status, xml) = c
        .sealed(&env::create("11111111-0000-0000-0000-000000000001"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{xml}");
    let shell = element(&xml, "ShellId").unwrap().to_string();
    let (status, xml) = c
        .sealed(&env::command(
            "11111111-0000-0000-0000-000000000002",
            &shell,
            line,
        ))
        .await
        .unwrap();
    assert_eq!(status, 200, "{xml}");
    (shell, element(&xml, "CommandId").unwrap().to_string())
}

/// The fault's code from either detail form: `f:WSManFault/@Code` or the CIM error's `error_Code`.
fn fault_code(xml: &str) -> u64 {
    let cim = xml
        .split("</p:error_Code>")
        .next()
        .filter(|_| xml.contains("</p:error_Code>"));
    match cim {
        Some(head) => head.rsplit('>').next().unwrap().parse().unwrap(),
        None => attribute(xml, "WSManFault", "Code")
            .unwrap()
            .parse()
            .unwrap(),
    }
}

#[tokio::test]
async fn reset_connection_mid_receive_starts_the_command_then_drops_the_connection() {
    let host = FakeHost::new("SIM-RESET");
    let fleet = fleet_of(&host, ServiceLimits::default()).await;
    let mut c = session(&fleet).await;
    let (shell, cmd) = start(&mut c, "echo rebooting").await;
    host.inject(WsmanOp::Receive, WireFault::ResetConnection);
    let err = c
        .sealed(&env::receive("r1", &shell, &cmd))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    assert_eq!(
        host.runs.load(Ordering::SeqCst),
        1,
        "the command ran before the connection died"
    );
    // A new connection must authenticate again; the shell itself survives (the host did not reboot).
    let mut c = session(&fleet).await;
    let (status, xml) = c.sealed(&env::receive("r2", &shell, &cmd)).await.unwrap();
    assert_eq!(status, 200, "{xml}");
    assert_eq!(
        attribute(&xml, "CommandState", "State")
            .unwrap()
            .rsplit('/')
            .next(),
        Some("Done")
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn soap_fault_is_http_500_with_the_planned_code_and_relates_to_the_request() {
    let host = FakeHost::new("SIM-500");
    let fleet = fleet_of(&host, ServiceLimits::default()).await;
    let mut c = session(&fleet).await;
    host.inject(
        WsmanOp::Create,
        WireFault::SoapFault {
            code: 2_150_859_174,
            text: "too many operations".into(),
        },
    );
    let (status, xml) = c.sealed(&env::create("FAULT-1")).await.unwrap();
    assert_eq!(status, 500);
    assert_eq!(fault_code(&xml), 2_150_859_174);
    assert_eq!(element(&xml, "RelatesTo"), Some("uuid:FAULT-1"));
    assert!(xml.contains("too many operations"));
    // The fault was one-shot: the next Create works on the same sealed connection.
    let (status, _) = c.sealed(&env::create("FAULT-2")).await.unwrap();
    assert_eq!(status, 200);
    fleet.shutdown().await;
}

#[tokio::test]
async fn unauthorized_mid_session_drops_the_ntlm_context() {
    let host = FakeHost::new("SIM-401");
    let fleet = fleet_of(&host, ServiceLimits::default()).await;
    let mut c = session(&fleet).await;
    let (shell, cmd) = start(&mut c, "echo x").await;
    host.inject(WsmanOp::Receive, WireFault::Unauthorized);
    let (status, _) = c.sealed(&env::receive("u1", &shell, &cmd)).await.unwrap();
    assert_eq!(status, 401);
    // The old context is gone: a sealed request without a new handshake is refused too.
    let (status, _) = c.sealed(&env::receive("u2", &shell, &cmd)).await.unwrap();
    assert_eq!(status, 401);
    // Re-authenticating on the same connection recovers.
    let reply = c.authenticate(USER, PASSWORD).await.unwrap();
    assert_eq!(reply.status, 200);
    let (status, xml) = c.sealed(&env::receive("u3", &shell, &cmd)).await.unwrap();
    assert_eq!(status, 200, "{xml}");
    fleet.shutdown().await;
}

#[tokio::test]
async fn envelope_too_big_is_413_both_injected_and_real() {
    let host = FakeHost::new("SIM-413");
    let fleet = fleet_of(
        &host,
        ServiceLimits {
            max_envelope_size_kb: 16,
            ..ServiceLimits::default()
        },
    )
    .await;
    let mut c = session(&fleet).await;
    // The service tells clients its limit (pypsrp and hive size their messages from it).
    let (status, xml) = c.sealed(&env::config_get("cfg-1")).await.unwrap();
    assert_eq!(status, 200, "{xml}");
    assert_eq!(element(&xml, "MaxEnvelopeSizekb"), Some("16"));
    assert_eq!(element(&xml, "RelatesTo"), Some("uuid:cfg-1"));
    host.inject(WsmanOp::Create, WireFault::EnvelopeTooBig);
    let (status, _) = c.sealed(&env::create("big-1")).await.unwrap();
    assert_eq!(status, 413);
    // A real oversized envelope (20 KiB of arguments against MaxEnvelopeSizekb=16).
    let (status, xml) = c.sealed(&env::create("big-2")).await.unwrap();
    assert_eq!(status, 200);
    let shell = element(&xml, "ShellId").unwrap().to_string();
    let (status, _) = c
        .sealed(&env::command("big-3", &shell, &"x".repeat(20 * 1024)))
        .await
        .unwrap();
    assert_eq!(status, 413);
    fleet.shutdown().await;
}

#[tokio::test]
async fn delay_slows_the_answer_down() {
    let host = FakeHost::new("SIM-DELAY");
    let fleet = fleet_of(&host, ServiceLimits::default()).await;
    let mut c = session(&fleet).await;
    host.inject(
        WsmanOp::Create,
        WireFault::Delay(Duration::from_millis(700)),
    );
    let t = Instant::now();
    let (status, _) = c.sealed(&env::create("slow")).await.unwrap();
    assert_eq!(status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_host_that_is_down_refuses_connections_and_loses_its_shells() {
    let host = FakeHost::new("SIM-DOWN");
    let fleet = fleet_of(&host, ServiceLimits::default()).await;
    let mut c = session(&fleet).await;
    let (shell, _) = start(&mut c, "echo x").await;
    host.accepting.store(false, Ordering::SeqCst);
    // The open connection dies at its next request...
    assert!(c.sealed(&env::receive("d1", &shell, "none")).await.is_err());
    // ...and new connections are closed at once.
    let mut fresh = RawClient::connect(&fleet.endpoints()[0].http_url)
        .await
        .unwrap();
    assert!(fresh.post(&[], b"").await.is_err());
    host.accepting.store(true, Ordering::SeqCst);
    let mut c = session(&fleet).await;
    let (status, xml) = c.sealed(&env::delete("d2", &shell)).await.unwrap();
    assert_eq!(
        (status, fault_code(&xml)),
        (500, 2_150_858_843),
        "the shell died with the host"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_reboot_kills_the_connection_of_a_client_blocked_in_receive() {
    let host = FakeHost::new("SIM-REBOOT");
    let fleet = fleet_of(&host, ServiceLimits::default()).await;
    let mut c = session(&fleet).await;
    let (shell, cmd) = start(&mut c, "sleep 60000").await;
    let down = Arc::clone(&host);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        down.accepting.store(false, Ordering::SeqCst);
    });
    let t = Instant::now();
    // OperationTimeout is PT2S: an answer would take 2 s; the reboot must cut it short.
    let err = c
        .sealed(&env::receive("rb", &shell, &cmd))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        host.killed.load(Ordering::SeqCst),
        1,
        "the command died with the host"
    );
    assert_eq!(fleet.hosts()[0].open_shells(), 0);
    fleet.shutdown().await;
}

#[tokio::test]
async fn windows_faults_timed_out_invalid_selectors_too_many_shells_bad_header() {
    let host = FakeHost::new("SIM-WSFAULTS");
    let fleet = fleet_of(
        &host,
        ServiceLimits {
            max_shells_per_user: 3,
            ..ServiceLimits::default()
        },
    )
    .await;
    let mut c = session(&fleet).await;

    // Receive on a command that outlives OperationTimeout (PT2S): w:TimedOut, then Done.
    let (shell, cmd) = start(&mut c, "sleep 2600").await;
    let (status, xml) = c.sealed(&env::receive("t1", &shell, &cmd)).await.unwrap();
    assert_eq!((status, fault_code(&xml)), (500, 2_150_858_793));
    assert_eq!(element(&xml, "Value"), Some("s:Receiver"));
    let (status, xml) = c.sealed(&env::receive("t2", &shell, &cmd)).await.unwrap();
    assert_eq!(status, 200, "{xml}");
    assert_eq!(element(&xml, "ExitCode"), Some("0"));

    // Unknown command and unknown shell: InvalidSelectors.
    let (status, xml) = c
        .sealed(&env::receive(
            "s1",
            &shell,
            "87E77BEB-6761-4C48-9D70-A00266B8459A",
        ))
        .await
        .unwrap();
    assert_eq!((status, fault_code(&xml)), (500, 2_150_858_843));
    let (status, xml) = c.sealed(&env::delete("s2", "NO-SUCH-SHELL")).await.unwrap();
    assert_eq!((status, fault_code(&xml)), (500, 2_150_858_843));

    // MaxShellsPerUser=3: one is open, two more fit, the fourth is refused.
    for i in 0..2 {
        let (status, _) = c.sealed(&env::create(&format!("q{i}"))).await.unwrap();
        assert_eq!(status, 200);
    }
    // Current Windows words this quota as a CIM error: subcode QuotaLimit, no f:WSManFault, the
    // code in MSFT_WmiError/error_Code.
    let (status, xml) = c.sealed(&env::create("q-over")).await.unwrap();
    assert_eq!(status, 500);
    assert!(!xml.contains("WSManFault"), "{xml}");
    assert!(xml.contains(":MSFT_WmiError "), "{xml}");
    assert!(xml.contains(">2150859173</p:error_Code>"), "{xml}");
    assert!(xml.contains(">HRESULT 0x803381a5</p:MessageID>"), "{xml}");
    assert!(
        xml.contains("This user is allowed a maximum number of 3 concurrent shells"),
        "{xml}"
    );
    assert!(xml.contains("<s:Value>w:QuotaLimit</s:Value>"), "{xml}");

    // A PowerShell remoting pool: no such plugin on a WinRS-only simulator, said as WS-Man says it.
    let psrp = env::create("p1").replace(
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</wsman:ResourceURI>",
        "http://schemas.microsoft.com/powershell/Microsoft.PowerShell</wsman:ResourceURI>",
    );
    let (status, xml) = c.sealed(&psrp).await.unwrap();
    assert_eq!((status, fault_code(&xml)), (500, 2_150_858_752));

    // A negative OperationTimeout is a bad header (2150858767), as in the recorded exchange.
    let bad = env::create("h1").replace("PT2S", "PT-1S");
    let (status, xml) = c.sealed(&bad).await.unwrap();
    assert_eq!((status, fault_code(&xml)), (500, 2_150_858_767));
    assert_eq!(
        element(&xml, "Action"),
        Some("http://schemas.xmlsoap.org/ws/2004/08/addressing/fault")
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn signal_terminate_kills_the_running_command() {
    let host = FakeHost::new("SIM-SIGNAL");
    let fleet = fleet_of(&host, ServiceLimits::default()).await;
    let mut c = session(&fleet).await;
    let (shell, cmd) = start(&mut c, "sleep 60000").await;
    let (status, xml) = c.sealed(&env::receive("k1", &shell, &cmd)).await.unwrap();
    assert_eq!(
        (status, fault_code(&xml)),
        (500, 2_150_858_793),
        "still running"
    );
    let (status, xml) = c
        .sealed(&env::signal("k2", &shell, &cmd, "terminate"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{xml}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        host.killed.load(Ordering::SeqCst),
        1,
        "the command's future was dropped"
    );
    let (status, xml) = c.sealed(&env::receive("k3", &shell, &cmd)).await.unwrap();
    assert_eq!(
        (status, fault_code(&xml)),
        (500, 2_150_858_843),
        "the command id is gone"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn wrong_password_and_plain_soap_over_http_get_401() {
    let host = FakeHost::new("SIM-AUTH");
    let fleet = fleet_of(&host, ServiceLimits::default()).await;
    let mut c = RawClient::connect(&fleet.endpoints()[0].http_url)
        .await
        .unwrap();
    let reply = c.post(&[], env::create("a0").as_bytes()).await.unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("WWW-Authenticate"), Some("Negotiate"));
    let reply = c.authenticate(USER, "wrong").await.unwrap();
    assert_eq!(reply.status, 401);
    let reply = c.authenticate("Guest", PASSWORD).await.unwrap();
    assert_eq!(reply.status, 401, "right password, wrong account");
    let reply = c.authenticate(USER, PASSWORD).await.unwrap();
    assert_eq!(reply.status, 200);
    // Authenticated, but the SOAP is not sealed: AllowUnencrypted=false refuses it.
    let reply = c
        .post(
            &[("Content-Type", "application/soap+xml;charset=UTF-8".into())],
            env::create("a1").as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{USER}:{PASSWORD}"),
    );
    let reply = c
        .post(
            &[("Authorization", format!("Basic {basic}"))],
            env::create("a2").as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 401, "Basic over plain HTTP is refused");
    fleet.shutdown().await;
}

#[tokio::test]
async fn stdin_chunks_accumulate_until_the_first_receive() {
    let host = FakeHost::new("SIM-STDIN");
    let fleet = fleet_of(&host, ServiceLimits::default()).await;
    let mut c = session(&fleet).await;
    let (status, xml) = c.sealed(&env::create("i1")).await.unwrap();
    assert_eq!(status, 200);
    let shell = element(&xml, "ShellId").unwrap().to_string();
    let (status, xml) = c
        .sealed(&env::command_raw("i2", &shell, "powershell.exe", &["-"]))
        .await
        .unwrap();
    assert_eq!(status, 200, "{xml}");
    let cmd = element(&xml, "CommandId").unwrap().to_string();
    let script = "Write-Host 'line 1'\r\n".repeat(3000); // ~60 KB: several Sends, as clients chunk it
    let chunks: Vec<&[u8]> = script.as_bytes().chunks(16 * 1024).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let (status, xml) = c
            .sealed(&env::send(&format!("s{i}"), &shell, &cmd, chunk, last))
            .await
            .unwrap();
        assert_eq!(status, 200, "{xml}");
        assert!(xml.contains("SendResponse"));
    }
    assert_eq!(
        host.runs.load(Ordering::SeqCst),
        0,
        "nothing runs before the first Receive"
    );
    let (status, xml) = c.sealed(&env::receive("i3", &shell, &cmd)).await.unwrap();
    assert_eq!(status, 200, "{xml}");
    let stdin = host.last_request.lock().unwrap().clone().unwrap().stdin;
    assert_eq!(
        stdin,
        script.as_bytes(),
        "the command got every chunk, in order"
    );
    // A Send to a command id that does not exist: InvalidSelectors.
    let (status, xml) = c
        .sealed(&env::send("i4", &shell, "NOPE", b"x", true))
        .await
        .unwrap();
    assert_eq!((status, fault_code(&xml)), (500, 2_150_858_843));
    fleet.shutdown().await;
}
