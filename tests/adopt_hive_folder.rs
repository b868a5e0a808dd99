//! End to end: an administrator's HIVE folder, as it came off the old share (mixed letter case,
//! `hiveexec.cmd` in each approved bulletin, Ignore, TBE, Installs, Logs, Archive), is adopted in
//! place; its machine folders are the hosts (no inventory); a scan and a rollout go through the
//! admin's hiveexec.cmd scripts, Qchain and one reboot; and every decision is left where it was.
//! Needs the harness (`integration/test.sh samba`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{SimFleet, env};
use hive::catalog::model::{
    Catalog, DetectionRule, InstallerRecipe, Patch, PatchTarget, Product, VersionOp, WhenMissing,
};
use winsim::hive_folder::{HiveFolder, HiveHotfix};
use winsim::installer::Package;

const PRODUCT: &str = "Windows 2000 Server";
const HOSTS: [&str; 2] = ["WEB01", "WEB02"];

/// (patch, bulletin, DLL it brings to 5.0.2195.4000)
const PATCHES: [(&str, &str, &str); 4] = [
    ("Q300001", "MS01-001", "hivea.dll"),
    ("Q300002", "MS01-002", "hiveb.dll"),
    ("Q300003", "MS01-003", "hivec.dll"),
    ("Q300004", "MS01-004", "hived.dll"),
];

fn dll(name: &str) -> String {
    format!(r"C:\Windows\system32\{name}")
}

fn fleet_toml() -> String {
    let files: Vec<String> = PATCHES
        .iter()
        .map(|(_, _, d)| format!("{{ path = '{}', version = \"5.0.2195.1000\" }}", dll(d)))
        .collect();
    HOSTS
        .iter()
        .enumerate()
        .map(|(n, h)| {
            format!(
                "[[host]]\nname = \"{h}\"\naddress = \"127.0.0.{}\"\nproduct = \"{PRODUCT}\"\n\
                 csd_version = \"Service Pack 1\"\nversion = \"5.0.2195\"\nfiles = [{}]\n\
                 reboot = {{ downtime_ms = 200 }}\n",
                n + 2,
                files.join(", ")
            )
        })
        .collect()
}

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    let product = format!("test:{PRODUCT}");
    c.products.insert(
        product.clone(),
        Product {
            id: product.clone(),
            name: PRODUCT.into(),
            family: None,
            cpe: None,
            applicability: Default::default(),
        },
    );
    for (id, bulletin, d) in PATCHES {
        c.patches.insert(
            id.into(),
            Patch {
                id: id.into(),
                kb: Some(id.parse().unwrap()),
                file_name: Some(format!("{id}_W2K_SP2_x86_en.exe")),
                download_url: None,
                sha256: None,
                subtype: Some("Security Update".into()),
                restart: None,
                bulletins: vec![bulletin.into()],
                targets: vec![PatchTarget {
                    product: product.clone(),
                    service_packs: vec![],
                    fixed_in_sp: None,
                    fixed_build: None,
                    detection: DetectionRule::FileVersion {
                        path: dll(d),
                        op: VersionOp::AtLeast,
                        version: "5.0.2195.4000".parse().unwrap(),
                        date: None,
                        size: None,
                        checksum: None,
                        when_missing: WhenMissing::NotInstalled,
                    },
                }],
                supersedes: Default::default(),
                superseded_by: Default::default(),
                installer: Some(InstallerRecipe::legacy_hotfix()),
            },
        );
    }
    c
}

/// The HIVE folder: two approved bulletins with the admin's scripts, one ignored, one to be
/// engineered, a machine folder that is no host name, and Qchain in Tools.
fn hive_folder(root: &Path) {
    let mut folder = HiveFolder::new()
        .machine("WEB01")
        .machine("WEB02")
        .machine("WEB 03")
        .ignored("MS01-003", "FTP service not installed on our web servers")
        .to_be_engineered("MS01-004")
        .tool("qchain.exe", Package::qchain().bytes());
    for (id, bulletin, d) in &PATCHES[..2] {
        let installer = format!("{id}_W2K_SP2_x86_en.exe");
        let bytes = Package::hotfix(id)
            .file_in_use(&dll(d), "5.0.2195.4000".parse().unwrap())
            .reboot_required(true)
            .exit_code(3010)
            .bytes();
        folder = folder.hotfix(HiveHotfix::silent(bulletin, "IIS", &installer, bytes));
    }
    folder.write(root).unwrap();
}

