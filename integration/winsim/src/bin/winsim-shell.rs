//! `winsim-shell`: the real OpenSSH sshd's `ForceCommand` for the simulated fleet, so that the
//! same host model that answers WinRM answers SSH.
//!
//! ```text
//! ForceCommand /path/winsim-shell --hosts <registry dir> --sftp-server /usr/lib/openssh/sftp-server
//! Subsystem    sftp /usr/lib/openssh/sftp-server
//! ```
//!
//! sshd runs it for every session with the client's command in `SSH_ORIGINAL_COMMAND` and the
//! connection in `SSH_CONNECTION`. The fleet's front door connects to sshd from the simulated
//! host's own 127.x.y.z address, so the client address names the host; its unix socket is
//! `<registry>/<address>.sock`, created by the fleet process (`winsim::ssh`).
//!
//! - A command: the client's stdin is read to its end, the command line and stdin go to the host
//!   (which runs it as `cmd.exe /c` would), stdout and stderr come back as they were produced and
//!   the process exits with the host's exit code. A Linux sshd carries 8 bits of exit status: a
//!   larger Windows code becomes 255 with a note on stderr (see `ssh_wire::unix_exit_status`).
//! - The `sftp` subsystem (sshd puts the subsystem's command in `SSH_ORIGINAL_COMMAND` when a
//!   `ForceCommand` is set): the real OpenSSH `sftp-server` is exec'd, as the logged-on user, for a
//!   host the registry knows.
//! - No command (an interactive shell): refused with exit 1; hive never asks for one.
//!
//! Std only: the harness compiles this file with a bare `rustc` (see integration/services/sshd.sh).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[path = "../ssh_wire.rs"]
#[allow(dead_code)]
mod ssh_wire;

use ssh_wire::Frame;

struct Args {
    hosts: PathBuf,
    sftp_server: String,
}

fn parse_args() -> Result<Args, String> {
    let mut hosts = None;
    let mut sftp_server = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--hosts" => hosts = it.next().map(PathBuf::from),
            "--sftp-server" => sftp_server = it.next(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        hosts: hosts.ok_or("--hosts DIR is missing")?,
        sftp_server: sftp_server.ok_or("--sftp-server PATH is missing")?,
    })
}

fn fail(message: &str, code: u8) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "winsim-shell: {message}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => return fail(&e, 255),
    };
    let connection = std::env::var("SSH_CONNECTION").unwrap_or_default();
    let Some(address) = ssh_wire::client_address(&connection) else {
        return fail(
            &format!("SSH_CONNECTION {connection:?} names no client"),
            255,
        );
    };
    let socket = args.hosts.join(ssh_wire::socket_name(address));
    if !socket.exists() {
        return fail(&format!("no simulated host answers for {address}"), 255);
    }
    let command = match std::env::var("SSH_ORIGINAL_COMMAND") {
        Ok(c) => c,
        Err(_) => return fail("interactive shells are not simulated: give a command", 1),
    };
    if command == args.sftp_server || command == "internal-sftp" {
        // Only returns if the exec failed.
        let err = std::process::Command::new(&args.sftp_server).exec();
        return fail(&format!("cannot start {}: {err}", args.sftp_server), 255);
    }
    match run(&socket, &command) {
        Ok(code) => code,
        Err(e) => fail(&format!("host {address}: {e}"), 255),
    }
}

/// Sends the command and stdin to the host, copies its output out, returns its exit status.
fn run(socket: &Path, command: &str) -> Result<ExitCode, String> {
    let mut stdin = Vec::new();
    std::io::stdin()
        .read_to_end(&mut stdin)
        .map_err(|e| format!("reading stdin: {e}"))?;
    let mut stream = UnixStream::connect(socket).map_err(|e| format!("connecting: {e}"))?;
    stream
        .write_all(&ssh_wire::encode_request(command, &stdin))
        .map_err(|e| format!("sending the command: {e}"))?;
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        while let Some((frame, used)) = ssh_wire::decode_frame(&buf).map_err(|e| e.to_string())? {
            buf.drain(..used);
            match frame {
                Frame::Stdout(b) => out.write_all(&b).and_then(|_| out.flush()),
                Frame::Stderr(b) => err.write_all(&b).and_then(|_| err.flush()),
                Frame::Exit(code) => {
                    let (status, note) = ssh_wire::unix_exit_status(code);
                    if let Some(note) = note {
                        let _ = err.write_all(note.as_bytes());
                    }
                    return Ok(ExitCode::from(status as u8));
                }
            }
            .map_err(|e| format!("writing output: {e}"))?;
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("reading the answer: {e}"))?;
        if n == 0 {
            return Err("the host went away without an exit code".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
