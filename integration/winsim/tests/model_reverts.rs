//! The fault `reverts_at_boot`: a package whose installer ends well and whose changes the next
//! boot undoes (a servicing transaction rolled back at boot). The hotfix list and the file are as
//! before the install after the boot, the update client logs the failure, and `boots = 1` keeps
//! the second install.

mod model_support;

use std::time::Duration;

use model_support::{fleet, run};
use winsim::installer::Package;

const FLEET: &str = r#"
[defaults]
version = "10.0.17763"
reboot = { downtime_ms = 100 }
files = [{ path = 'C:\Windows\System32\rev.dll', version = "10.0.17763.1" }]

[[host]]
name = "NEVER"
address = "127.0.9.11"
faults = { reverts_at_boot = [{ package = "KB9" }] }

[[host]]
name = "ONCE"
address = "127.0.9.12"
faults = { reverts_at_boot = [{ package = "KB9", boots = 1 }] }
"#;

const DLL: &str = r"C:\Windows\System32\rev.dll";

async fn install_and_reboot(h: &winsim::WinHost, reboots: u32) {
    assert_eq!(
        run(h, r"C:\Windows\Temp\kb9.exe -q -z").await.exit_code,
        3010
    );
    assert!(
        h.installed_kbs().contains(&"KB9".to_string()),
        "until the boot"
    );
    assert_eq!(run(h, "shutdown /r /t 0").await.exit_code, 0);
    for _ in 0..50 {
        if h.reboot_count() == reboots {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.reboot_count(), reboots);
}

#[tokio::test]
async fn the_boot_undoes_the_package_every_time_or_only_the_first() {
    let f = fleet(FLEET);
    for name in ["NEVER", "ONCE"] {
        let h = f.host(name);
        Package::hotfix("KB9")
            .file(DLL, "10.0.17763.9".parse().unwrap())
            .reboot_required(true)
            .exit_code(3010)
            .write_to(&h.host_path(r"C:\Windows\Temp\kb9.exe"))
            .unwrap();
    }

    let never = f.host("NEVER");
    for boot in 1..=2 {
        install_and_reboot(&never, boot).await;
        assert!(
            !never.installed_kbs().contains(&"KB9".to_string()),
            "boot {boot}"
        );
        assert_eq!(never.file_version(DLL).unwrap().to_string(), "10.0.17763.1");
    }
    let failures = never
        .event_log()
        .into_iter()
        .filter(|e| e.provider == "Microsoft-Windows-WindowsUpdateClient" && e.id == 20)
        .count();
    assert_eq!(failures, 2);
    assert_eq!(
        never.install_log().len(),
        2,
        "the installer itself ended well"
    );

    let once = f.host("ONCE");
    install_and_reboot(&once, 1).await;
    assert!(!once.installed_kbs().contains(&"KB9".to_string()));
    install_and_reboot(&once, 2).await;
    assert!(
        once.installed_kbs().contains(&"KB9".to_string()),
        "the second install stays"
    );
    assert_eq!(once.file_version(DLL).unwrap().to_string(), "10.0.17763.9");
}
