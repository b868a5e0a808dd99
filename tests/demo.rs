//! `hive demo` tells an honest story: by default a fleet that exists today (Server 2016/2019/2022,
//! a real MSRC CVRF month, .msu through DISM, one reboot per host); with `--legacy` the seed era's
//! job on Server 2003 SP2 and XP SP3 with WinRM 1.1 (Update.exe packages, cmd.exe only, a catalog
//! in the mssecure.xml schema read by the importer admins use). Each run is small
//! (a few hosts, no faults) and kept, so the test can read what the hosts were asked to do.
#![cfg(feature = "demo")]

use std::path::PathBuf;
use std::process::Command;

/// Runs the demo with `args` plus `--keep --no-faults`; returns its human-readable output (the
/// NDJSON event lines left out) and the kept work folder.
fn demo(args: &[&str]) -> (String, PathBuf) {
    let out = Command::new(env!("CARGO_BIN_EXE_hive"))
        .arg("demo")
        .args(args)
        .args(["--keep", "--no-faults", "--reboot-ms", "300"])
        .env("HIVE_DEMO_PASSWORD", "Demo-test-Passw0rd!")
        .output()
        .expect("hive runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Piped, the progress display writes NDJSON: the text lines, and the run's recap from its
    // summary record.
    let text: String = stdout
        .lines()
        .filter_map(|l| {
            if !l.starts_with('{') {
                return Some(format!("{l}\n"));
            }
            let record: serde_json::Value = serde_json::from_str(l).ok()?;
            if record["record"] != "summary" {
                return None;
            }
            Some(format!("{}\n", record["recap"].as_str()?))
        })
        .collect();
    assert!(
        out.status.success(),
        "hive demo {args:?} failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kept = text
        .lines()
        .find_map(|l| l.strip_prefix("kept "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("the demo did not say what it kept:\n{text}"));
    (text, kept)
}

/// The command lines one host received, from the kept `commands.log`.
fn commands_of(kept: &std::path::Path, host: &str) -> Vec<String> {
    let log = std::fs::read_to_string(kept.join("commands.log")).unwrap();
    log.split("== ")
        .find(|block| block.starts_with(&format!("{host}\n")))
        .unwrap_or_else(|| panic!("no commands for {host}"))
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("  script:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_default_demo_patches_server_2016_2019_2022_from_a_real_cvrf_month() {
    let (text, kept) = demo(&["--hosts", "3", "--canaries", "3"]);
    assert!(text.contains("MSRC CVRF 2024-Mar"), "{text}");
    for kb in ["KB5035855", "KB5035849", "KB5035857"] {
        assert!(
            text.contains(&format!("Hotfixes  {kb}: missing on 2 hosts")),
            "{kb} approved and missing on one canary and one host of its version:\n{text}"
        );
    }
    assert!(text.contains("6 hosts: 6 patched"), "{text}");
    let fleet = std::fs::read_to_string(kept.join("fleet.toml")).unwrap();
    for product in [
        "Windows Server 2016 Datacenter",
        "Windows Server 2019 Datacenter",
        "Windows Server 2022 Datacenter",
    ] {
        assert!(fleet.contains(product), "{product} in the fleet");
    }
    assert!(
        !fleet.contains("Windows 2000"),
        "no Windows 2000 host answers WinRM"
    );
    // CANARY02 is a Server 2019 host: its update went in as .msu → expand → DISM, one reboot.
    let cmds = commands_of(&kept, "CANARY02");
    let has = |needle: &str| cmds.iter().filter(|c| c.contains(needle)).count();
    assert_eq!(has("expand -F:*"), 1, "{cmds:#?}");
    assert_eq!(
        has("windows10.0-kb5035849-x64.msu"),
        2,
        "staged, then expanded: {cmds:#?}"
    );
    assert_eq!(has("/add-package"), 1, "{cmds:#?}");
    assert_eq!(has("wusa"), 0, "wusa fails over WinRM: {cmds:#?}");
    assert_eq!(has("shutdown /r"), 1, "one reboot: {cmds:#?}");
    assert_eq!(has("kb5035855"), 0, "the 2016 update stays off a 2019 host");
    // The update replaced the kernel at the reboot (it was in use), as the build says.
    let kernel = kept.join("drives/CANARY02/Windows/System32/ntoskrnl.exe");
    let version = winsim::pe::read_version(&std::fs::read(&kernel).unwrap()).unwrap();
    assert_eq!(version.file_version.to_string(), "10.0.17763.5576");
    std::fs::remove_dir_all(&kept).unwrap();
}

#[test]
fn the_legacy_demo_patches_server_2003_sp2_and_xp_sp3_with_update_exe_and_one_reboot() {
    // Host 2 of 4 (WEB002) is an XP SP3 workstation, the others Server 2003 SP2 web servers.
    let (text, kept) = demo(&["--legacy", "--hosts", "3", "--canaries", "1"]);
    assert!(text.contains("Windows Server 2003 SP2"), "{text}");
    assert!(text.contains("Windows XP SP3"), "{text}");
    assert!(text.contains("WinRM 1.1"), "{text}");
    assert!(
        text.contains("catalog: legacy-mssecure.xml")
            && text.contains("3 bulletins, 5 patches, 2 products"),
        "the scenario document went through the importer: {text}"
    );
    assert!(
        text.contains("MS08-067 (KB958644): WindowsXP-KB958644-x86-ENU.exe /quiet /norestart"),
        "the importer reads an Update.exe 6.x name as /quiet /norestart: {text}"
    );
    assert!(
        text.contains("Hotfixes  MS08-067: missing on 4 hosts"),
        "{text}"
    );
    assert!(
        text.contains("Hotfixes  MS09-001: missing on 4 hosts"),
        "{text}"
    );
    assert!(
        text.contains("TBE       MS09-048: missing on 3 hosts"),
        "no MS09-048 package exists for XP: {text}"
    );
    assert!(text.contains("4 hosts: 4 patched"), "{text}");
    let fleet = std::fs::read_to_string(kept.join("fleet.toml")).unwrap();
    assert!(fleet.contains("version = \"5.2.3790\""));
    assert!(fleet.contains("csd_version = \"Service Pack 2\""));
    assert!(fleet.contains("product = \"Microsoft Windows XP\""));
    assert!(fleet.contains("csd_version = \"Service Pack 3\""));
    let cmds = commands_of(&kept, "CANARY01");
    let has = |needle: &str| cmds.iter().filter(|c| c.contains(needle)).count();
    assert_eq!(
        has("WindowsServer2003-KB958644-x86-ENU.exe /quiet /norestart"),
        1,
        "{cmds:#?}"
    );
    assert_eq!(
        has("WindowsServer2003-KB958687-x86-ENU.exe /quiet /norestart"),
        1,
        "{cmds:#?}"
    );
    assert_eq!(has("WindowsXP-"), 0, "{cmds:#?}");
    assert_eq!(has("qchain"), 0, "Update.exe chains itself: {cmds:#?}");
    assert_eq!(has("dism"), 0, "{cmds:#?}");
    assert_eq!(has("shutdown /r"), 1, "two updates, one reboot: {cmds:#?}");
    // Nothing PowerShell could run on these hosts ran: every attempt found no powershell.exe.
    for c in cmds.iter().filter(|c| c.contains("powershell")) {
        assert!(c.starts_with("Some(2147942402)"), "{c}");
    }
    // The XP workstation got XP's packages, never Server 2003's, and one reboot.
    let xp = commands_of(&kept, "WEB002");
    let has = |needle: &str| xp.iter().filter(|c| c.contains(needle)).count();
    assert_eq!(
        has("WindowsXP-KB958644-x86-ENU.exe /quiet /norestart"),
        1,
        "{xp:#?}"
    );
    assert_eq!(
        has("WindowsXP-KB958687-x86-ENU.exe /quiet /norestart"),
        1,
        "{xp:#?}"
    );
    assert_eq!(has("WindowsServer2003-"), 0, "{xp:#?}");
    assert_eq!(has("KB967723"), 0, "{xp:#?}");
    assert_eq!(has("shutdown /r"), 1, "{xp:#?}");
    // Both files were in use: chained, they landed at the one reboot, each at its own version.
    for (host, file, want) in [
        ("CANARY01", "system32/netapi32.dll", "5.2.3790.4392"),
        ("CANARY01", "system32/drivers/srv.sys", "5.2.3790.4425"),
        ("WEB002", "system32/netapi32.dll", "5.1.2600.5694"),
        ("WEB002", "system32/drivers/srv.sys", "5.1.2600.5725"),
    ] {
        let path = kept.join("drives").join(host).join("Windows").join(file);
        let version = winsim::pe::read_version(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(version.file_version.to_string(), want, "{host} {file}");
    }
    std::fs::remove_dir_all(&kept).unwrap();
}

/// Every (element, attribute) pair of an XML document, with where the element sits.
fn vocabulary(text: &str) -> std::collections::BTreeSet<(String, String)> {
    fn walk(
        e: &hive::catalog::xml::Element,
        parent: &str,
        out: &mut std::collections::BTreeSet<(String, String)>,
    ) {
        let at = format!("{parent}/{}", e.name);
        out.insert((at.clone(), String::new()));
        for (a, _) in &e.attrs {
            out.insert((at.clone(), a.clone()));
        }
        for c in &e.children {
            walk(c, &at, out);
        }
    }
    let root = hive::catalog::xml::parse("doc", text).unwrap();
    let mut out = std::collections::BTreeSet::new();
    walk(&root, "", &mut out);
    out
}

#[test]
fn the_legacy_scenario_is_an_mssecure_document_an_admin_can_import() {
    let scenario =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/cli/demo/legacy-mssecure.xml");
    let real = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/catalogs/mssecure-2001-10-04.xml");
    // Every element and attribute, where it sits, is one the 2001 catalog has.
    let theirs = vocabulary(&std::fs::read_to_string(&real).unwrap());
    let ours = vocabulary(&std::fs::read_to_string(&scenario).unwrap());
    let foreign: Vec<_> = ours.difference(&theirs).collect();
    assert!(foreign.is_empty(), "not in the 2001 schema: {foreign:#?}");

    // `hive catalog import`, as an admin runs it: no warnings, every patch judged.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("catalog.json");
    let out = Command::new(env!("CARGO_BIN_EXE_hive"))
        .args(["catalog", "import"])
        .arg(&scenario)
        .arg("--cache")
        .arg(&cache)
        .output()
        .expect("hive runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("3 bulletins, 5 patches, 2 products; 0 patches cannot be judged"),
        "{stdout}"
    );
    assert!(!stdout.contains("warning"), "{stdout}");
    let catalog = hive::catalog::store::load(&cache).unwrap();
    let xp = &catalog.patches["MS08-067/WindowsXP-KB958644-x86-ENU.exe"];
    let recipe = xp.installer.as_ref().unwrap();
    assert_eq!(recipe.arguments, ["/quiet", "/norestart"]);
    assert!(!recipe.needs_qchain);
    assert_eq!(xp.kb, Some(hive::catalog::Kb(958644)));
    // hfnetchk's checks: the Updates key's Type = Update, and the file at the fixed version.
    use hive::catalog::DetectionRule;
    let DetectionRule::All { rules } = &xp.targets[0].detection else {
        panic!("{:?}", xp.targets[0].detection)
    };
    assert!(
        rules.iter().any(|r| matches!(r,
        DetectionRule::RegistryValue { key, value, data }
            if key == r"HKLM\SOFTWARE\Microsoft\Updates\Windows XP\SP4\KB958644"
                && value == "Type" && data == "Update")),
        "{rules:?}"
    );
    assert!(
        rules.iter().any(|r| matches!(r,
        DetectionRule::FileVersion { path, version, .. }
            if path == r"%windir%\system32\netapi32.dll"
                && version.to_string() == "5.1.2600.5694")),
        "{rules:?}"
    );
    assert_eq!(catalog.products["mssecure:110"].name, "Windows XP");
    assert!(
        !catalog.bulletins["MS09-048"]
            .patches
            .iter()
            .any(|p| p.contains("WindowsXP")),
        "Microsoft shipped MS09-048 for no XP"
    );
}