/// Every file under `root` with its bytes (folders as empty), relative.
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if p.is_dir() {
                out.push((rel, Vec::new()));
                stack.push(p);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

async fn hive(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hive"))
            .args(&args)
            .env_remove("HIVE_REPO")
            .env_remove("HIVE_INVENTORY")
            .env_remove("HIVE_CATALOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hive_folder_is_adopted_scanned_and_patched_through_its_hiveexec_scripts() {
    let fleet = SimFleet::start("adopt", &fleet_toml()).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Hive");
    hive_folder(&root);
    let catalog_file = dir.path().join("catalog.json");
    hive::catalog::store::save(&catalog_file, &catalog()).unwrap();
    let r = root.to_string_lossy().into_owned();
    let c = catalog_file.to_string_lossy().into_owned();

    // 1. Adopt in place: a report, and nothing that was there changed.
    let before = snapshot(&root);
    let out = hive(strings(&["adopt", &r])).await;
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    for want in [
        "targets: 2 machine folder(s) (2 with a lastrun.log): WEB01, WEB02",
        "MS01-001       runs hiveexec.cmd",
        "ignored: 1 bulletin(s): MS01-003",
        "to be engineered: 1 bulletin(s): MS01-004",
        "kept as they are: 3 install script(s), 3 log(s), 3 archived log(s)",
        "WEB 03: host name `WEB 03` is not valid",
    ] {
        assert!(report.contains(want), "missing `{want}` in:\n{report}");
    }
    assert!(!report.contains("UNSAFE"), "{report}");
    let after = snapshot(&root);
    for entry in &before {
        assert!(after.contains(entry), "{} changed", entry.0.display());
    }
    let added: Vec<&PathBuf> = after
        .iter()
        .filter(|e| !before.contains(e))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(added, [&PathBuf::from("runs")], "adopt only adds runs/");

    // 2. How to reach the machines: defaults for all, the simulated address per machine.
    let sample = fleet.inventory_host("WEB01");
    std::fs::write(
        root.join("Machines/defaults.toml"),
        format!(
            "transport = \"winrm-http\"\nuser = \"{}\"\ncredential = \"env:HIVE_TEST_SMB_PASSWORD\"\n\
             smb_address = \"{}\"\nsmb_port = {}\nsmb_share = \"{}\"\ngroups = [\"web\"]\n",
            env("HIVE_TEST_SMB_USER"),
            sample.smb_address,
            sample.smb_port,
            sample.smb_share
        ),
    )
    .unwrap();
    for h in HOSTS {
        let host = fleet.inventory_host(h);
        std::fs::write(
            root.join("Machines").join(h).join("host.toml"),
            format!(
                "address = \"127.0.0.1\"\nport = {}\nsmb_root = '{}'\n",
                host.port, host.smb_root
            ),
        )
        .unwrap();
    }
    let decisions = |s: &[(PathBuf, Vec<u8>)]| -> Vec<(PathBuf, Vec<u8>)> {
        s.iter()
            .filter(|(p, _)| {
                let top = p
                    .components()
                    .next()
                    .unwrap()
                    .as_os_str()
                    .to_string_lossy()
                    .to_string();
                ["HotFixes", "Ignore", "Tools"].contains(&top.as_str())
                    || p.starts_with("TBE/MS01-004/notes.txt")
            })
            .cloned()
            .collect()
    };
    let decided = decisions(&before);

    // 3. Scan with no inventory: the machine folders are the hosts.
    let out = hive(strings(&["scan", "-r", &r, "--catalog", &c, "-o", "tab"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let scan = text(&out);
    assert!(scan.contains("left out"), "{scan}");
    assert!(scan.contains("WEB 03"), "{scan}");
    for h in HOSTS {
        let last =
            std::fs::read_to_string(root.join("Machines").join(h).join("lastrun.log")).unwrap();
        assert!(
            last.lines()
                .any(|l| l.starts_with(&format!("{h}\t")) && l.contains("\tMS01-001\t")),
            "{h}: hfnetchk tab layout expected:\n{last}"
        );
        // The previous one (HIVE's) is filed under the day it was written.
        let archived = root.join("Archive/2001-09-02").join(format!("{h}.log"));
        assert!(
            std::fs::read_to_string(&archived)
                .unwrap()
                .contains("Patch NOT Found"),
            "{}",
            archived.display()
        );
    }
    assert!(root.join("TBE/MS01-004/notes.txt").is_file());
    assert!(
        !root.join("TBE/MS01-003").exists(),
        "an ignored bulletin stays ignored"
    );
    assert!(
        !root.join("TBE/MS01-001").exists(),
        "an approved bulletin stays approved"
    );

    // 4. The dry run: the plan through hiveexec.cmd, written as installs/<host>.cmd.
    let out = hive(strings(&["deploy", "-r", &r, "--catalog", &c, "--dry-run"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let plan = text(&out);
    assert!(plan.contains("hiveexec.cmd (hiveexec.cmd)"), "{plan}");
    assert!(plan.contains("qchain before the reboot"), "{plan}");

    // 5. The rollout through the admin's scripts, Qchain and one reboot per host.
    let out = hive(strings(&[
        "rollout",
        "-r",
        &r,
        "--catalog",
        &c,
        "--plan",
        "100%",
        "--shutdown-delay",
        "0",
        "--reboot-timeout",
        "30",
        "--poll-ms",
        "100",
        "--install-timeout",
        "30",
    ]))
    .await;
    assert!(out.status.success(), "{}", text(&out));
    for h in HOSTS {
        let sim = fleet.host(h);
        assert_eq!(sim.reboot_count(), 1, "{h}: one reboot, hive's");
        let kbs = sim.installed_kbs();
        assert!(
            kbs.contains(&"Q300001".to_string()) && kbs.contains(&"Q300002".to_string()),
            "{h}: {kbs:?}"
        );
        assert!(
            !kbs.contains(&"Q300003".to_string()),
            "{h}: the ignored bulletin is not installed"
        );
        let lines: Vec<String> = sim
            .command_log()
            .into_iter()
            .map(|c| c.command_line.to_string())
            .collect();
        for b in ["MS01-001", "MS01-002"] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(r"cd /d C:\Windows\Temp\hive\")
                        && l.ends_with(&format!(r"\{b} && cmd /c hiveexec.cmd"))),
                "{h}: {lines:#?}"
            );
        }
        assert!(
            lines.iter().any(|l| l.ends_with(r"\qchain.exe")),
            "{h}: {lines:#?}"
        );
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("-z -q -m") && !l.contains("hiveexec")),
            "{h}: hive ran the script, not its own recipe: {lines:#?}"
        );

        let record =
            std::fs::read_to_string(root.join("Installs").join(format!("{h}.cmd"))).unwrap();
        assert!(
            record.contains("cmd /c hiveexec.cmd")
                && record.contains("qchain.exe")
                && record.contains("shutdown /r"),
            "{record}"
        );
        let log = std::fs::read_to_string(root.join("Logs").join(format!("{h}.log"))).unwrap();
        assert!(
            log.starts_with("2001-09-01 02:00"),
            "HIVE's lines are kept: {log}"
        );
        assert!(
            log.lines().any(|l| l.contains("install Q300001 1/2: ok")),
            "{log}"
        );
        assert!(log.lines().any(|l| l.contains(" qchain: ok")), "{log}");
    }

    // 6. The same decisions, byte for byte, in the same folders; no second spelling created.
    let end = snapshot(&root);
    assert_eq!(decisions(&end), decided);
    for lower in [
        "hotfixes", "ignore", "tbe", "machines", "logs", "installs", "archive",
    ] {
        assert!(
            !root.join(lower).exists(),
            "{lower}/ created beside HIVE's folder"
        );
    }
}
