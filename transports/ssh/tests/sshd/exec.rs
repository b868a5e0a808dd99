use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hive_ssh::{ExitStatus, KillOutcome, OutputStream, RemoteShell, SshError};

use crate::common::{connect, nonce};

const T: Duration = Duration::from_secs(20);

/// One streamed piece of output and when it arrived.
type Chunk = (Duration, OutputStream, Vec<u8>);

#[tokio::test]
async fn stdout_stderr_and_exit_code_come_back_separately() {
    let ssh = connect().await;
    let out = ssh
        .exec(
            "echo to-out; echo to-err >&2; printf 'no newline'; exit 7",
            T,
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, b"to-out\nno newline");
    assert_eq!(out.stderr, b"to-err\n");
    assert_eq!(out.status, ExitStatus::Code(7));
    assert!(!out.status.success());
}

#[tokio::test]
async fn a_signal_death_is_reported_as_such() {
    let ssh = connect().await;
    let out = ssh.exec("kill -KILL $$", T).await.unwrap();
    assert_eq!(
        out.status,
        ExitStatus::Signal {
            name: "KILL".into(),
            core_dumped: false
        }
    );
}

#[tokio::test]
async fn binary_and_large_output_arrive_intact() {
    let ssh = connect().await;
    // 3 MiB through the channel window several times over, stdout and stderr at once.
    let out = ssh
        .exec(
            "head -c 3145728 /dev/zero | tr '\\0' 'x'; head -c 1048576 /dev/zero >&2",
            T,
        )
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), 3 * 1024 * 1024);
    assert!(out.stdout.iter().all(|&b| b == b'x'));
    assert_eq!(out.stderr.len(), 1024 * 1024);
    assert!(out.stderr.iter().all(|&b| b == 0));
}

#[tokio::test]
async fn a_command_reading_stdin_gets_end_of_file() {
    let ssh = connect().await;
    let out = ssh
        .exec("cat; echo after-cat", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"after-cat\n");
}

#[tokio::test]
async fn verbatim_commands_run_unwrapped() {
    let ssh = connect().await;
    let out = ssh
        .exec_as(RemoteShell::Verbatim, "echo plain", T)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"plain\n");
}

#[tokio::test]
async fn output_is_streamed_while_the_command_runs() {
    let ssh = connect().await;
    let started = Instant::now();
    let seen: Arc<Mutex<Vec<Chunk>>> = Arc::default();
    let log = seen.clone();
    let status = ssh
        .exec_streaming(
            RemoteShell::Posix,
            "for i in 1 2 3; do echo line$i; echo err$i >&2; sleep 0.4; done",
            T,
            move |stream, data| {
                log.lock()
                    .unwrap()
                    .push((started.elapsed(), stream, data.to_vec()))
            },
        )
        .await
        .unwrap();
    let total = started.elapsed();
    assert!(status.success());
    let seen = seen.lock().unwrap();
    let first = seen
        .iter()
        .find(|(_, s, d)| *s == OutputStream::Stdout && d.starts_with(b"line1"))
        .unwrap();
    assert!(
        first.0 + Duration::from_millis(600) < total,
        "first line at {:?}, command ended at {total:?}: not streamed",
        first.0
    );
    let stdout: Vec<u8> = seen
        .iter()
        .filter(|(_, s, _)| *s == OutputStream::Stdout)
        .flat_map(|(_, _, d)| d.clone())
        .collect();
    let stderr: Vec<u8> = seen
        .iter()
        .filter(|(_, s, _)| *s == OutputStream::Stderr)
        .flat_map(|(_, _, d)| d.clone())
        .collect();
    assert_eq!(stdout, b"line1\nline2\nline3\n");
    assert_eq!(stderr, b"err1\nerr2\nerr3\n");
}

/// The server's processes (this machine: the test sshd runs here) whose command line contains
/// `marker`, zombies left out.
fn remote_processes(marker: &str) -> Vec<String> {
    let ps = Command::new("ps")
        .args(["-eo", "stat=,args="])
        .output()
        .unwrap();
    assert!(ps.status.success());
    String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(marker) && !l.trim_start().starts_with('Z'))
        .map(str::to_owned)
        .collect()
}

