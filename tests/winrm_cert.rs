//! WinRM certificate logons end to end: `hive scan` and `hive rollout` (the binary) against
//! simulated hosts whose HTTPS listeners map this run's client certificate to their account
//! (winsim's certificate-mapping table), with the inventory's
//! `credential = "cert:/path/client.pem,key=/path/client.key,smb=env:VAR"` (files still go over
//! the harness's real Samba, which needs the password). Then the refusals an admin meets, each
//! naming what to fix: a certificate no mapping maps, one from a CA the host does not trust, a key
//! file others can read, a certificate asked for over HTTP. The CA and certificates are made per
//! run; no private key is checked in. Needs the harness (`integration/test.sh samba`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use common::{Lab, LabPatch, SimFleet, env};
use hive::catalog::model::InstallerRecipe;
use sha2::{Digest, Sha256};
use winsim::installer::Package;
use winsim::registry::RegValue;
use winsim::server::client_ca::ClientCa;

const PRODUCT: &str = "Windows Server 2019 Datacenter";
const MSU: &str = "KB5000402";
const UPN: &str = "hive-admin@corp.example";

/// Two hosts with an HTTPS listener whose mapping table maps `UPN`, issued by `ca`, to the
/// account.
fn fleet_toml(ca: &Path) -> String {
    format!(
        "[[group]]\ncount = 2\nname = \"CERT{{n:02}}\"\naddress = \"127.0.0.2\"\n\
         product = \"{PRODUCT}\"\nedition = \"ServerDatacenter\"\nversion = \"10.0.17763\"\n\
         ubr = 5206\nwinrm_https_port = 0\nreboot = {{ downtime_ms = 300 }}\n\
         client_certificates = [{{ issuer = \"{}\", subject = \"{UPN}\", user = \"{}\" }}]\n",
        ca.display(),
        env("HIVE_TEST_SMB_USER")
    )
}

fn lab() -> Lab {
    let mut lab = Lab::new();
    lab.add(LabPatch {
        id: MSU,
        bulletin: "MS-C-0402",
        product: PRODUCT,
        file_name: "windows10.0-kb5000402-x64.msu",
        package: Package::msu(MSU).cab(
            "Windows10.0-KB5000402-x64.cab",
            Package::cab_file(MSU)
                .reboot_required(true)
                .sets_build(17763, 5402),
        ),
        recipe: InstallerRecipe::msu(),
        subtype: "Security Update",
        detection: None,
    });
    lab
}

/// The fleet's HTTPS certificate thumbprint, which the inventory pins.
fn thumbprint(fleet: &SimFleet) -> String {
    let pem = fleet.servers.tls().expect("an HTTPS listener").cert_pem();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    hex::encode(Sha256::digest(der))
}

struct Paths {
    inventory: PathBuf,
    repo: PathBuf,
    catalog: PathBuf,
}

/// An inventory reaching every host's HTTPS listener with `credential`, on `transport`.
fn write_inventory(fleet: &SimFleet, lab: &Lab, transport: &str, credential: &str) -> Paths {
    let dir = lab.dir.path();
    let pin = thumbprint(fleet);
    let mut s = format!(
        "[defaults]\ntransport = \"{transport}\"\nuser = \"{}\"\ncredential = \"{credential}\"\n\n",
        env("HIVE_TEST_SMB_USER")
    );
    for (h, e) in fleet.hosts.iter().zip(fleet.servers.endpoints()) {
        let port = match transport {
            "winrm-https" => e
                .https_url
                .as_deref()
                .and_then(winsim::server::url_port)
                .expect("HTTPS listener"),
            _ => h.port,
        };
        let pin_line = match transport {
            "winrm-https" => format!("thumbprint = \"{pin}\"\n"),
            _ => String::new(),
        };
        s.push_str(&format!(
            "[[host]]\nname = \"{}\"\naddress = \"{}\"\nport = {port}\n{pin_line}smb_address = \"{}\"\n\
             smb_port = {}\nsmb_share = \"{}\"\nsmb_root = '{}'\n\n",
            h.name, h.address, h.smb_address, h.smb_port, h.smb_share, h.smb_root
        ));
    }
    let p = Paths {
        inventory: dir.join(format!("inventory-{transport}.toml")),
        repo: lab.repo.root().to_path_buf(),
        catalog: dir.join("catalog.json"),
    };
    std::fs::write(&p.inventory, s).unwrap();
    hive::catalog::store::save(&p.catalog, &lab.catalog).unwrap();
    p
}

