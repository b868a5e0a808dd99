//! Held uploads against the real Samba the harness starts: while one is open nobody else can
//! write the file but anyone can read it, a reader following it never sees a byte below
//! (size − lag bound) change, the local hash can be skipped, resume still works, and `touch`
//! leaves an empty marker.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use hive_smb::{SmbConfig, SmbError, SmbShare};

const MIB: usize = 1 << 20;

/// `err` is the sharing violation of another opener, naming the host and the path.
fn assert_sharing_violation(err: &SmbError, remote: &str) {
    assert!(matches!(err, SmbError::SharingViolation { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&host()) && msg.contains(remote) && msg.contains("sharing violation"),
        "{msg}"
    );
}

/// Every way a second connection could write `remote` is refused with a sharing violation.
async fn writers_are_refused(other: &SmbShare, local: &std::path::Path, remote: &str) {
    let err = other
        .upload(local, remote)
        .await
        .expect_err("must be refused");
    assert_sharing_violation(&err, remote);
    let err = other.begin_upload(local, remote, true).await.err().unwrap();
    assert_sharing_violation(&err, remote);
    let err = other.touch(remote).await.expect_err("must be refused");
    assert_sharing_violation(&err, remote);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_upload_shuts_out_other_writers_but_not_readers() {
    let hive = connect("ADMIN").await;
    let other = connect("ADMIN").await;
    let (_, root) = share("ADMIN");
    let tmp = tempfile::tempdir().unwrap();
    let body = data(5 * MIB + 77, 31);
    let local = local_file(tmp.path(), "kb.msu", &body);
    let intruder = local_file(tmp.path(), "other.msu", &data(MIB, 32));
    let remote = unique("held.msu");

    let mut held = hive.begin_upload(&local, &remote, true).await.unwrap();
    assert_eq!(held.resumed_from(), 0);
    assert_eq!(held.len(), body.len() as u64);
    // Before any byte is sent: others cannot write, but can open it to read.
    writers_are_refused(&other, &intruder, &remote).await;
    assert_eq!(other.read_range(&remote, 0, 4096).await.unwrap(), b"");
    assert_eq!(other.stat(&remote).await.unwrap().size, 0);

    let sent = AtomicU64::new(0);
    let report = held.send(&sent).await.unwrap();
    assert_eq!(report.bytes, body.len() as u64);
    assert_eq!(report.resumed_from, 0);
    assert_eq!(report.sha256, Some(sha256(&body)));
    assert_eq!(sent.load(Ordering::Relaxed), body.len() as u64);
    // Sent but not closed: still shut out, and a reader gets every byte.
    writers_are_refused(&other, &intruder, &remote).await;
    assert_eq!(
        other.sha256(&remote).await.unwrap(),
        (body.len() as u64, sha256(&body))
    );
    assert_eq!(
        other.read_range(&remote, MIB as u64 - 3, 10).await.unwrap(),
        &body[MIB - 3..MIB + 7]
    );
    // A second send is refused rather than sending the file again.
    assert!(held.send(&sent).await.is_err());

    held.close().await.unwrap();
    // Closed: the other connection may write it now.
    let report = other.upload(&intruder, &remote).await.unwrap();
    assert_eq!(report.bytes, MIB as u64);
    assert_eq!(
        std::fs::read(root.join(&remote)).unwrap(),
        data(MIB, 32),
        "the second writer's upload"
    );
    std::fs::remove_file(root.join(&remote)).unwrap();
}

/// `upload` holds the file the same way while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_upload_also_shuts_out_other_writers_while_it_runs() {
    let (name, root) = share("ADMIN");
    // Small requests, two at a time: a 48 MiB upload takes long enough for the other connection
    // to try while it runs (the try starts once the first write was answered).
    let config = SmbConfig {
        chunk_size: 64 * 1024,
        in_flight: 2,
        ..SmbConfig::default()
    };
    let hive = SmbShare::connect(&host(), port(), &name, &creds(), &config)
        .await
        .unwrap();
    let other = connect("ADMIN").await;
    let tmp = tempfile::tempdir().unwrap();
    let body = data(48 * MIB, 33);
    let local = local_file(tmp.path(), "big.msu", &body);
    let intruder = local_file(tmp.path(), "other.msu", &data(1000, 34));
    let remote = unique("plain-held.msu");
    let sent = AtomicU64::new(0);
    let upload = hive.upload_counting(&local, &remote, &sent);
    let attempt = async {
        while sent.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        other.upload(&intruder, &remote).await
    };
    let (uploaded, attempted) = tokio::join!(upload, attempt);
    let report = uploaded.unwrap();
    assert_eq!(report.sha256, sha256(&body));
    assert!(
        report.bytes == body.len() as u64 && report.verified_by_reading_back,
        "{report:?}"
    );
    let err = attempted.expect_err("the other writer must be refused while the upload runs");
    assert_sharing_violation(&err, &remote);
    assert_eq!(
        sha256(&std::fs::read(root.join(&remote)).unwrap()),
        sha256(&body)
    );
    std::fs::remove_file(root.join(&remote)).unwrap();
}

/// A reader on the host follows the file as it grows: every byte below (its current size − the
/// lag bound) must already be the final byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_never_sees_a_byte_below_the_lag_bound_change() {
    let (name, root) = share("SYNCED");
    let config = SmbConfig {
        chunk_size: 64 * 1024,
        in_flight: 4,
        ..SmbConfig::default()
    };
    let hive = SmbShare::connect(&host(), port(), &name, &creds(), &config)
        .await
        .unwrap();
    let follower = connect("SYNCED").await;
    let tmp = tempfile::tempdir().unwrap();
    let body = data(24 * MIB, 35);
    let local = local_file(tmp.path(), "followed.msu", &body);
    let remote = unique("followed.msu");

    let mut held = hive.begin_upload(&local, &remote, false).await.unwrap();
    let lag = held.lag_bound();
    assert_eq!(lag, 4 * 64 * 1024);
    let done = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let send = async {
        let r = held.send(&sent).await;
        done.store(true, Ordering::SeqCst);
        r
    };
    let follow = async {
        let mut checks = 0u32;
        let mut highest_final = 0u64;
        while !done.load(Ordering::SeqCst) {
            let size = follower.stat(&remote).await.unwrap().size;
            let final_end = size.saturating_sub(lag);
            if final_end > 0 {
                // The last bytes that must be final, just below the bound.
                let from = final_end.saturating_sub(lag);
                let got = follower
                    .read_range(&remote, from, final_end - from)
                    .await
                    .unwrap();
                assert_eq!(
                    got,
                    &body[from as usize..final_end as usize],
                    "bytes {from}..{final_end} were not final at size {size}"
                );
                checks += 1;
                highest_final = highest_final.max(final_end);
            }
        }
        (checks, highest_final)
    };
    let (sent_report, (checks, highest_final)) = tokio::join!(send, follow);
    let report = sent_report.unwrap();
    assert_eq!(report.sha256, None);
    assert!(
        checks > 0 && highest_final > 0,
        "the follower never saw the file grow"
    );
    held.close().await.unwrap();
    assert_eq!(
        sha256(&std::fs::read(root.join(&remote)).unwrap()),
        sha256(&body)
    );
    std::fs::remove_file(root.join(&remote)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_upload_may_skip_the_local_hash_and_still_resumes() {
    let conn = connect("ADMIN").await;
    let (_, root) = share("ADMIN");
    let tmp = tempfile::tempdir().unwrap();
    let body = data(8 * MIB + 4321, 36);
    let local = local_file(tmp.path(), "kb.msu", &body);

    // Fresh, no local hash: the right bytes, and no hash.
    let remote = unique("nohash.msu");
    let mut held = conn.begin_upload(&local, &remote, false).await.unwrap();
    let sent = AtomicU64::new(0);
    let report = held.send(&sent).await.unwrap();
    held.close().await.unwrap();
    assert_eq!(report.bytes, body.len() as u64);
    assert_eq!(report.resumed_from, 0);
    assert_eq!(report.sha256, None);
    assert_eq!(sent.load(Ordering::Relaxed), body.len() as u64);
    assert_eq!(std::fs::read(root.join(&remote)).unwrap(), body);

    // Resume: the server holds 5 whole chunks of the file and then some garbage (an earlier
    // upload broke off). The verified prefix is kept, the unverified tail cut off at once.
    let partial = root.join(&remote);
    let mut on_server = body[..5 * MIB].to_vec();
    on_server.extend_from_slice(&data(MIB / 2, 99));
    std::fs::write(&partial, &on_server).unwrap();
    give_to_smb_user(&partial);
    let mut held = conn.begin_upload(&local, &remote, false).await.unwrap();
    assert_eq!(held.resumed_from(), 5 * MIB as u64);
    assert_eq!(
        std::fs::metadata(&partial).unwrap().len(),
        5 * MIB as u64,
        "the unverified tail must be cut off before sending"
    );
    let report = held.send(&sent).await.unwrap();
    held.close().await.unwrap();
    assert_eq!(report.resumed_from, 5 * MIB as u64);
    assert_eq!(report.sha256, None);
    assert_eq!(std::fs::read(&partial).unwrap(), body);

    // Resume with the local hash: the hash covers the verified prefix too (which ends where
    // the remote file ends, when all of it matches).
    std::fs::write(&partial, &body[..3 * MIB + 5]).unwrap();
    give_to_smb_user(&partial);
    let mut held = conn.begin_upload(&local, &remote, true).await.unwrap();
    assert_eq!(held.resumed_from(), 3 * MIB as u64 + 5);
    let report = held.send(&sent).await.unwrap();
    held.close().await.unwrap();
    assert_eq!(report.sha256, Some(sha256(&body)));
    assert_eq!(std::fs::read(&partial).unwrap(), body);

    // A remote file longer than the local one is emptied and sent whole.
    let mut longer = body.clone();
    longer.extend_from_slice(b"tail");
    std::fs::write(&partial, &longer).unwrap();
    give_to_smb_user(&partial);
    let mut held = conn.begin_upload(&local, &remote, false).await.unwrap();
    assert_eq!(held.resumed_from(), 0);
    let report = held.send(&sent).await.unwrap();
    held.close().await.unwrap();
    assert_eq!(report.bytes, body.len() as u64);
    assert_eq!(std::fs::read(&partial).unwrap(), body);
    std::fs::remove_file(&partial).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_during_a_held_send_gives_the_space_back() {
    let conn = connect("FULL").await;
    let (_, root) = share("FULL");
    let capacity: usize = env("HIVE_TEST_SMB_FULL_BYTES").parse().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let local = local_file(tmp.path(), "big", &data(capacity + 4 * MIB, 37));
    let name = unique("held-too-big");
    let mut held = conn.begin_upload(&local, &name, false).await.unwrap();
    let err = held
        .send(&AtomicU64::new(0))
        .await
        .expect_err("must not fit");
    assert!(matches!(err, SmbError::DiskFull { .. }), "{err:?}");
    // Emptied by send itself, before the caller closes.
    assert_eq!(std::fs::metadata(root.join(&name)).unwrap().len(), 0);
    held.close().await.unwrap();
    let _ = std::fs::remove_file(root.join(&name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_leaves_an_empty_marker() {
    let conn = connect("ADMIN").await;
    let (_, root) = share("ADMIN");
    let dir = unique("markers");
    conn.create_dir_all(&dir).await.unwrap();
    let marker = format!("{dir}/kb.msu.sent");
    conn.touch(&marker).await.unwrap();
    assert_eq!(std::fs::metadata(root.join(&marker)).unwrap().len(), 0);
    // A marker left by an earlier run is emptied again.
    std::fs::write(root.join(&marker), b"stale").unwrap();
    give_to_smb_user(&root.join(&marker));
    conn.touch(&marker).await.unwrap();
    assert_eq!(std::fs::metadata(root.join(&marker)).unwrap().len(), 0);
    std::fs::remove_dir_all(root.join(&dir)).unwrap();
}

/// A link that goes dark mid-copy leaves the server holding the upload's open, which shuts out
/// writers, so the copy that resumes on a new connection would be refused until the server's
/// keep-alive gives up. Naming the lost session at logon (`replaces_session`) makes the server
/// end it at once. Here the first connection simply stays open, unused: to the server it is
/// exactly a session whose client went silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logon_that_replaces_a_lost_session_frees_its_held_upload() {
    for kind in ["ADMIN", "SIGNED"] {
        let (_, root) = share(kind);
        let lost = connect_with(kind, &SmbConfig::default()).await;
        let tmp = tempfile::tempdir().unwrap();
        let body = data(6 * MIB + 99, 40);
        let local = local_file(tmp.path(), "kb.msu", &body);
        let remote = unique("lost-session.msu");
        // Every byte was sent, but the link went dark before the close.
        let mut held = lost.begin_upload(&local, &remote, false).await.unwrap();
        held.send(&AtomicU64::new(0)).await.unwrap();

        // A new connection that does not name it is shut out, as before.
        let plain = connect_with(kind, &SmbConfig::default()).await;
        let err = plain
            .begin_upload(&local, &remote, true)
            .await
            .err()
            .unwrap();
        assert_sharing_violation(&err, &remote);

        // One that names it gets the file at once, and the server has ended the old session.
        let config = SmbConfig {
            replaces_session: Some(lost.session_id()),
            ..SmbConfig::default()
        };
        let fresh = connect_with(kind, &config).await;
        assert_ne!(fresh.session_id(), lost.session_id());
        let mut again = fresh
            .begin_upload(&local, &remote, true)
            .await
            .expect("the replaced session's open must be gone");
        let report = again.send(&AtomicU64::new(0)).await.unwrap();
        again.close().await.unwrap();
        assert_eq!(
            report.resumed_from,
            body.len() as u64,
            "{kind}: whole file verified"
        );
        assert_eq!(report.sha256, Some(sha256(&body)));
        assert_eq!(std::fs::read(root.join(&remote)).unwrap(), body);
        assert!(
            lost.stat(&remote).await.is_err(),
            "{kind}: the replaced session must be ended"
        );
        // The connection that did not name it was left alone.
        plain
            .stat(&remote)
            .await
            .expect("an unrelated session lives on");
        std::fs::remove_file(root.join(&remote)).unwrap();
    }
}

/// Naming a session the server does not know (it already ended it, or another server issued
/// it) changes nothing: the logon succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_an_unknown_session_is_harmless() {
    let config = SmbConfig {
        replaces_session: Some(0x0123_4567_89ab_cdef),
        ..SmbConfig::default()
    };
    let share = connect_with("ADMIN", &config).await;
    let marker = unique("unknown-session.marker");
    share.touch(&marker).await.expect("logged on and usable");
    share.remove_file(&marker).await.unwrap();
}
