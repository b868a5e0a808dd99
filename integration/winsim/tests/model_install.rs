//! Installers, exit codes, reboots and the Qchain hazard, driven through `SimHost::run`.

mod model_support;

use std::time::Duration;

use model_support::{fleet, run, text};
use winsim::WinHost;
use winsim::host::SimHost;
use winsim::installer::Package;
use winsim::pe::Version;
use winsim::probe::{self, ProbeFacts, ProbeRequest};

const FLEET: &str = r#"
[template.w2k]
product = "Microsoft Windows 2000"
csd_version = "Service Pack 1"
version = "5.0.2195"
files = [{ path = 'C:\Windows\system32\foo.dll', version = "5.0.2195.1620" }]
reboot = { downtime_ms = 150 }

[template.ws2019]
version = "10.0.17763"
edition = "ServerDatacenter"
ubr = 5329
reboot = { downtime_ms = 150 }

[[group]]
name = "W2K-{n:02}"
count = 4
address = "127.0.2.1"
template = "w2k"

[[host]]
name = "WS01"
address = "127.0.3.1"
template = "ws2019"

[[host]]
name = "SLOWBOOT"
address = "127.0.3.2"
template = "ws2019"
reboot = { downtime_ms = 100, configuring_ms = 400 }
"#;

const FOO: &str = r"C:\Windows\system32\foo.dll";

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

/// Puts a package on the host's disk (as hive would over SMB) and returns its Windows path.
fn stage(host: &WinHost, name: &str, p: &Package) -> String {
    let win = format!(r"C:\Windows\Temp\hive\{name}");
    p.write_to(&host.host_path(&win)).unwrap();
    win
}

/// Waits (tokio time) until the host has rebooted `n` times and accepts connections again.
async fn wait_rebooted(host: &WinHost, n: u32) {
    for _ in 0..200 {
        if host.accepting() && host.reboot_count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} did not come back from reboot {n}", host.name());
}

/// Reads the real file's version with pelite, as hive reads a file pulled over SMB.
fn pe_version(host: &WinHost, path: &str) -> Version {
    let bytes = std::fs::read(host.host_path(path)).unwrap();
    let file = pelite::PeFile::from_bytes(&bytes).unwrap();
    let fixed = *file
        .resources()
        .unwrap()
        .version_info()
        .unwrap()
        .fixed()
        .unwrap();
    let f = fixed.dwFileVersion;
    Version::new(f.Major, f.Minor, f.Patch, f.Build)
}

