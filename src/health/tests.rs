//! The checks that run through the host, against a scripted [`FakeTarget`].

use std::time::Duration;

use super::*;
use crate::fake::{FakeTarget, Reply};
use crate::inventory::{EventLevel, Inventory};

fn host() -> Host {
    Inventory::parse(
        "[[host]]\nname=\"web01\"\naddress=\"127.0.0.1\"\ncredential=\"env:P\"\n",
        std::path::Path::new("inv.toml"),
    )
    .unwrap()
    .hosts
    .remove(0)
}

fn spec(kind: CheckKind, retries: u32) -> HealthCheckSpec {
    HealthCheckSpec {
        kind,
        timeout: Duration::from_secs(2),
        retries,
        settle: Duration::from_millis(1),
    }
}

const RUNNING: &str = "SERVICE_NAME: W3SVC\r\n        STATE              : 4  RUNNING\r\n";
const STOPPED: &str = "SERVICE_NAME: W3SVC\r\n        STATE              : 1  STOPPED\r\n";
const AUTO: &str = "SERVICE_NAME: W3SVC\r\n        START_TYPE         : 2   AUTO_START\r\n";
const DEMAND: &str = "SERVICE_NAME: W3SVC\r\n        START_TYPE         : 3   DEMAND_START\r\n";

#[tokio::test]
async fn a_service_that_starts_late_passes_after_its_retries() {
    let mut t = FakeTarget::new("web01", "2026-12-05T00:00:00Z")
        .on(
            "sc query",
            [Reply::exit(0, STOPPED), Reply::exit(0, RUNNING)],
        )
        .on("sc qc", [Reply::exit(0, AUTO)]);
    let checks = [spec(CheckKind::Service("W3SVC".into()), 2)];
    let baseline = record_baseline(&checks, &mut t).await;
    assert_eq!(baseline.start_types["w3svc"], "2 AUTO_START");
    let report = run_checks(&host(), &checks, &mut t, &baseline).await;
    assert!(report.healthy(), "{report:?}");
    assert_eq!(report.results[0].attempts, 2);
    assert_eq!(
        report.results[0].evidence,
        "4 RUNNING, start type 2 AUTO_START"
    );
}

#[tokio::test]
async fn a_stopped_missing_or_reconfigured_service_is_unhealthy_with_evidence() {
    let checks = [spec(CheckKind::Service("W3SVC".into()), 1)];
    let mut stopped = FakeTarget::new("web01", "b").on("sc query", [Reply::exit(0, STOPPED)]);
    let r = run_checks(&host(), &checks, &mut stopped, &Baseline::default()).await;
    assert!(!r.healthy());
    assert_eq!(r.results[0].attempts, 2);
    assert_eq!(
        r.summary(),
        "service W3SVC: state 1 STOPPED (stopped), expected 4 RUNNING"
    );
    let mut missing = FakeTarget::new("web01", "b").on("sc query", [Reply::exit(1060, "")]);
    let r = run_checks(&host(), &checks, &mut missing, &Baseline::default()).await;
    assert!(r.summary().contains("does not exist"), "{}", r.summary());
    let mut changed = FakeTarget::new("web01", "b")
        .on("sc query", [Reply::exit(0, RUNNING)])
        .on("sc qc", [Reply::exit(0, AUTO), Reply::exit(0, DEMAND)]);
    let baseline = record_baseline(&checks, &mut changed).await;
    let r = run_checks(&host(), &checks, &mut changed, &baseline).await;
    assert!(
        r.summary()
            .contains("start type changed from 2 AUTO_START to 3 DEMAND_START"),
        "{}",
        r.summary()
    );
}

#[tokio::test]
async fn an_error_event_since_the_boot_is_unhealthy() {
    let boot = "<Event><System><Provider Name='EventLog'/><EventID>6005</EventID><Level>4</Level><EventRecordID>10</EventRecordID></System></Event>";
    let scm = "<Event><System><Provider Name='Service Control Manager'/><EventID>7000</EventID><Level>2</Level><TimeCreated SystemTime='2026-12-05T01:00:00Z'/><EventRecordID>11</EventRecordID></System><EventData><Data>W3SVC</Data></EventData></Event>";
    let checks = [spec(
        CheckKind::EventLog {
            log: "System".into(),
            level: EventLevel::Error,
            sources: vec![],
        },
        0,
    )];
    let mut t =
        FakeTarget::new("web01", "b").on("wevtutil", [Reply::exit(0, &format!("{boot}{scm}"))]);
    let r = run_checks(&host(), &checks, &mut t, &Baseline::default()).await;
    assert_eq!(
        r.summary(),
        "eventlog System error: 1 matching System event(s) since the last boot, newest: \
         Service Control Manager 7000 at 2026-12-05T01:00:00Z (W3SVC)"
    );
    let mut clean = FakeTarget::new("web01", "b").on("wevtutil", [Reply::exit(0, boot)]);
    assert!(
        run_checks(&host(), &checks, &mut clean, &Baseline::default())
            .await
            .healthy()
    );
    let mut old = FakeTarget::new("web01", "b").on("wevtutil", [Reply::exit(9009, "")]);
    let r = run_checks(&host(), &checks, &mut old, &Baseline::default()).await;
    assert!(r.summary().contains("exit 9009"), "{}", r.summary());
}

#[tokio::test]
async fn a_custom_command_is_healthy_on_exit_0_and_its_output_is_kept() {
    let checks = [spec(
        CheckKind::Command(r"C:\tools\selftest.cmd --all".into()),
        0,
    )];
    let mut ok =
        FakeTarget::new("web01", "b").on("selftest", [Reply::exit(0, "all 12 probes ok\r\n")]);
    let r = run_checks(&host(), &checks, &mut ok, &Baseline::default()).await;
    assert!(r.healthy());
    assert_eq!(r.results[0].evidence, "exit 0: all 12 probes ok");
    let mut bad = FakeTarget::new("web01", "b").on("selftest", [Reply::exit(2, "db unreachable")]);
    let r = run_checks(&host(), &checks, &mut bad, &Baseline::default()).await;
    assert_eq!(
        r.summary(),
        r"command C:\tools\selftest.cmd: exit 2: db unreachable"
    );
    assert_eq!(bad.commands_with("selftest").len(), 1);
}

#[tokio::test]
async fn a_host_that_cannot_be_reached_is_unhealthy_not_an_error() {
    let checks = [spec(CheckKind::Service("W3SVC".into()), 0)];
    let mut t = FakeTarget::new("web01", "b").on(
        "sc query",
        [Reply::Error(RemoteError::Unreachable(
            "connection refused".into(),
        ))],
    );
    let r = run_checks(&host(), &checks, &mut t, &Baseline::default()).await;
    assert!(!r.healthy());
    assert!(
        r.summary().contains("connection refused"),
        "{}",
        r.summary()
    );
}
