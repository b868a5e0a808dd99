//! Races of the published `smb` crate, against the real Samba. Each depends on which of two
//! tasks runs first, which a loaded 2-core machine decides now and then; the crate's fault points
//! (`smb::test_hooks`) make the order certain, so each test reproduces its race every time.
//!
//! 1. Session set-up: the final SESSION_SETUP response is signed with keys derived from a hash
//!    that includes the final request, so the client can install them only once that request
//!    went out. The crate's worker task reads responses on its own; when it read the final
//!    response before the set-up task had installed the keys, the set-up failed with "Failed to
//!    verify incoming message" (seen ~1 in 900 connections).
//! 2. Credits: Samba grants an async request's credits in its interim (STATUS_PENDING) response
//!    and none in the final one. When both arrived before the caller waited, the final response
//!    replaced the interim one in the worker's store and the credits were lost; the pool shrank
//!    until a large write waited for ever (seen 2 in 40 runs of a 20 MiB write under load).
//!
//! Their own test binary: a fault point applies to the whole process.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use hive_smb::{SmbConfig, SmbError, SmbShare};
use smb::CreateDisposition;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::time::timeout;

/// The fault points are process-wide: one test at a time sets them.
static HOOK: Mutex<()> = Mutex::const_new(());

/// A raw `smb` client's set-up of `share` through `port`, and a round trip on the tree (a
/// signed open and close of the share's root) that needs the session's keys.
async fn raw_connect(port: u16, share: &str) -> Result<(), smb::Error> {
    let (client, tree) = raw_tree_at(port, share).await?;
    let args = smb::FileCreateArgs::make_open_existing(
        smb::FileAccessMask::new()
            .with_file_read_data(true)
            .with_file_read_attributes(true),
    );
    match tree.create("", &args).await? {
        smb::Resource::Directory(d) => d.close().await?,
        _ => panic!("the share's root is not a directory"),
    }
    client.close().await
}

/// Every kind of share (signing negotiated, signing mandatory, encryption required), several set-ups
/// each, all with the final response read before the keys existed: each set-up completes, its
/// response verified late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_setup_response_read_before_its_keys_exist_is_still_verified() {
    let _hook = HOOK.lock().await;
    smb::test_hooks::pause_before_installing_setup_keys(Duration::from_millis(150));
    for kind in ["ADMIN", "SIGNED", "SEALED"] {
        let (share, _) = share(kind);
        let port = if kind == "ADMIN" {
            port()
        } else {
            strict_port()
        };
        for run in 0..4 {
            timeout(Duration::from_secs(20), raw_connect(port, &share))
                .await
                .unwrap_or_else(|_| panic!("{kind} run {run}: set-up hung"))
                .unwrap_or_else(|e| panic!("{kind} run {run}: set-up failed: {e:?}"));
        }
    }
    smb::test_hooks::pause_before_installing_setup_keys(Duration::ZERO);
}

/// A proxy in front of Samba that flips one bit of the signature of every successful
/// SESSION_SETUP response (the one the late verification checks). Counts connections.
struct TamperingProxy {
    port: u16,
    connections: Arc<AtomicU64>,
}

impl TamperingProxy {
    async fn start(target_port: u16) -> TamperingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                    continue;
                };
                tokio::spawn(relay_tampering(client, server));
            }
        });
        TamperingProxy { port, connections }
    }
}

