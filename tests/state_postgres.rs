//! Shared run state on a real PostgreSQL (the harness's `postgres` service): several
//! orchestrators, one rollout.
//!
//! - the same journal gives the same `hive report` from the NDJSON file and from the database;
//! - a lease is a fence: once a dead worker's lease expired and another worker claimed the host,
//!   the first can write nothing more about it, and the second sees its open step;
//! - 3 sites × 1–2 `hive worker`s over a simulated fleet of 3,000 hosts (about 5 minutes on a
//!   debug build of a quiet 2-core machine; `HIVE_TEST_PG_HOSTS=300` for a quick look), one worker SIGKILLed mid-wave, the coordinator SIGKILLed and started again, the
//!   database stopped and started mid-run: every host ends with the verdict a single `hive
//!   rollout` gives the same fleet, no installer ran twice on any host, and the run's counts are
//!   the sum of the sites'.
//!
//! The fleets run in this process (winsim: WinRM listeners, hosts' C: drives as local folders the
//! hive processes write through the lab's local-drive mode), so the install log is at hand.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Lab, LabPatch};
use hive::catalog::model::InstallerRecipe;
use hive::journal::{Record, RunLog};
use hive::state::postgres::run::{self, RunRecords};
use hive::state::postgres::{Db, StateUrl};
use tokio_postgres::types::Type;
use winsim::installer::Package;

const HIVE: &str = env!("CARGO_BIN_EXE_hive");
const PRODUCT: &str = "Windows Server 2019 Datacenter";
const PATCH: &str = "KB5000201";
const PLAN: &str = "canary(group=canary) -> 20% -> 100%";
const SITES: [&str; 3] = ["east", "west", "north"];

fn pg_url() -> String {
    std::env::var("HIVE_TEST_PG_URL").unwrap_or_else(|_| {
        panic!("HIVE_TEST_PG_URL is not set: run this test through integration/test.sh (it starts the postgres service)")
    })
}

async fn db() -> Arc<Db> {
    Db::open(StateUrl::parse(&pg_url(), true).expect("state URL"))
        .await
        .expect("the state database")
}

async fn count(db: &Db, sql: &str, run: &str) -> i64 {
    let rows = db.query(sql, &[(&run, Type::TEXT)]).await.expect(sql);
    rows.first().map(|r| r.get(0)).unwrap_or(0)
}

async fn drop_run(db: &Db, run: &str) {
    db.query(
        "DELETE FROM hive.runs WHERE run = $1",
        &[(&run, Type::TEXT)],
    )
    .await
    .expect("delete run");
}

