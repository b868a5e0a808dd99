//! `hive lab up [FLEET.toml]` / `hive lab down`: a simulated Windows fleet in a process of its
//! own, so a newcomer can type the README's real-fleet commands (catalog import, init, scan,
//! triage approve, deploy --dry-run, rollout, kill -9, resume, report) without a Windows fleet.
//!
//! `up` writes everything into one lab folder — the fleet description, the inventory
//! (`fleet.toml`), a 0600 credential file, the catalog document (`mssecure.xml`) and the
//! simulated installer the walk-through approves — then starts `hive lab serve` detached, which
//! runs the simulator's WinRM listeners and, where Samba is installed (and we may add an account
//! to it), a Samba of the lab's own exporting the hosts' C: drives. Without Samba the lab runs in
//! local-drive mode: hive writes the drives' folders directly when `HIVE_LAB_DIR` names such a lab.
//! The serving process records its pid, ports and paths in `lab.json`, so `down` stops exactly it.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use hive::remote::{Connector, Timeouts};

mod fleet;
mod samba;
mod state;

use state::{DriveMode, LabHost, LabState};

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// The lab folder of every lab command.
#[derive(Args, Clone)]
pub struct LabDir {
    /// The lab folder [default: $XDG_STATE_HOME/hive/lab, else ~/.local/state/hive/lab].
    #[arg(long, env = "HIVE_LAB_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl LabDir {
    fn path(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| {
            std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
                .unwrap_or_else(|| PathBuf::from("."))
                .join("hive")
                .join("lab")
        })
    }
}

/// `hive lab`.
#[derive(Subcommand)]
pub enum LabCommand {
    /// Start a simulated fleet (built in: 2 canaries + 10 Windows 2000 IIS servers, or a winsim
    /// fleet file) and write an inventory, a credential file, mssecure.xml and an installer for it.
    Up {
        /// A winsim fleet file (integration/winsim/fleets/example.toml shows every key); its
        /// first --canaries hosts form group `canary`, the others group `web`.
        fleet: Option<PathBuf>,
        #[command(flatten)]
        dir: LabDir,
        /// Hosts of group `canary`.
        #[arg(long, default_value_t = 2)]
        canaries: usize,
        /// How long a simulated host stays down when it reboots, in milliseconds (built-in fleet).
        #[arg(long, default_value_t = 3000, value_name = "MS")]
        reboot_ms: u64,
        /// Copy files straight into the drives' folders even where Samba is installed.
        #[arg(long)]
        local_drives: bool,
    },
    /// Stop the lab's fleet (and its Samba).
    Down {
        #[command(flatten)]
        dir: LabDir,
    },
    /// The lab's fleet process (`hive lab up` starts it).
    #[command(hide = true)]
    Serve {
        #[command(flatten)]
        dir: LabDir,
        #[arg(long)]
        samba: bool,
        #[arg(long)]
        user: String,
    },
}

pub fn run(cmd: LabCommand) -> CliResult {
    match cmd {
        LabCommand::Up {
            fleet,
            dir,
            canaries,
            reboot_ms,
            local_drives,
        } => up(
            &dir.path(),
            fleet.as_deref(),
            canaries,
            reboot_ms,
            local_drives,
        ),
        LabCommand::Down { dir } => down(&dir.path()),
        LabCommand::Serve { dir, samba, user } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(serve(&dir.path(), samba, &user))
        }
    }
}

const SIM_FLEET: &str = "sim-fleet.toml";
const CREDENTIAL: &str = "credential";
const INVENTORY: &str = "fleet.toml";

/// The user the lab's hosts (and its Samba) log on as: the one running the lab, since a lab Samba
/// can only serve an existing account.
fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; read at once, not kept.
    let name = unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() {
            None
        } else {
            std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_str()
                .ok()
                .map(str::to_string)
        }
    };
    name.unwrap_or_else(|| "Administrator".into())
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

