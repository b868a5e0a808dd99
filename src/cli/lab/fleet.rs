//! What `hive lab up` writes into the lab folder: the simulated fleet's description (unless the
//! admin brings one), the inventory and the credential file that reach it, the catalog document
//! and the simulated installer the README's walk-through imports and approves.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use super::state::{DriveMode, LabState};

/// A slice of the real 2001 `mssecure.xml` (MS01-033 and MS01-044 for IIS 5.0 on Windows 2000,
/// with every table row they reference), so `hive catalog import mssecure.xml` imports a real
/// document of the format.
pub const MSSECURE: &str = include_str!("mssecure.xml");

/// The installer the walk-through approves for MS01-033.
pub const INSTALLER: &str = "Q300972_W2K_SP3_x86_en.EXE";

const IDQ: &str = r"C:\Windows\system32\idq.dll";
const W3SVC: &str = r"C:\Windows\system32\inetsrv\w3svc.dll";

/// Hosts besides the canaries in the built-in fleet.
pub const WEB_HOSTS: usize = 10;

/// The built-in fleet: `canaries` + 10 Windows 2000 IIS 5.0 servers that lack MS01-033 (the
/// Code Red hole) and MS01-044, each on its own 127.x address; the port is the kernel's pick.
pub fn default_fleet(canaries: usize, reboot_ms: u64) -> String {
    let mut t = format!(
        "# The lab's simulated fleet (winsim fleet file; see integration/winsim/fleets/example.toml).\n\
         [template.w2k-iis]\nproduct = \"Microsoft Windows 2000\"\ncsd_version = \"Service Pack 2\"\n\
         version = \"5.0.2195\"\nmachine = \"i386\"\n\
         files = [{{ path = '{IDQ}', version = \"5.0.2195.2779\" }}, {{ path = '{W3SVC}', version = \"5.0.2195.2966\" }}]\n\
         registry = [\n  {{ key = 'HKLM\\SOFTWARE\\Microsoft\\InetStp', name = \"MajorVersion\", type = \"REG_DWORD\", value = 5 }},\n  \
         {{ key = 'HKLM\\SYSTEM\\CurrentControlSet\\Control\\ProductOptions', name = \"ProductType\", type = \"REG_SZ\", value = \"ServerNT\" }},\n]\n\
         reboot = {{ downtime_ms = {reboot_ms} }}\n\n"
    );
    let third = std::process::id() % 200 + 20;
    for i in 0..canaries + WEB_HOSTS {
        let name = if i < canaries {
            format!("CANARY{:02}", i + 1)
        } else {
            format!("WEB{:03}", i - canaries + 1)
        };
        t.push_str(&format!(
            "[[host]]\nname = \"{name}\"\naddress = \"127.42.{third}.{}\"\ntemplate = \"w2k-iis\"\n\n",
            i + 1
        ));
    }
    t
}

/// The simulated hotfix Q300972: replaces idq.dll and writes the keys the real hotfix writes (the
/// catalog checks `Updates\Windows 2000\SP3\Q300972`), then wants a reboot.
pub fn write_installer(path: &Path) -> std::io::Result<()> {
    winsim::installer::Package::hotfix("Q300972")
        .file(IDQ, winsim::pe::Version::new(5, 0, 2195, 3645))
        .hotfix_key()
        .registry(
            r"HKLM\SOFTWARE\Microsoft\Updates\Windows 2000\SP3\Q300972",
            "Type",
            winsim::registry::RegValue::Sz("Update".into()),
        )
        .reboot_required(true)
        .duration(Duration::from_millis(400))
        .write_to(path)
}

/// The password file: created readable by its owner only, as hive requires of `file:` references.
pub fn write_credential(path: &Path, password: &str) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(password.as_bytes())
}

/// A fresh random password from the kernel.
pub fn new_password() -> std::io::Result<String> {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))?;
    Ok(format!("Lab-{}!", hex::encode(bytes)))
}

/// The inventory of the running lab: the first `canaries` hosts form group `canary`, the others
/// group `web`; every host's C$ is the lab Samba's `lab` share folder named after it.
pub fn inventory(state: &LabState, credential: &Path, canaries: usize) -> String {
    let mut t = String::from(
        "# Written by `hive lab up`: the lab's simulated fleet. The keys are those of a real fleet's\n\
         # inventory (docs/inventory.example.toml).\n[defaults]\n",
    );
    t.push_str(&format!("user = \"{}\"\n", state.user));
    t.push_str(&format!("credential = \"file:{}\"\n", credential.display()));
    if let (DriveMode::Samba, Some(port)) = (state.mode, state.smb_port) {
        t.push_str(&format!(
            "smb_address = \"127.0.0.1\"\nsmb_port = {port}\nsmb_share = \"lab\"\nsmb_root = '{{name}}'\n"
        ));
    }
    for (i, h) in state.hosts.iter().enumerate() {
        let group = if i < canaries { "canary" } else { "web" };
        t.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\naddress = \"{}\"\nport = {}\ngroups = [\"{group}\"]\n",
            h.name, h.address, h.port
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::lab::state::LabHost;

    #[test]
    fn the_catalog_slice_imports_with_both_bulletins() {
        let (catalog, _) =
            hive::catalog::store::import_text("mssecure.xml", MSSECURE).expect("imports");
        assert!(catalog.bulletins.contains_key("MS01-033"));
        assert!(catalog.bulletins.contains_key("MS01-044"));
        assert!(
            catalog
                .patches
                .values()
                .any(|p| p.file_name.as_deref() == Some(INSTALLER))
        );
    }

    #[test]
    fn the_fleet_parses_and_the_inventory_reaches_it() {
        let fleet = default_fleet(2, 500);
        let hosts = winsim::fleet::parse(&fleet, Path::new("lab-fleet.toml")).expect("parses");
        assert_eq!(hosts.len(), 2 + WEB_HOSTS);
        let state = LabState {
            pid: 1,
            smbd_pid: None,
            smb_port: Some(4450),
            mode: DriveMode::Samba,
            user: "root".into(),
            drives: "/lab/drives".into(),
            hosts: hosts
                .iter()
                .map(|h| LabHost {
                    name: h.name.clone(),
                    address: h.address.to_string(),
                    port: 5985,
                })
                .collect(),
        };
        let text = inventory(&state, Path::new("/lab/credential"), 2);
        let inv = hive::inventory::Inventory::parse(&text, Path::new("fleet.toml")).expect("valid");
        assert_eq!(inv.hosts.len(), 12);
        assert!(inv.hosts[1].groups.iter().any(|g| g == "canary"));
        assert!(inv.hosts[2].groups.iter().any(|g| g == "web"));
        assert_eq!(inv.hosts[5].smb_root, inv.hosts[5].name);
        assert_eq!(inv.hosts[5].smb_port, 4450);
    }

    #[test]
    fn the_credential_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("credential");
        write_credential(&p, "pw").expect("written");
        write_credential(&p, "pw2").expect("rewritten");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "pw2");
    }
}