fn hive(p: &Paths, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hive"))
        .args(args)
        .arg("--inventory")
        .arg(&p.inventory)
        .arg("--catalog")
        .arg(&p.catalog)
        .output()
        .expect("hive runs")
}

fn rollout(p: &Paths) -> Output {
    let mut args = vec!["rollout", "--repo"];
    let repo = p.repo.to_string_lossy().into_owned();
    args.push(&repo);
    args.extend([
        "--plan",
        "100%",
        "--shutdown-delay",
        "0",
        "--reboot-timeout",
        "20",
        "--poll-ms",
        "100",
        "--install-timeout",
        "30",
    ]);
    hive(p, &args)
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `cert:` with the certificate `cert`/`key` and the SMB password from the harness.
fn cert_ref(cert: &Path, key: &Path) -> String {
    format!(
        "cert:{},key={},smb=env:HIVE_TEST_SMB_PASSWORD",
        cert.display(),
        key.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_and_rollout_log_on_with_a_mapped_client_certificate() {
    let lab = lab();
    let dir = lab.dir.path().to_path_buf();
    let ca = ClientCa::new("Hive Test Client CA").unwrap();
    let ca_path = ca.write_cert(&dir, "ca.pem").unwrap();
    let fleet = SimFleet::start("cert", &fleet_toml(&ca_path)).await;
    let (cert, key) = ca
        .issue("hive admin", Some(UPN))
        .unwrap()
        .write(&dir, "admin")
        .unwrap();
    let p = write_inventory(&fleet, &lab, "winrm-https", &cert_ref(&cert, &key));

    let out = hive(&p, &["scan", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let scans: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON scan");
    let listed = scans.to_string();
    for h in &fleet.hosts {
        assert!(listed.contains(&h.name), "{} scanned: {listed}", h.name);
    }
    assert!(listed.contains(MSU), "{listed}");

    let out = rollout(&p);
    assert!(out.status.success(), "{}", text(&out));
    for h in &fleet.hosts {
        let sim = fleet.host(&h.name);
        assert_eq!(
            sim.registry_value(r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion", "UBR"),
            Some(RegValue::Dword(5402)),
            "{}: the update installed over a certificate logon",
            h.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_certificates_and_keys_say_what_to_fix() {
    let lab = lab();
    let dir = lab.dir.path().to_path_buf();
    let ca = ClientCa::new("Hive Test Client CA").unwrap();
    let ca_path = ca.write_cert(&dir, "ca.pem").unwrap();
    let fleet = SimFleet::start("cert-bad", &fleet_toml(&ca_path)).await;
    let host = fleet.hosts[0].name.clone();

    // A certificate the CA issued, for a UPN no mapping names.
    let (cert, key) = ca
        .issue("stranger", Some("stranger@corp.example"))
        .unwrap()
        .write(&dir, "unmapped")
        .unwrap();
    let p = write_inventory(&fleet, &lab, "winrm-https", &cert_ref(&cert, &key));
    let out = hive(&p, &["scan"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(&host)
            && all.contains("no certificate mapping")
            && all.contains("UPN stranger@corp.example"),
        "{all}"
    );

    // The mapped UPN, but issued by a CA the host does not trust.
    let other = ClientCa::new("Some Other CA").unwrap();
    let (cert, key) = other
        .issue("hive admin", Some(UPN))
        .unwrap()
        .write(&dir, "untrusted")
        .unwrap();
    let p = write_inventory(&fleet, &lab, "winrm-https", &cert_ref(&cert, &key));
    let out = hive(&p, &["scan"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(&host)
            && all.contains("refused the client certificate in the TLS handshake")
            && all.contains(UPN),
        "{all}"
    );

    // The right certificate with a key file others can read.
    let (cert, key) = ca
        .issue("hive admin", Some(UPN))
        .unwrap()
        .write(&dir, "loose")
        .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = write_inventory(&fleet, &lab, "winrm-https", &cert_ref(&cert, &key));
    let out = hive(&p, &["scan"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(&host)
            && all.contains(&key.display().to_string())
            && all.contains("chmod 600"),
        "{all}"
    );

    // A certificate asked for over HTTP.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let p = write_inventory(&fleet, &lab, "winrm-http", &cert_ref(&cert, &key));
    let out = hive(&p, &["scan"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(&host) && all.contains("HTTPS only") && all.contains("winrm-https"),
        "{all}"
    );
}