fn hive(args: &[&str]) -> std::process::Output {
    let out = Command::new(HIVE)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run hive");
    assert!(
        out.status.success(),
        "hive {args:?}: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn report_is_the_same_from_the_journal_and_the_database() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-830fb18");
    let log = RunLog::load(&fixture, "20261204-215341").expect("fixture journal");
    let db = db().await;
    drop_run(&db, &log.header.run).await;
    let sites = BTreeMap::new();
    run::create(&db, &log.header, &sites).await.expect("create");
    let bytes = std::fs::read(fixture.join("runs/20261204-215341/journal.ndjson")).unwrap();
    let (records, _) = hive::journal::parse_records(&bytes, Path::new("fixture")).unwrap();
    let store = RunRecords::new(db.clone(), &log.header.run, "fixture".into());
    for r in records.iter().filter(|r| !matches!(r, Record::Header(_))) {
        store.add(r).await.expect("record");
    }
    let url = pg_url();
    for format in [
        &["-o", "table"][..],
        &["-o", "json"],
        &["-o", "csv"],
        &["--steps"],
    ] {
        let from_file = {
            let mut a = vec!["report", "20261204-215341", "-r"];
            let f = fixture.to_str().unwrap();
            a.push(f);
            a.extend_from_slice(format);
            hive(&a).stdout
        };
        let mut a = vec![
            "report",
            "20261204-215341",
            "-r",
            "/nonexistent",
            "--state",
            &url,
        ];
        a.extend_from_slice(format);
        let from_db = hive(&a).stdout;
        assert_eq!(
            String::from_utf8_lossy(&from_file),
            String::from_utf8_lossy(&from_db),
            "hive report {format:?}"
        );
    }
    drop_run(&db, &log.header.run).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_over_lease_fences_the_old_worker_out() {
    use hive::events::{Event, Step, StepState};
    use hive::rollout::{HostOutcome, HostVerdict};
    use hive::state::postgres::lease::Leases;
    let db = db().await;
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-830fb18");
    let mut header = RunLog::load(&fixture, "20261204-215341").unwrap().header;
    header.run = format!("lease-{}", std::process::id());
    drop_run(&db, &header.run).await;
    let sites: BTreeMap<String, String> = header.hosts().map(|h| (h.clone(), "s".into())).collect();
    run::create(&db, &header, &sites).await.unwrap();
    run::set_status(&db, &header.run, hive::journal::RunState::Running, 0)
        .await
        .unwrap();
    let lease = Duration::from_millis(600);
    let w1 = Leases::new(db.clone(), &header.run, "s", "w1".into(), lease);
    let w2 = Leases::new(db.clone(), &header.run, "s", "w2".into(), lease);
    let canaries = header.waves[0].hosts.len();
    let mine = w1.claim(100, 0).await.unwrap();
    assert_eq!(mine.len(), canaries, "w1 claims the open wave's hosts");
    assert!(
        w2.claim(100, 0).await.unwrap().is_empty(),
        "held hosts are not claimed twice"
    );
    let host = mine[0].host.clone();
    let started = Event::new(
        &header.run,
        &host,
        Step::Install {
            patch: "MS01-033/Q300972_W2K_SP3_x86_en.EXE".into(),
            index: 1,
            total: 1,
        },
        StepState::Started,
    );
    w1.append(&host, &Record::Step(started)).await.unwrap();
    // w1 dies: no heartbeat. Until the lease expires, its hosts stay its own.
    tokio::time::sleep(lease + Duration::from_millis(300)).await;
    let taken = w2.claim(100, 0).await.unwrap();
    assert_eq!(taken.len(), canaries);
    assert!(taken.iter().all(|c| c.claims == 2));
    let history = w2.history(&host).await.unwrap();
    assert_eq!(
        history.resume_state().install_started.len(),
        1,
        "the new owner sees the install left open"
    );
    // The old worker comes back: it may not write another step, nor a verdict.
    let again = Event::new(&header.run, &host, Step::Verify, StepState::Started);
    assert!(w1.append(&host, &Record::Step(again)).await.is_err());
    let outcome = HostOutcome::new(HostVerdict::Patched, "late");
    assert!(w1.settle(&host, 0, &outcome).await.is_err());
    w2.settle(&host, 0, &outcome).await.unwrap();
    let (_, held) = w2.heartbeat().await.unwrap();
    assert_eq!(held.len(), canaries - 1);
    drop_run(&db, &header.run).await;
}

/// A fleet file of `n` Server 2019 hosts missing one hotfix that wants a reboot.
fn fleet_toml(n: usize) -> String {
    format!(
        "[[group]]\ncount = {n}\nname = \"PG{{n:04}}\"\naddress = \"127.61.0.1\"\nproduct = \"{PRODUCT}\"\n\
         edition = \"ServerDatacenter\"\nversion = \"10.0.17763\"\nubr = 5206\n\
         reboot = {{ downtime_ms = 300 }}\n"
    )
}

fn lab() -> Lab {
    let mut lab = Lab::new();
    let mut recipe = InstallerRecipe::legacy_hotfix();
    recipe.needs_qchain = false;
    lab.add(LabPatch {
        id: PATCH,
        bulletin: "MS-PG-201",
        product: PRODUCT,
        file_name: &format!("{PATCH}.exe"),
        package: Package::hotfix(PATCH)
            .file(
                r"C:\Windows\System32\pg201.dll",
                "10.0.17763.6201".parse().unwrap(),
            )
            .hotfix_key()
            .reboot_required(true)
            .exit_code(3010)
            .duration(Duration::from_millis(50)),
        recipe,
        subtype: "Security Update",
        detection: None,
    });
    lab
}

/// A simulated fleet in this process with its drives as local folders, and what hive needs to
/// reach it: a lab folder in local-drive mode, an inventory with sites, the catalog.
struct Fleet {
    model: winsim::Fleet,
    servers: Option<winsim::server::WinrmFleet>,
    _health: Option<winsim::health_http::HealthServer>,
    lab: Lab,
    lab_dir: PathBuf,
    inventory: PathBuf,
    catalog: PathBuf,
}

async fn start_fleet(tag: &str, n: usize) -> Fleet {
    start_fleet_in(tag, n, &SITES).await
}

/// [`start_fleet`] with the hosts spread over `sites` in turn.
async fn start_fleet_in(tag: &str, n: usize, sites: &[&str]) -> Fleet {
    start_fleet_with(tag, n, sites, &Setup::default()).await
}

/// What a fleet has beyond hosts missing the hotfix.
#[derive(Default)]
struct Setup {
    /// Health checks: each host's HTTP health page (winsim) in the inventory's
    /// `[group_defaults]`, polled every second during a soak.
    health: bool,
    /// Hosts (by index) whose health page fails from this many answers on.
    health_fails_after: Vec<(usize, u32)>,
}

async fn start_fleet_with(tag: &str, n: usize, sites: &[&str], setup: &Setup) -> Fleet {
    let lab = lab();
    let dir = lab.dir.path().to_path_buf();
    let lab_dir = dir.join(format!("lab-{tag}"));
    let drives = lab_dir.join("drives");
    std::fs::create_dir_all(&drives).unwrap();
    let password = format!("Pg-{}-Passw0rd", std::process::id());
    let mut configs = winsim::fleet::parse(&fleet_toml(n), Path::new("pg-fleet.toml")).unwrap();
    for c in configs.iter_mut() {
        c.winrm_port = 0;
        c.user = "Administrator".into();
        c.password = winsim::fleet::Password::new(password.clone());
    }
    for (i, after) in &setup.health_fails_after {
        configs[*i].faults.health_endpoint_fails_after = Some(*after);
    }
    let model = winsim::Fleet::start(&configs, &drives).expect("fleet");
    let servers = winsim::server::WinrmFleet::start(model.sim_hosts(), Default::default())
        .await
        .expect("WinRM listeners");
    let health = if setup.health {
        Some(
            winsim::health_http::HealthServer::start(model.hosts().to_vec(), [127, 0, 0, 1].into())
                .await
                .expect("health pages"),
        )
    } else {
        None
    };
    let credential = dir.join("credential");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&credential)
            .unwrap();
        f.write_all(password.as_bytes()).unwrap();
    }
    let mut inv = format!(
        "[defaults]\ntransport = \"winrm-http\"\nuser = \"Administrator\"\ncredential = \"file:{}\"\n\n",
        credential.display()
    );
    let mut lab_hosts = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let port = servers
            .endpoints()
            .iter()
            .find(|e| e.name == c.name)
            .and_then(|e| e.http_port())
            .unwrap();
        inv.push_str(&format!(
            "[[host]]\nname = \"{}\"\naddress = \"{}\"\nport = {port}\nsite = \"{}\"\ngroups = [{}]\n\n",
            c.name,
            c.address,
            sites[i % sites.len()],
            if i < 3 { "\"canary\"" } else { "" }
        ));
        lab_hosts.push(
            serde_json::json!({"name": c.name, "address": c.address.to_string(), "port": port}),
        );
    }
    if let Some(web) = &health {
        inv.push_str(&format!(
            "[group_defaults]\nhealth = [{{ http = \"{}\", retries = 0 }}]\nhealth_interval = 1\n",
            web.url_template()
        ));
    }
    let inventory = dir.join("inventory.toml");
    std::fs::write(&inventory, inv).unwrap();
    let state = serde_json::json!({
        "pid": std::process::id(), "smbd_pid": null, "smb_port": null, "mode": "local-drive",
        "user": "Administrator", "drives": drives, "hosts": lab_hosts,
    });
    std::fs::write(lab_dir.join("lab.json"), state.to_string()).unwrap();
    let catalog = dir.join("catalog.json");
    hive::catalog::store::save(&catalog, &lab.catalog).unwrap();
    Fleet {
        model,
        servers: Some(servers),
        _health: health,
        lab,
        lab_dir,
        inventory,
        catalog,
    }
}