fn up(
    dir: &Path,
    fleet_file: Option<&Path>,
    canaries: usize,
    reboot_ms: u64,
    local_drives: bool,
) -> CliResult {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Some(old) = LabState::load(&dir)? {
        if state::alive(old.pid) {
            return Err(format!(
                "a lab is already up in {} (pid {}): `hive lab down` first",
                dir.display(),
                old.pid
            )
            .into());
        }
        stop_smbd(&old);
        let _ = std::fs::remove_file(LabState::path(&dir));
    }
    let sim = match fleet_file {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => fleet::default_fleet(canaries, reboot_ms),
    };
    let sim_path = dir.join(SIM_FLEET);
    // Checked here so a bad fleet file is named before anything starts.
    winsim::fleet::parse(&sim, fleet_file.unwrap_or(&sim_path))?;
    std::fs::write(&sim_path, &sim)?;
    let credential = dir.join(CREDENTIAL);
    fleet::write_credential(&credential, &fleet::new_password()?)?;
    std::fs::write(dir.join("mssecure.xml"), fleet::MSSECURE)?;
    fleet::write_installer(&dir.join(fleet::INSTALLER))?;
    let _ = std::fs::remove_dir_all(dir.join("drives"));

    // Samba needs an account it may add to its own password database: root's, here.
    let samba = !local_drives && is_root() && samba::SambaTools::find().is_some();
    let user = current_user();
    let log = std::fs::File::create(dir.join("lab.log"))?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["lab", "serve", "--dir"])
        .arg(&dir)
        .args(["--user", &user])
        .args(samba.then_some("--samba"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C in the admin's terminal is not meant for the lab.
        .process_group(0)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let state = loop {
        if let Some(s) = LabState::load(&dir)?
            && s.pid == child.id()
        {
            break s;
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(dir.join("lab.log")).unwrap_or_default();
            return Err(
                format!("the lab's fleet did not start ({status}):\n{}", log.trim()).into(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "the lab's fleet did not start within 60 s; see {}",
                dir.join("lab.log").display()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::fs::write(
        dir.join(INVENTORY),
        fleet::inventory(&state, &credential, canaries),
    )?;
    let files = match (state.mode, state.smb_port) {
        (DriveMode::Samba, Some(port)) => format!("C$ through the lab's Samba on 127.0.0.1:{port}"),
        _ => format!(
            "C: drives as local folders under {} (local-drive mode)",
            state.drives.display()
        ),
    };
    println!(
        "lab up in {}: {} simulated hosts ({} canaries, group web: the rest), WinRM on loopback, {files}; pid {}",
        dir.display(),
        state.hosts.len(),
        canaries.min(state.hosts.len()),
        state.pid
    );
    println!(
        "inventory fleet.toml, credential file credential (0600), catalog mssecure.xml, installer {}",
        fleet::INSTALLER
    );
    println!(
        "Paste these three lines, then follow README's \"Using it on a real fleet\"; `hive lab down` stops it:\n"
    );
    println!("cd {}", sh_quote(&dir));
    println!(
        "export HIVE_CATALOG={}",
        sh_quote(&dir.join("catalog.json"))
    );
    println!("export HIVE_LAB_DIR={}", sh_quote(&dir));
    Ok(())
}

/// A path as a POSIX shell reads it back: as is when plain, else in single quotes.
fn sh_quote(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while state::alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn stop_smbd(s: &LabState) {
    if let Some(pid) = s.smbd_pid
        && state::alive(pid)
    {
        state::signal(pid, libc::SIGTERM);
        if !wait_gone(pid, Duration::from_secs(5)) {
            state::signal(pid, libc::SIGKILL);
        }
    }
}

fn down(dir: &Path) -> CliResult {
    let Some(s) = LabState::load(dir)? else {
        return Err(format!("no lab is up in {}", dir.display()).into());
    };
    if state::alive(s.pid) {
        state::signal(s.pid, libc::SIGTERM);
        if !wait_gone(s.pid, Duration::from_secs(10)) {
            state::signal(s.pid, libc::SIGKILL);
            wait_gone(s.pid, Duration::from_secs(5));
        }
    }
    // The fleet process stops its smbd; one left by a fleet process that was killed is stopped here.
    stop_smbd(&s);
    std::fs::remove_file(LabState::path(dir)).map_err(|e| format!("{}: {e}", dir.display()))?;
    println!(
        "lab down: fleet process {} stopped ({})",
        s.pid,
        dir.display()
    );
    Ok(())
}

/// The fleet process: WinRM listeners (and the lab Samba) until SIGTERM or SIGINT.
async fn serve(dir: &Path, samba: bool, user: &str) -> CliResult {
    use tokio::signal::unix::{SignalKind, signal};
    let sim_path = dir.join(SIM_FLEET);
    let text = std::fs::read_to_string(&sim_path)?;
    let password = std::fs::read_to_string(dir.join(CREDENTIAL))?;
    let mut configs = winsim::fleet::parse(&text, &sim_path)?;
    for c in &mut configs {
        // The kernel picks each listener's port and the lab reports it: never a port probed free
        // that something else takes before the bind.
        c.winrm_port = 0;
        c.user = user.to_string();
        c.password = winsim::fleet::Password::new(password.as_str());
    }
    let drives = dir.join("drives");
    let model = winsim::Fleet::start(&configs, &drives)?;
    let servers = winsim::server::WinrmFleet::start(model.sim_hosts(), Default::default()).await?;
    let hosts = configs
        .iter()
        .map(|c| {
            let port = servers
                .endpoints()
                .iter()
                .find(|e| e.name == c.name)
                .and_then(|e| e.http_port())
                .ok_or_else(|| format!("{}: no WinRM listener", c.name))?;
            Ok(LabHost {
                name: c.name.clone(),
                address: c.address.to_string(),
                port,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut smbd = None;
    if samba {
        let tools = samba::SambaTools::find().ok_or("Samba is no longer installed")?;
        smbd = Some(samba::start(
            &tools,
            &dir.join("samba"),
            &drives,
            user,
            &password,
        )?);
    }
    let state = LabState {
        pid: std::process::id(),
        smbd_pid: smbd.as_ref().map(|s| s.child.id()),
        smb_port: smbd.as_ref().map(|s| s.port),
        mode: if smbd.is_some() {
            DriveMode::Samba
        } else {
            DriveMode::LocalDrive
        },
        user: user.to_string(),
        drives,
        hosts,
    };
    state.save(dir)?;
    println!("lab fleet up: {} hosts", state.hosts.len());
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    servers.shutdown().await;
    if let Some(mut s) = smbd {
        state::signal(s.child.id(), libc::SIGTERM);
        let _ = s.child.wait();
    }
    drop(model);
    println!("lab fleet stopped");
    Ok(())
}

/// The way into a lab's hosts from `scan`, `deploy`, `rollout` and `resume`: the drives' folders
/// directly when `HIVE_LAB_DIR` names a lab in local-drive mode, else `None` (real SMB).
pub fn local_drive_connector(timeouts: Timeouts) -> Option<Arc<dyn Connector>> {
    let dir = PathBuf::from(std::env::var_os("HIVE_LAB_DIR")?);
    let s = LabState::load(&dir).ok()??;
    (s.mode == DriveMode::LocalDrive).then(|| {
        Arc::new(super::demo::local_drive::LocalDriveConnector::new(
            &s.drives, timeouts,
        )) as Arc<dyn Connector>
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_paths_survive_the_shell() {
        assert_eq!(
            sh_quote(Path::new("/root/.local/state/hive/lab")),
            "/root/.local/state/hive/lab"
        );
        assert_eq!(sh_quote(Path::new("/tmp/my lab")), "'/tmp/my lab'");
        assert_eq!(sh_quote(Path::new("/tmp/it's")), "'/tmp/it'\\''s'");
    }
}
