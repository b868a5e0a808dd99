//! Regression tests for the defects of the published `smb` crate 0.12.1 (../shared/notes/smb.md),
//! run against the real Samba with its default aio settings, through the crate's own API (below
//! hive-smb). Each failed on the unpatched copy before its fix in vendor/ (see README.md).
//! Every wait is bounded: a hang fails the test instead of stalling the suite.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::future::join_all;
use smb::CreateDisposition;
use tokio::time::timeout;

const MIB: usize = 1 << 20;
const RUNS: usize = 50;

/// Defect 1 (writes): interim STATUS_PENDING responses grant credits the crate did not count, so
/// 1 MiB writes starved of credits and hung for ever. The `synced` share flushes every write, so
/// writes outlast Samba's 0.5 ms and are answered STATUS_PENDING first, as on a busy server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_1mib_writes_complete_50_runs() {
    let (_client, tree) = raw_tree("SYNCED").await;
    let (_, root) = share("SYNCED");
    for run in 0..RUNS {
        let name = unique("pipelined-writes");
        let file = raw_file(&tree, &name, &rw_args(CreateDisposition::Create)).await;
        let body = data(8 * MIB, run as u64);
        // Two at a time, as a pipelined upload sends them.
        for pair in 0..4 {
            let writes = (2 * pair..2 * pair + 2)
                .map(|i| file.write_block(&body[i * MIB..(i + 1) * MIB], (i * MIB) as u64, None));
            let results = timeout(Duration::from_secs(20), join_all(writes))
                .await
                .unwrap_or_else(|_| panic!("run {run}: 1 MiB writes in flight hung"));
            for r in results {
                assert_eq!(r.unwrap(), MIB, "run {run}: short write");
            }
        }
        // The close needs a credit too: with the credits of the interim responses lost, it hung.
        timeout(Duration::from_secs(10), file.close())
            .await
            .unwrap_or_else(|_| {
                panic!("run {run}: close after 1 MiB writes hung (no credits left)")
            })
            .unwrap();
        assert_eq!(
            std::fs::read(root.join(&name)).unwrap(),
            body,
            "run {run}: content differs"
        );
        std::fs::remove_file(root.join(&name)).unwrap();
    }
}

/// Defect 1 (reads): a 1 MiB read of data not in the page cache answers STATUS_PENDING first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_cache_1mib_reads_complete_50_runs() {
    let (_client, tree) = raw_tree("ADMIN").await;
    let (_, root) = share("ADMIN");
    for run in 0..RUNS {
        let name = unique("cold-reads");
        let body = data(2 * MIB, 1000 + run as u64);
        write_cold(&root.join(&name), &body);
        let file = raw_file(&tree, &name, &read_args()).await;
        let mut bufs = [vec![0u8; MIB], vec![0u8; MIB]];
        let reads = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| file.read_block(b, (i * MIB) as u64, None, false));
        let results = timeout(Duration::from_secs(20), join_all(reads))
            .await
            .unwrap_or_else(|_| panic!("run {run}: cold-cache 1 MiB reads hung"));
        for r in results {
            assert_eq!(r.unwrap(), MIB, "run {run}: short read");
        }
        assert_eq!(bufs.concat(), body, "run {run}: content differs");
        timeout(Duration::from_secs(10), file.close())
            .await
            .unwrap()
            .unwrap();
        std::fs::remove_file(root.join(&name)).unwrap();
    }
}

/// Defect 2: the listing stream lost a wakeup on a multi-thread runtime and hung.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn directory_listing_on_multi_thread_runtime_50_runs() {
    use futures::StreamExt;
    let (_client, tree) = raw_tree("ADMIN").await;
    let (_, root) = share("ADMIN");
    let dir_name = unique("listing");
    std::fs::create_dir(root.join(&dir_name)).unwrap();
    for i in 0..30 {
        std::fs::write(root.join(&dir_name).join(format!("f{i:02}")), b"x").unwrap();
    }
    for run in 0..RUNS {
        let args = smb::FileCreateArgs::make_open_existing(
            smb::FileAccessMask::new()
                .with_file_read_data(true)
                .with_file_read_attributes(true),
        );
        let dir = match tree.create(&dir_name, &args).await.unwrap() {
            smb::Resource::Directory(d) => Arc::new(d),
            _ => panic!("not a directory"),
        };
        let names = timeout(Duration::from_secs(10), async {
            let mut stream = smb::Directory::query::<smb::FileDirectoryInformation>(&dir, "*")
                .await
                .unwrap();
            let mut names = Vec::new();
            while let Some(item) = stream.next().await {
                names.push(item.unwrap().file_name.to_string());
            }
            names
        })
        .await
        .unwrap_or_else(|_| panic!("run {run}: directory listing hung"));
        assert_eq!(
            names.iter().filter(|n| n.starts_with('f')).count(),
            30,
            "run {run}: {names:?}"
        );
        dir.close().await.unwrap();
    }
    std::fs::remove_dir_all(root.join(&dir_name)).unwrap();
}