#[tokio::test]
async fn every_exit_code_means_what_windows_means() {
    let f = fleet(FLEET);
    let host = f.host("W2K-01");
    // (exit code, whether the package's changes land)
    let cases = [
        (0u32, true),
        (3010, true),
        (0x0024_0005, true),
        (0x0024_0006, false), // already installed
        (0x8024_0017, false), // not applicable
        (1603, false),        // fatal
        (1618, false),        // another install running
    ];
    for (i, (code, lands)) in cases.into_iter().enumerate() {
        let id = format!("Q90000{i}");
        let p = Package::hotfix(&id).hotfix_key().exit_code(code);
        let path = stage(&host, &format!("{id}.exe"), &p);
        let out = run(&host, &format!("{path} -z -m -q")).await;
        assert_eq!(out.exit_code, code, "{id}");
        let key = format!(r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\{id}");
        assert_eq!(
            host.registry_value(&key, "Installed").is_some(),
            lands,
            "{id} exit {code}"
        );
        assert_eq!(host.installed_kbs().contains(&id), lands);
    }
    // 1641: installed and the package restarts the machine itself.
    let p = Package::hotfix("Q911641").exit_code(1641);
    let path = stage(&host, "Q911641.exe", &p);
    assert_eq!(
        run(&host, &format!("{path} /quiet /norestart"))
            .await
            .exit_code,
        1641
    );
    assert!(
        host.accepting(),
        "the exit code reaches the client before the restart"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(!host.accepting(), "1641 = reboot initiated");
    wait_rebooted(&host, 1).await;
    assert!(host.installed_kbs().contains(&"Q911641".to_string()));
}

#[tokio::test]
async fn busy_then_ok_and_concurrent_installs_get_1618() {
    let f = fleet(FLEET);
    let host = f.host("W2K-02");
    let p = Package::hotfix("Q1618").exit_codes(&[1618, 0]);
    let path = stage(&host, "Q1618.exe", &p);
    assert_eq!(run(&host, &format!("{path} -q -z")).await.exit_code, 1618);
    assert_eq!(run(&host, &format!("{path} -q -z")).await.exit_code, 0);

    let slow = stage(
        &host,
        "slow.exe",
        &Package::hotfix("QSLOW").duration(Duration::from_millis(300)),
    );
    let other = stage(&host, "other.exe", &Package::hotfix("QOTHER"));
    let slow_line = format!("{slow} -q -z");
    let first = run(&host, &slow_line);
    let second = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        run(&host, &format!("{other} -q -z")).await
    };
    let (a, b) = tokio::join!(first, second);
    assert_eq!((a.exit_code, b.exit_code), (0, 1618));
}

#[tokio::test]
async fn a_hung_installer_is_killed_when_its_future_is_dropped() {
    let f = fleet(FLEET);
    let host = f.host("W2K-03");
    let hung = stage(&host, "hung.exe", &Package::hotfix("QHUNG").hangs());
    let r = tokio::time::timeout(
        Duration::from_millis(200),
        run(&host, &format!("{hung} -q -z")),
    )
    .await;
    assert!(r.is_err(), "a hung installer never returns");
    // Without a quiet switch a package waits for a click that never comes.
    let ui = stage(&host, "ui.exe", &Package::hotfix("QUI"));
    let r = tokio::time::timeout(Duration::from_millis(100), run(&host, &format!("{ui} -z"))).await;
    assert!(r.is_err());
    let log = host.command_log();
    assert_eq!(log.len(), 2);
    assert!(
        log.iter().all(|r| r.killed && r.exit_code.is_none()),
        "{log:?}"
    );
    // Killing released the "installation running" flag.
    let ok = stage(&host, "ok.exe", &Package::hotfix("QOK"));
    assert_eq!(run(&host, &format!("{ok} -q -z")).await.exit_code, 0);
}

#[tokio::test]
async fn an_installer_that_ignores_z_reboots_the_host() {
    let f = fleet(FLEET);
    let host = f.host("W2K-04");
    let honours = stage(&host, "a.exe", &Package::hotfix("QA").reboot_required(true));
    assert_eq!(run(&host, &format!("{honours} -z -q")).await.exit_code, 0);
    assert!(host.accepting());
    let rogue = stage(
        &host,
        "b.exe",
        &Package::hotfix("QB")
            .reboot_required(true)
            .honours_no_reboot(false),
    );
    let before = host.boot_time();
    assert_eq!(run(&host, &format!("{rogue} -z -q")).await.exit_code, 0);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(!host.accepting(), "went down despite -z");
    wait_rebooted(&host, 1).await;
    assert!(host.boot_time() > before);
}

/// Installs two hotfixes that both replace the in-use foo.dll, the later one carrying an OLDER
/// build, then reboots; returns the version that landed.
async fn chained_install(host: &WinHost, use_qchain: bool) -> Version {
    chained_install_with(host, use_qchain, false).await
}

async fn chained_install_with(host: &WinHost, use_qchain: bool, builtin: bool) -> Version {
    let mut newer = Package::hotfix("Q300001")
        .file_in_use(FOO, v("5.0.2195.4000"))
        .reboot_required(true)
        .hotfix_key();
    let mut older = Package::hotfix("Q300002")
        .file_in_use(FOO, v("5.0.2195.3800"))
        .reboot_required(true)
        .hotfix_key();
    if builtin {
        newer = newer.chains_itself();
        older = older.chains_itself();
    }
    let a = stage(host, "Q300001_W2K_SP3_x86_en.exe", &newer);
    let b = stage(host, "Q300002_W2K_SP3_x86_en.exe", &older);
    assert_eq!(run(host, &format!("{a} -z -m -q")).await.exit_code, 0);
    assert_eq!(run(host, &format!("{b} -z -m -q")).await.exit_code, 0);
    assert_eq!(
        pe_version(host, FOO),
        v("5.0.2195.1620"),
        "in use: nothing replaced before the reboot"
    );
    let pending = text(&run(host, r#"reg query "HKLM\SYSTEM\CurrentControlSet\Control\Session Manager" /v PendingFileRenameOperations"#).await.stdout);
    assert!(pending.contains("REG_MULTI_SZ"), "{pending}");
    if use_qchain {
        Package::qchain()
            .write_to(&host.host_path(r"C:\Windows\Temp\hive\qchain.exe"))
            .unwrap();
        let out = run(host, r"C:\Windows\Temp\hive\qchain.exe").await;
        assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    }
    let reboots = host.reboot_count();
    assert_eq!(run(host, "shutdown /r /t 0").await.exit_code, 0);
    wait_rebooted(host, reboots + 1).await;
    assert!(
        host.registry_value(
            r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager",
            "PendingFileRenameOperations"
        )
        .is_none()
    );
    pe_version(host, FOO)
}

#[tokio::test]
async fn the_qchain_hazard_and_its_fix() {
    let f = fleet(FLEET);
    let without = chained_install(&f.host("W2K-01"), false).await;
    assert_eq!(
        without,
        v("5.0.2195.3800"),
        "without qchain the LAST queued (older) file wins"
    );
    let with = chained_install(&f.host("W2K-02"), true).await;
    assert_eq!(with, v("5.0.2195.4000"), "qchain keeps the highest version");
    let builtin = chained_install_with(&f.host("W2K-03"), false, true).await;
    assert_eq!(
        builtin,
        v("5.0.2195.4000"),
        "Update.exe with chaining built in needs no qchain"
    );
    // Both hotfix keys claim "installed" either way: only the file version tells the truth.
    let h = f.host("W2K-01");
    assert!(
        h.registry_value(
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300001",
            "Installed"
        )
        .is_some()
    );
}

#[tokio::test]
async fn msu_goes_through_expand_and_dism_and_lands_after_reboot() {
    let f = fleet(FLEET);
    let host = f.host("WS01");
    let ssu = Package::cab_file("KB5035849");
    let lcu = Package::cab_file("KB5035845")
        .reboot_required(true)
        .sets_build(17763, 5576)
        .requires("KB5035849");
    let msu = Package::msu("KB5035845")
        .cab("SSU-17763.5568-x64.cab", ssu)
        .cab("Windows10.0-KB5035845-x64.cab", lcu);
    let path = stage(&host, "windows10.0-kb5035845-x64.msu", &msu);
    assert_eq!(
        run(&host, &format!("wusa.exe {path} /quiet /norestart"))
            .await
            .exit_code,
        5,
        "wusa over WinRM: access denied"
    );
    let out = run(
        &host,
        &format!(r"expand -F:* {path} C:\Windows\Temp\hive\kb5035845"),
    )
    .await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(
        r"Adding C:\Windows\Temp\hive\kb5035845\Windows10.0-KB5035845-x64.cab to Extraction Queue"
    ));
    let dism = |cab: &str| {
        format!(
            r"dism /online /add-package /packagepath:C:\Windows\Temp\hive\kb5035845\{cab} /quiet /norestart"
        )
    };
    // Out of order: the cumulative update needs its servicing stack first.
    assert_eq!(
        run(&host, &dism("Windows10.0-KB5035845-x64.cab"))
            .await
            .exit_code,
        0x800F_0823
    );
    assert_eq!(
        run(&host, &dism("SSU-17763.5568-x64.cab")).await.exit_code,
        0
    );
    let out = run(&host, &dism("Windows10.0-KB5035845-x64.cab")).await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stdout));
    let facts = probe_facts(&host).await;
    assert!(facts.pending_reboot.cbs_reboot_pending);
    assert_eq!(facts.ubr, 5329, "the new build only shows after the reboot");
    let before = facts.last_boot_time.clone();
    assert_eq!(run(&host, "shutdown /r /t 0").await.exit_code, 0);
    wait_rebooted(&host, 1).await;
    let facts = probe_facts(&host).await;
    assert_eq!((facts.build, facts.ubr), (17763, 5576));
    assert!(!facts.pending_reboot.any());
    assert_ne!(facts.last_boot_time, before);
    assert_eq!(facts.installed_kbs, vec!["KB5035845", "KB5035849"]);
}

