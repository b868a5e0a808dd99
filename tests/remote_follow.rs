//! The host hashes a file while hive copies it in (src/remote/follow.rs): through the WinRM + SMB
//! target against simulated hosts whose drives live in the harness's real Samba. Needs the
//! harness (`integration/test.sh samba`).

mod common;

use std::time::Duration;

use common::SimFleet;
use hive::remote::follow::Followed;
use hive::remote::{Connector as _, NetworkConnector, Target, Timeouts};
use sha2::Digest as _;

const FLEET: &str = r#"
[[host]]
name = "WS2019"
address = "127.0.0.2"
product = "Windows Server 2019 Datacenter"
version = "10.0.17763"

[[host]]
name = "PS1"
address = "127.0.0.3"
product = "Windows Server 2003"
csd_version = "Service Pack 2"
version = "5.2.3790"
powershell_version = "1.0"

[[host]]
name = "NOPS"
address = "127.0.0.4"
product = "Windows Server 2003"
csd_version = "Service Pack 2"
version = "5.2.3790"
powershell = false
"#;

const REMOTE: &str = r"C:\Windows\Temp\hive\follow\big installer.exe";

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Bytes that differ from chunk to chunk (a hash over the wrong offsets cannot match).
fn payload(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A local installer of `len` bytes: its folder (removed when dropped), bytes and path.
fn installer(len: usize) -> (tempfile::TempDir, Vec<u8>, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = payload(len);
    let local = dir.path().join("installer.exe");
    std::fs::write(&local, &data).unwrap();
    (dir, data, local)
}

/// What the host answers when it hashed all of `data`.
fn hashed(data: &[u8]) -> Followed {
    Followed::Hashed {
        bytes: data.len() as u64,
        sha256: sha_hex(data),
    }
}

/// `data` is on `name`'s drive at `REMOTE`.
fn assert_landed(fleet: &SimFleet, name: &str, data: &[u8]) {
    let on_disk = fleet.host(name).host_path(REMOTE);
    assert!(
        std::fs::read(&on_disk).unwrap() == data,
        "{name}: the bytes landed"
    );
}

fn target(fleet: &SimFleet, name: &str) -> Box<dyn Target> {
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        operation: Duration::from_secs(20),
    };
    NetworkConnector::new(timeouts)
        .open(fleet.inventory_host(name), &fleet.secret)
        .expect("a target")
}

