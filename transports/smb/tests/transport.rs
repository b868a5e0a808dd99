//! hive-smb against the real Samba the harness starts: verified uploads, ranged reads, the strict
//! signing and encryption modes, logon and share errors, disk full, broken and silent
//! connections, resumable uploads and 100 uploads at once.

mod common;

use std::time::Duration;

use common::proxy::Proxy;
use common::*;
use hive_smb::{Credentials, SmbConfig, SmbError, SmbShare};

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_and_verify_64_mib() {
    let share_conn = connect("ADMIN").await;
    let (_, root) = share("ADMIN");
    let tmp = tempfile::tempdir().unwrap();
    let body = data(64 * MIB, 64);
    let local = local_file(tmp.path(), "kb.msu", &body);
    let dir = unique("staging");
    share_conn
        .create_dir_all(&format!("{dir}/hive/x"))
        .await
        .unwrap();
    let remote = format!("{dir}/hive/x/kb.msu");
    let report = share_conn.upload(&local, &remote).await.unwrap();
    assert_eq!(report.bytes, body.len() as u64);
    assert_eq!(report.resumed_from, 0);
    assert!(report.verified_by_reading_back);
    assert_eq!(report.sha256, sha256(&body));
    // What the server stored, read from its disk: the same bytes.
    assert_eq!(
        sha256(&std::fs::read(root.join(&remote)).unwrap()),
        sha256(&body)
    );
    let (len, remote_sha) = share_conn.sha256(&remote).await.unwrap();
    assert_eq!((len, remote_sha), (body.len() as u64, sha256(&body)));
    // A second upload of the same file resumes at its end: nothing is sent again.
    let again = share_conn.upload(&local, &remote).await.unwrap();
    assert_eq!(again.resumed_from, body.len() as u64);
    std::fs::remove_dir_all(root.join(&dir)).unwrap();
    share_conn.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_read_of_a_remote_file() {
    let conn = connect("ADMIN").await;
    let (_, root) = share("ADMIN");
    let name = unique("ranged.dll");
    let body = data(3 * MIB + 123, 9);
    std::fs::write(root.join(&name), &body).unwrap();
    // The head of a PE file, as hive reads it to learn a DLL's version.
    assert_eq!(
        conn.read_range(&name, 0, 4096).await.unwrap(),
        &body[..4096]
    );
    // Across chunk boundaries, several requests in flight.
    let (off, len) = (MIB as u64 - 10, 2 * MIB as u64 + 20);
    assert_eq!(
        conn.read_range(&name, off, len).await.unwrap(),
        &body[off as usize..(off + len) as usize]
    );
    // Past the end: what is there, then nothing.
    let tail = conn
        .read_range(&name, body.len() as u64 - 100, 1000)
        .await
        .unwrap();
    assert_eq!(tail, &body[body.len() - 100..]);
    assert!(
        conn.read_range(&name, body.len() as u64 + 5, 10)
            .await
            .unwrap()
            .is_empty()
    );
    std::fs::remove_file(root.join(&name)).unwrap();
}

async fn round_trip(kind: &str) {
    let conn = connect(kind).await;
    let (_, root) = share(kind);
    let tmp = tempfile::tempdir().unwrap();
    let body = data(8 * MIB + 17, 11);
    let local = local_file(tmp.path(), "f.bin", &body);
    let name = unique("mode");
    let report = conn.upload(&local, &name).await.unwrap();
    assert_eq!(report.sha256, sha256(&body));
    assert_eq!(std::fs::read(root.join(&name)).unwrap(), body);
    assert_eq!(conn.read_range(&name, 5, 100).await.unwrap(), &body[5..105]);
    let back = tmp.path().join("back.bin");
    let dl = conn.download(&name, &back).await.unwrap();
    assert_eq!((dl.bytes, dl.sha256), (body.len() as u64, sha256(&body)));
    assert_eq!(std::fs::read(&back).unwrap(), body);
    conn.remove_file(&name).await.unwrap();
    assert!(!root.join(&name).exists());
}

/// `server signing = mandatory`: every message signed and checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_with_signing_mandatory() {
    round_trip("SIGNED").await;
}