async fn probe_facts(host: &WinHost) -> ProbeFacts {
    let out = model_support::run_stdin(
        host,
        "powershell.exe -NoProfile -NonInteractive -",
        &probe::script(&ProbeRequest::default()),
    )
    .await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn msiexec_installs_quietly_and_writes_its_log() {
    let f = fleet(FLEET);
    let host = f.host("WS01");
    let free = host.free_disk_bytes();
    let msi = stage(
        &host,
        "agent.msi",
        &Package::msi("KB4000001")
            .exit_code(3010)
            .reboot_required(true)
            .disk_bytes(50 << 20),
    );
    let out = run(
        &host,
        &format!(r"msiexec /i {msi} /qn /norestart /L*V C:\Windows\Temp\hive\agent.log"),
    )
    .await;
    assert_eq!(out.exit_code, 3010);
    assert_eq!(
        host.free_disk_bytes(),
        free - (50 << 20),
        "the install used disk"
    );
    let log = std::fs::read(host.host_path(r"C:\Windows\Temp\hive\agent.log")).unwrap();
    assert_eq!(&log[..2], &[0xFF, 0xFE], "msiexec logs are UTF-16LE");
    assert!(host.accepting());
    assert_eq!(
        run(&host, r"msiexec /i C:\nope.msi /qn").await.exit_code,
        1619
    );
}

#[tokio::test]
async fn a_slow_boot_is_up_but_still_configuring_updates() {
    let f = fleet(FLEET);
    let host = f.host("SLOWBOOT");
    let cab = stage(
        &host,
        "x.cab",
        &Package::cab_file("KB1").reboot_required(true),
    );
    assert_eq!(
        run(
            &host,
            &format!("dism /online /add-package /packagepath:{cab} /quiet /norestart")
        )
        .await
        .exit_code,
        0
    );
    assert_eq!(run(&host, "shutdown /r /t 0").await.exit_code, 0);
    wait_rebooted(&host, 1).await;
    assert!(host.configuring());
    let facts = probe_facts(&host).await;
    assert!(
        facts.pending_reboot.cbs_reboot_pending,
        "servicing still busy"
    );
    let next = stage(&host, "y.cab", &Package::cab_file("KB2"));
    assert_eq!(
        run(
            &host,
            &format!("dism /online /add-package /packagepath:{next} /quiet /norestart")
        )
        .await
        .exit_code,
        1618
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(!host.configuring());
    assert!(!probe_facts(&host).await.pending_reboot.any());
    assert_eq!(
        run(
            &host,
            &format!("dism /online /add-package /packagepath:{next} /quiet /norestart")
        )
        .await
        .exit_code,
        0
    );
}

#[tokio::test]
async fn powershell_runs_an_installer_and_passes_its_exit_code_on() {
    let f = fleet(FLEET);
    let host = f.host("WS01");
    let path = stage(&host, "kb1.exe", &Package::hotfix("KB1").exit_code(3010));
    let script = format!("& '{path}' /quiet /norestart\nexit $LASTEXITCODE\n");
    let out = model_support::run_stdin(
        &host,
        "powershell.exe -NoProfile -NonInteractive -",
        &script,
    )
    .await;
    assert_eq!(out.exit_code, 3010, "{}", text(&out.stderr));
    assert!(host.installed_kbs().contains(&"KB1".to_string()));
    let log = host.command_log();
    assert_eq!(
        log.len(),
        2,
        "the powershell command and the installer it started"
    );
    assert_eq!(*log[1].command_line, *format!("{path} /quiet /norestart"));
    assert_eq!(log[1].exit_code, Some(3010));
    let out = model_support::run_stdin(&host, "powershell.exe -", "Restart-Computer -Force").await;
    assert_eq!(out.exit_code, 0);
    assert!(!host.accepting());
    wait_rebooted(&host, 1).await;
}

/// With tokio's paused clock a ten-minute reboot takes no real time, and the boot time the host
/// reports moves with the simulated clock.
#[tokio::test(start_paused = true)]
async fn reboot_timing_follows_tokio_time() {
    let f = fleet(
        r#"
[[host]]
name = "SLOW"
address = "127.0.7.1"
version = "10.0.17763"
reboot = { downtime_ms = 600000 }
"#,
    );
    let host = f.host("SLOW");
    let before = host.boot_time();
    let real = std::time::Instant::now();
    assert_eq!(run(&host, "shutdown /r /t 60 /f").await.exit_code, 0);
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert!(host.accepting(), "still up during the /t grace period");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!host.accepting(), "down after 60 s");
    tokio::time::sleep(Duration::from_secs(590)).await;
    assert!(
        !host.accepting(),
        "still down before the 10 min downtime is over"
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(host.accepting());
    assert_eq!(host.reboot_count(), 1);
    let wall = text(&run(&host, "wmic os get lastbootuptime /value").await.stdout);
    assert!(wall.contains("LastBootUpTime=2"), "{wall:?}");
    let booted_after = host.boot_time().duration_since(before).unwrap();
    // Uptime before (default 168 h) + 60 s grace + 600 s down, give or take the test's own time.
    assert!(
        booted_after >= Duration::from_secs(168 * 3600 + 660),
        "{booted_after:?}"
    );
    assert!(
        booted_after < Duration::from_secs(168 * 3600 + 700),
        "{booted_after:?}"
    );
    assert!(real.elapsed() < Duration::from_secs(5), "no real waiting");
}
