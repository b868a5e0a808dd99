//! Kerberos through the inventory and the `hive` binary: a simulated fleet scanned and then patched
//! (`hive scan`, `hive rollout`) with every kind of Kerberos reference at once, half the hosts over
//! HTTP (sealed messages) and half over HTTPS:
//! - `kerberos:ccache`: the ticket a real `kinit` against the harness KDC left in KRB5CCNAME;
//! - `kerberos:keytab:/path`: the user's keys exported with kadmin (0600);
//! - `kerberos:env:VAR`: hive gets the ticket with the password itself.
//!
//! The simulated hosts' NTLM password is one nobody knows, so a host that was patched can only
//! have been reached with Kerberos: nothing fell back to NTLM. SPNs come from `[group_defaults]`
//! and one host's own `spn`. File copies go to the harness's Samba with `smb_credential` (the
//! account's password), as hive-smb speaks NTLM only. Needs the harness (samba, kdc).

#[path = "../transports/winrm/tests/kdc/mod.rs"]
mod kdc;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use hive::catalog::model::InstallerRecipe;
use sha2::{Digest, Sha256};
use winsim::host::SimHost as _;
use winsim::installer::Package;

const PRODUCT: &str = "Windows Server 2019 Datacenter";
const PATCH: &str = "KB5000301";
const HOSTS: usize = 6;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this test through integration/test.sh (samba, kdc)")
    })
}

struct Fleet {
    model: winsim::Fleet,
    _servers: winsim::server::WinrmFleet,
    /// (name, http port, https port)
    ports: Vec<(String, u16, u16)>,
    thumbprint: String,
    share_root: String,
    drives: PathBuf,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.drives);
    }
}

