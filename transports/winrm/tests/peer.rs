//! The client against a real, independent WinRM server: integration/winrm_peer (pyspnego's NTLM
//! acceptor, MS-WSMV encryption framing written in Python, commands executed by /bin/sh).

mod common;

use std::time::Duration;

use common::{PASSWORD, Peer, USER};
use hive_winrm::response::FaultKind;
use hive_winrm::{ClientConfig, Credentials, Endpoint, Error, RunOptions, Session, Stream};

fn http_config(peer: &Peer) -> ClientConfig {
    let ep = Endpoint::parse(&format!("http://127.0.0.1:{}/wsman", peer.port)).unwrap();
    ClientConfig::new(ep, Credentials::ntlm(USER, PASSWORD))
}

#[tokio::test]
async fn ntlm_sealed_command_with_stdout_stderr_and_exit_code() {
    let peer = Peer::start(&[]);
    let mut s = Session::new(http_config(&peer)).unwrap();
    let mut seen = Vec::new();
    let code = s
        .run(
            "echo hello; echo oops >&2; exit 3",
            &[],
            &RunOptions::default(),
            |stream, data| seen.push((stream, data.to_vec())),
        )
        .await
        .unwrap();
    assert_eq!(code, 3);
    let out: Vec<u8> = seen
        .iter()
        .filter(|(s, _)| *s == Stream::Stdout)
        .flat_map(|(_, d)| d.clone())
        .collect();
    let err: Vec<u8> = seen
        .iter()
        .filter(|(s, _)| *s == Stream::Stderr)
        .flat_map(|(_, d)| d.clone())
        .collect();
    assert_eq!(out, b"hello\n");
    assert_eq!(err, b"oops\n");
    s.close().await.unwrap();
}

#[tokio::test]
async fn one_shell_and_one_connection_for_many_commands() {
    let peer = Peer::start(&[]);
    let mut s = Session::new(http_config(&peer)).unwrap();
    for i in 0..15 {
        let o = s.run_cmd(&format!("echo {i}"), None).await.unwrap();
        assert_eq!(o.stdout_text(), format!("{i}\n"));
    }
    assert_eq!(s.shells_opened, 1);
    assert_eq!(s.client().connections_opened, 1);
    s.close().await.unwrap();
}

#[tokio::test]
async fn wrong_password_is_a_clear_auth_error() {
    let peer = Peer::start(&[]);
    let ep = Endpoint::parse(&format!("http://127.0.0.1:{}/wsman", peer.port)).unwrap();
    let cfg = ClientConfig::new(ep, Credentials::ntlm(USER, "not-the-password"));
    let mut s = Session::new(cfg).unwrap();
    let err = s.run_cmd("echo hi", None).await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("authentication failed for user HIVE\\alice"),
        "{msg}"
    );
    assert!(msg.contains(&format!("127.0.0.1:{}", peer.port)), "{msg}");
    assert!(!msg.contains("not-the-password"), "{msg}");
}