/// Defect 4: `block_copy` returned Ok after every read failed and left a zero-filled file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_whose_reads_fail_returns_an_error() {
    let (_client, tree) = raw_tree("ADMIN").await;
    let (_, root) = share("ADMIN");
    let name = unique("unreadable-source");
    std::fs::write(root.join(&name), data(4 * MIB, 7)).unwrap();
    // Opened for attributes only: the size is known, every read is refused by the server.
    let args = smb::FileCreateArgs::make_open_existing(
        smb::FileAccessMask::new().with_file_read_attributes(true),
    );
    let source = raw_file(&tree, &name, &args).await;
    let tmp = tempfile::tempdir().unwrap();
    let dest_path = tmp.path().join("copy");
    let dest = smb::sync_helpers::Mutex::new(tokio::fs::File::create(&dest_path).await.unwrap());
    let copied = timeout(
        Duration::from_secs(30),
        smb::resource::block_copy(source, dest, 4),
    )
    .await
    .expect("block_copy hung");
    assert!(
        copied.is_err(),
        "block_copy reported success although every read was refused"
    );
    let left = std::fs::read(&dest_path).unwrap();
    assert!(
        left.iter().all(|&b| b == 0) && left.is_empty(),
        "a failed copy left {} bytes behind",
        left.len()
    );
    std::fs::remove_file(root.join(&name)).unwrap();
}

/// Defect 5: a write larger than the server's max write size (8 MiB on Samba) hung.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_larger_than_max_write_size_completes() {
    let (_client, tree) = raw_tree("ADMIN").await;
    let (_, root) = share("ADMIN");
    let name = unique("big-write");
    let file = raw_file(&tree, &name, &rw_args(CreateDisposition::Create)).await;
    let body = data(20 * MIB, 5);
    let written = timeout(Duration::from_secs(60), file.write_block(&body, 0, None))
        .await
        .expect("a 20 MiB write hung")
        .unwrap();
    assert_eq!(written, body.len());
    file.close().await.unwrap();
    assert_eq!(std::fs::read(root.join(&name)).unwrap(), body);
    std::fs::remove_file(root.join(&name)).unwrap();
}

/// Defect 6: a `File` kept the length it had when opened, so reading back what was just written
/// through the same handle returned 0 bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_back_after_write_on_the_same_handle() {
    let (_client, tree) = raw_tree("ADMIN").await;
    let (_, root) = share("ADMIN");
    let name = unique("read-back");
    let file = raw_file(&tree, &name, &rw_args(CreateDisposition::Create)).await;
    let body = data(MIB, 6);
    assert_eq!(
        timeout(Duration::from_secs(20), file.write_block(&body, 0, None))
            .await
            .unwrap()
            .unwrap(),
        MIB
    );
    let mut back = vec![0u8; MIB];
    let n = timeout(
        Duration::from_secs(20),
        file.read_block(&mut back, 0, None, false),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(n, MIB, "read back {n} bytes of a 1 MiB file just written");
    assert_eq!(back, body);
    use smb::GetLen;
    assert_eq!(file.get_len().await.unwrap(), MIB as u64);
    file.close().await.unwrap();
    std::fs::remove_file(root.join(&name)).unwrap();
}

/// Defect 7: `make_overwrite` asked for GENERIC_ALL, which Samba refuses on an existing 0644 file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_of_an_existing_0644_file() {
    use std::os::unix::fs::PermissionsExt;
    let (_client, tree) = raw_tree("ADMIN").await;
    let (_, root) = share("ADMIN");
    let name = unique("overwrite-0644");
    let local = root.join(&name);
    std::fs::write(&local, b"old contents").unwrap();
    give_to_smb_user(&local);
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o644)).unwrap();
    let args =
        smb::FileCreateArgs::make_overwrite(smb::FileAttributes::new(), smb::CreateOptions::new());
    let file = match timeout(Duration::from_secs(10), tree.create(&name, &args))
        .await
        .unwrap()
    {
        Ok(smb::Resource::File(f)) => f,
        Ok(_) => panic!("not a file"),
        Err(e) => panic!("overwriting an existing 0644 file was refused: {e}"),
    };
    file.write_block(b"new", 0, None).await.unwrap();
    file.close().await.unwrap();
    assert_eq!(std::fs::read(&local).unwrap(), b"new");
    std::fs::remove_file(&local).unwrap();
}

/// Defect 3: no TCP_NODELAY and header/body as separate writes: each request-response waited on
/// Nagle + delayed ACK (connect+auth 180 ms, one-at-a-time 64 KiB reads ~40 ms each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_requests_are_not_delayed_by_nagle() {
    let (_client, tree) = raw_tree("ADMIN").await;
    let (_, root) = share("ADMIN");
    let name = unique("small-reads");
    std::fs::write(root.join(&name), data(64 * 1024, 3)).unwrap();
    let file = raw_file(&tree, &name, &read_args()).await;
    let mut buf = vec![0u8; 64 * 1024];
    let mut fastest = Duration::MAX;
    for _ in 0..50 {
        let started = Instant::now();
        let read = file.read_block(&mut buf, 0, None, false);
        let n = timeout(Duration::from_secs(10), read)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, buf.len());
        fastest = fastest.min(started.elapsed());
    }
    file.close().await.unwrap();
    std::fs::remove_file(root.join(&name)).unwrap();
    // Nagle + delayed ACK puts ~40 ms into *every* exchange; the fastest of 50 shows it even on a
    // machine busy with other work (without it: well under a millisecond on loopback).
    assert!(
        fastest < Duration::from_millis(20),
        "the fastest of 50 sequential 64 KiB reads took {fastest:?}"
    );
}
