use std::time::{Duration, Instant};

use hive_ssh::SshSession;

use crate::common::{connect, key_auth, options, target};

const SESSIONS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_ssh_sessions() {
    let t = target(key_auth());
    let started = Instant::now();
    let tasks: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                let mut opts = options();
                opts.connect_timeout = Duration::from_secs(60);
                let ssh = SshSession::connect(&t, &opts).await?;
                let out = ssh
                    .exec(&format!("echo session-{i}"), Duration::from_secs(60))
                    .await?;
                Ok::<_, hive_ssh::SshError>((ssh, out))
            })
        })
        .collect();
    let mut sessions = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let (ssh, out) = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("session {i}: {e}"));
        assert_eq!(out.stdout, format!("session-{i}\n").as_bytes());
        sessions.push(ssh);
    }
    // All 200 were open at once: none was disconnected before the last one ran.
    assert_eq!(sessions.len(), SESSIONS);
    eprintln!("{SESSIONS} concurrent sessions in {:?}", started.elapsed());
    for ssh in sessions {
        ssh.disconnect().await.unwrap();
    }
}

#[tokio::test]
async fn many_commands_at_once_over_one_connection() {
    let ssh = connect().await;
    let runs = (0..50).map(|i| {
        let ssh = &ssh;
        async move {
            (
                i,
                ssh.exec(&format!("echo $((({i}) * 2))"), Duration::from_secs(30))
                    .await,
            )
        }
    });
    for (i, out) in futures::future::join_all(runs).await {
        assert_eq!(out.unwrap().stdout, format!("{}\n", i * 2).as_bytes());
    }
}