/// Client bytes go through as they are; server bytes are cut into messages (4-byte direct-TCP
/// length, then the SMB2 header) so the signature of a SESSION_SETUP success can be changed.
async fn relay_tampering(client: TcpStream, server: TcpStream) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
    };
    let down = async move {
        loop {
            let mut len = [0u8; 4];
            if sr.read_exact(&mut len).await.is_err() {
                return;
            }
            let n = u32::from_be_bytes(len) as usize & 0x00ff_ffff;
            let mut msg = vec![0u8; n];
            if sr.read_exact(&mut msg).await.is_err() {
                return;
            }
            // SMB2 header: protocol id FE 'S' 'M' 'B', status at 8, command at 12, signature at 48.
            let is_smb2 = msg.len() >= 64 && msg[..4] == [0xfe, b'S', b'M', b'B'];
            if is_smb2 {
                let status = u32::from_le_bytes(msg[8..12].try_into().unwrap());
                let command = u16::from_le_bytes(msg[12..14].try_into().unwrap());
                if command == 1 && status == 0 {
                    msg[48] ^= 0x01;
                }
            }
            if cw.write_all(&len).await.is_err() || cw.write_all(&msg).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(up, down);
}

/// The late verification is a verification: a changed signature on the final response still
/// fails the set-up, whether the keys were installed before the response was read (no pause) or
/// after (pause). hive-smb reports it as a bad signature and does not retry it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_final_setup_response_is_refused_early_or_late() {
    let _hook = HOOK.lock().await;
    let proxy = TamperingProxy::start(port()).await;
    let (share, _) = share("ADMIN");
    for pause_ms in [0, 150] {
        smb::test_hooks::pause_before_installing_setup_keys(Duration::from_millis(pause_ms));
        let err = timeout(Duration::from_secs(20), raw_connect(proxy.port, &share))
            .await
            .unwrap_or_else(|_| panic!("pause {pause_ms} ms: set-up hung"))
            .expect_err("a tampered session setup response was accepted");
        let text = format!("{err:?}");
        assert!(
            text.contains("SignVerify") || text.contains("SignatureVerificationFailed"),
            "pause {pause_ms} ms: not refused for its signature: {text}"
        );
    }
    smb::test_hooks::pause_before_installing_setup_keys(Duration::ZERO);

    let before = proxy.connections.load(Ordering::SeqCst);
    let config = SmbConfig {
        connect_retries: 3,
        ..SmbConfig::default()
    };
    let err = SmbShare::connect(&host(), proxy.port, &share, &creds(), &config)
        .await
        .err()
        .expect("hive-smb accepted a tampered session setup response");
    assert!(
        matches!(err, SmbError::BadSignature { .. }),
        "not a bad signature: {err}"
    );
    assert!(err.to_string().contains(&host()), "{err}");
    assert_eq!(
        proxy.connections.load(Ordering::SeqCst) - before,
        1,
        "a bad signature was retried"
    );
}

/// Every write on the `synced` share is answered STATUS_PENDING first (its flush outlasts Samba's
/// 0.5 ms), and every wait for a reply starts late, so both responses are in before the caller
/// waits. 1 MiB writes are charged 16 credits each: with the interim grants lost, the pool of 128
/// was empty after 8 of them and the 9th waited for ever. Then an 8 MiB write, which needs the
/// whole pool at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_granted_in_interim_responses_survive_replies_that_arrive_before_the_wait() {
    const MIB: usize = 1 << 20;
    let _hook = HOOK.lock().await;
    let (_client, tree) = raw_tree("SYNCED").await;
    let (_, root) = share("SYNCED");
    let name = unique("late-waits");
    let file = raw_file(&tree, &name, &rw_args(CreateDisposition::Create)).await;
    let body = data(20 * MIB, 11);
    smb::test_hooks::pause_before_awaiting_replies(Duration::from_millis(250));
    for i in 0..12 {
        let written = timeout(
            Duration::from_secs(20),
            file.write_block(&body[i * MIB..(i + 1) * MIB], (i * MIB) as u64, None),
        )
        .await
        .unwrap_or_else(|_| panic!("1 MiB write {i} waited for credits that were lost"))
        .unwrap();
        assert_eq!(written, MIB, "write {i}");
    }
    let written = timeout(
        Duration::from_secs(30),
        file.write_block(&body[12 * MIB..], (12 * MIB) as u64, None),
    )
    .await
    .expect("the 8 MiB write waited for credits that were lost")
    .unwrap();
    smb::test_hooks::pause_before_awaiting_replies(Duration::ZERO);
    assert_eq!(written, 8 * MIB);
    timeout(Duration::from_secs(10), file.close())
        .await
        .expect("close hung")
        .unwrap();
    assert_eq!(std::fs::read(root.join(&name)).unwrap(), body);
    std::fs::remove_file(root.join(&name)).unwrap();
}