async fn wait_for_processes(marker: &str, count: usize) {
    let until = Instant::now() + Duration::from_secs(10);
    while remote_processes(marker).len() < count {
        assert!(
            Instant::now() < until,
            "the command never started: {:?}",
            remote_processes(marker)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn timeout_kills_the_remote_process_group() {
    let ssh = connect().await;
    let n = nonce() % 1_000_000;
    // Two processes: a background one and the foreground one the shell waits on.
    let marker = format!("7{n:06}.5");
    let cmd = format!("sleep 1{marker} & sleep 2{marker}; wait");
    let started = Instant::now();
    let (result, ()) = tokio::join!(ssh.exec(&cmd, Duration::from_millis(1500)), async {
        wait_for_processes(&marker, 2).await;
    });
    let err = result.unwrap_err();
    match &err {
        SshError::CommandTimedOut { kill, .. } => {
            assert!(matches!(kill, KillOutcome::Terminated { .. }), "{kill:?}")
        }
        e => panic!("expected a timeout, got {e:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        remote_processes(&marker),
        Vec::<String>::new(),
        "still running after the timeout"
    );
    // The connection is still usable afterwards.
    assert!(ssh.exec("true", T).await.unwrap().status.success());
}

#[tokio::test]
async fn timeout_kills_a_process_that_ignores_sigterm() {
    let ssh = connect().await;
    let marker = format!("8{:06}.25", nonce() % 1_000_000);
    // An ignored signal stays ignored across exec, so `sleep` ignores SIGTERM too.
    let cmd = format!("trap '' TERM; sleep {marker}");
    let (result, ()) = tokio::join!(ssh.exec(&cmd, Duration::from_millis(1500)), async {
        wait_for_processes(&marker, 1).await;
    });
    match result.unwrap_err() {
        SshError::CommandTimedOut { kill, .. } => {
            assert!(matches!(kill, KillOutcome::Killed { .. }), "{kill:?}")
        }
        e => panic!("expected a timeout, got {e:?}"),
    }
    assert_eq!(
        remote_processes(&marker),
        Vec::<String>::new(),
        "still running after SIGKILL"
    );
}

#[tokio::test]
async fn closing_the_channel_alone_would_leave_the_process_running() {
    // The reason for the process-group kill: a verbatim command has no known group, and OpenSSH
    // keeps it running after its channel is closed. (Cleaned up here by hand.)
    let ssh = connect().await;
    let marker = format!("9{:06}.75", nonce() % 1_000_000);
    let cmd = format!("sleep {marker}");
    let (result, ()) = tokio::join!(
        ssh.exec_as(RemoteShell::Verbatim, &cmd, Duration::from_millis(800)),
        async { wait_for_processes(&marker, 1).await }
    );
    match result.unwrap_err() {
        SshError::CommandTimedOut { kill, .. } => assert_eq!(kill, KillOutcome::ChannelClosedOnly),
        e => panic!("expected a timeout, got {e:?}"),
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = remote_processes(&marker);
    assert!(
        !left.is_empty(),
        "expected the process to outlive its channel"
    );
    // `[.]` so the pattern does not match the command line of the shell running pkill.
    let pattern = marker.replace('.', "[.]");
    let out = ssh
        .exec(&format!("pkill -f 'sleep {pattern}'"), T)
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test]
async fn a_long_silent_command_survives_the_inactivity_timeout_thanks_to_keepalives() {
    let mut opts = crate::common::options();
    opts.keepalive_interval = Duration::from_millis(500);
    opts.inactivity_timeout = Duration::from_secs(2);
    let ssh =
        hive_ssh::SshSession::connect(&crate::common::target(crate::common::key_auth()), &opts)
            .await
            .unwrap();
    let out = ssh.exec("sleep 4; echo done", T).await.unwrap();
    assert_eq!(out.stdout, b"done\n");
}

#[tokio::test]
async fn a_connection_lost_mid_command_is_a_failure_not_a_success() {
    let ssh = connect().await;
    // $PPID is the sshd process serving this connection: killing it drops the connection
    // before any exit status is sent.
    let err = ssh.exec("kill -KILL $PPID; sleep 5", T).await.unwrap_err();
    assert!(
        matches!(
            err,
            SshError::NoExitStatus { .. } | SshError::Protocol { .. }
        ),
        "{err:?}"
    );
}
