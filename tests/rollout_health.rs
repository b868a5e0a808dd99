//! Health as the gate, end to end: `hive rollout` (the binary) against a simulated fleet whose
//! hosts run W3SVC and answer an HTTP health page (winsim), with the checks declared in the
//! inventory's `[group_defaults]`.
//!
//! - A patch that breaks W3SVC (winsim's `breaks_service` fault on the canaries) leaves both
//!   canaries `unhealthy` after their reboot; the run stops after the canary wave with the gate's
//!   exit code (3), and the simulator's install log shows no install on any other host.
//! - A canary whose health page starts failing during the soak (`health_endpoint_fails_after`)
//!   ends the soak early and fails the gate, though it was healthy right after its patch.
//!
//! Needs the harness (`integration/test.sh`, samba).

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{FAST_REBOOTS, HivePaths, Lab, LabPatch, SimFleet};
use hive::catalog::model::InstallerRecipe;
use hive::journal::RunLog;
use hive::rollout::HostVerdict;
use winsim::health_http::HealthServer;
use winsim::host::SimHost as _;
use winsim::installer::Package;

const PRODUCT: &str = "Windows Server 2019 Datacenter";
const PATCH: &str = "KB5000201";

/// `canaries` hosts `HC{n}` (the first `faulty` of them with `canary_toml`) and `others` hosts
/// `HF{n:02}`, all running W3SVC.
fn fleet_toml(canaries: usize, faulty: usize, others: usize, canary_toml: &str) -> String {
    let common = format!(
        "product = \"{PRODUCT}\"\nversion = \"10.0.17763\"\n\
         reboot = {{ downtime_ms = 300 }}\n\
         services = [{{ name = \"W3SVC\", display_name = \"World Wide Web Publishing Service\" }}]\n"
    );
    let mut t = String::new();
    for n in 1..=canaries {
        let extra = if n <= faulty { canary_toml } else { "" };
        t.push_str(&format!(
            "[[host]]\nname = \"HC{n}\"\naddress = \"127.0.0.{}\"\n{common}{extra}\n\n",
            n + 1
        ));
    }
    t.push_str(&format!(
        "[[group]]\ncount = {others}\nname = \"HF{{n:02}}\"\naddress = \"127.0.1.2\"\n{common}"
    ));
    t
}

/// One approved hotfix that replaces a DLL and asks for a reboot.
fn lab() -> Lab {
    let mut lab = Lab::new();
    lab.add(LabPatch {
        id: PATCH,
        bulletin: "MS-HL-01",
        product: PRODUCT,
        file_name: "KB5000201.exe",
        package: Package::hotfix(PATCH)
            .file(
                r"C:\Windows\System32\hivehl.dll",
                "10.0.17763.9101".parse().unwrap(),
            )
            .reboot_required(true)
            .exit_code(3010)
            .duration(Duration::from_millis(20)),
        recipe: InstallerRecipe::legacy_hotfix(),
        subtype: "Security Update",
        detection: None,
    });
    lab
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    repo: PathBuf,
    elapsed: Duration,
}

/// `hive rollout --plan PLAN` over the fleet, to its end.
fn hive_rollout(fleet: &SimFleet, lab: &Lab, plan: &str, health: &str) -> Ran {
    // `HC*` hosts are canaries; `health` goes into `[group_defaults]` as written.
    let canary = |n: usize| {
        if fleet.hosts[n].name.starts_with("HC") {
            "\"canary\"".to_string()
        } else {
            String::new()
        }
    };
    let p = HivePaths::write(fleet, lab, canary, &format!("[group_defaults]\n{health}\n"));
    let t0 = Instant::now();
    let out = p
        .hive(&["rollout", "--plan", plan])
        .args(["--parallel", "8"])
        .args(FAST_REBOOTS)
        .stdin(Stdio::null())
        .output()
        .expect("hive runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "hive stdout (last lines):\n{}\nstderr:\n{}",
        stdout
            .lines()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    Ran {
        code: out.status.code(),
        stdout,
        repo: lab.repo.root().to_path_buf(),
        elapsed: t0.elapsed(),
    }
}

fn run_id(ran: &Ran) -> String {
    ran.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["run"].as_str().map(str::to_string))
        .expect("the run id in hive's output")
}

