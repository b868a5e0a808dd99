//! End to end over SSH only: deploy to simulated Windows hosts that offer no WinRM and no SMB —
//! installers staged over SFTP (the real `sftp-server`), their hash checked by the host's own
//! certutil, installed through `cmd.exe` over the harness's real sshd, one reboot (the SSH
//! connection drops and new ones are refused while the host is down), verified by re-scan.
//! The inventory's SMB settings point at nothing: any SMB use would fail the test.
//!
//! Needs the harness's sshd and samba services (`integration/test.sh`).

mod common;
mod ssh_common;

use common::{Lab, LabPatch, fast_options};
use hive::catalog::model::InstallerRecipe;
use hive::deploy::{HostContext, PriorWork, ScanInputs};
use hive::events::{Recorder, Step, StepOutcome, StepState};
use hive::remote::Connector as _;
use hive::scan::run::{FileSource, PreparedProbe, scan_target};
use ssh_common::SshFleet;
use winsim::installer::Package;

const PRODUCT: &str = "Windows Server 2019 Datacenter";

fn hosts() -> String {
    format!(
        "[[group]]\ncount = 3\nname = \"SSHWEB{{n:02}}\"\naddress = \"127.0.0.2\"\nproduct = \"{PRODUCT}\"\n\
         edition = \"ServerDatacenter\"\nversion = \"10.0.17763\"\nubr = 5206\nreboot = {{ downtime_ms = 400 }}\n\
         files = [{{ path = 'C:\\Windows\\System32\\hivessh.dll', version = \"10.0.17763.5206\" }}]\n"
    )
}

/// Two Update.exe hotfixes (they chain without qchain): the first replaces a DLL in use (a
/// pending rename, so a reboot is needed), the second only records itself.
fn two_patches(lab: &mut Lab) {
    lab.add(LabPatch {
        id: "KB5100001",
        bulletin: "MS-S-0001",
        product: PRODUCT,
        file_name: "KB5100001.exe",
        package: Package::hotfix("KB5100001")
            .file_in_use(
                r"C:\Windows\System32\hivessh.dll",
                "10.0.17763.5300".parse().unwrap(),
            )
            .reboot_required(true)
            .duration(std::time::Duration::from_millis(20)),
        recipe: InstallerRecipe::update_exe(),
        subtype: "Security Update",
        detection: None,
    });
    lab.add(LabPatch {
        id: "KB5100002",
        bulletin: "MS-S-0002",
        product: PRODUCT,
        file_name: "KB5100002.exe",
        package: Package::hotfix("KB5100002").duration(std::time::Duration::from_millis(20)),
        recipe: InstallerRecipe::update_exe(),
        subtype: "Security Update",
        detection: None,
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_only_hosts_staged_over_sftp_installed_rebooted_and_verified() {
    let started = std::time::Instant::now();
    let fleet = SshFleet::start("deployssh", 1, &hosts()).await;
    let mut lab = Lab::new();
    two_patches(&mut lab);
    let events = Recorder::default();
    let run = "rssh";
    let options = fast_options();
    let probe = PreparedProbe::new(&lab.catalog);
    let approved = hive::deploy::load_approved(&lab.repo).unwrap();
    let timeouts = hive::remote::Timeouts {
        connect: std::time::Duration::from_secs(3),
        operation: std::time::Duration::from_secs(20),
    };
    let jobs = fleet.inventory.hosts.iter().map(|host| {
        let (probe, approved, lab, events, options) = (&probe, &approved, &lab, &events, &options);
        let secret = fleet.secret.clone();
        async move {
            assert_eq!(host.transport, hive::inventory::Transport::Ssh);
            let mut target = hive::remote::NetworkConnector::new(timeouts)
                .open(host, &secret)
                .unwrap();
            let before = scan_target(
                &mut *target,
                &lab.catalog,
                probe,
                std::time::Duration::from_secs(20),
                FileSource::Probe,
            )
            .await
            .unwrap_or_else(|e| panic!("{}: first scan: {e}", host.name));
            let plan =
                hive::deploy::plan_host(&host.name, &before.verdicts, &lab.catalog, approved);
            let mut ctx =
                HostContext::new(run, host, &mut *target, events, Some(&lab.repo), options);
            let scan = ScanInputs {
                catalog: &lab.catalog,
                probe,
                files: FileSource::Probe,
            };
            let outcome =
                hive::deploy::deploy_host(&mut ctx, &plan, &scan, &PriorWork::default()).await;
            (plan, outcome)
        }
    });
    let results = futures::future::join_all(jobs).await;
    assert_eq!(results.len(), 3);

    for (plan, outcome) in &results {
        let name = &outcome.host;
        let sim = fleet.host(name);
        common::assert_patched_once(plan, outcome, sim, &["KB5100001", "KB5100002"]);
        // The in-use DLL was replaced at the reboot.
        assert_eq!(
            sim.file_version(r"C:\Windows\System32\hivessh.dll")
                .map(|v| v.to_string()),
            Some("10.0.17763.5300".to_string()),
            "{name}"
        );
        // The host ran exactly the recipe's command lines, its own certutil checked the staged
        // bytes, and the staged files are gone again.
        let log = sim.command_log();
        let lines: Vec<&str> = log.iter().map(|c| &*c.command_line).collect();
        let dir = format!(r"C:\Windows\Temp\hive\{run}");
        for kb in ["KB5100001", "KB5100002"] {
            assert!(
                lines.contains(&format!(r"{dir}\{kb}.exe -u -q -z").as_str()),
                "{name}: {lines:#?}"
            );
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("certutil -hashfile")
                        && l.contains(&format!(r"{kb}.exe"))),
                "{name}: {lines:#?}"
            );
            assert!(
                !sim.host_path(&format!(r"{dir}\{kb}.exe")).exists(),
                "{name}: staged {kb} left behind"
            );
        }
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("shutdown /r"))
                .count(),
            1,
            "{name}: {lines:#?}"
        );
    }

    // Every installer was copied (over SFTP: the inventory has no working SMB) and announced.
    let ev = events.0.lock().unwrap();
    let copied = ev
        .iter()
        .filter(|e| {
            matches!(e.step, Step::Stage { .. })
                && matches!(&e.state, StepState::Finished { ok: true, outcome, .. } if *outcome == StepOutcome::Copied)
        })
        .count();
    assert_eq!(copied, 6, "two installers on each of three hosts");
    eprintln!(
        "3 SSH-only hosts x 2 patches deployed in {:?}",
        started.elapsed()
    );
}

