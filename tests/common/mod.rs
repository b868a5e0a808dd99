//! Shared by the end-to-end tests: a simulated Windows fleet whose C: drives live in the
//! harness's real Samba `fleet` share, WinRM on loopback, and an inventory that reaches it.
//!
//! Samba listens on 127.0.0.1 only, and hive's WinRM+SMB target uses one address for both, so
//! every simulated host listens on 127.0.0.1 with a port of its own.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hive::inventory::{CredentialRef, Host, Secret, Transport};
use hive::remote::Connector as _;
use winsim::Fleet;
use winsim::server::{FleetOptions, WinrmFleet};

/// A harness variable, or a loud failure naming the harness.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this test through integration/test.sh (it starts the samba service)")
    })
}

/// A running simulated fleet reachable through WinRM (commands) and real Samba (files).
pub struct SimFleet {
    pub model: Fleet,
    pub servers: WinrmFleet,
    /// Inventory entries, in fleet-file order.
    pub hosts: Vec<Host>,
    pub secret: Secret,
    drives: PathBuf,
}

impl SimFleet {
    /// Start hosts from fleet-file text (`[[host]]`/`[[group]]` tables; addresses are replaced,
    /// credentials become the Samba account's so one logon serves WinRM and SMB). `tag` names
    /// this fleet's folder in the share; use one per test.
    pub async fn start(tag: &str, fleet_toml: &str) -> SimFleet {
        let user = env("HIVE_TEST_SMB_USER");
        let password = env("HIVE_TEST_SMB_PASSWORD");
        let smb_port: u16 = env("HIVE_TEST_SMB_PORT")
            .parse()
            .expect("HIVE_TEST_SMB_PORT");
        let share = env("HIVE_TEST_SMB_FLEET_SHARE");
        let root = PathBuf::from(env("HIVE_TEST_SMB_FLEET_ROOT"));
        let sub = format!("{tag}-{}", std::process::id());
        let drives = root.join(&sub);
        let _ = std::fs::remove_dir_all(&drives);
        let mut configs =
            winsim::fleet::parse(fleet_toml, Path::new("test-fleet.toml")).expect("fleet file");
        for c in configs.iter_mut() {
            c.address = std::net::Ipv4Addr::LOCALHOST;
            // Port 0: each listener is bound to a port the kernel picks and holds from then on.
            // A port probed free and bound later can be taken in between (by another test's
            // listener or an outgoing connection's ephemeral port): EADDRINUSE.
            c.winrm_port = 0;
            c.user = user.clone();
            c.password = winsim::fleet::Password::new(password.clone());
        }
        let model = Fleet::start(&configs, &drives).expect("fleet starts");
        let servers = WinrmFleet::start(model.sim_hosts(), FleetOptions::default())
            .await
            .expect("WinRM listeners");
        let hosts = configs
            .iter()
            .map(|c| Host {
                name: c.name.clone(),
                address: "127.0.0.1".into(),
                transport: Transport::WinrmHttp,
                port: servers
                    .endpoints()
                    .iter()
                    .find(|e| e.name == c.name)
                    .and_then(|e| e.http_port())
                    .unwrap_or_else(|| panic!("{}: no WinRM endpoint", c.name)),
                smb_address: env("HIVE_TEST_SMB_HOST"),
                smb_port,
                smb_share: share.clone(),
                smb_root: format!("{sub}\\{}", c.name),
                sftp_root: String::new(),
                user: user.clone(),
                credential: CredentialRef::Env("HIVE_TEST_SMB_PASSWORD".into()),
                groups: Default::default(),
                pin: None,
                spn: None,
                smb_credential: None,
                site: None,
            })
            .collect();
        SimFleet {
            model,
            servers,
            hosts,
            secret: Secret::new(password),
            drives,
        }
    }

    pub fn host(&self, name: &str) -> &std::sync::Arc<winsim::model::WinHost> {
        self.model
            .host(name)
            .unwrap_or_else(|| panic!("no simulated host {name}"))
    }

    pub fn inventory_host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no inventory host {name}"))
    }
}

impl Drop for SimFleet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.drives);
    }
}

/// `n` distinct TCP ports on 127.0.0.1 that nothing listened on a moment ago. Only for ports
/// that must stay closed (an unreachable host); a server binds port 0 and reports its port.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect()
}

/// A repository and a catalog built for one test: each patch is a simulated installer approved
/// under its bulletin, detected by its KB.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub repo: hive::repo::Repository,
    pub catalog: hive::catalog::model::Catalog,
}

/// One patch of a [`Lab`].
pub struct LabPatch<'a> {
    /// `KB5000001` or `Q300001`: the patch id, the KB the detection looks for.
    pub id: &'a str,
    pub bulletin: &'a str,
    /// The catalog product (matched against the host's ProductName).
    pub product: &'a str,
    pub file_name: &'a str,
    pub package: winsim::installer::Package,
    pub recipe: hive::catalog::model::InstallerRecipe,
    pub subtype: &'a str,
    /// `None`: the KB is installed.
    pub detection: Option<hive::catalog::model::DetectionRule>,
}