async fn start_fleet() -> Fleet {
    let sub = format!("krb-fleet-{}", std::process::id());
    let drives = PathBuf::from(env("HIVE_TEST_SMB_FLEET_ROOT")).join(&sub);
    let _ = std::fs::remove_dir_all(&drives);
    let text = format!(
        "[[group]]\ncount = {HOSTS}\nname = \"KRB{{n:02}}\"\naddress = \"127.0.0.1\"\nproduct = \"{PRODUCT}\"\n\
         version = \"10.0.17763\"\nubr = 5206\nreboot = {{ downtime_ms = 200 }}\n"
    );
    let mut configs = winsim::fleet::parse(&text, Path::new("krb-fleet.toml")).unwrap();
    for c in configs.iter_mut() {
        c.address = std::net::Ipv4Addr::LOCALHOST;
        c.winrm_port = 0;
        c.winrm_https_port = Some(0);
        c.user = env("HIVE_TEST_SMB_USER");
        // Nobody knows it: an NTLM logon cannot succeed.
        c.password = winsim::fleet::Password::new(format!("ntlm-{}", std::process::id()));
    }
    let model = winsim::Fleet::start(&configs, &drives).unwrap();
    let identity =
        winsim::server::tls::TlsIdentity::self_signed(&["127.0.0.1".to_string()]).unwrap();
    let der: String = identity
        .cert_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .unwrap();
    let thumbprint = hex::encode(Sha256::digest(&der));
    let servers = winsim::server::WinrmFleet::start(
        model.sim_hosts(),
        winsim::server::FleetOptions {
            tls: Some(identity),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let ports = servers
        .endpoints()
        .iter()
        .map(|e| {
            let https = e
                .https_url
                .as_deref()
                .and_then(winsim::server::url_port)
                .expect("HTTPS listener");
            (e.name.clone(), e.http_port().expect("HTTP listener"), https)
        })
        .collect();
    Fleet {
        model,
        _servers: servers,
        ports,
        thumbprint,
        share_root: sub,
        drives,
    }
}

/// The KDC principal for the Samba account (same password, as a domain account has one for
/// Kerberos and NTLM alike), and its keys in a 0600 keytab.
fn client_principal_and_keytab(kdc: &kdc::Kdc, dir: &Path) -> PathBuf {
    let user = env("HIVE_TEST_SMB_USER");
    let password = env("HIVE_TEST_SMB_PASSWORD");
    let keytab = dir.join("client.keytab");
    // The password goes on kadmin's stdin, never a command line. A second test binary may have
    // added the principal already: then only the keytab is exported.
    let _ = kdc.kadmin(&format!("addprinc -pw {password} {user}\n"));
    let out = kdc.kadmin(&format!(
        "ktadd -norandkey -k {} {user}\n",
        keytab.display()
    ));
    assert!(
        out.status.success() && keytab.exists(),
        "kadmin ktadd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&keytab, std::fs::Permissions::from_mode(0o600)).unwrap();
    keytab
}

fn write_inventory(fleet: &Fleet, path: &Path, keytab: &Path) {
    let mut s = format!(
        "[defaults]\nuser = \"{}\"\nsmb_credential = \"env:HIVE_TEST_SMB_PASSWORD\"\n\
         smb_address = \"{}\"\nsmb_port = {}\nsmb_share = \"{}\"\n\n\
         [group_defaults]\nspn = \"HTTP/winsim.hive.test\"\n\n",
        env("HIVE_TEST_SMB_USER"),
        env("HIVE_TEST_SMB_HOST"),
        env("HIVE_TEST_SMB_PORT"),
        env("HIVE_TEST_SMB_FLEET_SHARE"),
    );
    for (n, (name, http, https)) in fleet.ports.iter().enumerate() {
        let credential = match n / 2 {
            0 => "kerberos:ccache".to_string(),
            1 => format!("kerberos:keytab:{}", keytab.display()),
            _ => "kerberos:env:HIVE_TEST_SMB_PASSWORD".to_string(),
        };
        let transport = if n % 2 == 0 {
            format!("transport = \"winrm-http\"\nport = {http}\n")
        } else {
            format!(
                "transport = \"winrm-https\"\nport = {https}\nthumbprint = \"{}\"\n",
                fleet.thumbprint
            )
        };
        // The last host names its own SPN (the harness keytab holds HTTP/localhost too).
        let spn = if n == HOSTS - 1 {
            "spn = \"HTTP/localhost\"\n"
        } else {
            ""
        };
        s.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"127.0.0.1\"\n{transport}credential = \"{credential}\"\n{spn}\
             smb_root = '{}\\{name}'\ngroups = [{}]\n\n",
            fleet.share_root,
            if n == 0 { "\"canary\"" } else { "" }
        ));
    }
    std::fs::write(path, s).unwrap();
}

fn lab() -> common::Lab {
    let mut lab = common::Lab::new();
    lab.add(common::LabPatch {
        id: PATCH,
        bulletin: "MS-KRB-01",
        product: PRODUCT,
        file_name: "KB5000301.exe",
        package: Package::hotfix(PATCH)
            .file(
                r"C:\Windows\System32\hivekrb.dll",
                "10.0.17763.9301".parse().unwrap(),
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

mod common;

fn hive(args: &[&str], ccache: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hive"))
        .args(args)
        .env("KRB5CCNAME", format!("FILE:{}", ccache.display()))
        .stdin(Stdio::null())
        .output()
        .expect("hive runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("hive {}:\n{stdout}\n{stderr}", args[0]);
    (out.status.code(), stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_is_scanned_and_patched_over_kerberos_with_every_reference_kind() {
    let kdc = kdc::Kdc::from_env();
    let fleet = start_fleet().await;
    let lab = lab();
    let dir = lab.dir.path();
    let keytab = client_principal_and_keytab(&kdc, dir);
    let ccache = kdc.kinit(dir);
    let inventory = dir.join("inventory.toml");
    write_inventory(&fleet, &inventory, &keytab);
    let catalog = dir.join("catalog.json");
    hive::catalog::store::save(&catalog, &lab.catalog).unwrap();
    let inv = inventory.to_str().unwrap();
    let cat = catalog.to_str().unwrap();
    let repo = lab.repo.root().to_str().unwrap();

    let (code, stdout, _) = hive(
        &["scan", "--inventory", inv, "--catalog", cat, "-o", "json"],
        &ccache,
    );
    assert_eq!(code, Some(0), "scan over Kerberos");
    for (name, _, _) in &fleet.ports {
        assert!(stdout.contains(name.as_str()), "{name} scanned: {stdout}");
    }
    assert!(stdout.contains(PATCH), "the patch is missing everywhere");

    let (code, _, _) = hive(
        &[
            "rollout",
            "--plan",
            "canary(group=canary) -> 100%",
            "--inventory",
            inv,
            "--repo",
            repo,
            "--catalog",
            cat,
            "--parallel",
            "6",
            "--shutdown-delay",
            "0",
            "--reboot-timeout",
            "20",
            "--poll-ms",
            "100",
            "--install-timeout",
            "30",
        ],
        &ccache,
    );
    assert_eq!(code, Some(0), "rollout over Kerberos");
    for h in fleet.model.hosts() {
        assert_eq!(
            h.installed_kbs()
                .iter()
                .filter(|k| k.as_str() == PATCH)
                .count(),
            1,
            "{} patched once",
            h.name()
        );
        assert_eq!(h.install_log().len(), 1, "{}: one install", h.name());
    }
}

/// A keytab others can read is refused before anything is sent, naming the file and the fix.
#[tokio::test]
async fn a_keytab_others_can_read_is_refused_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let keytab = dir.path().join("open.keytab");
    std::fs::write(&keytab, [5u8, 2]).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&keytab, std::fs::Permissions::from_mode(0o644)).unwrap();
    let inventory = dir.path().join("inv.toml");
    std::fs::write(
        &inventory,
        format!(
            "[[host]]\nname = \"web01\"\naddress = \"127.0.0.1\"\nport = 9\ncredential = \"kerberos:keytab:{}\"\n",
            keytab.display()
        ),
    )
    .unwrap();
    let catalog = dir.path().join("catalog.json");
    hive::catalog::store::save(&catalog, &Default::default()).unwrap();
    let (code, stdout, stderr) = hive(
        &[
            "scan",
            "--inventory",
            inventory.to_str().unwrap(),
            "--catalog",
            catalog.to_str().unwrap(),
        ],
        &dir.path().join("no-ccache"),
    );
    assert_ne!(code, Some(0));
    let text = format!("{stdout}{stderr}");
    assert!(
        text.contains("open.keytab") && text.contains("0644") && text.contains("chmod 600"),
        "{text}"
    );
}