/// `smb encrypt = required` on the share: every message sealed (AES-GCM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_with_encryption_required() {
    round_trip("SEALED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logon_with_the_nt_hash() {
    let (name, _) = share("ADMIN");
    let creds =
        Credentials::nt_hash_hex(env("HIVE_TEST_SMB_USER"), &env("HIVE_TEST_SMB_NT_HASH")).unwrap();
    let conn = SmbShare::connect(&host(), port(), &name, &creds, &SmbConfig::default())
        .await
        .unwrap();
    conn.list("").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_an_auth_failure() {
    let (name, _) = share("ADMIN");
    let creds = Credentials::password(env("HIVE_TEST_SMB_USER"), "not-the-password");
    let err = SmbShare::connect(&host(), port(), &name, &creds, &SmbConfig::default())
        .await
        .err()
        .expect("logon must fail");
    assert!(matches!(err, SmbError::AuthFailed { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&host()) && msg.contains(&env("HIVE_TEST_SMB_USER")),
        "{msg}"
    );
    assert!(!msg.contains("not-the-password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_share_is_share_not_found() {
    let err = SmbShare::connect(
        &host(),
        port(),
        "NOSUCHSHARE",
        &creds(),
        &SmbConfig::default(),
    )
    .await
    .err()
    .expect("must fail");
    assert!(matches!(err, SmbError::ShareNotFound { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!(r"\\{}\NOSUCHSHARE", host())),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_a_file_the_user_may_not_write_is_access_denied() {
    let conn = connect("ADMIN").await;
    let (_, root) = share("ADMIN");
    let name = unique("root-owned");
    // Owned by root, mode 0644: the Samba user may read it, not write it.
    std::fs::write(root.join(&name), b"system file").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let local = local_file(tmp.path(), "x", b"replacement");
    let err = conn
        .upload(&local, &name)
        .await
        .expect_err("must be refused");
    assert!(matches!(err, SmbError::AccessDenied { .. }), "{err:?}");
    assert!(err.to_string().contains(&name), "{err}");
    assert_eq!(std::fs::read(root.join(&name)).unwrap(), b"system file");
    std::fs::remove_file(root.join(&name)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_disk_full_and_the_space_is_given_back() {
    let conn = connect("FULL").await;
    let (_, root) = share("FULL");
    let capacity: usize = env("HIVE_TEST_SMB_FULL_BYTES").parse().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let local = local_file(tmp.path(), "big", &data(capacity + 4 * MIB, 13));
    let name = unique("too-big");
    let err = conn.upload(&local, &name).await.expect_err("must not fit");
    assert!(matches!(err, SmbError::DiskFull { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&name) && err.to_string().contains(&host()),
        "{err}"
    );
    // The partial file was truncated: the share has room again.
    assert_eq!(
        std::fs::metadata(root.join(&name))
            .map(|m| m.len())
            .unwrap_or(0),
        0
    );
    let _ = std::fs::remove_file(root.join(&name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_list_stat_and_delete() {
    let conn = connect("ADMIN").await;
    let (_, root) = share("ADMIN");
    let dir = unique("tree");
    conn.create_dir_all(&format!("{dir}/a/b")).await.unwrap();
    conn.create_dir_all(&format!("{dir}/a/b")).await.unwrap(); // again: no error
    let tmp = tempfile::tempdir().unwrap();
    let local = local_file(tmp.path(), "f", &data(1000, 1));
    conn.upload(&local, &format!("{dir}/a/f1")).await.unwrap();
    let mut entries = conn.list(&format!("{dir}/a")).await.unwrap();
    entries.sort_by(|x, y| x.name.cmp(&y.name));
    let names: Vec<(&str, bool, u64)> = entries
        .iter()
        .map(|e| (e.name.as_str(), e.is_dir, if e.is_dir { 0 } else { e.size }))
        .collect();
    assert_eq!(names, vec![("b", true, 0), ("f1", false, 1000)]);
    let st = conn.stat(&format!("{dir}/a/f1")).await.unwrap();
    assert_eq!((st.size, st.is_dir), (1000, false));
    assert!(st.modified.is_some());
    assert!(conn.stat(&format!("{dir}/a")).await.unwrap().is_dir);
    let missing = conn.stat(&format!("{dir}/nope")).await.err().unwrap();
    assert!(matches!(missing, SmbError::NotFound { .. }), "{missing:?}");
    assert!(!conn.exists(&format!("{dir}/nope/deeper")).await.unwrap());
    conn.remove_file(&format!("{dir}/a/f1")).await.unwrap();
    conn.remove_dir(&format!("{dir}/a/b")).await.unwrap();
    conn.remove_dir(&format!("{dir}/a")).await.unwrap();
    conn.remove_dir(&dir).await.unwrap();
    assert!(!root.join(&dir).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_download_leaves_no_file() {
    let conn = connect("ADMIN").await;
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("out.bin");
    let err = conn
        .download(&unique("missing"), &target)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SmbError::NotFound { .. }), "{err:?}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// A thin link: 4 MiB/s each way through the proxy, with a 2 s bound. A window of 16 requests of
/// 1 MiB takes 4 s to cross, so a bound on each request from when it was sent failed this
/// healthy transfer; an answer still comes every quarter second, so the upload, its read-back
/// and a download go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_that_keeps_answering_is_not_a_dead_one() {
    let proxy = Proxy::start(port()).await;
    proxy.limit(4 * MIB as u64);
    let (_, root) = share("ADMIN");
    let config = SmbConfig {
        op_timeout: Duration::from_secs(2),
        ..SmbConfig::default()
    };
    let conn = connect_at(proxy.port, "ADMIN", &config).await;
    let tmp = tempfile::tempdir().unwrap();
    let body = data(12 * MIB, 78);
    let local = local_file(tmp.path(), "thin.msu", &body);
    let remote = unique("thin-link.msu");
    let started = std::time::Instant::now();
    let report = conn
        .upload(&local, &remote)
        .await
        .expect("upload on a thin link");
    assert!(report.verified_by_reading_back);
    // 12 MiB each way at 4 MiB/s: the link, not loopback, set the pace.
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(std::fs::read(root.join(&remote)).unwrap(), body);
    let back = tmp.path().join("back.msu");
    conn.download(&remote, &back)
        .await
        .expect("download on a thin link");
    assert_eq!(std::fs::read(&back).unwrap(), body);
    std::fs::remove_file(root.join(&remote)).unwrap();
}

/// The network breaks in the middle of a 64 MiB upload; the next upload on a new connection
/// resumes after what is verifiably on the server and the file ends up whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_resumes_after_a_broken_connection() {
    let proxy = Proxy::start(port()).await;
    let (_, root) = share("ADMIN");
    let config = SmbConfig {
        op_timeout: Duration::from_secs(10),
        ..SmbConfig::default()
    };
    let through_proxy = connect_at(proxy.port, "ADMIN", &config).await;
    let tmp = tempfile::tempdir().unwrap();
    let body = data(64 * MIB, 77);
    let local = local_file(tmp.path(), "big.msu", &body);
    let remote = unique("resumed.msu");
    let upload = {
        let (local, remote) = (local.clone(), remote.clone());
        tokio::spawn(async move { through_proxy.upload(&local, &remote).await })
    };
    let started = std::time::Instant::now();
    while proxy.bytes_up.load(std::sync::atomic::Ordering::SeqCst) < 24 * MIB as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "upload made no progress"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    proxy.cut_all();
    let err = tokio::time::timeout(Duration::from_secs(30), upload)
        .await
        .expect("a broken upload must end")
        .unwrap()
        .expect_err("must fail");
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains(&remote), "{err}");
    let on_server = std::fs::metadata(root.join(&remote)).unwrap().len();
    assert!(
        on_server > 0 && on_server < body.len() as u64,
        "{on_server} bytes on the server"
    );

    let direct = connect("ADMIN").await;
    let report = direct.upload(&local, &remote).await.unwrap();
    assert!(
        report.resumed_from >= 16 * MIB as u64 && report.resumed_from < body.len() as u64,
        "resumed from {}",
        report.resumed_from
    );
    assert_eq!(report.sha256, sha256(&body));
    assert_eq!(
        sha256(&std::fs::read(root.join(&remote)).unwrap()),
        sha256(&body)
    );
    std::fs::remove_file(root.join(&remote)).unwrap();
}

/// A connection that broke while idle: every later call on it (a stat, an upload, a ranged read)
/// is a lost connection, which callers retry on a new one — never a protocol error. The crate
/// said "Failed to send message to worker!" once its worker had noticed the break, a message
/// hive-smb could not tell from a server's refusal (the fault matrix's copy retry then did not
/// happen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_a_connection_that_broke_while_idle_are_lost_connections() {
    let proxy = Proxy::start(port()).await;
    let conn = connect_at(proxy.port, "ADMIN", &SmbConfig::default()).await;
    conn.stat("")
        .await
        .expect("the share's root before the break");
    proxy.cut_all();
    // Let the crate's worker see the end of the stream and stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tmp = tempfile::tempdir().unwrap();
    let local = local_file(tmp.path(), "after-cut.msu", &data(64 * 1024, 5));
    let remote = unique("after-cut.msu");
    let errors = [
        conn.stat("anything")
            .await
            .expect_err("stat after the break"),
        conn.upload(&local, &remote)
            .await
            .expect_err("upload after the break"),
        conn.read_range("anything", 0, 16)
            .await
            .expect_err("read after the break"),
    ];
    for err in errors {
        assert!(
            matches!(err, SmbError::ConnectionLost { .. }),
            "not a lost connection: {err:?}"
        );
        assert!(err.is_transient(), "{err:?}");
    }
}

/// A server that stops answering in the middle of a transfer: the call ends with a timeout
/// naming host and path, it does not hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_out() {
    let proxy = Proxy::start(port()).await;
    let (name, _) = share("ADMIN");
    let config = SmbConfig {
        op_timeout: Duration::from_secs(2),
        connect_retries: 0,
        ..SmbConfig::default()
    };
    let conn = connect_at(proxy.port, "ADMIN", &config).await;
    proxy.stall(true);
    let started = std::time::Instant::now();
    let err = conn.stat("anything").await.expect_err("must time out");
    assert!(matches!(err, SmbError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(err.to_string().contains(r"anything"), "{err}");
    // A connect to a listener that never speaks SMB is bounded too.
    let connect_err = SmbShare::connect(
        &host(),
        proxy.port,
        &name,
        &creds(),
        &SmbConfig {
            connect_timeout: Duration::from_secs(2),
            ..config
        },
    )
    .await
    .err()
    .expect("must time out");
    assert!(
        matches!(connect_err, SmbError::Timeout { .. }),
        "{connect_err:?}"
    );
}

/// 100 uploads at once, each on its own connection (as to 100 hosts): connection set-ups are
/// limited and retried, so Samba's listen backlog of 50 does not reset any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_concurrent_uploads() {
    let (name, root) = share("ADMIN");
    let tmp = tempfile::tempdir().unwrap();
    let dir = unique("fleet-100");
    std::fs::create_dir(root.join(&dir)).unwrap();
    give_to_smb_user(&root.join(&dir));
    let mut tasks = Vec::new();
    for i in 0..100u64 {
        let body = data(256 * 1024 + i as usize, 500 + i);
        let local = local_file(tmp.path(), &format!("f{i}"), &body);
        let (name, remote) = (name.clone(), format!("{dir}/f{i}"));
        tasks.push(tokio::spawn(async move {
            let conn =
                SmbShare::connect(&host(), port(), &name, &creds(), &SmbConfig::default()).await?;
            let report = conn.upload(&local, &remote).await?;
            conn.disconnect().await?;
            Ok::<_, SmbError>((report, sha256(&body)))
        }));
    }
    let results = tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(tasks))
        .await
        .expect("100 uploads hung");
    for (i, r) in results.into_iter().enumerate() {
        let (report, want) = r.unwrap().unwrap_or_else(|e| panic!("upload {i}: {e}"));
        assert_eq!(report.sha256, want, "upload {i}");
        assert_eq!(
            sha256(&std::fs::read(root.join(&dir).join(format!("f{i}"))).unwrap()),
            want
        );
    }
    std::fs::remove_dir_all(root.join(&dir)).unwrap();
}