impl Lab {
    pub fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let repo = hive::repo::Repository::init(&dir.path().join("repo")).unwrap();
        Lab {
            dir,
            repo,
            catalog: Default::default(),
        }
    }

    pub fn add(&mut self, p: LabPatch<'_>) {
        use hive::catalog::model::{DetectionRule, Patch, PatchTarget, Product};
        let product_id = format!("test:{}", p.product);
        self.catalog
            .products
            .entry(product_id.clone())
            .or_insert_with(|| Product {
                id: product_id.clone(),
                name: p.product.to_string(),
                family: None,
                cpe: None,
                applicability: Default::default(),
            });
        let kb = p.id.parse().expect("a KB or Q number");
        self.catalog.patches.insert(
            p.id.to_string(),
            Patch {
                id: p.id.to_string(),
                kb: Some(kb),
                file_name: Some(p.file_name.to_string()),
                download_url: None,
                sha256: None,
                subtype: Some(p.subtype.to_string()),
                restart: None,
                bulletins: vec![p.bulletin.to_string()],
                targets: vec![PatchTarget {
                    product: product_id,
                    service_packs: vec![],
                    fixed_in_sp: None,
                    fixed_build: None,
                    detection: p.detection.unwrap_or(DetectionRule::KbInstalled { kb }),
                }],
                supersedes: Default::default(),
                superseded_by: Default::default(),
                installer: Some(p.recipe.clone()),
            },
        );
        let incoming = self.dir.path().join("incoming");
        std::fs::create_dir_all(&incoming).unwrap();
        let file = incoming.join(p.file_name);
        p.package.write_to(&file).unwrap();
        self.repo.approve(p.bulletin, &file, &p.recipe).unwrap();
    }
}

/// Options short enough for simulated hosts (reboots of a few hundred ms).
pub fn fast_options() -> hive::deploy::DeployOptions {
    use std::time::Duration;
    hive::deploy::DeployOptions {
        shutdown_delay_s: 0,
        install_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(15),
        busy_attempts: 3,
        busy_backoff: Duration::from_millis(100),
        poll_interval: Duration::from_millis(100),
        down_timeout: Duration::from_secs(8),
        port_timeout: Duration::from_secs(3),
        login_timeout: Duration::from_secs(8),
        settle_timeout: Duration::from_millis(1500),
        verify_timeout: Duration::from_secs(20),
        // The simulated installers are small: have the hosts hash every one as it arrives, so
        // the deploy tests go through that path (tests/remote_follow.rs has the large files).
        hash_on_arrival_from: 0,
        ..Default::default()
    }
}

/// Scan, plan and deploy every host of the fleet at once (each through its own target), as a
/// rollout wave would. Returns the outcomes in fleet order and the plans.
pub async fn deploy_all(
    fleet: &SimFleet,
    lab: &Lab,
    run: &str,
    options: &hive::deploy::DeployOptions,
    sink: &dyn hive::events::EventSink,
) -> Vec<(hive::deploy::HostPlan, hive::deploy::DeployOutcome)> {
    use hive::deploy::{HostContext, PriorWork, ScanInputs};
    use hive::scan::run::{FileSource, PreparedProbe, scan_target};
    let probe = PreparedProbe::new(&lab.catalog);
    let approved = hive::deploy::load_approved(&lab.repo).unwrap();
    let timeouts = hive::remote::Timeouts {
        connect: std::time::Duration::from_secs(2),
        operation: std::time::Duration::from_secs(20),
    };
    let jobs = fleet.hosts.iter().map(|host| {
        let probe = &probe;
        let approved = &approved;
        async move {
            let mut target = hive::remote::NetworkConnector::new(timeouts)
                .open(host, &fleet.secret)
                .unwrap();
            let before = scan_target(
                &mut *target,
                &lab.catalog,
                probe,
                std::time::Duration::from_secs(20),
                FileSource::Probe,
            )
            .await
            .unwrap_or_else(|e| panic!("{}: first scan: {e}", host.name));
            let plan =
                hive::deploy::plan_host(&host.name, &before.verdicts, &lab.catalog, approved);
            let mut ctx = HostContext::new(run, host, &mut *target, sink, Some(&lab.repo), options);
            let scan = ScanInputs {
                catalog: &lab.catalog,
                probe,
                files: FileSource::Probe,
            };
            let outcome =
                hive::deploy::deploy_host(&mut ctx, &plan, &scan, &PriorWork::default()).await;
            (plan, outcome)
        }
    });
    futures::future::join_all(jobs).await
}