impl Fleet {
    fn command(&self, args: &[&str], log: &str) -> Command {
        let mut c = Command::new(HIVE);
        c.args(args)
            .arg("-i")
            .arg(&self.inventory)
            .arg("-r")
            .arg(self.lab.repo.root())
            .arg("--catalog")
            .arg(&self.catalog)
            .args([
                "--shutdown-delay",
                "0",
                "--reboot-timeout",
                "30",
                "--poll-ms",
                "100",
                "--install-timeout",
                "30",
            ])
            .env("HIVE_LAB_DIR", &self.lab_dir)
            .env_remove("HIVE_STATE")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.lab.dir.path().join(format!("{log}.out"))).unwrap())
            .stderr(std::fs::File::create(self.lab.dir.path().join(format!("{log}.err"))).unwrap());
        c
    }

    fn output(&self, log: &str) -> String {
        let p = self.lab.dir.path();
        format!(
            "{}{}",
            std::fs::read_to_string(p.join(format!("{log}.out"))).unwrap_or_default(),
            std::fs::read_to_string(p.join(format!("{log}.err"))).unwrap_or_default()
        )
    }

    /// Per host: how many times each package's installer ran.
    fn installs(&self) -> BTreeMap<String, BTreeMap<String, usize>> {
        let mut out = BTreeMap::new();
        for c in self.model.sim_hosts() {
            let name = c.name().to_string();
            let host = self.model.host(&name).unwrap();
            let mut per: BTreeMap<String, usize> = BTreeMap::new();
            for r in host.install_log() {
                *per.entry(r.package).or_default() += 1;
            }
            out.insert(name, per);
        }
        out
    }

    async fn stop(mut self) {
        if let Some(s) = self.servers.take() {
            s.shutdown().await;
        }
    }
}

