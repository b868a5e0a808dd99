//! The lab's own Samba: one smbd on 127.0.0.1 exporting the simulated hosts' drives as the share
//! `lab`, so hive copies installers and reads file headers over real SMB, as on a real fleet.
//! Everything it needs (config, password database, locks, log) lives in the lab folder; the
//! account is the user running the lab, with the lab's password.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The programs a lab Samba needs, when installed.
pub struct SambaTools {
    smbd: PathBuf,
    smbpasswd: PathBuf,
}

fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

impl SambaTools {
    /// `None` when Samba is not installed (the lab then uses its local-drive mode).
    pub fn find() -> Option<SambaTools> {
        Some(SambaTools {
            smbd: find("smbd")?,
            smbpasswd: find("smbpasswd")?,
        })
    }
}

/// A running lab smbd; dropping it does not stop it (`hive lab down` does, by its pid).
pub struct LabSamba {
    pub child: Child,
    pub port: u16,
}

fn conf(dir: &Path, drives: &Path, port: u16, user: &str) -> String {
    let d = dir.display();
    format!(
        "[global]\n  smb ports = {port}\n  interfaces = lo\n  bind interfaces only = yes\n  \
         disable netbios = yes\n  server role = standalone server\n  security = user\n  \
         map to guest = never\n  ntlm auth = ntlmv2-only\n  server min protocol = SMB2_02\n  \
         lock directory = {d}/lock\n  state directory = {d}/state\n  cache directory = {d}/cache\n  \
         private dir = {d}/private\n  pid directory = {d}/pid\n  ncalrpc dir = {d}/ncalrpc\n  \
         passdb backend = tdbsam:{d}/passdb.tdb\n  log file = {d}/log.%m\n  load printers = no\n  \
         printcap name = /dev/null\n  disable spoolss = yes\n\n\
         [lab]\n  path = {}\n  read only = no\n  valid users = {user}\n  admin users = {user}\n",
        drives.display()
    )
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Configure and start smbd for `drives`, logging on as `user` with `password` (given to
/// smbpasswd on its stdin, never on a command line). Returns once smbd accepts connections.
pub fn start(
    tools: &SambaTools,
    dir: &Path,
    drives: &Path,
    user: &str,
    password: &str,
) -> Result<LabSamba, String> {
    for sub in ["lock", "state", "cache", "private", "pid", "ncalrpc"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let port = free_port().map_err(|e| format!("no free port for the lab's Samba: {e}"))?;
    let conf_path = dir.join("smb.conf");
    std::fs::write(&conf_path, conf(dir, drives, port, user))
        .map_err(|e| format!("{}: {e}", conf_path.display()))?;
    let mut add = Command::new(&tools.smbpasswd)
        .arg("-c")
        .arg(&conf_path)
        .args(["-s", "-a", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", tools.smbpasswd.display()))?;
    if let Some(mut stdin) = add.stdin.take() {
        let _ = writeln!(stdin, "{password}\n{password}");
    }
    let out = add
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", tools.smbpasswd.display()))?;
    if !out.status.success() {
        return Err(format!(
            "smbpasswd could not add the lab's account `{user}`: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let log = std::fs::File::create(dir.join("smbd.log"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(&tools.smbd)
        .args(["--foreground", "--debug-stdout", "-d1", "-s"])
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        // smbd makes itself a session (and process-group) leader: it signals its whole group on
        // shutdown, which must not be the lab's.
        .spawn()
        .map_err(|e| format!("{}: {e}", tools.smbd.display()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(LabSamba { child, port });
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the lab's smbd ended ({status}) before listening; see {}",
                dir.join("smbd.log").display()
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "the lab's smbd did not listen on 127.0.0.1:{port} within 30 s; see {}",
                dir.join("smbd.log").display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_exports_the_drives_to_the_lab_user_only() {
        let c = conf(
            Path::new("/lab/samba"),
            Path::new("/lab/drives"),
            4450,
            "root",
        );
        assert!(c.contains("smb ports = 4450"));
        assert!(c.contains("[lab]\n  path = /lab/drives"));
        assert!(c.contains("valid users = root"));
        assert!(c.contains("interfaces = lo"));
        assert!(c.contains("passdb backend = tdbsam:/lab/samba/passdb.tdb"));
    }
}