/// A host patched in one go: the plan installs `order` in that order, the verdict is Patched,
/// one reboot moved the boot time, every patch was verified by the re-scan, and the simulated
/// host rebooted exactly once and lists every KB.
pub fn assert_patched_once(
    plan: &hive::deploy::HostPlan,
    outcome: &hive::deploy::DeployOutcome,
    sim: &winsim::model::WinHost,
    order: &[&str],
) {
    let name = &outcome.host;
    assert_eq!(
        outcome.verdict,
        hive::deploy::DeployVerdict::Patched,
        "{name}: {outcome:?}"
    );
    let planned: Vec<&str> = plan.installs.iter().map(|i| i.patch.as_str()).collect();
    assert_eq!(planned, order, "{name}");
    assert_eq!(outcome.reboots.len(), 1, "{name}: {:?}", outcome.reboots);
    assert_ne!(
        Some(&outcome.reboots[0].boot_before),
        outcome.reboots[0].boot_after.as_ref()
    );
    for p in &outcome.patches {
        assert!(
            p.verified.as_deref().unwrap_or("").starts_with("installed"),
            "{name} {}: {:?}",
            p.patch,
            p.verified
        );
    }
    assert_eq!(sim.reboot_count(), 1, "{name}: exactly one reboot");
    let kbs = sim.installed_kbs();
    for kb in order {
        assert!(kbs.iter().any(|k| k == kb), "{name}: {kbs:?}");
    }
}

/// A port on 127.0.0.1 that every host of [`ws2019_fleet`] shares (each host has its own address).
pub fn shared_winrm_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

/// Windows Server 2019 hosts named and addressed as given, all answering WinRM on `port`, with
/// their drives under `dir/drives`: the fleet the targets tests find through a directory, a range
/// or a host list. Keep the model alive as long as the servers.
pub async fn ws2019_fleet(
    dir: &Path,
    hosts: impl IntoIterator<Item = (String, String)>,
    port: u16,
) -> (Fleet, WinrmFleet) {
    let mut sim = String::from(
        "[defaults]\nuser = \"hive\"\npassword = \"Sim-Pass-1\"\n\n\
         [template.ws2019]\nproduct = \"Windows Server 2019 Datacenter\"\nedition = \"ServerDatacenter\"\n\
         version = \"10.0.17763\"\nmachine = \"amd64\"\nubr = 5458\n\n",
    );
    for (name, addr) in hosts {
        sim.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"{addr}\"\ntemplate = \"ws2019\"\nwinrm_port = {port}\n\n"
        ));
    }
    std::fs::write(dir.join("sim.toml"), &sim).expect("write sim.toml");
    let model = Fleet::from_file(&dir.join("sim.toml"), &dir.join("drives")).expect("fleet");
    let servers = WinrmFleet::start(model.sim_hosts(), FleetOptions::default())
        .await
        .expect("start the fleet's WinRM");
    (model, servers)
}

/// `hive` flags short enough for simulated hosts' reboots and installers.
pub const FAST_REBOOTS: [&str; 8] = [
    "--shutdown-delay",
    "0",
    "--reboot-timeout",
    "20",
    "--poll-ms",
    "100",
    "--install-timeout",
    "30",
];

/// Where a test's `hive` invocations read and write: the inventory of a [`SimFleet`], the
/// repository and catalog of a [`Lab`], and a folder for the binary's output.
pub struct HivePaths {
    pub inventory: PathBuf,
    pub repo: PathBuf,
    pub catalog: PathBuf,
    pub logs: PathBuf,
}

impl HivePaths {
    /// Write the inventory of `fleet` (host `n` in the groups `groups(n)` names, a TOML list's
    /// inside such as `"web", "first"`; then `extra` TOML) and the catalog of `lab` into the
    /// lab's folder.
    pub fn write(
        fleet: &SimFleet,
        lab: &Lab,
        groups: impl Fn(usize) -> String,
        extra: &str,
    ) -> HivePaths {
        let dir = lab.dir.path();
        let p = HivePaths {
            inventory: dir.join("inventory.toml"),
            repo: lab.repo.root().to_path_buf(),
            catalog: dir.join("catalog.json"),
            logs: dir.join("logs"),
        };
        std::fs::create_dir_all(&p.logs).unwrap();
        let mut s = format!(
            "[defaults]\ntransport = \"winrm-http\"\nuser = \"{}\"\ncredential = \"env:HIVE_TEST_SMB_PASSWORD\"\n\n",
            env("HIVE_TEST_SMB_USER")
        );
        for (n, h) in fleet.hosts.iter().enumerate() {
            s.push_str(&format!(
                "[[host]]\nname = \"{}\"\naddress = \"{}\"\nport = {}\nsmb_address = \"{}\"\nsmb_port = {}\n\
                 smb_share = \"{}\"\nsmb_root = '{}'\ngroups = [{}]\n\n",
                h.name,
                h.address,
                h.port,
                h.smb_address,
                h.smb_port,
                h.smb_share,
                h.smb_root,
                groups(n)
            ));
        }
        s.push_str(extra);
        std::fs::write(&p.inventory, s).unwrap();
        hive::catalog::store::save(&p.catalog, &lab.catalog).unwrap();
        p
    }

    /// `hive <args> --inventory ... --repo ... --catalog ...`.
    pub fn hive(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hive"));
        c.args(args)
            .arg("--inventory")
            .arg(&self.inventory)
            .arg("--repo")
            .arg(&self.repo)
            .arg("--catalog")
            .arg(&self.catalog);
        c
    }
}