fn wait(child: &mut Child, what: &str, limit: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect(what) {
            return s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Host → verdict word from `hive report -o json`.
fn verdicts(json: &[u8]) -> BTreeMap<String, String> {
    let rows: Vec<serde_json::Value> = serde_json::from_slice(json).expect("report json");
    rows.iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap().to_string(),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The database round trips a worker reported in its last line (`..., N database round trips`).
fn worker_round_trips(fleet: &Fleet, name: &str) -> Option<u64> {
    let out = fleet.output(&format!("worker-{name}"));
    let line = out.lines().find(|l| l.contains("database round trips"))?;
    line.split(", ").last()?.split(' ').next()?.parse().ok()
}

/// Bytes of the run's rows (records and hosts), as `pg_column_size` counts them.
async fn run_row_bytes(db: &Db, run: &str) -> i64 {
    count(
        db,
        "SELECT (SELECT sum(pg_column_size(r.*)) FROM hive.records r WHERE run = $1) \
         + (SELECT sum(pg_column_size(h.*)) FROM hive.hosts h WHERE run = $1)",
        run,
    )
    .await
}

fn pg_ctl(what: &str) {
    let ctl = std::env::var("HIVE_TEST_PG_CTL").expect("HIVE_TEST_PG_CTL (the harness)");
    let st = Command::new(ctl).arg(what).status().expect("pg ctl");
    assert!(st.success(), "pg_ctl {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_sites_share_one_rollout_through_kills_and_a_database_restart() {
    let n: usize = std::env::var("HIVE_TEST_PG_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let url = pg_url();
    // Generous bounds that grow with the fleet: each only catches a run that hangs.
    let limit = Duration::from_secs(600.max(n as u64));

    // The reference: one orchestrator over its own copy of the fleet.
    let t0 = Instant::now();
    let single = start_fleet("single", n).await;
    let mut c = single.command(&["rollout", "--plan", PLAN, "--parallel", "150"], "single");
    let mut child = c.spawn().unwrap();
    let status = tokio::task::block_in_place(|| wait(&mut child, "hive rollout", limit));
    assert!(
        status.success(),
        "single rollout: {status:?}\n{}",
        single.output("single")
    );
    let runs = single.lab.repo.root().join("runs");
    let single_run = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .file_name();
    let single_run = single_run.to_string_lossy().into_owned();
    let report = hive(&[
        "report",
        &single_run,
        "-r",
        single.lab.repo.root().to_str().unwrap(),
        "-o",
        "json",
    ]);
    let expected = verdicts(&report.stdout);
    assert_eq!(expected.len(), n);
    let single_ms = t0.elapsed().as_millis();
    single.stop().await;

    // The same fleet, shared: a coordinator, 2 workers in east and west, 1 in north.
    let t1 = Instant::now();
    let shared = start_fleet("shared", n).await;
    let db = db().await;
    let run = format!("pg-{}-{}", std::process::id(), hive::time::now_ms());
    let coordinator = |k: usize| {
        shared
            .command(
                &["rollout", "--plan", PLAN, "--state", &url, "--run", &run],
                &format!("coordinator-{k}"),
            )
            .spawn()
            .unwrap()
    };
    let worker = |site: &str, k: usize| {
        let name = format!("{site}{k}");
        shared
            .command(
                &[
                    "worker",
                    "--state",
                    &url,
                    "--run",
                    &run,
                    "--site",
                    site,
                    "--name",
                    &name,
                    "--lease",
                    "3",
                    "--parallel",
                    "50",
                ],
                &format!("worker-{name}"),
            )
            .spawn()
            .unwrap()
    };
    let mut coord = coordinator(1);
    // The coordinator creates the run; workers started before it would wait for it anyway.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&db, "SELECT count(*) FROM hive.runs WHERE run = $1", &run).await == 0 {
        assert!(
            Instant::now() < deadline,
            "no run:\n{}",
            shared.output("coordinator-1")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut workers: Vec<(String, Child)> = Vec::new();
    for (site, k) in [
        ("east", 1),
        ("east", 2),
        ("west", 1),
        ("west", 2),
        ("north", 1),
    ] {
        workers.push((format!("{site}{k}"), worker(site, k)));
    }

    // Mid-wave (the last wave running, hosts in flight): SIGKILL worker east1.
    let in_last_wave =
        "SELECT count(*) FROM hive.hosts WHERE run = $1 AND wave = 2 AND verdict IS NOT NULL";
    let held_by_east1 = "SELECT count(*) FROM hive.hosts WHERE run = $1 AND wave = 2 AND owner LIKE 'east1-%' AND verdict IS NULL";
    let deadline = Instant::now() + limit;
    loop {
        if count(&db, in_last_wave, &run).await > 0 && count(&db, held_by_east1, &run).await > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the last wave never got going:\n{}\n{}",
            shared.output("coordinator-1"),
            shared.output("worker-east1")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = count(&db, held_by_east1, &run).await;
    workers[0].1.kill().unwrap();
    workers[0].1.wait().unwrap();

    // Then the coordinator, started again at once.
    coord.kill().unwrap();
    coord.wait().unwrap();
    let mut coord = coordinator(2);

    // Then the database: stopped for 2 s under every worker and the coordinator.
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg_ctl("stop");
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg_ctl("start");

    let status = tokio::task::block_in_place(|| wait(&mut coord, "coordinator", limit));
    assert!(
        status.success(),
        "coordinator: {status:?}\n{}",
        shared.output("coordinator-2")
    );
    for (name, child) in workers.iter_mut().skip(1) {
        let status = tokio::task::block_in_place(|| wait(child, name, Duration::from_secs(120)));
        assert!(
            status.success(),
            "worker {name}: {status:?}\n{}",
            shared.output(&format!("worker-{name}"))
        );
    }
    let shared_ms = t1.elapsed().as_millis();

    // Every host: the verdict the single orchestrator gave it.
    let url_ref: &str = &url;
    let report = hive(&[
        "report",
        &run,
        "-r",
        "/nonexistent",
        "--state",
        url_ref,
        "-o",
        "json",
    ]);
    let got = verdicts(&report.stdout);
    assert_eq!(got, expected);
    assert!(got.values().all(|v| v == "patched"), "every host patched");

    // No installer ran twice on any host (east1's hosts included: it died with installs open).
    for (host, per) in shared.installs() {
        assert_eq!(per.get(PATCH), Some(&1), "{host}: {per:?}");
    }

    // The run's counts are the sum of the sites'.
    let rows = db
        .query(
            "SELECT site, verdict, count(*) FROM hive.hosts WHERE run = $1 GROUP BY site, verdict",
            &[(&run, Type::TEXT)],
        )
        .await
        .unwrap();
    let mut by_site: BTreeMap<String, i64> = BTreeMap::new();
    for r in &rows {
        let verdict: Option<String> = r.get(1);
        assert_eq!(verdict.as_deref(), Some("patched"));
        *by_site.entry(r.get(0)).or_default() += r.get::<_, i64>(2);
    }
    assert_eq!(by_site.len(), 3);
    assert_eq!(by_site.values().sum::<i64>() as usize, n);
    let log = run::load(&db, &run).await.unwrap();
    let summary = hive::state::postgres::coordinator::summary_of(&log, 0, None);
    let patched: usize = summary.waves.iter().map(|w| w.counts.patched).sum();
    assert_eq!(patched, n);
    for site in SITES {
        let expected_site = (0..n).filter(|i| SITES[i % 3] == site).count() as i64;
        assert_eq!(by_site[site], expected_site, "site {site}");
    }
    let taken_over = count(
        &db,
        "SELECT count(*) FROM hive.hosts WHERE run = $1 AND claims > 1",
        &run,
    )
    .await;
    assert!(
        taken_over >= held,
        "east1's {held} hosts were taken over ({taken_over} claimed twice)"
    );
    // What the database cost: statements the surviving workers sent, and the bytes this run
    // holds (records, hosts, indexes), per host.
    let worker_trips: u64 = workers
        .iter()
        .skip(1)
        .filter_map(|(name, _)| worker_round_trips(&shared, name))
        .sum();
    let bytes = run_row_bytes(&db, &run).await;
    eprintln!(
        "{n} hosts: single orchestrator {single_ms} ms, shared (3 sites, 5 workers, kills, db restart) {shared_ms} ms; \
         east1 held {held} when killed; {taken_over} hosts claimed twice; \
         {:.1} statements per host by the 4 surviving workers; {} bytes of rows per host",
        worker_trips as f64 / n as f64,
        bytes / n as i64
    );
    drop_run(&db, &run).await;
    shared.stop().await;
}

/// How a coordinated run ended.
struct Coordinated {
    status: std::process::ExitStatus,
    /// The last coordinator's output.
    output: String,
    /// The soak's deadline as the first coordinator set it, when it was killed during the soak.
    first_deadline: Option<String>,
}

/// A coordinated run of `fleet` to its end: the coordinator and one worker per site (leases of
/// 3 s, so idle workers look at the run often), the coordinator SIGKILLed once the first soak
/// began and started again when `restart_in_soak`. Returns after every process ended.
async fn coordinated(
    fleet: &Fleet,
    plan: &str,
    run: &str,
    sites: &[&str],
    restart_in_soak: bool,
) -> Coordinated {
    let url = pg_url();
    let coordinator = |k: usize| {
        fleet
            .command(
                &["rollout", "--plan", plan, "--state", &url, "--run", run],
                &format!("coordinator-{k}"),
            )
            .spawn()
            .unwrap()
    };
    let mut coord = coordinator(1);
    let mut last = 1;
    let mut workers: Vec<(String, Child)> = sites
        .iter()
        .map(|site| {
            let child = fleet
                .command(
                    &[
                        "worker", "--state", &url, "--run", run, "--site", site, "--name", site,
                        "--lease", "3",
                    ],
                    &format!("worker-{site}"),
                )
                .spawn()
                .unwrap();
            (site.to_string(), child)
        })
        .collect();
    let mut first_deadline = None;
    if restart_in_soak {
        let db = db().await;
        let deadline = Instant::now() + Duration::from_secs(120);
        first_deadline = loop {
            let rows = db
                .query(
                    "SELECT until::text FROM hive.soaks WHERE run = $1",
                    &[(&run, Type::TEXT)],
                )
                .await
                .unwrap();
            if let Some(r) = rows.first() {
                break Some(r.get::<_, String>(0));
            }
            assert!(
                Instant::now() < deadline,
                "no soak began:\n{}",
                fleet.output("coordinator-1")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        coord.kill().unwrap();
        coord.wait().unwrap();
        coord = coordinator(2);
        last = 2;
    }
    let status = tokio::task::block_in_place(|| {
        let status = wait(&mut coord, "coordinator", Duration::from_secs(240));
        for (site, child) in workers.iter_mut() {
            let s = wait(child, site, Duration::from_secs(60));
            assert!(
                s.success(),
                "worker {site}: {s:?}\n{}",
                fleet.output(&format!("worker-{site}"))
            );
        }
        status
    });
    Coordinated {
        status,
        output: fleet.output(&format!("coordinator-{last}")),
        first_deadline,
    }
}

/// The soak over the database: 12 hosts in 2 sites, the canaries soaking 20 s while each
/// site's worker polls its own canaries' health pages every second. PG0002 (site west) answers
/// healthy after its patch and at the first soak poll, then fails: it turns `unhealthy` with the
/// evidence, the canary wave fails its gate well before the soak's end, and no host of the next
/// wave is installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_turning_unhealthy_during_a_coordinated_soak_fails_the_gate() {
    let sites = ["east", "west"];
    let setup = Setup {
        health: true,
        // Answers: pre-flight, after the patch, the first soak poll; then 503.
        health_fails_after: vec![(1, 3)],
    };
    let fleet = start_fleet_with("soak-fail", 12, &sites, &setup).await;
    let db = db().await;
    let run = format!("soak-fail-{}-{}", std::process::id(), hive::time::now_ms());
    let t0 = Instant::now();
    let ran = coordinated(
        &fleet,
        "canary(group=canary, soak=20s) -> 100%",
        &run,
        &sites,
        false,
    )
    .await;
    let out = &ran.output;
    assert_eq!(ran.status.code(), Some(3), "the gate's exit code:\n{out}");
    assert!(out.contains("turned unhealthy during its soak"), "{out}");
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "the soak ended at the unhealthy poll: {:?}",
        t0.elapsed()
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM hive.soaks WHERE run = $1 AND wave = 0 AND ended < until",
            &run
        )
        .await,
        1,
        "closed before its deadline"
    );

    let report = hive(&[
        "report",
        &run,
        "-r",
        "/nonexistent",
        "--state",
        &pg_url(),
        "-o",
        "json",
    ]);
    let got = verdicts(&report.stdout);
    assert_eq!(got["PG0002"], "unhealthy");
    assert_eq!(got["PG0001"], "patched");
    assert_eq!(got["PG0003"], "patched");
    let log = run::load(&db, &run).await.unwrap();
    let (_, detail) = &log.verdicts()["PG0002"];
    assert!(
        detail.starts_with("turned unhealthy during the soak: ")
            && detail.contains("HTTP 503, expected 200 (application error (fault plan))"),
        "{detail}"
    );
    assert!(
        log.waves
            .iter()
            .any(|(w, st, _)| *w == 0 && *st == hive::journal::WaveState::Soak),
        "the journal records the soak: {:?}",
        log.waves
    );
    let gate = &log
        .waves
        .iter()
        .rfind(|(w, _, _)| *w == 0)
        .expect("the canary gate")
        .2;
    assert!(
        gate.starts_with("failed: ") && gate.contains("PG0002: "),
        "{gate}"
    );
    // The failed soak poll is a health step of the host, as a single orchestrator journals it.
    let steps = &log.hosts["PG0002"].steps;
    let last = steps.last().expect("steps");
    let end = last.finished.as_ref().expect("finished");
    assert!(!end.ok && end.detail.starts_with("soak: "), "{end:?}");

    let installs = fleet.installs();
    for (host, per) in &installs {
        let canary = ["PG0001", "PG0002", "PG0003"].contains(&host.as_str());
        assert_eq!(
            per.get(PATCH).copied().unwrap_or(0),
            usize::from(canary),
            "{host}: {per:?}"
        );
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM hive.hosts WHERE run = $1 AND wave = 1 AND verdict IS NOT NULL",
            &run
        )
        .await,
        0
    );
    drop_run(&db, &run).await;
    fleet.stop().await;
}

/// A soak whose hosts stay healthy, its coordinator killed and started again during it: the soak
/// keeps its deadline, each canary is checked at its end by its site's worker (a `soak: ...`
/// health step), the wave passes after the soak's length, and the run finishes with every host
/// patched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_healthy_coordinated_soak_survives_a_coordinator_restart_and_finishes() {
    let sites = ["east", "west"];
    let setup = Setup {
        health: true,
        health_fails_after: Vec::new(),
    };
    let fleet = start_fleet_with("soak-pass", 12, &sites, &setup).await;
    let db = db().await;
    let run = format!("soak-pass-{}-{}", std::process::id(), hive::time::now_ms());
    let ran = coordinated(
        &fleet,
        "canary(group=canary, soak=6s) -> 100%",
        &run,
        &sites,
        true,
    )
    .await;
    assert!(ran.status.success(), "{:?}\n{}", ran.status, ran.output);
    let rows = db
        .query(
            "SELECT until::text FROM hive.soaks WHERE run = $1",
            &[(&run, Type::TEXT)],
        )
        .await
        .unwrap();
    let deadline: String = rows[0].get(0);
    assert_eq!(
        Some(deadline),
        ran.first_deadline,
        "the restarted coordinator kept the soak's deadline"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM hive.soaks WHERE run = $1 AND wave = 0 AND ended >= until",
            &run
        )
        .await,
        1,
        "judged after its deadline"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM hive.hosts WHERE run = $1 AND wave = 0 AND soak = 'healthy'",
            &run
        )
        .await,
        3
    );
    let log = run::load(&db, &run).await.unwrap();
    let verdicts = log.verdicts();
    assert_eq!(verdicts.len(), 12);
    assert!(
        verdicts
            .values()
            .all(|(v, _)| *v == hive::rollout::HostVerdict::Patched),
        "{verdicts:?}"
    );
    for canary in ["PG0001", "PG0002", "PG0003"] {
        let end = log.hosts[canary]
            .steps
            .iter()
            .rev()
            .find_map(|s| s.finished.as_ref())
            .expect("a finished step");
        assert!(
            end.ok && end.detail.starts_with("soak: "),
            "{canary}: {end:?}"
        );
    }
    for (host, per) in fleet.installs() {
        assert_eq!(per.get(PATCH), Some(&1), "{host}: {per:?}");
    }
    drop_run(&db, &run).await;
    fleet.stop().await;
}

/// Without health checks the soak is a wait: workers have nothing to poll and mark their
/// canaries `unchecked`, the wave passes once the soak's length is over, the run finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coordinated_soak_without_health_checks_is_a_wait() {
    let sites = ["east", "west"];
    let fleet = start_fleet_with("soak-wait", 12, &sites, &Setup::default()).await;
    let db = db().await;
    let run = format!("soak-wait-{}-{}", std::process::id(), hive::time::now_ms());
    let t0 = Instant::now();
    let ran = coordinated(
        &fleet,
        "canary(group=canary, soak=3s) -> 100%",
        &run,
        &sites,
        false,
    )
    .await;
    assert!(ran.status.success(), "{:?}\n{}", ran.status, ran.output);
    assert!(t0.elapsed() >= Duration::from_secs(3));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM hive.hosts WHERE run = $1 AND wave = 0 AND soak = 'unchecked'",
            &run
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM hive.soaks WHERE run = $1 AND ended >= until",
            &run
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM hive.hosts WHERE run = $1 AND verdict = 'patched'",
            &run
        )
        .await,
        12
    );
    drop_run(&db, &run).await;
    fleet.stop().await;
}

