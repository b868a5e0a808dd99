//! The SSH face, proven by the real OpenSSH client: `ssh` gets the simulated host's output and exit
//! codes through the harness's real sshd (`winsim-shell` as its ForceCommand), `sftp` puts files
//! into the host's C: drive — the folder the harness's Samba exports — where the host installs
//! them, and a rebooting host drops its SSH connections and refuses new ones.
//!
//! Needs the harness's sshd and samba services (`integration/test.sh`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use winsim::Fleet;
use winsim::host::SimHost;
use winsim::installer::Package;
use winsim::pe::Version;
use winsim::ssh::{SshEndpoint, SshFace, SshFaceOptions, give_drive_to};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this test through integration/test.sh (it starts the sshd and samba services)")
    })
}

/// A loopback /24 of this test process's own (the address names the host to winsim-shell).
fn address(n: u8) -> Ipv4Addr {
    let pid = std::process::id();
    Ipv4Addr::new(127, 160 + (pid % 40) as u8, ((pid / 40) % 250) as u8, n)
}

struct Face {
    fleet: Fleet,
    face: SshFace,
    known_hosts: PathBuf,
    _dir: tempfile::TempDir,
    drives: PathBuf,
}

impl Face {
    async fn start(tag: &str, toml: &str) -> Face {
        let drives = PathBuf::from(var("HIVE_TEST_SMB_FLEET_ROOT"))
            .join(format!("{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&drives);
        let configs = winsim::fleet::parse(toml, Path::new("ssh-face.toml")).unwrap();
        let fleet = Fleet::start(&configs, &drives).unwrap();
        let (uid, gid) = account_ids(&var("HIVE_TEST_SSH_USER"));
        for h in fleet.hosts() {
            give_drive_to(h.drive_root(), uid, gid).unwrap();
        }
        let hosts = fleet
            .hosts()
            .iter()
            .map(|h| (IpAddr::V4(h.address()), Arc::clone(h) as Arc<dyn SimHost>))
            .collect();
        let options = SshFaceOptions {
            sshd: format!("127.0.0.1:{}", var("HIVE_TEST_WINSIM_SSH_PORT"))
                .parse()
                .unwrap(),
            registry: PathBuf::from(var("HIVE_TEST_WINSIM_SSH_HOSTS")),
            port: 0,
        };
        let face = SshFace::start(hosts, options).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let known_hosts = dir.path().join("known_hosts");
        let key = var("HIVE_TEST_WINSIM_SSH_HOSTKEY");
        let lines: String = face
            .endpoints()
            .iter()
            .map(|e| format!("[{}]:{} {key}\n", e.addr.ip(), e.addr.port()))
            .collect();
        std::fs::write(&known_hosts, lines).unwrap();
        Face {
            fleet,
            face,
            known_hosts,
            _dir: dir,
            drives,
        }
    }

    fn endpoint(&self, name: &str) -> &SshEndpoint {
        self.face
            .endpoints()
            .iter()
            .find(|e| e.name == name)
            .unwrap()
    }

    fn common_args(&self) -> Vec<String> {
        [
            "-i",
            &var("HIVE_TEST_SSH_KEY"),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            &format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o",
            "ConnectTimeout=5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `ssh -p PORT user@ADDR COMMAND` with `stdin`, as an admin would type it.
    async fn ssh(&self, host: &str, command: &str, stdin: &[u8]) -> (String, String, i32) {
        use tokio::io::AsyncWriteExt;
        let e = self.endpoint(host);
        let mut child = tokio::process::Command::new("ssh")
            .args(self.common_args())
            .arg("-p")
            .arg(e.addr.port().to_string())
            .arg(format!("{}@{}", var("HIVE_TEST_SSH_USER"), e.addr.ip()))
            .arg(command)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the OpenSSH client `ssh`");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin).await.unwrap();
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .expect("ssh finished")
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    /// `sftp -b BATCH`: returns its exit code and output.
    async fn sftp(&self, host: &str, batch: &str) -> (i32, String) {
        let e = self.endpoint(host);
        let file = self._dir.path().join("batch");
        std::fs::write(&file, batch).unwrap();
        let out = tokio::process::Command::new("sftp")
            .args(self.common_args())
            .arg("-P")
            .arg(e.addr.port().to_string())
            .arg("-b")
            .arg(&file)
            .arg(format!("{}@{}", var("HIVE_TEST_SSH_USER"), e.addr.ip()))
            .output()
            .await
            .expect("the OpenSSH client `sftp`");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

impl Drop for Face {
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
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// Two hosts at `address(first)` and `address(first + 1)`: each test of this file its own pair.
fn fleet_toml(downtime_ms: u64, first: u8) -> String {
    format!(
        "[defaults]\nreboot = {{ downtime_ms = {downtime_ms} }}\n\
         [[host]]\nname = \"SSH-WS19\"\naddress = \"{}\"\nproduct = \"Windows Server 2019 Datacenter\"\n\
         version = \"10.0.17763\"\nubr = 5576\n\
         files = [{{ path = 'C:\\Windows\\System32\\kernel32.dll', version = \"10.0.17763.5576\" }}]\n\
         [[host]]\nname = \"SSH-W2K3\"\naddress = \"{}\"\nproduct = \"Microsoft Windows Server 2003\"\n\
         version = \"5.2.3790\"\n",
        address(first),
        address(first + 1)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_client_gets_windows_output_and_exit_codes() {
    let f = Face::start("sshface-cmd", &fleet_toml(1000, 10)).await;

    // The address the client chose decides which host answers.
    let (out, _, code) = f.ssh("SSH-WS19", "hostname", b"").await;
    assert_eq!((out.as_str(), code), ("SSH-WS19\r\n", 0));
    let (out, _, code) = f.ssh("SSH-W2K3", "hostname", b"").await;
    assert_eq!((out.as_str(), code), ("SSH-W2K3\r\n", 0));

    // reg.exe's real output format.
    let (out, err, code) = f
        .ssh(
            "SSH-WS19",
            r#"reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion" /v UBR"#,
            b"",
        )
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\r\n    UBR    REG_DWORD    0x15c8\r\n\r\n"
    );
    let (_, err, code) = f
        .ssh("SSH-WS19", r"reg query HKLM\SOFTWARE\Nope", b"")
        .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("ERROR: The system was unable to find the specified registry key or value."),
        "{err}"
    );

    // Anything else answers as cmd.exe does.
    // cmd.exe's 9009 does not fit the Linux sshd's 8-bit exit status: 255, and a note says so.
    let (out, err, code) = f.ssh("SSH-WS19", "frobnicate /all", b"").await;
    assert_eq!(code, 255);
    assert_eq!(out, "");
    assert!(
        err.starts_with(
            "'frobnicate' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
        ),
        "{err}"
    );
    assert!(err.contains("exit code 9009"), "{err}");

    // PowerShell with its script on stdin, as hive sends long scripts over SSH.
    let (out, err, code) = f
        .ssh(
            "SSH-WS19",
            "powershell.exe -NoProfile -NonInteractive -",
            b"$env:COMPUTERNAME\r\nexit 7\r\n",
        )
        .await;
    assert_eq!((out.as_str(), code), ("SSH-WS19\r\n", 7), "{err}");

    // A Windows exit code wider than the Linux sshd's 8 bits is never passed off as a small one.
    let (_, err, code) = f.ssh("SSH-WS19", "exit /b 3010", b"").await;
    assert_eq!(code, 255);
    assert!(err.contains("exit code 3010"), "{err}");

    // A host that reboots drops its connections and refuses new ones, then comes back.
    let boot = f.fleet.host("SSH-W2K3").unwrap().boot_time();
    let (_, err, code) = f.ssh("SSH-W2K3", "shutdown /r /t 1", b"").await;
    assert_eq!(code, 0, "{err}");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (_, err, code) = f.ssh("SSH-W2K3", "hostname", b"").await;
    assert_eq!(code, 255, "a down host must refuse: {err}");
    assert!(
        err.contains("Connection reset") || err.contains("closed") || err.contains("reset"),
        "{err}"
    );
    // The other host is unaffected.
    let (out, _, code) = f.ssh("SSH-WS19", "hostname", b"").await;
    assert_eq!((out.as_str(), code), ("SSH-WS19\r\n", 0));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (out, err, code) = f.ssh("SSH-W2K3", "hostname", b"").await;
    assert_eq!((out.as_str(), code), ("SSH-W2K3\r\n", 0), "{err}");
    assert!(f.fleet.host("SSH-W2K3").unwrap().boot_time() > boot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_lands_in_the_drive_samba_exports_and_the_host_installs_it() {
    let f = Face::start("sshface-sftp", &fleet_toml(500, 20)).await;
    let host = f.fleet.host("SSH-WS19").unwrap();
    assert!(
        host.drive_root()
            .starts_with(var("HIVE_TEST_SMB_FLEET_ROOT")),
        "the drive is in Samba's fleet share"
    );

    let pkg = Package::hotfix("KB5999001")
        .file(
            r"C:\Windows\System32\kernel32.dll",
            Version([10, 0, 17763, 5600]),
        )
        .hotfix_key();
    let local = f._dir.path().join("KB5999001.exe");
    pkg.write_to(&local).unwrap();
    let drive = host.drive_root().display().to_string();
    let (code, out) = f
        .sftp(
            "SSH-WS19",
            &format!(
                "-mkdir {drive}/Windows/Temp/hive\nput {} {drive}/Windows/Temp/hive/KB5999001.exe\n",
                local.display()
            ),
        )
        .await;
    assert_eq!(code, 0, "{out}");

    // The file is the host's: same bytes, hashed by the host's own certutil, installed by it.
    let staged = host.host_path(r"C:\Windows\Temp\hive\KB5999001.exe");
    assert_eq!(
        std::fs::read(&staged).unwrap(),
        std::fs::read(&local).unwrap()
    );
    let (out, err, code) = f
        .ssh(
            "SSH-WS19",
            r"certutil -hashfile C:\Windows\Temp\hive\KB5999001.exe SHA256",
            b"",
        )
        .await;
    assert_eq!(code, 0, "{err}");
    let want = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(std::fs::read(&local).unwrap());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert!(out.contains(&want), "{out}");
    let (_, err, code) = f
        .ssh(
            "SSH-WS19",
            r"C:\Windows\Temp\hive\KB5999001.exe -z -q -m",
            b"",
        )
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(host.installed_kbs().contains(&"KB5999001".to_string()));
    assert_eq!(
        host.file_version(r"C:\Windows\System32\kernel32.dll"),
        Some(Version([10, 0, 17763, 5600]))
    );
    let log = host.command_log();
    assert!(
        log.iter()
            .any(|r| &*r.command_line == r"C:\Windows\Temp\hive\KB5999001.exe -z -q -m"),
        "{log:?}"
    );

    // A ranged read over SFTP is the host's own PE file (what hive's version reader pulls).
    let (code, out) = f
        .sftp(
            "SSH-WS19",
            &format!(
                "get {drive}/Windows/System32/kernel32.dll {}\n",
                f._dir.path().join("k32.dll").display()
            ),
        )
        .await;
    assert_eq!(code, 0, "{out}");
    let got = std::fs::read(f._dir.path().join("k32.dll")).unwrap();
    assert_eq!(
        winsim::pe::read_version(&got).unwrap().file_version,
        Version([10, 0, 17763, 5600])
    );
}
