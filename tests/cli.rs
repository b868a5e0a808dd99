//! The command-line contract a script relies on: bad values are refused before anything runs
//! (exit 2, the message naming the flag), errors outside a run exit 1, a scan with hosts it could
//! not reach exits 4 (and records it in the repository), and `--help` documents the exit codes.
//! No servers needed.

use std::path::PathBuf;
use std::process::{Command, Output};

fn hive(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hive"))
        .args(args)
        .env_remove("HIVE_REPO")
        .env_remove("HIVE_INVENTORY")
        .env_remove("HIVE_CATALOG")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_numbers_are_refused_with_the_flag_named() {
    let work = ["-i", "fleet.toml", "-r", "repo"];
    let cases: &[(&[&str], &str, &str)] = &[
        (&["rollout", "--parallel", "0"], "--parallel", "at least 1"),
        (
            &["deploy", "--parallel=-3"],
            "--parallel",
            "`-3` is not a whole number",
        ),
        (
            &["rollout", "--max-failed", "120%"],
            "--max-failed",
            "more than 100%",
        ),
        (
            &["rollout", "--max-failed-total", "lots"],
            "--max-failed-total",
            "not a host count or a percentage",
        ),
        (
            &["resume", "r1", "--reboot-timeout", "0"],
            "--reboot-timeout",
            "at least 1 s",
        ),
        (
            &["deploy", "--install-timeout", "99999999999999999999"],
            "--install-timeout",
            "not a whole number",
        ),
        (
            &["rollout", "--poll-ms", "5"],
            "--poll-ms",
            "at least 50 ms",
        ),
        (
            &["rollout", "--shutdown-delay", "3600"],
            "--shutdown-delay",
            "at most 600 s",
        ),
    ];
    for (args, flag, why) in cases {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(work);
        let out = hive(&all);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {err}");
        assert!(err.contains(flag) && err.contains(why), "{all:?}: {err}");
    }
    for (args, flag) in [
        (
            &["scan", "-i", "fleet.toml", "--parallel", "0"][..],
            "--parallel",
        ),
        (
            &["scan", "-i", "f", "--host-timeout", "0"],
            "--host-timeout",
        ),
        (&["demo", "--parallel", "0", "--no-faults"], "--parallel"),
        (
            &["catalog", "fetch", "--url", "https://x", "--timeout=0"],
            "--timeout",
        ),
    ] {
        let out = hive(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}

#[test]
fn help_lists_the_exit_codes_and_exits_0() {
    for args in [&["--help"][..], &["rollout", "--help"], &["scan", "--help"]] {
        let out = hive(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        for line in [
            "Exit codes:",
            "  2    usage",
            "  3    ",
            "  4    ",
            "  130  ",
        ] {
            assert!(text.contains(line), "{args:?}: no {line:?} in\n{text}");
        }
    }
}

#[test]
fn an_error_before_a_run_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml").display().to_string();
    let out = hive(&["rollout", "-i", &missing, "-r", "repo"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nope.toml"), "{}", stderr(&out));
}

#[test]
fn a_scan_that_cannot_reach_a_host_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    // A loopback port nobody listens on: connection refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let inventory = dir.path().join("fleet.toml");
    std::fs::write(
        &inventory,
        format!(
            "[defaults]\ntransport = \"winrm-http\"\nuser = \"Administrator\"\n\
             credential = \"env:HIVE_CLI_TEST_PASSWORD\"\n\n\
             [[host]]\nname = \"gone01\"\naddress = \"127.0.0.1\"\nport = {port}\n"
        ),
    )
    .unwrap();
    let catalog = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/catalogs/mssecure-2001-10-04.xml");
    let repo = dir.path().join("repo");
    assert!(
        hive(&["init", &repo.display().to_string()])
            .status
            .success()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_hive"))
        .args(["scan", "-i"])
        .arg(&inventory)
        .arg("-r")
        .arg(&repo)
        .arg("--catalog")
        .arg(&catalog)
        .args(["--host-timeout", "20"])
        .env("HIVE_CLI_TEST_PASSWORD", "not-a-real-one")
        .env_remove("HIVE_REPO")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(4),
        "stdout:\n{text}\nstderr:\n{}",
        stderr(&out)
    );
    assert!(text.contains("gone01"), "{text}");
    // The repository keeps the host's record of this scan.
    let last = std::fs::read_to_string(repo.join("machines/gone01/lastrun.log")).unwrap();
    assert!(last.starts_with("not scanned: "), "{last}");
    let log = std::fs::read_to_string(repo.join("logs/gone01.log")).unwrap();
    assert!(log.contains(" scan: not scanned: "), "{log}");
}