/// What a coordinated run does not do yet is refused when `hive rollout --state` or `hive worker`
/// starts, naming the feature, before anything connects; a soak and host hooks are not refused.
/// No database is needed: the refusals come first.
#[test]
fn coordinated_mode_refuses_what_it_does_not_do() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: a run that got past the refusals fails at its first connection.
    let url = "postgres://hive@127.0.0.1:1/hive?sslmode=disable";
    let inventory = |name: &str, extra: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "[defaults]\ncredential = \"env:HIVE_TEST_NO_SUCH_PASSWORD\"\nsite = \"east\"\n\n\
                 [[host]]\nname = \"WEB01\"\naddress = \"127.0.0.1\"\ngroups = [\"canary\"]\n\n\
                 [[host]]\nname = \"WEB02\"\naddress = \"127.0.0.1\"\ngroups = [\"web\"]\n\n{extra}"
            ),
        )
        .unwrap();
        path
    };
    let plain = inventory("plain.toml", "");
    let windows = inventory(
        "windows.toml",
        "[group.web]\nwindow = [\"Sat 02:00-06:00\"]\nwindow_zone = \"UTC\"\n",
    );
    let wave_hooks = inventory(
        "wave-hooks.toml",
        "[group_defaults.hooks]\npost_wave = \"echo done\"\n",
    );
    let host_hooks = inventory(
        "host-hooks.toml",
        "[group.web.hooks]\npre_host_local = \"true\"\n",
    );
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let run = |args: &[&str], inv: &Path| {
        let out = Command::new(HIVE)
            .args(args)
            .arg("-i")
            .arg(inv)
            .arg("-r")
            .arg(&repo)
            .env_remove("HIVE_STATE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let rollout = |plan: &str, extra: &[&str], inv: &Path| {
        let mut a = vec!["rollout", "--plan", plan, "--state", url];
        a.extend_from_slice(extra);
        run(&a, inv)
    };
    let worker = |extra: &[&str], inv: &Path| {
        let mut a = vec!["worker", "--state", url, "--site", "east"];
        a.extend_from_slice(extra);
        run(&a, inv)
    };
    let plan = "canary(group=canary, soak=1s) -> 100%";
    for (what, (ok, err), says) in [
        (
            "windows",
            rollout(plan, &[], &windows),
            "maintenance windows (`window` in the inventory's [group.web], host WEB02)",
        ),
        (
            "windows, worker",
            worker(&[], &windows),
            "maintenance windows (`window` in the inventory's [group.web], host WEB02)",
        ),
        (
            "wave hooks",
            rollout(plan, &[], &wave_hooks),
            "wave hooks (`hooks.post_wave` in the inventory's [group_defaults])",
        ),
        (
            "wave hooks, worker",
            worker(&[], &wave_hooks),
            "wave hooks (`hooks.post_wave`",
        ),
        (
            "quarantine",
            rollout(
                "canary(group=canary, quarantine_after=1) -> 100%",
                &[],
                &plain,
            ),
            "quarantine_after (plan stage `canary`)",
        ),
        (
            "--wait-for-window",
            rollout(plan, &["--wait-for-window"], &plain),
            "--wait-for-window is not available with --state",
        ),
        (
            "--wait-for-window, worker",
            worker(&["--wait-for-window"], &plain),
            "--wait-for-window is not available with --state",
        ),
        (
            "--pause-after-canary",
            rollout(plan, &["--pause-after-canary"], &plain),
            "--pause-after-canary is not available with --state",
        ),
    ] {
        assert!(!ok, "{what}: not refused");
        assert!(err.contains(says), "{what}: {err}");
    }
    // A soak and host hooks get past the refusals, to the state database.
    for inv in [&plain, &host_hooks] {
        let (ok, err) = rollout(plan, &[], inv);
        assert!(!ok);
        assert!(err.contains("state database"), "{err}");
    }
}