/// Hosts (by name) with at least one install in the simulator's own install log.
fn installed_on(fleet: &SimFleet) -> Vec<String> {
    fleet
        .model
        .hosts()
        .iter()
        .filter(|h| !h.install_log().is_empty())
        .map(|h| h.name().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_that_breaks_w3svc_on_the_canaries_stops_the_run_before_the_fleet() {
    let fleet = SimFleet::start(
        "health-w3svc",
        &fleet_toml(
            2,
            2,
            40,
            &format!(
                "faults = {{ breaks_service = [{{ package = \"{PATCH}\", service = \"W3SVC\" }}] }}"
            ),
        ),
    )
    .await;
    let web = HealthServer::start(fleet.model.hosts().to_vec(), [127, 0, 0, 1].into())
        .await
        .unwrap();
    let lab = lab();
    let health = format!(
        "health = [\n  {{ service = \"W3SVC\", retries = 2, settle = 1 }},\n  \
         {{ http = \"{}\", body = \"OK\", retries = 0 }},\n  \
         {{ eventlog = {{ log = \"System\", level = \"error\", sources = [\"Service Control Manager\"] }}, retries = 0 }},\n]",
        web.url_template()
    );
    let ran = tokio::task::block_in_place(|| {
        hive_rollout(&fleet, &lab, "canary(group=canary) -> 50% -> 100%", &health)
    });
    assert_eq!(ran.code, Some(3), "the gate's exit code");

    // Only the canaries were patched; the 40 others never saw an installer.
    let mut installed = installed_on(&fleet);
    installed.sort();
    assert_eq!(
        installed,
        vec!["HC1", "HC2"],
        "installs beyond the canaries"
    );
    for h in fleet.model.hosts() {
        if h.name().starts_with("HF") {
            assert!(
                !h.command_log()
                    .iter()
                    .any(|c| c.command_line.contains(PATCH)),
                "{}: ran something of {PATCH}",
                h.name()
            );
        }
    }

    // Both canaries unhealthy, with each failed check's evidence.
    let log = RunLog::load(&ran.repo, &run_id(&ran)).unwrap();
    let verdicts = log.verdicts();
    for canary in ["HC1", "HC2"] {
        let (v, detail) = &verdicts[canary];
        assert_eq!(*v, HostVerdict::Unhealthy, "{canary}: {detail}");
        for evidence in [
            "service W3SVC: state 1 STOPPED",
            "HTTP 503, expected 200 (service W3SVC is not running)",
            "Service Control Manager 7000",
        ] {
            assert!(
                detail.contains(evidence),
                "{canary}: no `{evidence}` in {detail}"
            );
        }
        assert_eq!(fleet.host(canary).service_running("W3SVC"), Some(false));
        assert_eq!(fleet.host(canary).reboot_count(), 1);
    }
    assert!(verdicts.keys().all(|h| h.starts_with("HC")), "{verdicts:?}");
    assert!(
        ran.stdout.contains("canaries failed or unhealthy"),
        "the summary names the gate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_turning_unhealthy_during_the_soak_fails_the_gate() {
    // HC1's health page answers three times (pre-flight's check before anything is installed,
    // the check after its patch, the first soak poll), then fails: the second soak poll finds it,
    // long before the 60 s soak ends.
    let fleet = SimFleet::start(
        "health-soak",
        &fleet_toml(2, 1, 6, "faults = { health_endpoint_fails_after = 3 }"),
    )
    .await;
    let web = HealthServer::start(fleet.model.hosts().to_vec(), [127, 0, 0, 1].into())
        .await
        .unwrap();
    let lab = lab();
    let health = format!(
        "health = [{{ http = \"{}\", retries = 0 }}]\nhealth_interval = 1",
        web.url_template()
    );
    let ran = tokio::task::block_in_place(|| {
        hive_rollout(
            &fleet,
            &lab,
            "canary(group=canary, soak=60s) -> 100%",
            &health,
        )
    });
    assert_eq!(ran.code, Some(3), "the gate's exit code");
    assert!(
        ran.elapsed < Duration::from_secs(50),
        "the soak ended at the first unhealthy poll, not after 60 s: {:?}",
        ran.elapsed
    );
    let mut installed = installed_on(&fleet);
    installed.sort();
    assert_eq!(installed, vec!["HC1", "HC2"]);
    let log = RunLog::load(&ran.repo, &run_id(&ran)).unwrap();
    let verdicts = log.verdicts();
    let (v, detail) = &verdicts["HC1"];
    assert_eq!(*v, HostVerdict::Unhealthy, "{detail}");
    assert!(
        detail.starts_with("turned unhealthy during the soak: ")
            && detail.contains("HTTP 503, expected 200 (application error (fault plan))"),
        "{detail}"
    );
    assert_eq!(verdicts["HC2"].0, HostVerdict::Patched);
    // The progress output showed the soak: one record per poll, HC1 healthy at first.
    let soak: Vec<serde_json::Value> = ran
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["record"] == "soak")
        .collect();
    assert!(soak.len() >= 2, "{} soak records", soak.len());
    assert_eq!(soak[0]["hosts"]["HC1"]["healthy"], true, "{}", soak[0]);
    assert_eq!(soak.last().unwrap()["hosts"]["HC1"]["healthy"], false);
    assert!(soak[0]["left_ms"].as_u64().unwrap() > 50_000);
    assert!(
        ran.stdout.contains("turned unhealthy during its soak"),
        "the stop reason names the soak"
    );
}
