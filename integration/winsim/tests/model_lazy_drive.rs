//! A fleet whose drives are written on first use answers the probe exactly as one whose drives
//! were written at start, without touching the disk, and lays a drive out once something needs a
//! real path on it.

mod model_support;

use std::path::Path;

use model_support::{BASIC, run_stdin};
use winsim::probe::{ProbeFacts, ProbeRequest};
use winsim::{DriveSetup, Fleet};

const HIDDEN: &str = r#"
[[host]]
name = "HID01"
address = "127.0.1.3"
files = [{ path = 'C:\Windows\System32\secret.dll', version = "10.0.1.2", hidden = true }]
"#;

fn request() -> ProbeRequest {
    ProbeRequest {
        registry: Vec::new(),
        files: vec![
            r"%SystemRoot%\SYSTEM32\NTOSKRNL.EXE".into(),
            r"C:\Windows\system32\foo.dll".into(),
            r"C:\Windows\System32\secret.dll".into(),
            r"C:\Windows\System32".into(),
            r"C:\Windows\System32\absent.dll".into(),
        ],
    }
}

async fn probe(fleet: &Fleet, host: &str) -> ProbeFacts {
    let h = fleet.host(host).expect("host");
    let script = winsim::probe::script(&request());
    let out = run_stdin(h, "powershell.exe -NoProfile -NonInteractive -", &script).await;
    assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let mut facts: ProbeFacts = serde_json::from_slice(&out.stdout).expect("probe JSON");
    // The clock moves between the two runs; everything else must be equal.
    facts.utc_now.clear();
    facts.last_boot_time.clear();
    facts
}

#[tokio::test]
async fn the_probe_reads_an_untouched_drive_from_memory_with_the_same_answer() {
    let text = format!("{BASIC}{HIDDEN}");
    let configs = winsim::fleet::parse(&text, Path::new("test.toml")).unwrap();
    let eager_dir = tempfile::tempdir().unwrap();
    let lazy_dir = tempfile::tempdir().unwrap();
    let eager = Fleet::start(&configs, eager_dir.path()).unwrap();
    let lazy = Fleet::start_with(&configs, lazy_dir.path(), DriveSetup::OnFirstUse).unwrap();
    assert!(eager_dir.path().join("WS01").is_dir());
    for host in ["WS01", "HID01"] {
        let want = probe(&eager, host).await;
        let got = probe(&lazy, host).await;
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::to_value(&want).unwrap(),
            "{host}"
        );
        assert!(
            !lazy_dir.path().join(host).exists(),
            "{host}: the probe wrote nothing"
        );
    }
    let ws = lazy.host("WS01").unwrap();
    assert_eq!(
        ws.file_version(r"C:\Windows\System32\ntoskrnl.exe")
            .map(|v| v.to_string()),
        Some("10.0.17763.5576".into())
    );
    assert!(!lazy_dir.path().join("WS01").exists());
}

#[tokio::test]
async fn a_real_path_lays_the_drive_out_once() {
    let configs = winsim::fleet::parse(BASIC, Path::new("test.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start_with(&configs, dir.path(), DriveSetup::OnFirstUse).unwrap();
    let ws = fleet.host("WS01").unwrap();
    let kernel = ws.host_path(r"C:\Windows\System32\ntoskrnl.exe");
    assert!(kernel.is_file(), "written on first use");
    assert!(dir.path().join("WS01/Windows/Temp").is_dir());
    // From now on the disk is the truth: a change there is what the host reads.
    std::fs::write(&kernel, b"not a PE image").unwrap();
    assert_eq!(ws.file_version(r"C:\Windows\System32\ntoskrnl.exe"), None);
    assert_eq!(ws.drive_root(), dir.path().join("WS01"));
    assert!(
        !dir.path().join("W2K01").exists(),
        "other hosts stay untouched"
    );
}