/// The rollout bench (`integration/bench/state.sh`): the same fleet rolled out by one
/// orchestrator, then by a coordinator and 4 workers (2 sites × 2), no faults; wall time of each,
/// statements per host the workers sent, and bytes of rows per host in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: integration/bench/state.sh runs it"]
async fn bench_shared_state() {
    let n: usize = std::env::var("HIVE_BENCH_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let parallel = "200";
    let url = pg_url();
    let single = start_fleet_in("single", n, &["east", "west"]).await;
    let t0 = Instant::now();
    let mut child = single
        .command(
            &[
                "rollout",
                "--plan",
                PLAN,
                "--parallel",
                parallel,
                "--no-preflight",
            ],
            "single",
        )
        .spawn()
        .unwrap();
    let status =
        tokio::task::block_in_place(|| wait(&mut child, "hive rollout", Duration::from_secs(7200)));
    assert!(status.success(), "{}", single.output("single"));
    let single_ms = t0.elapsed().as_millis();
    single.stop().await;

    let shared = start_fleet_in("shared", n, &["east", "west"]).await;
    let db = db().await;
    let run = format!("bench-{}-{}", std::process::id(), hive::time::now_ms());
    let t1 = Instant::now();
    let mut coord = shared
        .command(
            &["rollout", "--plan", PLAN, "--state", &url, "--run", &run],
            "coordinator",
        )
        .spawn()
        .unwrap();
    let mut workers = Vec::new();
    for (site, k) in [("east", 1), ("east", 2), ("west", 1), ("west", 2)] {
        let name = format!("{site}{k}");
        workers.push((
            name.clone(),
            shared
                .command(
                    &[
                        "worker",
                        "--state",
                        &url,
                        "--run",
                        &run,
                        "--site",
                        site,
                        "--name",
                        &name,
                        "--parallel",
                        parallel,
                        "--no-preflight",
                    ],
                    &format!("worker-{name}"),
                )
                .spawn()
                .unwrap(),
        ));
    }
    let status =
        tokio::task::block_in_place(|| wait(&mut coord, "coordinator", Duration::from_secs(7200)));
    assert!(status.success(), "{}", shared.output("coordinator"));
    for (name, child) in workers.iter_mut() {
        let status = tokio::task::block_in_place(|| wait(child, name, Duration::from_secs(120)));
        assert!(
            status.success(),
            "{}",
            shared.output(&format!("worker-{name}"))
        );
    }
    let shared_ms = t1.elapsed().as_millis();
    let trips: u64 = workers
        .iter()
        .filter_map(|(name, _)| worker_round_trips(&shared, name))
        .sum();
    let bytes = run_row_bytes(&db, &run).await;
    let patched = count(
        &db,
        "SELECT count(*) FROM hive.hosts WHERE run = $1 AND verdict = 'patched'",
        &run,
    )
    .await;
    assert_eq!(patched as usize, n);
    println!(
        "| {n} | {:.1} s | {:.1} s | {:.1} | {} B |",
        single_ms as f64 / 1000.0,
        shared_ms as f64 / 1000.0,
        trips as f64 / n as f64,
        bytes / n as i64
    );
    drop_run(&db, &run).await;
    shared.stop().await;
}
