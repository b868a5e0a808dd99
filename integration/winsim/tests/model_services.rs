//! Services, the System event log and the HTTP health page, through the command interpreter and
//! the network as hive reaches them: a package that breaks W3SVC shows in `sc query`, in
//! `wevtutil qe` and on the health page after its reboot, and not before.

mod model_support;

use std::time::Duration;

use model_support::{fleet, run, text};
use winsim::health_http::HealthServer;
use winsim::installer::Package;

const FLEET: &str = r#"
[defaults]
version = "10.0.17763"
reboot = { downtime_ms = 100 }
services = [{ name = "W3SVC", display_name = "World Wide Web Publishing Service" }]

[[host]]
name = "IIS01"
address = "127.0.9.1"
faults = { breaks_service = [{ package = "KB7", service = "W3SVC" }] }

[[host]]
name = "IIS02"
address = "127.0.9.2"
faults = { health_endpoint_fails_after = 1 }

[[host]]
name = "OLD"
address = "127.0.9.3"
version = "5.2.3790"
"#;

/// `GET path` over a plain TCP connection: (status, body).
async fn get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

#[tokio::test]
async fn a_package_that_breaks_w3svc_shows_everywhere_after_its_reboot() {
    let f = fleet(FLEET);
    let h = f.host("IIS01");
    let web = HealthServer::start(f.fleet.hosts().to_vec(), [127, 0, 0, 1].into())
        .await
        .unwrap();
    let port = web.addr().port();
    let running = run(&h, r#"sc query "W3SVC""#).await;
    assert_eq!(running.exit_code, 0);
    assert!(text(&running.stdout).contains("STATE              : 4  RUNNING"));
    assert_eq!(get(port, "/iis01/health").await, (200, "OK\n".into()));

    Package::hotfix("KB7")
        .reboot_required(true)
        .exit_code(3010)
        .write_to(&h.host_path(r"C:\Windows\Temp\kb7.exe"))
        .unwrap();
    assert_eq!(
        run(&h, r"C:\Windows\Temp\kb7.exe -q -z").await.exit_code,
        3010
    );
    assert_eq!(h.service_running("W3SVC"), Some(true), "until the reboot");
    assert_eq!(run(&h, "shutdown /r /t 0").await.exit_code, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.reboot_count(), 1);

    let stopped = text(&run(&h, "sc query W3SVC").await.stdout);
    assert!(
        stopped.contains("STATE              : 1  STOPPED"),
        "{stopped}"
    );
    let qc = text(&run(&h, r#"sc qc "w3svc""#).await.stdout);
    assert!(qc.contains("START_TYPE         : 2   AUTO_START"), "{qc}");
    assert_eq!(run(&h, "sc query NoSuchSvc").await.exit_code, 1060);
    assert_eq!(
        run(&h, "sc config W3SVC start= disabled").await.exit_code,
        5
    );
    assert_eq!(
        get(port, "/IIS01/health").await,
        (503, "service W3SVC is not running\n".into())
    );

    // hive's query: the newest boot record, then the errors, in one cmd.exe line.
    let out = run(
        &h,
        "wevtutil qe \"System\" /q:\"*[System[Provider[@Name='EventLog'] and EventID=6005]]\" /f:xml /c:1 /rd:true \
         & wevtutil qe \"System\" /q:\"*[System[(Level=1 or Level=2) and Provider[@Name='Service Control Manager']]]\" /f:xml /c:50 /rd:true",
    )
    .await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    let xml = text(&out.stdout);
    assert_eq!(xml.matches("<Event ").count(), 2, "{xml}");
    assert!(xml.contains("<EventID>6005</EventID>"), "{xml}");
    assert!(
        xml.contains("<EventID Qualifiers='49152'>7000</EventID>")
            && xml.contains("<Data Name='param1'>World Wide Web Publishing Service</Data>"),
        "{xml}"
    );
}

#[tokio::test]
async fn the_health_page_fails_on_plan_and_old_hosts_have_no_wevtutil() {
    let f = fleet(FLEET);
    let web = HealthServer::start(f.fleet.hosts().to_vec(), [127, 0, 0, 1].into())
        .await
        .unwrap();
    let port = web.addr().port();
    assert_eq!(get(port, "/IIS02/health").await.0, 200);
    assert_eq!(
        get(port, "/IIS02/health").await,
        (503, "application error (fault plan)\n".into())
    );
    assert_eq!(get(port, "/NOPE/health").await.0, 404);
    assert_eq!(get(port, "/IIS02").await.0, 404);
    assert_eq!(
        web.url_template(),
        format!("http://127.0.0.1:{port}/{{name}}/health")
    );
    let old = f.host("OLD");
    assert_eq!(run(&old, "wevtutil qe System").await.exit_code, 9009);
}