fn follower_scripts(fleet: &SimFleet, name: &str) -> usize {
    fleet
        .host(name)
        .command_log()
        .iter()
        .filter(|c| {
            c.script
                .as_deref()
                .is_some_and(|s| s.starts_with(hive::remote::follow::MARKER_LINE))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_hashes_a_large_file_while_it_arrives() {
    let fleet = SimFleet::start("follow-big", FLEET).await;
    // Larger than the upload's lag bound (16 MiB): most of it is hashed during the copy.
    let (_dir, data, local) = installer(40 << 20);
    let mut t = target(&fleet, "WS2019");
    assert!(t.hashes_while_copying());
    let put = t
        .put_file_host_hashed(&local, REMOTE, Duration::from_secs(120))
        .await
        .expect("the copy");
    assert_eq!(put.bytes, data.len() as u64);
    assert_eq!(put.resumed_from, 0);
    assert_eq!(put.host, hashed(&data));
    assert_landed(&fleet, "WS2019", &data);
    let on_disk = fleet.host("WS2019").host_path(REMOTE);
    let marker = fleet
        .host("WS2019")
        .host_path(&hive::remote::follow::sent_marker(REMOTE));
    assert!(!marker.exists(), "the marker is removed after the copy");
    assert_eq!(follower_scripts(&fleet, "WS2019"), 1);
    assert!(
        !fleet
            .host("WS2019")
            .command_log()
            .iter()
            .any(|c| c.command_line.contains("certutil")),
        "no hash after the copy"
    );

    // The stamp taken after the copy holds until something writes the file.
    let stamp = put.stamp.expect("a stamp");
    assert_eq!(stamp.bytes, data.len() as u64);
    assert_eq!(t.file_stamp(REMOTE).await.unwrap(), Some(stamp));
    std::thread::sleep(Duration::from_millis(20));
    let mut changed = data.clone();
    changed[7] ^= 1;
    std::fs::write(&on_disk, &changed).unwrap();
    assert_ne!(t.file_stamp(REMOTE).await.unwrap(), Some(stamp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_copy_is_hashed_from_its_first_byte() {
    let fleet = SimFleet::start("follow-resume", FLEET).await;
    let (_dir, data, local) = installer(24 << 20);
    // An earlier copy broke off after 5 MiB.
    let on_disk = fleet.host("WS2019").host_path(REMOTE);
    std::fs::create_dir_all(on_disk.parent().unwrap()).unwrap();
    std::fs::write(&on_disk, &data[..5 << 20]).unwrap();
    let mut t = target(&fleet, "WS2019");
    let put = t
        .put_file_host_hashed(&local, REMOTE, Duration::from_secs(120))
        .await
        .expect("the copy");
    assert_eq!(put.resumed_from, 5 << 20);
    assert_eq!(put.host, hashed(&data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_usable_powershell_the_file_still_lands_and_says_why() {
    let fleet = SimFleet::start("follow-nops", FLEET).await;
    let (_dir, data, local) = installer(3 << 20);
    for name in ["PS1", "NOPS"] {
        let mut t = target(&fleet, name);
        let put = t
            .put_file_host_hashed(&local, REMOTE, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            matches!(&put.host, Followed::Failed(_)),
            "{name}: {:?}",
            put.host
        );
        assert_landed(&fleet, name, &data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_waits_while_another_handle_refuses_writers() {
    let fleet = SimFleet::start("follow-busy", FLEET).await;
    let (_dir, data, local) = installer(2 << 20);
    // Another connection (a handle the server has not let go of yet, an antivirus scan) holds
    // the file the way hive's own uploads do: nobody else may write it.
    let inv = fleet.inventory_host("WS2019");
    let creds = hive_smb::Credentials::password(&inv.user, fleet.secret.expose());
    let other = hive_smb::SmbShare::connect(
        &inv.smb_address,
        inv.smb_port,
        &inv.smb_share,
        &creds,
        &hive_smb::SmbConfig::default(),
    )
    .await
    .expect("a second SMB connection");
    let in_share = hive::remote::share_path(&inv.smb_root, REMOTE).unwrap();
    let (parent, _) = in_share.rsplit_once('\\').unwrap();
    other.create_dir_all(parent).await.unwrap();
    let held = other.begin_upload(&local, &in_share, true).await.unwrap();
    let release = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        held.close().await.unwrap();
    };
    let mut t = target(&fleet, "WS2019");
    let started = std::time::Instant::now();
    let (put, ()) = tokio::join!(
        t.put_file_host_hashed(&local, REMOTE, Duration::from_secs(60)),
        release
    );
    let put = put.expect("the copy, once the other handle is gone");
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert_eq!(put.host, hashed(&data));
}

/// A TCP relay to `upstream` whose first connection goes silent, in both directions, once the
/// client has sent `dark_after` bytes: both sockets stay open, so the server never learns that
/// the client gave up (a link that went dark, not one that was reset). Later connections pass.
async fn relay_that_goes_dark(upstream: std::net::SocketAddr, dark_after: u64) -> u16 {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
            if !std::mem::take(&mut first) {
                tokio::spawn(async move {
                    let (mut c, mut s) = (client, server);
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
                });
                continue;
            }
            let dark = Arc::new(AtomicBool::new(false));
            let sent = Arc::new(AtomicU64::new(0));
            let (mut c_read, mut c_write) = client.into_split();
            let (mut s_read, mut s_write) = server.into_split();
            let (dark_up, dark_down) = (dark.clone(), dark);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = match c_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64 > dark_after {
                        dark_up.store(true, Ordering::SeqCst);
                    }
                    if dark_up.load(Ordering::SeqCst) || s_write.write_all(&buf[..n]).await.is_err()
                    {
                        break;
                    }
                }
                // Silent from here on, with both sockets held open.
                std::future::pending::<()>().await;
                drop((c_read, s_write));
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = match s_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if dark_down.load(Ordering::SeqCst)
                        || c_write.write_all(&buf[..n]).await.is_err()
                    {
                        break;
                    }
                }
                std::future::pending::<()>().await;
                drop((s_read, c_write));
            });
        }
    });
    port
}

/// The link to the host goes silent mid-copy. The server still holds the copy's open, which
/// shuts out writers; the copy that resumes on a new connection names the lost SMB session at
/// logon, so the server ends it and the resumed copy gets the file at once, instead of waiting
/// for the server to notice the silence (minutes) and failing first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_cut_off_by_a_silent_link_resumes_at_once_on_a_new_connection() {
    let fleet = SimFleet::start("follow-dark", FLEET).await;
    let (_dir, data, local) = installer(24 << 20);
    let mut host = fleet.inventory_host("WS2019").clone();
    let samba: std::net::SocketAddr = format!("{}:{}", host.smb_address, host.smb_port)
        .parse()
        .unwrap();
    host.smb_port = relay_that_goes_dark(samba, 9 << 20).await;
    host.smb_address = "127.0.0.1".into();
    let operation = Duration::from_secs(3);
    let mut t = NetworkConnector::new(Timeouts {
        connect: Duration::from_secs(2),
        operation,
    })
    .open(&host, &fleet.secret)
    .expect("a target");

    let first = t
        .put_file_host_hashed(&local, REMOTE, Duration::from_secs(60))
        .await;
    assert!(
        matches!(first, Err(hive::remote::RemoteError::TimedOut(_))),
        "{first:?}"
    );
    t.disconnect();
    let started = std::time::Instant::now();
    let put = t
        .put_file_host_hashed(&local, REMOTE, Duration::from_secs(60))
        .await
        .expect("the resumed copy");
    assert!(
        started.elapsed() < operation,
        "the resumed copy waited for the lost session's open: {:?}",
        started.elapsed()
    );
    assert!(put.resumed_from > 0, "resumed after the verified prefix");
    assert_eq!(put.host, hashed(&data));
    assert_landed(&fleet, "WS2019", &data);
}
