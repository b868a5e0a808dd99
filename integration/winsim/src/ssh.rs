//! The SSH face of the simulated fleet: the harness's real OpenSSH sshd does the SSH (key
//! exchange, password and key logons, channels, the real `sftp-server`), and the host model runs
//! the commands, as Windows OpenSSH runs them through `cmd.exe`.
//!
//! ```text
//!  ssh client ──TCP──▶ front door 127.x.y.z:port ──TCP from 127.x.y.z──▶ sshd 127.0.0.1:P
//!   (hive, OpenSSH)     (this module, per host)                            │ ForceCommand
//!                                                                          ▼
//!            host model ◀── unix socket <registry>/127.x.y.z.sock ── winsim-shell
//! ```
//!
//! Why a front door instead of sshd listening on every host address: a simulated host that is
//! down must look down, exactly as on the WinRM face — new connections are closed at once and open
//! ones reset when it goes down (`SimHost::accepting`). sshd cannot be told that per address
//! without a restart; the front door can. It connects to sshd *from* the host's own address, so
//! sshd's `SSH_CONNECTION` names the host for `winsim-shell`, and one sshd serves any number of
//! hosts (sshd listens on at most 16 addresses).
//!
//! What a client meets (documented in COMMANDS.md, "SSH"):
//! - commands run with cmd.exe semantics, stdin is the client's input up to its end-of-file
//!   (`powershell -NoProfile -NonInteractive -` with the script on stdin works as on Windows);
//! - exit codes above 255 arrive as 255 with a note on stderr: a Linux sshd reports 8 bits;
//! - SFTP is the real OpenSSH `sftp-server`, running as the logged-on unix user: paths are that
//!   machine's paths, so a client reaches a host's C: drive at its folder
//!   ([`crate::model::WinHost::drive_root`]), which must be writable by that user
//!   ([`give_drive_to`]). hive's inventory says so with `sftp_root`.
//! - A client whose command is still running when the front door drops it does not stop the
//!   command (as with Windows OpenSSH); when `winsim-shell` goes away first, the command's future is
//!   dropped and the host logs it as killed.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::host::{CommandRequest, SimHost};
use crate::ssh_wire::{self, Frame};

/// How often an open connection checks whether its host went down.
const POWER_POLL: Duration = Duration::from_millis(100);

/// Where the fleet's SSH face finds the harness's sshd and its shell registry.
#[derive(Debug, Clone)]
pub struct SshFaceOptions {
    /// The sshd whose `ForceCommand` is `winsim-shell` (the harness exports it as
    /// `HIVE_TEST_WINSIM_SSH_PORT` on 127.0.0.1).
    pub sshd: SocketAddr,
    /// The folder `winsim-shell --hosts` reads (`HIVE_TEST_WINSIM_SSH_HOSTS`): each host's unix
    /// socket is created there, named by its address.
    pub registry: PathBuf,
    /// Port of every host's front door; 0 lets each host get a free port of its own.
    pub port: u16,
}

/// Where one simulated host answers SSH.
#[derive(Debug, Clone)]
pub struct SshEndpoint {
    pub name: String,
    pub addr: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum SshFaceError {
    #[error("host {host}: cannot listen on {what}: {source}")]
    Bind {
        host: String,
        what: String,
        source: std::io::Error,
    },
    #[error("host {host}: its SSH face needs an IPv4 address in 127.0.0.0/8, not {addr}")]
    NotLoopback { host: String, addr: IpAddr },
}

/// A running SSH face. Dropping it stops the front doors and removes the sockets.
pub struct SshFace {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    endpoints: Vec<SshEndpoint>,
    sockets: Vec<PathBuf>,
}

impl SshFace {
    /// Opens every host's front door and unix socket. `hosts` pairs each host with its address
    /// (its own 127.x.y.z: the address names it to `winsim-shell`, so no two may share one).
    pub async fn start(
        hosts: Vec<(IpAddr, Arc<dyn SimHost>)>,
        options: SshFaceOptions,
    ) -> Result<SshFace, SshFaceError> {
        let (stop, _) = watch::channel(false);
        let mut face = SshFace {
            tasks: JoinSet::new(),
            stop,
            endpoints: Vec::with_capacity(hosts.len()),
            sockets: Vec::with_capacity(hosts.len()),
        };
        for (ip, host) in hosts {
            face.open(ip, host, &options)?;
        }
        Ok(face)
    }

    fn open(
        &mut self,
        ip: IpAddr,
        host: Arc<dyn SimHost>,
        options: &SshFaceOptions,
    ) -> Result<(), SshFaceError> {
        let name = host.name().to_string();
        if !matches!(ip, IpAddr::V4(v4) if v4.is_loopback()) {
            return Err(SshFaceError::NotLoopback {
                host: name,
                addr: ip,
            });
        }
        let bind_err = |what: String| {
            let host = name.clone();
            move |source| SshFaceError::Bind { host, what, source }
        };
        let socket_path = options
            .registry
            .join(ssh_wire::socket_name(&ip.to_string()));
        let unix = bind_unix(&socket_path).map_err(bind_err(socket_path.display().to_string()))?;
        self.sockets.push(socket_path);
        let door_addr = SocketAddr::new(ip, options.port);
        let door = std::net::TcpListener::bind(door_addr)
            .and_then(|l| {
                l.set_nonblocking(true)?;
                TcpListener::from_std(l)
            })
            .map_err(bind_err(door_addr.to_string()))?;
        let addr = door.local_addr().unwrap_or(door_addr);
        self.endpoints.push(SshEndpoint { name, addr });
        self.tasks
            .spawn(shell_loop(unix, Arc::clone(&host), self.stop.subscribe()));
        self.tasks.spawn(door_loop(
            door,
            ip,
            options.sshd,
            host,
            self.stop.subscribe(),
        ));
        Ok(())
    }

