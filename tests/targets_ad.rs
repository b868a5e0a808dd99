//! Targets from a real Active Directory: the harness's Samba AD DC (integration/services/ad.sh),
//! queried by `hive inventory from-ad` and by an inventory `[[source]]` of kind `ad` that a scan
//! resolves at start, with the bad inputs an admin meets first (wrong password, missing base,
//! unreachable DC, a certificate hive cannot verify, a computer without a DNS name).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hive::inventory::InventoryFile;
use winsim::Fleet;
use winsim::server::{FleetOptions, WinrmFleet};

use common::{Lab, LabPatch, env};

fn hive(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hive"))
        .args(args)
        .env("HIVE_TEST_AD_BIND_PW", env("HIVE_TEST_AD_PASSWORD"))
        .env("HIVE_TEST_AD_WRONG_PW", "Not-The-Password-1")
        .env_remove("HIVE_INVENTORY")
        .env_remove("HIVE_REPO")
        .output()
        .expect("hive runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// NAME -> (address, groups) of the computers the harness made that should be found.
fn expected_fleet() -> BTreeMap<String, (String, BTreeSet<String>)> {
    env("HIVE_TEST_AD_FLEET")
        .split(';')
        .map(|entry| {
            let (name, rest) = entry.split_once('=').expect("NAME=ADDR:GROUPS");
            let (addr, groups) = rest.split_once(':').expect("ADDR:GROUPS");
            let groups = groups
                .split(',')
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect();
            (name.to_string(), (addr.to_string(), groups))
        })
        .collect()
}

/// `hive inventory from-ad` against the harness's DC; `extra` flags replace the defaults of the
/// same name (or are added: `--starttls`).
fn from_ad(extra: &[&str]) -> Output {
    let mut flags: Vec<(String, Option<String>)> = [
        ("--ldap", env("HIVE_TEST_AD_URL")),
        ("--base", env("HIVE_TEST_AD_BASE")),
        ("--bind-dn", env("HIVE_TEST_AD_BIND_DN")),
        ("--bind-credential", "env:HIVE_TEST_AD_BIND_PW".to_string()),
        ("--ca-file", env("HIVE_TEST_AD_CA_FILE")),
        ("--timeout", "20".to_string()),
    ]
    .into_iter()
    .map(|(f, v)| (f.to_string(), Some(v)))
    .collect();
    let mut it = extra.iter().peekable();
    while let Some(flag) = it.next() {
        let value = match it.peek() {
            Some(v) if !v.starts_with("--") => it.next().map(|v| v.to_string()),
            _ => None,
        };
        match flags.iter_mut().find(|(f, _)| f == flag) {
            Some(slot) => slot.1 = value,
            None => flags.push((flag.to_string(), value)),
        }
    }
    let mut args: Vec<String> = vec!["inventory".into(), "from-ad".into()];
    for (f, v) in flags {
        args.push(f);
        args.extend(v);
    }
    for rule in ["OU=Web:web", "OU=Db:db", "member:Patch-Canary:canary"] {
        args.push("--rule".into());
        args.push(rule.into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    hive(&args)
}

fn hosts_of(inventory: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let file = InventoryFile::parse(inventory, Path::new("from-ad.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{inventory}"));
    file.inventory
        .hosts
        .into_iter()
        .map(|h| (h.name, (h.address, h.groups)))
        .collect()
}

#[test]
fn from_ad_writes_enabled_windows_computers_with_rule_groups() {
    let out = from_ad(&[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // DIS01 is disabled, LNX01 runs Ubuntu, NODNS01 sits outside the base: none is listed.
    assert_eq!(hosts_of(&stdout), expected_fleet(), "{stdout}");
    assert!(
        stdout.contains("Windows Server 2019 Datacenter 10.0 (17763)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&env("HIVE_TEST_AD_PASSWORD")),
        "the bind password is in the output"
    );

    // StartTLS on port 389 finds the same computers.
    let out = from_ad(&["--ldap", &env("HIVE_TEST_AD_STARTTLS_URL"), "--starttls"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(hosts_of(&stdout), expected_fleet());
}

#[test]
fn bad_directory_input_gets_a_clear_message() {
    let domain = env("HIVE_TEST_AD_DOMAIN_DN");
    let missing_base = format!("OU=Nope,{domain}");
    let no_dns_base = format!("OU=NoDns,{domain}");
    let clear = env("HIVE_TEST_AD_STARTTLS_URL");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--bind-credential", "env:HIVE_TEST_AD_WRONG_PW"],
            vec!["refused the bind as", "wrong password"],
        ),
        (
            vec!["--base", &missing_base],
            vec!["base DN `OU=Nope,", "does not exist"],
        ),
        (
            vec!["--base", &no_dns_base],
            vec!["CN=NODNS01,OU=NoDns,", "no dNSHostName"],
        ),
        (
            vec!["--ldap", "ldaps://127.0.0.1:1"],
            vec!["cannot reach domain controller ldaps://127.0.0.1:1"],
        ),
        (vec!["--ldap", &clear], vec!["only made inside TLS"]),
    ];
    for (extra, wanted) in cases {
        let out = from_ad(&extra);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(stdout.is_empty(), "{extra:?}: {stdout}");
        for w in wanted {
            assert!(stderr.contains(w), "{extra:?}: `{w}` not in: {stderr}");
        }
        assert!(!stderr.contains(&env("HIVE_TEST_AD_PASSWORD")));
    }

    // A [[host]] the directory also lists: refused at start, naming both places.
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.toml");
    std::fs::write(
        &inventory,
        format!(
            "[defaults]\ncredential = \"prompt\"\n[[host]]\nname = \"web01\"\n\n\
             [[source]]\nkind = \"ad\"\nldap = \"{}\"\nbase = \"{}\"\nbind_dn = \"{}\"\n\
             bind_credential = \"env:HIVE_TEST_AD_BIND_PW\"\nca_file = \"{}\"\n",
            env("HIVE_TEST_AD_URL"),
            env("HIVE_TEST_AD_BASE"),
            env("HIVE_TEST_AD_BIND_DN"),
            env("HIVE_TEST_AD_CA_FILE"),
        ),
    )
    .unwrap();
    let inv = inventory.to_string_lossy().into_owned();
    let out = hive(&["scan", "-i", &inv, "--catalog", &inv]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("host `WEB01` comes from two places: [[host]] of")
            && stderr.contains("(CN=WEB01,OU=Web,OU=Servers,"),
        "{stderr}"
    );

    // Without the harness's CA the DC's certificate is not trusted: refused, not ignored.
    let url = env("HIVE_TEST_AD_URL");
    let base = env("HIVE_TEST_AD_BASE");
    let bind = env("HIVE_TEST_AD_BIND_DN");
    let out = hive(&[
        "inventory",
        "from-ad",
        "--ldap",
        &url,
        "--base",
        &base,
        "--bind-dn",
        &bind,
        "--bind-credential",
        "env:HIVE_TEST_AD_BIND_PW",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("TLS with domain controller") && stderr.contains("certificate"),
        "{stderr}"
    );
}

/// The whole path: an inventory whose hosts are the directory's computers, a scan of simulated
/// Windows hosts at their dNSHostName addresses, and the canary wave a rollout would start with
/// taken from the Patch-Canary membership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_of_hosts_from_the_directory() {
    let fleet = expected_fleet();
    let port = common::shared_winrm_port();
    let dir = tempfile::tempdir().unwrap();
    let (_model, servers) = common::ws2019_fleet(
        dir.path(),
        fleet
            .iter()
            .map(|(name, (addr, _))| (name.to_string(), addr.to_string())),
        port,
    )
    .await;

    let inventory = dir.path().join("inventory.toml");
    std::fs::write(
        &inventory,
        format!(
            "[defaults]\nuser = \"hive\"\ncredential = \"env:HIVE_TEST_SIM_PW\"\nport = {port}\n\n\
             [[source]]\nkind = \"ad\"\nldap = \"{}\"\nbase = \"{}\"\nbind_dn = \"{}\"\n\
             bind_credential = \"env:HIVE_TEST_AD_PASSWORD\"\nca_file = \"{}\"\n\
             rule = [{{ ou = \"Web\", group = \"web\" }}, {{ ou = \"Db\", group = \"db\" }}, \
             {{ member_of = \"Patch-Canary\", group = \"canary\" }}]\n",
            env("HIVE_TEST_AD_URL"),
            env("HIVE_TEST_AD_BASE"),
            env("HIVE_TEST_AD_BIND_DN"),
            env("HIVE_TEST_AD_CA_FILE"),
        ),
    )
    .unwrap();
    let catalog: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/catalogs/cvrf/2024-Mar.xml");
    let inv = inventory.to_string_lossy().into_owned();
    let cat = catalog.to_string_lossy().into_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_hive"))
            .args(["scan", "-i", &inv, "--catalog", &cat, "-o", "json"])
            .env("HIVE_TEST_SIM_PW", "Sim-Pass-1")
            .env_remove("HIVE_REPO")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{stdout}");
    let scans: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let scanned: BTreeSet<String> = scans
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["status"], "scanned", "{s}");
            s["host"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(scanned, fleet.keys().cloned().collect::<BTreeSet<_>>());

    // The canary wave of "canary(group=canary) -> 100%" is the Patch-Canary members, and only
    // those; the web group is the OU=Web computers.
    let file = InventoryFile::load(&inventory).unwrap();
    let mut no_prompt = NoPrompt;
    let targets = hive::targets::resolve(
        &file,
        &hive::targets::CommandLineTargets::default(),
        &mut no_prompt,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let inv =
        hive::inventory::Inventory::new(targets.hosts.iter().map(|(h, _)| h.clone()).collect());
    let options = hive::rollout::RolloutOptions::default();
    let waves =
        hive::rollout::plan_waves("canary(group=canary) -> 100%", &inv, None, &options).unwrap();
    let canary: BTreeSet<&str> = waves[0].hosts.iter().map(String::as_str).collect();
    assert_eq!(canary, BTreeSet::from(["DB01", "WEB01"]));
    let web: BTreeSet<&str> = inv.group("web").map(|h| h.name.as_str()).collect();
    assert_eq!(web, BTreeSet::from(["WEB01", "WEB02", "WEB03", "WEB04"]));
    servers.shutdown().await;
}

struct NoPrompt;
impl hive::inventory::SecretSource for NoPrompt {
    fn prompt(&mut self, _: &str) -> Result<hive::inventory::Secret, String> {
        Err("no terminal in a test".into())
    }
}

/// A canary rollout whose hosts and canaries come from the directory: the Patch-Canary members are
/// patched first and the run pauses; the directory is then made unusable (the inventory's bind
/// password is wrong) and `hive resume` still finishes the same seven hosts, from its journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_rollout_of_hosts_from_the_directory_resumes_from_its_journal() {
    use hive::catalog::model::{DetectionRule, InstallerRecipe, VersionOp, WhenMissing};
    use winsim::installer::Package;

    const PRODUCT: &str = "Windows Server 2019 Datacenter";
    const DLL: &str = r"C:\Windows\System32\adfix.dll";
    let fleet = expected_fleet();
    let user = env("HIVE_TEST_SMB_USER");
    let password = env("HIVE_TEST_SMB_PASSWORD");
    let sub = format!("ad-rollout-{}", std::process::id());
    let drives = PathBuf::from(env("HIVE_TEST_SMB_FLEET_ROOT")).join(&sub);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut sim = format!(
        "[template.ws]\nproduct = \"{PRODUCT}\"\nedition = \"ServerDatacenter\"\nversion = \"10.0.17763\"\n\
         ubr = 5206\nfiles = [{{ path = '{DLL}', version = \"10.0.17763.5000\" }}]\n\n"
    );
    for (name, (addr, _)) in &fleet {
        sim.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"{addr}\"\ntemplate = \"ws\"\nwinrm_port = {port}\n\n"
        ));
    }
    let mut configs = winsim::fleet::parse(&sim, Path::new("ad-fleet.toml")).unwrap();
    for c in configs.iter_mut() {
        c.user = user.clone();
        c.password = winsim::fleet::Password::new(password.clone());
    }
    let model = Fleet::start(&configs, &drives).unwrap();
    let servers = WinrmFleet::start(model.sim_hosts(), FleetOptions::default())
        .await
        .unwrap();

    let mut lab = Lab::new();
    let mut recipe = InstallerRecipe::legacy_hotfix();
    recipe.needs_qchain = false;
    lab.add(LabPatch {
        id: "KB5000240",
        bulletin: "MS-AD-240",
        product: PRODUCT,
        file_name: "KB5000240.exe",
        package: Package::hotfix("KB5000240").file(DLL, "10.0.17763.6240".parse().unwrap()),
        recipe,
        subtype: "Security Update",
        detection: Some(DetectionRule::FileVersion {
            path: DLL.into(),
            op: VersionOp::AtLeast,
            version: "10.0.17763.6240".parse().unwrap(),
            date: None,
            size: None,
            checksum: None,
            when_missing: WhenMissing::NotInstalled,
        }),
    });
    let dir = lab.dir.path().to_path_buf();
    let catalog = dir.join("catalog.json");
    hive::catalog::store::save(&catalog, &lab.catalog).unwrap();
    let inventory = dir.join("inventory.toml");
    let write_inventory = |bind_credential: &str| {
        std::fs::write(
            &inventory,
            format!(
                "[defaults]\nuser = \"{user}\"\ncredential = \"env:HIVE_TEST_SMB_PASSWORD\"\nport = {port}\n\
                 smb_address = \"{}\"\nsmb_port = {}\nsmb_share = \"{}\"\nsmb_root = '{sub}\\{{name}}'\n\n\
                 [[source]]\nkind = \"ad\"\nldap = \"{}\"\nbase = \"{}\"\nbind_dn = \"{}\"\n\
                 bind_credential = \"{bind_credential}\"\nca_file = \"{}\"\n\
                 rule = [{{ member_of = \"Patch-Canary\", group = \"canary\" }}]\n",
                env("HIVE_TEST_SMB_HOST"),
                env("HIVE_TEST_SMB_PORT"),
                env("HIVE_TEST_SMB_FLEET_SHARE"),
                env("HIVE_TEST_AD_URL"),
                env("HIVE_TEST_AD_BASE"),
                env("HIVE_TEST_AD_BIND_DN"),
                env("HIVE_TEST_AD_CA_FILE"),
            ),
        )
        .unwrap()
    };
    write_inventory("env:HIVE_TEST_AD_PASSWORD");
    let repo = lab.repo.root().to_path_buf();
    let run_hive = |args: Vec<String>| {
        let (inv, repo, cat) = (inventory.clone(), repo.clone(), catalog.clone());
        tokio::task::spawn_blocking(move || {
            let mut c = Command::new(env!("CARGO_BIN_EXE_hive"));
            c.args(&args);
            if args[0] != "promote" && args[0] != "report" {
                c.arg("--inventory")
                    .arg(&inv)
                    .arg("--catalog")
                    .arg(&cat)
                    .args([
                        "--shutdown-delay",
                        "0",
                        "--poll-ms",
                        "100",
                        "--install-timeout",
                        "30",
                    ]);
            }
            c.arg("--repo").arg(&repo).env_remove("HIVE_INVENTORY");
            c.output().unwrap()
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let out = run_hive(args(&[
        "rollout",
        "--plan",
        "canary(group=canary) -> 100%",
        "--pause-after-canary",
    ]))
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(5), "{stderr}\n{stdout}");
    let runs: Vec<String> = std::fs::read_dir(repo.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = runs[0].clone();
    let log = hive::journal::RunLog::load(&repo, &run).unwrap();
    let journaled: BTreeSet<String> = log
        .header
        .targets
        .iter()
        .map(|t| t.host.name.clone())
        .collect();
    assert_eq!(journaled, fleet.keys().cloned().collect::<BTreeSet<_>>());
    assert!(
        log.header
            .targets
            .iter()
            .all(|t| t.origin.starts_with("directory ldaps://")
                && t.origin
                    .ends_with("; Windows Server 2019 Datacenter 10.0 (17763))")),
        "{:?}",
        log.header.targets
    );
    let canary: BTreeSet<&str> = log.header.waves[0]
        .hosts
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(canary, BTreeSet::from(["DB01", "WEB01"]));

    let verdicts = |out: &Output| -> BTreeMap<String, String> {
        let (stdout, stderr) = text(out);
        let rows: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["host"].as_str().unwrap().to_string(),
                    r["verdict"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let report = verdicts(
        &run_hive(args(&["report", &run, "-o", "json"]))
            .await
            .unwrap(),
    );
    for (host, verdict) in &report {
        let want = if canary.contains(host.as_str()) {
            "patched"
        } else {
            "not done"
        };
        assert_eq!(verdict, want, "{host}: {report:?}");
    }

    // The directory can no longer be asked (wrong bind password): resume must not need it.
    write_inventory("env:HIVE_TEST_NO_SUCH_PASSWORD_VAR");
    let out = run_hive(args(&["promote", &run])).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let out = run_hive(args(&["resume", &run])).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{stdout}");
    let report = verdicts(
        &run_hive(args(&["report", &run, "-o", "json"]))
            .await
            .unwrap(),
    );
    assert_eq!(report.len(), fleet.len());
    assert!(report.values().all(|v| v == "patched"), "{report:?}");

    // A new run, by contrast, asks the directory and says why it cannot.
    let out = run_hive(args(&["deploy", "--dry-run"])).await.unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bind password for `") && stderr.contains("not set"),
        "{stderr}"
    );
    servers.shutdown().await;
    let _ = std::fs::remove_dir_all(&drives);
}