#[tokio::test]
async fn stdin_larger_than_one_envelope_and_large_output() {
    let peer = Peer::start(&[]);
    let mut s = Session::new(http_config(&peer)).unwrap();
    // 400 KB of input needs several Send messages at 150 KB envelopes; it comes back through
    // several Receives.
    let data: Vec<u8> = (0..400_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let opts = RunOptions {
        stdin: data.clone(),
        ..RunOptions::default()
    };
    let o = s.run_output("cat", &[], &opts).await.unwrap();
    assert_eq!(o.exit_code, 0);
    assert_eq!(o.stdout.len(), data.len());
    assert_eq!(o.stdout, data);
}

#[tokio::test]
async fn receive_loops_through_operation_timeouts() {
    let peer = Peer::start(&[]);
    let mut cfg = http_config(&peer);
    cfg.operation_timeout = Duration::from_secs(1);
    let mut s = Session::new(cfg).unwrap();
    let o = s.run_cmd("sleep 2.5; echo late", None).await.unwrap();
    assert_eq!(o.stdout_text(), "late\n");
}

#[tokio::test]
async fn command_timeout_terminates_and_the_shell_stays_usable() {
    let peer = Peer::start(&[]);
    let mut cfg = http_config(&peer);
    cfg.operation_timeout = Duration::from_secs(1);
    let mut s = Session::new(cfg).unwrap();
    let t0 = std::time::Instant::now();
    let err = s
        .run_cmd("sleep 30", Some(Duration::from_secs(2)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CommandTimeout { .. }), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(
        s.run_cmd("echo ok", None).await.unwrap().stdout_text(),
        "ok\n"
    );
    assert_eq!(s.shells_opened, 1);
}

#[tokio::test]
async fn operation_quota_recycles_the_shell() {
    let peer = Peer::start(&["--max-ops", "3"]);
    let mut s = Session::new(http_config(&peer)).unwrap();
    for i in 0..7 {
        let o = s.run_cmd(&format!("echo {i}"), None).await.unwrap();
        assert_eq!(o.stdout_text(), format!("{i}\n"));
    }
    assert_eq!(s.shells_opened, 3);
}

#[tokio::test]
async fn shell_quota_fault_is_typed() {
    let peer = Peer::start(&["--max-shells", "1"]);
    let mut a = Session::new(http_config(&peer)).unwrap();
    a.open().await.unwrap();
    let mut b = Session::new(http_config(&peer)).unwrap();
    b.shell_quota_wait = Duration::ZERO;
    let err = b.open().await.unwrap_err();
    assert_eq!(err.fault_kind(), Some(FaultKind::ShellQuota), "{err}");
    assert!(err.to_string().contains("2150859173"), "{err}");
    a.close().await.unwrap();
    b.open().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn vanished_shell_is_replaced() {
    let peer = Peer::start(&[]);
    let mut s = Session::new(http_config(&peer)).unwrap();
    s.run_cmd("true", None).await.unwrap();
    // Delete the shell behind the session's back (as an idle timeout or reboot would).
    let id = s.shell_id().unwrap().to_string();
    let client = s.client();
    let req = hive_winrm::envelope::delete(client.headers(), &id);
    client.send(&req).await.unwrap();
    let o = s.run_cmd("echo again", None).await.unwrap();
    assert_eq!(o.stdout_text(), "again\n");
    assert_eq!(s.shells_opened, 2);
}

#[tokio::test]
async fn reconnect_reauthenticates_with_fresh_sealing() {
    let peer = Peer::start(&[]);
    let mut s = Session::new(http_config(&peer)).unwrap();
    s.run_cmd("true", None).await.unwrap();
    s.client().disconnect();
    let o = s.run_cmd("echo after", None).await.unwrap();
    assert_eq!(o.stdout_text(), "after\n");
    assert_eq!(s.client().connections_opened, 2);
    assert_eq!(s.shells_opened, 1, "the shell survives a new connection");
}

#[tokio::test]
async fn config_get_and_envelope_too_big() {
    let peer = Peer::start(&["--max-envelope-kb", "150"]);
    let mut s = Session::new(http_config(&peer)).unwrap();
    let cfg = s.client().get_config().await.unwrap();
    assert_eq!(cfg.max_envelope_size_kb, 150);
    let huge = "x".repeat(200_000);
    let err = s.run_cmd(&format!("echo {huge}"), None).await.unwrap_err();
    assert!(matches!(err, Error::EnvelopeTooBig { .. }), "{err:?}");
}

#[tokio::test]
async fn dropping_a_session_deletes_its_shell() {
    let peer = Peer::start(&["--max-shells", "1"]);
    {
        let mut a = Session::new(http_config(&peer)).unwrap();
        a.run_cmd("true", None).await.unwrap();
    }
    // The Delete runs in the background; give it a moment, then a new shell must fit the quota.
    let mut b = Session::new(http_config(&peer)).unwrap();
    let mut ok = false;
    for _ in 0..50 {
        match b.open().await {
            Ok(_) => {
                ok = true;
                break;
            }
            Err(e) if e.fault_kind() == Some(FaultKind::ShellQuota) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(ok, "the dropped session's shell was not deleted");
}

#[tokio::test]
async fn idle_connection_closed_by_the_server_is_replaced() {
    let peer = Peer::start(&["--idle-close", "0.5"]);
    let mut s = Session::new(http_config(&peer)).unwrap();
    s.run_cmd("true", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let o = s.run_cmd("echo still-here", None).await.unwrap();
    assert_eq!(o.stdout_text(), "still-here\n");
    assert_eq!(s.client().connections_opened, 2);
    assert_eq!(s.shells_opened, 1);
}

#[tokio::test]
async fn service_restart_means_new_authentication_and_a_new_shell() {
    let peer = Peer::start(&[]);
    let port = peer.port.to_string();
    let mut s = Session::new(http_config(&peer)).unwrap();
    s.run_cmd("true", None).await.unwrap();
    drop(peer);
    // Same port, new process: no security contexts, no shells (like a reboot of the host).
    let _peer2 = Peer::start(&["--port", &port]);
    let o = s.run_cmd("echo reborn", None).await.unwrap();
    assert_eq!(o.stdout_text(), "reborn\n");
    assert_eq!(s.client().connections_opened, 2);
    assert_eq!(s.shells_opened, 2);
}

#[tokio::test]
async fn clixml_on_stderr_is_decoded_end_to_end() {
    let peer = Peer::start(&[]);
    let mut s = Session::new(http_config(&peer)).unwrap();
    // What powershell.exe writes to a redirected stderr when a cmdlet fails.
    let clixml = r#"#< CLIXML
<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><S S="Error">Stop-Service : Cannot find any service with service name 'nope'._x000D__x000A_</S></Objs>"#;
    let opts = RunOptions {
        stdin: clixml.as_bytes().to_vec(),
        ..RunOptions::default()
    };
    let o = s.run_output("cat >&2; exit 1", &[], &opts).await.unwrap();
    assert_eq!(o.exit_code, 1);
    assert_eq!(
        o.stderr_text(),
        "Stop-Service : Cannot find any service with service name 'nope'.\r\n"
    );
}

/// The orchestrator drives many hosts from a multi-threaded runtime: sessions and their futures
/// must be Send.
#[test]
fn sessions_and_their_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    let cfg = ClientConfig::new(Endpoint::http("h"), Credentials::ntlm("u", "p"));
    let mut s = Session::new(cfg).unwrap();
    is_send(&s.run_cmd("x", None));
    is_send(&s.run_powershell("x", None));
    let prepared = hive_winrm::powershell::PreparedScript::new("x");
    is_send(&s.run_prepared(&prepared, None));
    is_send(&s);
}

#[tokio::test]
async fn shells_are_recycled_after_a_number_of_commands() {
    let peer = Peer::start(&[]);
    let mut s = Session::new(http_config(&peer)).unwrap();
    s.recycle_after = 2;
    for _ in 0..5 {
        s.run_cmd("true", None).await.unwrap();
    }
    assert_eq!(s.shells_opened, 3);
    assert_eq!(s.client().connections_opened, 1);
}