    /// The hosts' front doors, in the order given to [`SshFace::start`].
    pub fn endpoints(&self) -> &[SshEndpoint] {
        &self.endpoints
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.tasks.shutdown().await;
    }
}

impl Drop for SshFace {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.tasks.abort_all();
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
    }
}

/// A unix socket the sshd's user may connect to (connecting needs write permission on it).
fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Makes a host's C: drive the SSH user's, recursively, so the real `sftp-server` (running as that
/// user) can write where an Administrator could. The model writes as the fleet process, which
/// still can.
pub fn give_drive_to(drive: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(drive, Some(uid), Some(gid))?;
    if drive.is_dir() && !drive.is_symlink() {
        for entry in std::fs::read_dir(drive)? {
            give_drive_to(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

// ---- front door ------------------------------------------------------------------------------

async fn door_loop(
    listener: TcpListener,
    ip: IpAddr,
    sshd: SocketAddr,
    host: Arc<dyn SimHost>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                if !host.accepting() {
                    reset(client);
                    continue;
                }
                conns.spawn(relay(client, ip, sshd, Arc::clone(&host)));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
}

/// Closes with a reset (RST), as a host that went down mid-connection does.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Pipes one client to sshd (from the host's own address) until either side ends or the host
/// goes down.
async fn relay(mut client: TcpStream, ip: IpAddr, sshd: SocketAddr, host: Arc<dyn SimHost>) {
    let _ = client.set_nodelay(true);
    let upstream = async {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(ip, 0))?;
        let s = socket.connect(sshd).await?;
        s.set_nodelay(true)?;
        Ok::<_, std::io::Error>(s)
    };
    let mut server = match upstream.await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(host = host.name(), %sshd, "SSH face cannot reach sshd: {e}");
            reset(client);
            return;
        }
    };
    let went_down = async {
        loop {
            tokio::time::sleep(POWER_POLL).await;
            if !host.accepting() {
                return;
            }
        }
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = went_down => {
            tracing::debug!(host = host.name(), "host went down: resetting its SSH connection");
            reset(client);
            reset(server);
        }
    }
}

// ---- the shell's socket ----------------------------------------------------------------------

async fn shell_loop(
    listener: UnixListener,
    host: Arc<dyn SimHost>,
    mut stop: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                sessions.spawn(shell_session(stream, Arc::clone(&host)));
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    sessions.abort_all();
}

/// One `winsim-shell` process: read its request, run it, send the output and the exit code. If
/// the shell goes away while the command runs (its sshd session ended), the command is dropped,
/// which the host logs as killed.
async fn shell_session(mut stream: UnixStream, host: Arc<dyn SimHost>) {
    let request = match read_request(&mut stream).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(host = host.name(), "bad winsim-shell request: {e}");
            return;
        }
    };
    // The console of an SSH session works in the OEM code page: what the client sends is read in
    // it, and what programs print is written in it.
    let code_page = host.oem_code_page();
    let stdin = match code_page {
        Some(cp) => crate::codepage::decode(cp, &request.stdin).into_bytes(),
        None => request.stdin,
    };
    let command = CommandRequest {
        command: request.command,
        arguments: Vec::new(),
        stdin,
        skip_cmd_shell: false,
    };
    let (mut reader, mut writer) = stream.split();
    let gone = async {
        let mut b = [0u8; 1];
        // The shell sends nothing after its request: any return means it went away.
        let _ = reader.read(&mut b).await;
    };
    let outcome = tokio::select! {
        o = host.run(command) => o,
        _ = gone => return,
    };
    let mut outcome = outcome;
    if let Some(cp) = code_page {
        for stream in [&mut outcome.stdout, &mut outcome.stderr] {
            *stream = crate::codepage::encode(cp, &String::from_utf8_lossy(stream));
        }
    }
    let mut answer = Vec::new();
    if !outcome.stdout.is_empty() {
        answer.extend(ssh_wire::encode_frame(&Frame::Stdout(outcome.stdout)));
    }
    if !outcome.stderr.is_empty() {
        answer.extend(ssh_wire::encode_frame(&Frame::Stderr(outcome.stderr)));
    }
    answer.extend(ssh_wire::encode_frame(&Frame::Exit(outcome.exit_code)));
    let _ = writer.write_all(&answer).await;
}

async fn read_request(stream: &mut UnixStream) -> Result<ssh_wire::Request, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some((req, _)) = ssh_wire::decode_request(&buf).map_err(|e| e.to_string())? {
            return Ok(req);
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the shell closed before its request was complete".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
