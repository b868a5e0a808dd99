//! Shared by the SSH end-to-end tests: a simulated Windows fleet reached only over SSH — the
//! harness's real sshd runs `winsim-shell` (commands go to the host model) and the real
//! `sftp-server` (files land in the host's C: folder, inside the Samba `fleet` share) — and an
//! inventory of `transport = "ssh"` hosts with pinned host keys.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hive::inventory::{Inventory, Secret};
use winsim::Fleet;
use winsim::host::SimHost;
use winsim::ssh::{SshFace, SshFaceOptions, give_drive_to};

/// A harness variable, or a loud failure naming the harness.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this test through integration/test.sh (it starts the sshd and samba services)")
    })
}

/// A simulated fleet behind the SSH face.
pub struct SshFleet {
    pub model: Fleet,
    pub face: SshFace,
    pub inventory: Inventory,
    pub secret: Secret,
    /// The inventory's text, for a test that logs on another way (`with_credential`).
    pub inventory_text: String,
    drives: PathBuf,
}

/// `n`-th host address of a /24 this test process (and `slot`) has to itself: the address names
/// the host to `winsim-shell`, so concurrent tests must not share one.
pub fn address(slot: u32, n: usize) -> Ipv4Addr {
    let pid = std::process::id();
    let third = ((pid / 40) * 4 + slot) % 250;
    Ipv4Addr::new(127, 200 + (pid % 40) as u8, third as u8, 1 + n as u8)
}

impl SshFleet {
    /// Starts the hosts of `fleet_toml` (addresses are replaced by this test's own) and their
    /// SSH face; the inventory pins the face's host key and maps C: onto each host's folder.
    pub async fn start(tag: &str, slot: u32, fleet_toml: &str) -> SshFleet {
        let user = env("HIVE_TEST_SSH_USER");
        let password = env("HIVE_TEST_SSH_PASSWORD");
        let drives = PathBuf::from(env("HIVE_TEST_SMB_FLEET_ROOT"))
            .join(format!("{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&drives);
        let mut configs =
            winsim::fleet::parse(fleet_toml, Path::new("ssh-fleet.toml")).expect("fleet file");
        for (i, c) in configs.iter_mut().enumerate() {
            c.address = address(slot, i);
            c.user = user.clone();
        }
        let model = Fleet::start(&configs, &drives).expect("fleet starts");
        let (uid, gid) = account_ids(&user);
        for h in model.hosts() {
            give_drive_to(h.drive_root(), uid, gid).expect("drive given to the SSH account");
        }
        let hosts = model
            .hosts()
            .iter()
            .map(|h| (IpAddr::V4(h.address()), Arc::clone(h) as Arc<dyn SimHost>))
            .collect();
        let options = SshFaceOptions {
            sshd: format!("127.0.0.1:{}", env("HIVE_TEST_WINSIM_SSH_PORT"))
                .parse()
                .expect("sshd address"),
            registry: PathBuf::from(env("HIVE_TEST_WINSIM_SSH_HOSTS")),
            port: 0,
        };
        let face = SshFace::start(hosts, options).await.expect("SSH face");
        let key = env("HIVE_TEST_WINSIM_SSH_HOSTKEY_SHA256");
        let mut text = format!(
            "[defaults]\ntransport = \"ssh\"\nuser = \"{user}\"\ncredential = \"env:HIVE_TEST_SSH_PASSWORD\"\n"
        );
        for (h, e) in model.hosts().iter().zip(face.endpoints()) {
            text.push_str(&format!(
                "[[host]]\nname = \"{}\"\naddress = \"{}\"\nport = {}\nhost_key = \"{key}\"\n\
                 sftp_root = \"{}\"\ngroups = [\"all\"]\n",
                e.name,
                e.addr.ip(),
                e.addr.port(),
                h.drive_root().display()
            ));
        }
        let inventory =
            Inventory::parse(&text, Path::new("ssh-inventory.toml")).expect("inventory parses");

        SshFleet {
            model,
            face,
            inventory,
            secret: Secret::new(password),
            inventory_text: text,
            drives,
        }
    }

    /// The same hosts with another credential reference (`ssh-key:/path`, `ssh-agent`).
    pub fn with_credential(&self, reference: &str) -> Inventory {
        let text = self.inventory_text.replace(
            "credential = \"env:HIVE_TEST_SSH_PASSWORD\"",
            &format!("credential = \"{reference}\""),
        );
        Inventory::parse(&text, Path::new("ssh-inventory.toml")).expect("inventory parses")
    }

    pub fn host(&self, name: &str) -> &Arc<winsim::model::WinHost> {
        self.model
            .host(name)
            .unwrap_or_else(|| panic!("no simulated host {name}"))
    }
}

impl Drop for SshFleet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.drives);
    }
}

fn account_ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = std::process::Command::new("id")
            .arg(flag)
            .arg(user)
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no unix account {user}"))
    };
    (id("-u"), id("-g"))
}
