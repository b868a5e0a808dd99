//! `tasklist` and the install log: what a resumed orchestrator asks a host after a crash ("is the
//! installer still running?") and what tests count ("did any installer run twice?").

mod model_support;

use std::sync::Arc;
use std::time::Duration;

use model_support::{BASIC, fleet, run, text};
use winsim::WinHost;
use winsim::host::{CommandRequest, SimHost};
use winsim::installer::Package;

fn stage(host: &WinHost, name: &str, p: &Package) -> String {
    let win = format!(r"C:\Windows\Temp\hive\{name}");
    p.write_to(&host.host_path(&win)).unwrap();
    win
}

#[tokio::test]
async fn a_running_installer_shows_in_tasklist_until_it_ends_and_lands_once_in_the_install_log() {
    let f = fleet(BASIC);
    let host = f.host("WS01");
    let p = Package::hotfix("KB5000201")
        .hotfix_key()
        .duration(Duration::from_millis(400));
    let path = stage(&host, "KB5000201.exe", &p);

    // The installer runs in a task of its own, as a command goes on in its WinRS shell after the
    // client that started it went away.
    let running = {
        let host: Arc<WinHost> = Arc::clone(&host);
        let line = format!("{path} -z -q -m");
        tokio::spawn(async move {
            host.run(CommandRequest {
                command: line,
                ..Default::default()
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = run(&host, "tasklist /FO CSV /NH").await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(listed.contains("\"System\",\"4\""), "{listed}");
    assert!(listed.contains("\"KB5000201.exe\","), "{listed}");
    assert!(listed.contains("\"tasklist.exe\","), "{listed}");
    assert!(host.install_log().is_empty(), "nothing landed yet");

    let filtered = run(
        &host,
        "tasklist /FI \"IMAGENAME eq kb5000201.exe\" /FO CSV /NH",
    )
    .await;
    assert_eq!(
        text(&filtered.stdout).lines().count(),
        1,
        "{}",
        text(&filtered.stdout)
    );

    let done = running.await.unwrap();
    assert_eq!(done.exit_code, 0);
    let out = run(&host, "tasklist /FI \"IMAGENAME eq KB5000201.exe\"").await;
    assert_eq!(
        text(&out.stdout),
        "INFO: No tasks are running which match the specified criteria.\r\n"
    );
    let log = host.install_log();
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0].package, "KB5000201");
    assert_eq!((log[0].attempt, log[0].exit_code), (0, 0));

    // Run again, it lands again: the log is what proves an orchestrator did not do that.
    run(&host, &format!("{path} -z -q -m")).await;
    assert_eq!(host.install_log().len(), 2);
    assert_eq!(host.install_log()[1].attempt, 1);
}

#[tokio::test]
async fn tasklist_refuses_what_it_does_not_simulate_and_windows_2000_has_none() {
    let f = fleet(BASIC);
    let out = run(&f.host("WS01"), "tasklist /V").await;
    assert_ne!(out.exit_code, 0);
    assert!(text(&out.stderr).contains("Invalid argument"));
    let out = run(&f.host("W2K01"), "tasklist /FO CSV /NH").await;
    assert_ne!(out.exit_code, 0);
    assert!(text(&out.stderr).contains("is not recognized"));
}
