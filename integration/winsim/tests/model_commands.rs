//! The command interpreter answers like cmd.exe and the real tools, byte for byte where hive parses.

mod model_support;

use model_support::{BASIC, fleet, run, run_stdin, text};
use winsim::host::{CommandRequest, SimHost};
use winsim::probe::{self, ProbeFacts, ProbeRequest, RegistryQuery};

#[tokio::test]
async fn reg_query_value_has_reg_exe_layout() {
    let f = fleet(BASIC);
    let ws = f.host("WS01");
    let out = run(
        &ws,
        r#"reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion" /v UBR"#,
    )
    .await;
    assert_eq!(out.exit_code, 0);
    assert_eq!(
        text(&out.stdout),
        "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\r\n    UBR    REG_DWORD    0x15c8\r\n\r\n"
    );
    let out = run(
        &ws,
        r#"reg query "hklm\software\microsoft\windows nt\currentversion" /v currentbuild"#,
    )
    .await;
    assert_eq!(
        text(&out.stdout),
        "\r\nHKEY_LOCAL_MACHINE\\software\\microsoft\\windows nt\\currentversion\r\n    currentbuild    REG_SZ    17763\r\n\r\n",
        "reg.exe spells out the root and echoes the rest as typed"
    );
}

#[tokio::test]
async fn reg_query_missing_key_or_value_is_error_exit_1() {
    let f = fleet(BASIC);
    let w2k = f.host("W2K01");
    for line in [
        r#"reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q999999""#,
        r#"reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion" /v UBR"#,
    ] {
        let out = run(&w2k, line).await;
        assert_eq!(out.exit_code, 1, "{line}");
        assert!(out.stdout.is_empty());
        assert_eq!(
            text(&out.stderr),
            "ERROR: The system was unable to find the specified registry key or value.\r\n"
        );
    }
    let out = run(&w2k, r#"reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300972" /v Installed"#).await;
    assert_eq!(out.exit_code, 0);
    assert!(text(&out.stdout).contains("    Installed    REG_DWORD    0x1\r\n"));
}

#[tokio::test]
async fn reg_query_key_lists_values_then_subkeys() {
    let f = fleet(BASIC);
    let w2k = f.host("W2K01");
    let out = run(
        &w2k,
        r#"reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix""#,
    )
    .await;
    assert_eq!(out.exit_code, 0);
    assert_eq!(
        text(&out.stdout),
        "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Hotfix\\Q299956\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Hotfix\\Q300972\r\n"
    );
    let out = run(
        &w2k,
        r#"reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion""#,
    )
    .await;
    let s = text(&out.stdout);
    assert!(s.starts_with("\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\r\n    ProductName    REG_SZ    Microsoft Windows 2000\r\n"), "{s}");
    assert!(s.contains("    CSDVersion    REG_SZ    Service Pack 1\r\n"));
    assert!(s.contains("\r\n\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Hotfix\r\n"), "{s}");
    let out = run(
        &w2k,
        r#"reg query "hklm\software\microsoft\windows nt\currentversion\hotfix" /s"#,
    )
    .await;
    let k = "HKEY_LOCAL_MACHINE\\software\\microsoft\\windows nt\\currentversion\\hotfix";
    assert_eq!(
        text(&out.stdout),
        format!(
            "\r\n{k}\r\n\r\n{k}\\Q299956\r\n    Installed    REG_DWORD    0x1\r\n\r\n{k}\\Q300972\r\n    Installed    REG_DWORD    0x1\r\n\r\n"
        )
    );
    let out = run(&w2k, "reg add HKLM\\x /f").await;
    assert_ne!(
        out.exit_code, 0,
        "unsimulated reg verbs must not succeed silently"
    );
}

#[tokio::test]
async fn unknown_commands_answer_as_cmd_exe() {
    let f = fleet(BASIC);
    let ws = f.host("WS01");
    let out = run(&ws, "frobnicate.exe /x").await;
    assert_eq!(out.exit_code, 9009);
    assert_eq!(
        text(&out.stderr),
        "'frobnicate.exe' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
    );
    // pywinrm style: command plus separate arguments.
    let out = ws
        .run(CommandRequest {
            command: "frobnicate".into(),
            arguments: vec!["/fo".into(), "csv".into()],
            ..Default::default()
        })
        .await;
    assert_eq!(out.exit_code, 9009);
    // W2K has no PowerShell.
    let w2k = f.host("W2K01");
    let out = run(&w2k, "powershell.exe -NoProfile -Command Get-Date").await;
    assert_eq!(out.exit_code, 9009);
    assert!(text(&out.stderr).starts_with("'powershell.exe' is not recognized"));
    // Without the cmd shell the process simply cannot be created.
    let out = ws
        .run(CommandRequest {
            command: "nope".into(),
            skip_cmd_shell: true,
            ..Default::default()
        })
        .await;
    assert_eq!(out.exit_code, 0x8007_0002);
}

#[tokio::test]
async fn hostname_ipconfig_wmic_net_and_cmd_wrapping() {
    let f = fleet(BASIC);
    let ws = f.host("WS01");
    assert_eq!(text(&run(&ws, "hostname").await.stdout), "WS01\r\n");
    assert_eq!(
        text(&run(&ws, r#"cmd /c "hostname""#).await.stdout),
        "WS01\r\n"
    );
    assert_eq!(
        text(&run(&ws, "cmd.exe /c hostname && echo done").await.stdout),
        "WS01\r\ndone\r\n"
    );
    let out = run(&ws, "cmd /c nothere || echo fallback").await;
    assert_eq!(text(&out.stdout), "fallback\r\n");
    assert_eq!(out.exit_code, 0);
    let ip = text(&run(&ws, "ipconfig").await.stdout);
    assert!(ip.starts_with("\r\nWindows IP Configuration\r\n"));
    assert!(
        ip.contains("   IPv4 Address. . . . . . . . . . . : 127.0.1.1\r\n"),
        "{ip}"
    );
    let boot = text(&run(&ws, "wmic os get lastbootuptime").await.stdout);
    let mut lines = boot.split("\r\r\n");
    assert_eq!(lines.next().unwrap().trim_end(), "LastBootUpTime");
    let value = lines.next().unwrap().trim_end();
    assert_eq!(value.len(), 25, "{value}");
    assert!(value.ends_with("+000"));
    let w2k = f.host("W2K01");
    let stats = text(&run(&w2k, "net statistics server").await.stdout);
    // Windows 2000 has neither wmic (XP on) nor certutil -hashfile (2003 on).
    let out = run(&w2k, "wmic os get lastbootuptime").await;
    assert!(text(&out.stderr).starts_with("'wmic' is not recognized"));
    let out = run(&w2k, r"certutil -hashfile C:\Windows\system32oo.dll").await;
    assert_eq!(out.exit_code, 0x8007_0057);
    assert!(stats.contains("Statistics since "), "{stats}");
    assert_eq!(run(&ws, "cmd /c exit /b 7").await.exit_code, 7);
    let out = run(&ws, "hostname > C:\\out.txt").await;
    assert_eq!(
        out.exit_code, 1,
        "redirection to files is refused, not faked"
    );
}

#[tokio::test]
async fn schtasks_and_service_creation_are_refused_and_logged() {
    let f = fleet(BASIC);
    let ws = f.host("WS01");
    let out = run(
        &ws,
        r#"schtasks /create /tn hive /tr "C:\x.exe" /sc once /st 00:00"#,
    )
    .await;
    assert_eq!(out.exit_code, 1);
    let out = run(&ws, r#"sc create hive binPath= "C:\x.exe""#).await;
    assert_eq!(out.exit_code, 5);
    let log = ws.command_log();
    assert_eq!(log.len(), 2);
    assert!(log[0].command_line.starts_with("schtasks /create"));
    assert_eq!(log[1].exit_code, Some(5));
}

#[tokio::test]
async fn file_hashes_match_the_real_file() {
    let f = fleet(BASIC);
    let ws = f.host("WS01");
    let bytes = std::fs::read(ws.host_path(r"C:\Windows\System32\ntoskrnl.exe")).unwrap();
    use sha2::Digest;
    let want: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let script =
        r"(Get-FileHash -LiteralPath 'C:\Windows\System32\ntoskrnl.exe' -Algorithm SHA256).Hash";
    let line = format!(
        "powershell.exe -NoProfile -NonInteractive -EncodedCommand {}",
        probe::encode_command(script)
    );
    let out = run(&ws, &line).await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{want}\r\n"));
    let out = run_stdin(
        &ws,
        "powershell.exe -NoProfile -",
        "Get-FileHash C:\\windows\\system32\\NTOSKRNL.EXE | Select-Object -ExpandProperty Hash\n",
    )
    .await;
    assert_eq!(text(&out.stdout), format!("{want}\r\n"));
    let table = text(
        &run_stdin(
            &ws,
            "powershell -",
            "Get-FileHash -Path C:\\Windows\\System32\\ntoskrnl.exe",
        )
        .await
        .stdout,
    );
    assert!(
        table.contains(&format!(
            "SHA256          {want}       C:\\Windows\\System32\\ntoskrnl.exe"
        )),
        "{table}"
    );
    let out = run(
        &ws,
        r"certutil -hashfile C:\Windows\System32\ntoskrnl.exe SHA256",
    )
    .await;
    assert_eq!(out.exit_code, 0);
    assert_eq!(
        text(&out.stdout),
        format!(
            "SHA256 hash of C:\\Windows\\System32\\ntoskrnl.exe:\r\n{}\r\nCertUtil: -hashfile command completed successfully.\r\n",
            want.to_ascii_lowercase()
        )
    );
    let out = run(&ws, r"certutil -hashfile C:\nope.bin").await;
    assert_eq!(out.exit_code, 0x8007_0002);
    let out = run_stdin(
        &ws,
        "powershell -",
        "Get-FileHash -LiteralPath C:\\nope.bin",
    )
    .await;
    assert_eq!(out.exit_code, 1);
    assert!(text(&out.stderr).contains("Cannot find path 'C:\\nope.bin'"));
    let out = run_stdin(&ws, "powershell -", "Invoke-Something -Now").await;
    assert_eq!(out.exit_code, 1);
    assert!(text(&out.stderr).contains("The term 'Invoke-Something' is not recognized"));
}

#[tokio::test]
async fn the_probe_answers_with_the_model_facts() {
    let f = fleet(BASIC);
    let ws = f.host("WS01");
    let req = ProbeRequest {
        registry: vec![
            RegistryQuery {
                key: r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion".into(),
                value: "CurrentBuild".into(),
            },
            RegistryQuery {
                key: r"HKLM\SOFTWARE\Nope".into(),
                value: "X".into(),
            },
            RegistryQuery {
                key: r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix".into(),
                value: String::new(),
            },
            RegistryQuery {
                key: r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q1".into(),
                value: String::new(),
            },
        ],
        files: vec![
            r"%SystemRoot%\System32\ntoskrnl.exe".into(),
            r"C:\Windows\System32\missing.dll".into(),
        ],
    };
    // Encoded, without the cmd shell (the encoded probe is longer than cmd.exe's 8191 limit).
    let args = probe::encoded_arguments(&req);
    let via_cmd = run(&ws, &format!("powershell.exe {}", args.join(" "))).await;
    assert_eq!(via_cmd.exit_code, 1);
    assert_eq!(text(&via_cmd.stderr), "The command line is too long.\r\n");
    let out = ws
        .run(CommandRequest {
            command: "powershell.exe".into(),
            arguments: args,
            skip_cmd_shell: true,
            ..Default::default()
        })
        .await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    let facts: ProbeFacts = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(facts.schema, probe::PROBE_SCHEMA);
    assert_eq!(facts.computer_name, "WS01");
    assert_eq!(
        (facts.major, facts.minor, facts.build, facts.ubr),
        (10, 0, 17763, 5576)
    );
    assert_eq!(facts.edition_id, "ServerDatacenter");
    assert_eq!(facts.installed_kbs, vec!["KB5035849"]);
    assert!(!facts.pending_reboot.any());
    assert!(facts.last_boot_time.ends_with('Z'));
    assert_eq!(facts.registry[0].data, Some(serde_json::json!("17763")));
    assert!(!facts.registry[1].found);
    assert!(
        facts.registry[2].found,
        "an empty value name asks whether the key exists"
    );
    assert_eq!(facts.registry[2].data, None, "no default value is set");
    assert!(!facts.registry[3].found);
    assert_eq!(
        facts.files[0].file_version.as_deref(),
        Some("10.0.17763.5576")
    );
    assert!(!facts.files[1].exists);
    // The same probe on stdin gives the same facts.
    let out = run_stdin(
        &ws,
        "powershell.exe -NoProfile -NonInteractive -",
        &probe::script(&req),
    )
    .await;
    let mut again: ProbeFacts = serde_json::from_slice(&out.stdout).unwrap();
    // The host's clock reads on: the second answer may be a millisecond later.
    assert!(!again.utc_now.is_empty());
    again.utc_now = facts.utc_now.clone();
    assert_eq!(again, facts);
    let log = ws.command_log();
    assert!(
        log.last()
            .unwrap()
            .script
            .as_deref()
            .unwrap()
            .starts_with(probe::PROBE_MARKER)
    );
}

#[tokio::test]
async fn shutdown_twice_is_1190_and_abort_works() {
    let f = fleet(BASIC);
    let ws = f.host("WS01");
    assert_eq!(run(&ws, "shutdown /r /t 600").await.exit_code, 0);
    let out = run(&ws, "shutdown /r /t 600").await;
    assert_eq!(out.exit_code, 1190);
    assert_eq!(
        text(&out.stderr),
        "A system shutdown has already been scheduled.(1190)\r\n"
    );
    assert_eq!(run(&ws, "shutdown /a").await.exit_code, 0);
    assert_eq!(run(&ws, "shutdown /a").await.exit_code, 1116);
    assert!(ws.accepting());
}