/// What staging over SSH reports when it cannot work, typed so the orchestrator can decide: a
/// full disk, a refused logon, an impostor's host key, nothing listening, a host that is down, a
/// missing file. The full disk is the harness's real 8 MiB tmpfs behind the plain test sshd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_failures_are_typed_for_the_orchestrator() {
    use hive::inventory::Inventory;
    use hive::remote::{NetworkConnector, RemoteError, Timeouts};
    use ssh_common::env;
    let timeouts = Timeouts {
        connect: std::time::Duration::from_secs(3),
        operation: std::time::Duration::from_secs(10),
    };
    let inventory = |port: &str, key: &str, root: &str| {
        let text = format!(
            "[[host]]\nname = \"plain\"\naddress = \"127.0.0.1\"\ntransport = \"ssh\"\nport = {port}\n\
             user = \"{}\"\ncredential = \"env:HIVE_TEST_SSH_PASSWORD\"\nhost_key = \"{key}\"\nsftp_root = \"{root}\"\n",
            env("HIVE_TEST_SSH_USER")
        );
        Inventory::parse(&text, std::path::Path::new("inv.toml"))
            .unwrap()
            .hosts
            .remove(0)
    };
    let password = hive::inventory::Secret::new(env("HIVE_TEST_SSH_PASSWORD"));
    let port = env("HIVE_TEST_SSH_PORT");
    let key = env("HIVE_TEST_SSH_HOSTKEY_SHA256");
    let dir = tempfile::tempdir().unwrap();

    // An upload cut off earlier resumes where the bytes on the host still match the installer's
    // start; a different start is sent again from byte 0.
    let installer = dir.path().join("resume.exe");
    let content: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&installer, &content).unwrap();
    let upload_dir = std::path::PathBuf::from(env("HIVE_TEST_SSH_UPLOAD_DIR"));
    let partial = upload_dir.join(format!("resume-{}.exe", std::process::id()));
    let uid = std::fs::metadata(&upload_dir).unwrap();
    let (uid, gid) = {
        use std::os::unix::fs::MetadataExt;
        (uid.uid(), uid.gid())
    };
    let host = inventory(&port, &key, &upload_dir.display().to_string());
    let remote = format!("C:\\resume-{}.exe", std::process::id());
    let want = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&content))
    };
    for (start, resumed) in [
        (&content[..1024 * 1024], 1024 * 1024),
        (&[7u8; 4096][..], 0),
    ] {
        std::fs::write(&partial, start).unwrap();
        std::os::unix::fs::chown(&partial, Some(uid), Some(gid)).unwrap();
        let mut t = NetworkConnector::new(timeouts)
            .open(&host, &password)
            .unwrap();
        let r = t.put_file(&installer, &remote).await.unwrap();
        assert_eq!(r.resumed_from, resumed);
        assert_eq!(r.bytes, content.len() as u64);
        assert_eq!(r.sha256, want);
        assert_eq!(std::fs::read(&partial).unwrap(), content);
    }
    let _ = std::fs::remove_file(&partial);

    // A file bigger than the disk: DiskFull, and nothing half-written counts as staged.
    let big = dir.path().join("big.exe");
    std::fs::write(&big, vec![0x5a; 12 * 1024 * 1024]).unwrap();
    let host = inventory(&port, &key, &env("HIVE_TEST_SSH_FULL_DIR"));
    let mut t = NetworkConnector::new(timeouts)
        .open(&host, &password)
        .unwrap();
    let err = t.put_file(&big, r"C:\big.exe").await.unwrap_err();
    assert!(matches!(err, RemoteError::DiskFull(_)), "{err:?}");
    assert!(err.to_string().contains("plain"), "{err}");
    let _ = t.remove_file(r"C:\big.exe").await;
    // A missing file is absent for the content cache, NotFound for a read.
    assert_eq!(t.remote_sha256(r"C:\nope.exe").await.unwrap(), None);
    let err = t.read_file_range(r"C:\nope.dll", 0, 64).await.unwrap_err();
    assert!(matches!(err, RemoteError::NotFound(_)), "{err:?}");

    // A wrong password: AuthFailed (never retried as if the host were down).
    let mut t = NetworkConnector::new(timeouts)
        .open(&host, &hive::inventory::Secret::new("wrong"))
        .unwrap();
    let err = t.remote_sha256(r"C:\x").await.unwrap_err();
    assert!(matches!(err, RemoteError::AuthFailed(_)), "{err:?}");

    // Another host key than the pinned one: refused.
    let other = inventory(
        &port,
        "SHA256:rnFg9lQzp3LxgVJUzqLppEBgc8FoGJOdzmX8/FYqyks",
        "/tmp",
    );
    let mut t = NetworkConnector::new(timeouts)
        .open(&other, &password)
        .unwrap();
    let err = t.remote_sha256(r"C:\x").await.unwrap_err();
    assert!(
        matches!(&err, RemoteError::AuthFailed(m) if m.contains("HOST KEY MISMATCH")),
        "{err:?}"
    );

    // Nothing listening: Unreachable.
    let closed = common::free_ports(1)[0].to_string();
    let mut t = NetworkConnector::new(timeouts)
        .open(&inventory(&closed, &key, "/tmp"), &password)
        .unwrap();
    let err = t.remote_sha256(r"C:\x").await.unwrap_err();
    assert!(matches!(err, RemoteError::Unreachable(_)), "{err:?}");

    // A simulated host that is down (never returns from its reboot): Unreachable, and the
    // connection that was open when it went down is gone too.
    let fleet = SshFleet::start(
        "sshdown",
        2,
        &format!(
            "[[host]]\nname = \"DOWN01\"\naddress = \"127.0.0.2\"\nproduct = \"{PRODUCT}\"\n\
             version = \"10.0.17763\"\nreboot = {{ never_returns = true }}\n"
        ),
    )
    .await;
    let host = &fleet.inventory.hosts[0];
    let mut t = NetworkConnector::new(timeouts)
        .open(host, &fleet.secret)
        .unwrap();
    let cmd = hive::remote::Command::Cmd("hostname".into());
    let out = t.exec(&cmd, timeouts.operation).await.unwrap();
    assert_eq!(out.stdout, "DOWN01\r\n");
    let cmd = hive::remote::Command::Cmd("shutdown /r /t 1".into());
    assert_eq!(t.exec(&cmd, timeouts.operation).await.unwrap().exit_code, 0);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let cmd = hive::remote::Command::Cmd("hostname".into());
    let err = t.exec(&cmd, timeouts.operation).await.unwrap_err();
    assert!(matches!(err, RemoteError::Unreachable(_)), "{err:?}");
    let err = t.exec(&cmd, timeouts.operation).await.unwrap_err();
    assert!(matches!(err, RemoteError::Unreachable(_)), "{err:?}");
}
