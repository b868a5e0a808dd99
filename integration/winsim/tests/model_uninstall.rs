//! Uninstalls driven through `SimHost::run`: what each uninstaller puts back, and the answers for
//! what cannot be removed (unknown package or product, permanent package, a deleted
//! `$NtUninstall$` folder, a missing quiet switch).

mod model_support;

use std::time::Duration;

use model_support::{fleet, run, text};
use winsim::WinHost;
use winsim::installer::Package;
use winsim::registry::RegValue;

const FLEET: &str = r#"
[[host]]
name = "WS01"
address = "127.0.4.1"
version = "10.0.17763"
edition = "ServerDatacenter"
ubr = 5206
permanent_packages = ["KB7000002"]
files = [{ path = 'C:\Windows\System32\un.dll', version = "10.0.17763.5000" }]
"#;

const DLL: &str = r"C:\Windows\System32\un.dll";

fn stage(host: &WinHost, name: &str, p: &Package) -> String {
    let win = format!(r"C:\Windows\Temp\hive\{name}");
    p.write_to(&host.host_path(&win)).unwrap();
    win
}

#[tokio::test]
async fn hotfix_y_and_spuninst_put_the_old_file_back_and_need_their_folder() {
    let f = fleet(FLEET);
    let host = f.host("WS01");
    let p = Package::hotfix("KB7000001")
        .file(DLL, "10.0.17763.7001".parse().unwrap())
        .hotfix_key();
    let path = stage(&host, "KB7000001.exe", &p);
    assert_eq!(run(&host, &format!("{path} -z -q -m")).await.exit_code, 0);
    assert_eq!(
        host.file_version(DLL).map(|v| v.to_string()).as_deref(),
        Some("10.0.17763.7001")
    );
    // `-y` with the package itself takes it off, from the uninstall folder.
    assert_eq!(run(&host, &format!("{path} -y -z -q")).await.exit_code, 0);
    assert_eq!(
        host.file_version(DLL).map(|v| v.to_string()).as_deref(),
        Some("10.0.17763.5000")
    );
    assert!(!host.installed_kbs().contains(&"KB7000001".to_string()));
    assert!(
        !host
            .host_path(r"C:\Windows\$NtUninstallKB7000001$")
            .exists()
    );
    // Installed again, its folder deleted: neither spuninst nor -y can remove it.
    assert_eq!(run(&host, &format!("{path} -z -q -m")).await.exit_code, 0);
    let spuninst = r"C:\Windows\$NtUninstallKB7000001$\spuninst\spuninst.exe";
    assert!(host.host_path(spuninst).is_file());
    std::fs::remove_dir_all(host.host_path(r"C:\Windows\$NtUninstallKB7000001$")).unwrap();
    let out = run(&host, &format!("{path} -y -z -q")).await;
    assert_eq!(out.exit_code, 1);
    assert!(
        text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );
    assert!(host.installed_kbs().contains(&"KB7000001".to_string()));
    assert_eq!(host.uninstall_log().len(), 1);
}

#[tokio::test]
async fn dism_lists_removes_and_refuses_unknown_and_permanent_packages() {
    let f = fleet(FLEET);
    let host = f.host("WS01");
    for id in ["KB7000002", "KB7000003"] {
        let cab = stage(&host, &format!("{id}.cab"), &Package::cab_file(id));
        let line = format!("dism /online /add-package /packagepath:{cab} /quiet /norestart");
        assert_eq!(run(&host, &line).await.exit_code, 0, "{id}");
    }
    let listed = text(&run(&host, "dism /Online /Get-Packages").await.stdout);
    let name = |id: &str| format!("Package_for_{id}~31bf3856ad364e35~amd64~~10.0.1.0");
    for id in ["KB7000002", "KB7000003"] {
        assert!(
            listed.contains(&format!("Package Identity : {}", name(id))),
            "{listed}"
        );
    }
    let remove =
        |n: String| format!("dism /Online /Remove-Package /PackageName:{n} /Quiet /NoRestart");
    assert_eq!(
        run(&host, &remove(name("KB7000002"))).await.exit_code,
        0x800F_0825,
        "permanent"
    );
    assert_eq!(run(&host, &remove(name("KB7000003"))).await.exit_code, 0);
    assert_eq!(
        run(&host, &remove(name("KB7000003"))).await.exit_code,
        0x800F_080C,
        "gone"
    );
    assert_eq!(host.dism_package_names(), [name("KB7000002")]);
    assert!(host.installed_kbs().contains(&"KB7000002".to_string()));
    assert!(!host.installed_kbs().contains(&"KB7000003".to_string()));
}

#[tokio::test]
async fn msiexec_x_removes_by_product_code_and_waits_without_a_quiet_switch() {
    let f = fleet(FLEET);
    let host = f.host("WS01");
    let code = "{11111111-2222-3333-4444-555555555555}";
    let key = r"HKLM\SOFTWARE\Contoso\Un";
    let msi = stage(
        &host,
        "un.msi",
        &Package::msi("KB7000004").product_code(code).registry(
            key,
            "Version",
            RegValue::Sz("2.0".into()),
        ),
    );
    assert_eq!(
        run(&host, &format!("msiexec /i {msi} /qn /norestart"))
            .await
            .exit_code,
        0
    );
    let uninstall_key = format!(r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\{code}");
    assert_eq!(
        host.registry_value(&uninstall_key, "DisplayName"),
        Some(RegValue::Sz("KB7000004".into()))
    );
    // No quiet switch: the uninstall dialog waits for a click that never comes.
    let shown = tokio::time::timeout(
        Duration::from_millis(200),
        run(&host, &format!("msiexec /x {code} /norestart")),
    )
    .await;
    assert!(shown.is_err(), "msiexec /x without /qn must wait");
    assert_eq!(
        run(&host, &format!("msiexec /x {code} /qn /norestart"))
            .await
            .exit_code,
        0
    );
    assert_eq!(host.registry_value(key, "Version"), None);
    assert_eq!(host.registry_value(&uninstall_key, "DisplayName"), None);
    assert_eq!(
        run(&host, &format!("msiexec /x {code} /qn /norestart"))
            .await
            .exit_code,
        1605
    );
}
