//! What a newcomer met following the README (#22 point 3 and 4): a scan whose credential cannot be
//! read names each host; `-o json` failures also reach stderr with exit 4 and the JSON has the
//! documented shape; completion scripts and the man page come out of the binary; the demo prints
//! its summary once. No servers needed (the demo starts its own simulated hosts).

use std::path::Path;
use std::process::{Command, Output};

fn hive(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hive"));
    c.args(args);
    for k in [
        "HIVE_REPO",
        "HIVE_INVENTORY",
        "HIVE_CATALOG",
        "HIVE_LAB_DIR",
        "HIVE_PASSWORD",
    ] {
        c.env_remove(k);
    }
    c
}

fn run(c: &mut Command) -> (Output, String, String) {
    let out = c.output().expect("hive runs");
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    let se = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, so, se)
}

/// The lab's slice of the 2001 catalog: a real mssecure document.
fn catalog() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/cli/lab/mssecure.xml")
        .display()
        .to_string()
}

#[test]
fn an_unset_password_names_each_host_and_json_failures_reach_stderr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let inv = dir.path().join("fleet.toml");
    let mut t = String::from("[defaults]\ncredential = \"env:HIVE_PASSWORD\"\n");
    for name in ["S25-A", "S25-B", "S25-C"] {
        t.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"127.0.0.1\"\nport = 1\n"
        ));
    }
    std::fs::write(&inv, t).expect("inventory");
    let inv = inv.display().to_string();
    let (out, stdout, stderr) = run(&mut hive(&[
        "scan",
        "-i",
        &inv,
        "--catalog",
        &catalog(),
        "-o",
        "json",
    ]));
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    let hosts = v.as_array().expect("one entry per host");
    assert_eq!(hosts.len(), 3);
    for (entry, name) in hosts.iter().zip(["S25-A", "S25-B", "S25-C"]) {
        assert_eq!(entry["host"], name);
        assert_eq!(entry["status"], "credential", "{entry}");
        assert!(entry["facts"].is_null());
        assert_eq!(entry["verdicts"], serde_json::json!([]));
        let error = entry["error"].as_str().expect("error text");
        assert_eq!(
            error,
            format!(
                "credential env:HIVE_PASSWORD for host `{name}`: the environment variable is not set"
            )
        );
        assert!(entry.get("result").is_none());
        // On stderr too, once per host, the host named once.
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(name)).collect();
        assert_eq!(lines, [format!("not scanned: {error}")], "{stderr}");
    }
}

#[test]
fn completions_for_every_shell_and_a_man_page() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let (out, stdout, stderr) = run(&mut hive(&["completions", shell]));
        assert!(out.status.success(), "{shell}: {stderr}");
        for word in ["rollout", "resume", "inventory", "max-failed", "lab"] {
            assert!(stdout.contains(word), "{shell} script lacks {word}");
        }
    }
    let (out, _, stderr) = run(&mut hive(&["completions", "tcsh"]));
    assert_eq!(out.status.code(), Some(2), "{stderr}");

    let (out, man, stderr) = run(&mut hive(&["man"]));
    assert!(out.status.success(), "{stderr}");
    assert!(man.contains(".TH hive 1"), "{}", &man[..200.min(man.len())]);
    for section in ["HIVE SCAN", "HIVE ROLLOUT", "HIVE RESUME", "HIVE LAB"] {
        assert!(man.contains(&format!(".SH \"{section}\"")), "no {section}");
    }
    assert!(man.contains("\\-\\-max\\-failed"));
    assert!(
        !man.contains("HIVE LAB SERVE"),
        "hidden commands stay hidden"
    );
    // The page renders: man's own formatter reads it without complaint where it is installed.
    if Path::new("/usr/bin/groff").exists() {
        let dir = tempfile::tempdir().expect("temp dir");
        let page = dir.path().join("hive.1");
        std::fs::write(&page, &man).expect("write the page");
        let out = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .output()
            .expect("groff runs");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_demo_prints_its_summary_once() {
    let (out, stdout, stderr) = run(&mut hive(&[
        "demo",
        "--hosts",
        "3",
        "--canaries",
        "1",
        "--no-faults",
        "--reboot-ms",
        "200",
    ]));
    assert!(out.status.success(), "{stderr}\n{stdout}");
    // Piped: progress is NDJSON, and the summary is its `summary` record, once.
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("\"record\":\"summary\""))
            .count(),
        1,
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("4 hosts: 4 patched").count(),
        1,
        "the recap once:\n{stdout}"
    );
}
