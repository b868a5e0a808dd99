//! WinRM quota faults end to end: the simulated fleet words them as current Windows does (a CIM
//! `MSFT_WmiError` detail, subcode QuotaLimit), hive-winrm reads their code and text in that form
//! as in the older `WSManFault` one, and a session at MaxShellsPerUser waits for a shell to free
//! instead of failing the host.

use std::path::Path;
use std::time::{Duration, Instant};

use hive_winrm::response::{
    self, CODE_QUOTA_LIMIT, CODE_SHELL_QUOTA, FaultKind, ResponseError, WsmanFault,
};
use hive_winrm::{ClientConfig, Credentials, Endpoint, Session};
use winsim::server::response::Fault;
use winsim::server::{FleetOptions, ServiceLimits, WinrmFleet};

const USER: &str = "Administrator";
const PASSWORD: &str = "Quota-Passw0rd!";

fn parsed(xml: &str) -> WsmanFault {
    match response::parse_empty(xml, "uuid:Q") {
        Err(ResponseError::Fault(f)) => *f,
        other => panic!("not a fault: {other:?}"),
    }
}

#[test]
fn winsims_quota_faults_read_back_as_quota_kinds() {
    let shells = parsed(&Fault::too_many_shells(30).render(Some("uuid:Q"), "SRV01"));
    assert_eq!(shells.wsman_code, Some(CODE_SHELL_QUOTA));
    assert_eq!(shells.subcode.as_deref(), Some("QuotaLimit"));
    assert_eq!(shells.kind(), FaultKind::ShellQuota);
    assert!(
        shells
            .message
            .as_deref()
            .is_some_and(|m| m.contains("maximum number of 30 concurrent shells")),
        "{shells:?}"
    );

    let memory = parsed(
        &Fault::injected(
            CODE_QUOTA_LIMIT,
            "The WS-Management service cannot process the request. The shell exceeded its memory quota (MaxMemoryPerShellMB = 150).",
        )
        .render(Some("uuid:Q"), "SRV01"),
    );
    assert_eq!(memory.wsman_code, Some(CODE_QUOTA_LIMIT));
    assert_eq!(memory.kind(), FaultKind::MemoryQuota);

    // Other faults keep the WSManFault form, which is read as before.
    let timed_out = parsed(&Fault::timed_out().render(Some("uuid:Q"), "SRV01"));
    assert_eq!(timed_out.kind(), FaultKind::TimedOut);
    assert_eq!(timed_out.machine.as_deref(), Some("SRV01"));
}

async fn one_host_fleet(dir: &Path, max_shells: usize) -> WinrmFleet {
    let toml = format!(
        r#"
[defaults]
user = "{USER}"
password = "{PASSWORD}"

[[host]]
name = "QUOTA01"
address = "127.0.0.1"
product = "Windows Server 2022 Datacenter"
version = "10.0.20348"
"#
    );
    let mut configs = winsim::fleet::parse(&toml, Path::new("quota.toml")).unwrap();
    configs[0].winrm_port = 0;
    let model = winsim::Fleet::start(&configs, dir).unwrap();
    WinrmFleet::start(
        model.sim_hosts(),
        FleetOptions {
            limits: ServiceLimits {
                max_shells_per_user: max_shells,
                ..ServiceLimits::default()
            },
            tls: None,
        },
    )
    .await
    .unwrap()
}

fn session(fleet: &WinrmFleet) -> Session {
    let ep = Endpoint::parse(&fleet.endpoints()[0].http_url).unwrap();
    Session::new(ClientConfig::new(ep, Credentials::ntlm(USER, PASSWORD))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_at_max_shells_waits_for_a_shell_to_free() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = one_host_fleet(dir.path(), 1).await;

    let mut holder = session(&fleet);
    holder.open().await.unwrap();

    // Told not to wait, the second session sees the typed quota fault at once.
    let mut impatient = session(&fleet);
    impatient.shell_quota_wait = Duration::ZERO;
    let err = impatient.open().await.unwrap_err();
    assert_eq!(err.fault_kind(), Some(FaultKind::ShellQuota), "{err}");
    assert!(err.fault().is_some_and(WsmanFault::is_quota));
    assert!(err.to_string().contains("0x803381A5"), "{err}");

    // With the default wait it gets its shell once the holder closes its own.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        holder.close().await.unwrap();
    });
    let mut patient = session(&fleet);
    let started = Instant::now();
    patient.open().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(700), "it waited");
    release.await.unwrap();
    let out = patient.run_cmd("hostname", None).await.unwrap();
    assert_eq!(out.stdout_text(), "QUOTA01\r\n");
    assert_eq!(patient.shells_opened, 1);
    patient.close().await.unwrap();

    // A bounded wait: a quota that never frees fails after about that long, not forever.
    let mut stuck_holder = session(&fleet);
    stuck_holder.open().await.unwrap();
    let mut bounded = session(&fleet);
    bounded.shell_quota_wait = Duration::from_millis(1_500);
    let started = Instant::now();
    let err = bounded.open().await.unwrap_err();
    assert_eq!(err.fault_kind(), Some(FaultKind::ShellQuota), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    stuck_holder.close().await.unwrap();
    fleet.shutdown().await;
}
