//! Running a command: separate stdout and stderr, the exit status, output streamed as it comes, and
//! a time limit that really ends the remote process.
//!
//! Closing an SSH channel does not stop the command behind it: OpenSSH leaves it running, so a
//! timed-out installer would go on while hive reports failure and moves on. hive therefore learns
//! the command's process group first and, on timeout, kills that group over a second channel.
//!
//! How the group is learned ([`RemoteShell::Posix`]): sshd starts every command as a new session
//! (`setsid`), so the login shell that runs it is a process-group leader and `$$` is the group id.
//! The command is sent as `printf 'HIVE-PGID:%s\n' "$$"` + newline + the command itself; the first
//! stdout line is taken off by [`PgidHeader`] before the caller sees any output, and the exit status
//! is the command's own. On timeout a second exec sends SIGTERM to the group, waits
//! [`SshOptions::kill_grace`](crate::SshOptions::kill_grace), then SIGKILL. A process that leaves
//! the group on purpose (a daemon calling `setsid`) escapes, as it would from an interactive kill.
//!
//! Windows OpenSSH (not built yet, for the design): the default shell there is `cmd.exe`, which has
//! no `$$`, and Windows ignores SSH signal requests. The wrapper would be
//! `powershell -NoProfile -Command "[Console]::Out.WriteLine('HIVE-PGID:' + $PID); <command>"`
//! (the command run as a child of that PowerShell), and the kill exec
//! `taskkill /T /F /PID <pid>`, where `/T` takes the whole process tree as the group does here.

use std::fmt;
use std::time::Duration;

use russh::ChannelMsg;
use russh::client::Msg;
use russh::{Channel, ChannelReadHalf};
use tokio::time::Instant;

use crate::error::SshError;
pub use crate::kill::KillOutcome;
use crate::session::SshSession;

/// The marker of the first stdout line the POSIX wrapper prints.
const PGID_PREFIX: &[u8] = b"HIVE-PGID:";
/// A header longer than this is not ours (a pid has at most 10 digits).
const PGID_HEADER_MAX: usize = PGID_PREFIX.len() + 12;

/// Which of a command's output streams a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// How the remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(u32),
    /// A signal ended it (`TERM`, `KILL`, `SEGV`, ...).
    Signal { name: String, core_dumped: bool },
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal { name, core_dumped } => {
                write!(
                    f,
                    "signal {name}{}",
                    if *core_dumped { " (core dumped)" } else { "" }
                )
            }
        }
    }
}

/// A finished command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: ExitStatus,
}

/// What kind of shell the server runs commands with; decides how a timed-out command is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemoteShell {
    /// A POSIX shell (Linux, BSD, macOS, Cygwin-style hosts): wrapped, killed by process group.
    #[default]
    Posix,
    /// Send the command as it is (e.g. a server with a `ForceCommand`, or a shell hive does not
    /// know). A timeout then only closes the channel; the remote process may run on.
    Verbatim,
}

/// The command line the server gets for `command` under `shell`.
pub fn wrap_command(shell: RemoteShell, command: &str) -> String {
    match shell {
        RemoteShell::Posix => format!("printf 'HIVE-PGID:%s\\n' \"$$\"\n{command}"),
        RemoteShell::Verbatim => command.to_owned(),
    }
}

/// The POSIX script that ends process group `pgid`: SIGTERM, up to `grace` for it to go, then
/// SIGKILL. It prints one word, read back by [`parse_kill_report`].
///
/// "Gone" means no member left that is not a zombie: `kill -0` also succeeds on zombies, which
/// linger in the group until init reaps them (slowly, under some container inits), so `ps` is
/// asked first and `kill -0` is only the fallback where `ps` is missing.
pub fn kill_script(pgid: u32, grace: Duration) -> String {
    let tenths = grace.as_millis().div_ceil(100);
    [
        "alive() {".to_owned(),
        "  if command -v ps >/dev/null 2>&1; then".to_owned(),
        format!(
            "    ps -A -o pgid= -o stat= 2>/dev/null | awk '$1 == {pgid} && $2 !~ /^Z/ {{ f = 1 }} END {{ exit !f }}'"
        ),
        format!("  else kill -0 -{pgid} 2>/dev/null; fi"),
        "}".to_owned(),
        format!("kill -TERM -{pgid} 2>/dev/null || {{ echo gone; exit 0; }}"),
        "i=0".to_owned(),
        "while alive; do".to_owned(),
        format!(
            "  if [ \"$i\" -ge {tenths} ]; then kill -KILL -{pgid} 2>/dev/null; echo killed; exit 0; fi"
        ),
        "  sleep 0.1; i=$((i+1))".to_owned(),
        "done".to_owned(),
        "echo terminated".to_owned(),
    ]
    .join("\n")
}

/// Reads the kill script's one-word report.
pub fn parse_kill_report(pgid: u32, stdout: &[u8]) -> KillOutcome {
    match String::from_utf8_lossy(stdout).trim() {
        "terminated" => KillOutcome::Terminated { pgid },
        "killed" => KillOutcome::Killed { pgid },
        "gone" => KillOutcome::AlreadyGone { pgid },
        other => KillOutcome::KillFailed {
            pgid,
            reason: format!("unexpected report {other:?}"),
        },
    }
}

/// Takes the `HIVE-PGID:<n>\n` line off the front of stdout, whatever sizes the data arrives in.
/// Bytes that turn out not to be that header are handed on untouched, so a server that ignores the
/// wrapper (a `ForceCommand`) loses no output; the group is then unknown.
#[derive(Debug, Default)]
pub struct PgidHeader {
    buffered: Vec<u8>,
    done: bool,
    pgid: Option<u32>,
}

impl PgidHeader {
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that expects no header: every byte is output (verbatim commands).
    pub fn pass_through() -> Self {
        PgidHeader {
            done: true,
            ..Self::default()
        }
    }

    /// The process group id, once the header has been read.
    pub fn pgid(&self) -> Option<u32> {
        self.pgid
    }

    /// Feeds stdout bytes; returns the bytes that belong to the command's own output.
    pub fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        if self.done {
            return data.to_vec();
        }
        self.buffered.extend_from_slice(data);
        let compare = self.buffered.len().min(PGID_PREFIX.len());
        if self.buffered[..compare] != PGID_PREFIX[..compare] {
            return self.give_up();
        }
        match self.buffered.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let number = &self.buffered[PGID_PREFIX.len().min(end)..end];
                let pgid = std::str::from_utf8(number)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    // Group 0 or 1 would make `kill -TERM -<n>` hit everything the user owns.
                    .filter(|&n| n > 1);
                if pgid.is_none() {
                    return self.give_up();
                }
                self.pgid = pgid;
                self.done = true;
                self.buffered.split_off(end + 1)
            }
            None if self.buffered.len() > PGID_HEADER_MAX => self.give_up(),
            None => Vec::new(),
        }
    }

    /// Bytes still held at the end of the stream (a header that never finished is output).
    pub fn finish(&mut self) -> Vec<u8> {
        if self.done {
            Vec::new()
        } else {
            self.give_up()
        }
    }

    fn give_up(&mut self) -> Vec<u8> {
        self.done = true;
        std::mem::take(&mut self.buffered)
    }
}

fn signal_name(sig: &russh::Sig) -> String {
    match sig {
        russh::Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

impl SshSession {
    /// Runs `command` and collects its output; fails with [`SshError::CommandTimedOut`] after
    /// `timeout`, having killed the remote process group.
    pub async fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, SshError> {
        self.exec_as(RemoteShell::Posix, command, timeout).await
    }

    /// [`exec`](Self::exec) for a server whose shell is not POSIX or that runs a fixed command.
    pub async fn exec_as(
        &self,
        shell: RemoteShell,
        command: &str,
        timeout: Duration,
    ) -> Result<ExecOutput, SshError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let status = self
            .exec_streaming(shell, command, timeout, |stream, data| match stream {
                OutputStream::Stdout => stdout.extend_from_slice(data),
                OutputStream::Stderr => stderr.extend_from_slice(data),
            })
            .await?;
        Ok(ExecOutput {
            stdout,
            stderr,
            status,
        })
    }

    /// [`exec_as`](Self::exec_as) with `input` as the command's stdin (then end-of-file): how a
    /// script too long for a command line reaches `powershell.exe -` on Windows OpenSSH, whose
    /// `cmd.exe` stops at 8191 characters.
    pub async fn exec_with_input(
        &self,
        shell: RemoteShell,
        command: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Result<ExecOutput, SshError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let status = self
            .exec_streaming_input(
                shell,
                command,
                input,
                timeout,
                |stream, data| match stream {
                    OutputStream::Stdout => stdout.extend_from_slice(data),
                    OutputStream::Stderr => stderr.extend_from_slice(data),
                },
            )
            .await?;
        Ok(ExecOutput {
            stdout,
            stderr,
            status,
        })
    }

    /// Runs `command`, handing each piece of output to `on_output` as it arrives (for live
    /// progress of long installers), and returns how it ended.
    pub async fn exec_streaming(
        &self,
        shell: RemoteShell,
        command: &str,
        timeout: Duration,
        on_output: impl FnMut(OutputStream, &[u8]) + Send,
    ) -> Result<ExitStatus, SshError> {
        self.exec_streaming_input(shell, command, &[], timeout, on_output)
            .await
    }

    async fn exec_streaming_input(
        &self,
        shell: RemoteShell,
        command: &str,
        input: &[u8],
        timeout: Duration,
        mut on_output: impl FnMut(OutputStream, &[u8]) + Send,
    ) -> Result<ExitStatus, SshError> {
        let deadline = Instant::now() + timeout;
        let mut header = match shell {
            RemoteShell::Posix => PgidHeader::new(),
            RemoteShell::Verbatim => PgidHeader::pass_through(),
        };
        let command_line = wrap_command(shell, command);
        let started = tokio::time::timeout_at(deadline, self.start(&command_line, input));
        let (mut reader, writer) = match started.await {
            Ok(channel) => channel?.split(),
            Err(_) => return Err(self.timed_out(timeout, KillOutcome::ChannelClosedOnly)),
        };
        let pump = self.pump(&mut reader, &mut header, &mut on_output);
        match tokio::time::timeout_at(deadline, pump).await {
            Ok(result) => result,
            Err(_) => {
                let kill = match header.pgid() {
                    Some(pgid) => self.kill_group(pgid).await,
                    None => KillOutcome::ChannelClosedOnly,
                };
                // A russh channel is not closed by being dropped.
                let _ = writer.close().await;
                Err(self.timed_out(timeout, kill))
            }
        }
    }

    fn timed_out(&self, after: Duration, kill: KillOutcome) -> SshError {
        tracing::warn!(host = %self.label, ?after, %kill, "command timed out");
        SshError::CommandTimedOut {
            host: self.label.clone(),
            after,
            kill,
        }
    }

    /// Opens a channel and asks the server to run `command_line` on it, with `input` as its
    /// whole stdin.
    async fn start(&self, command_line: &str, input: &[u8]) -> Result<Channel<Msg>, SshError> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.protocol_error("opening a channel", e))?;
        channel
            .exec(true, command_line)
            .await
            .map_err(|e| self.protocol_error("starting the command", e))?;
        if !input.is_empty() {
            channel
                .data(input)
                .await
                .map_err(|e| self.protocol_error("sending the command's input", e))?;
        }
        // Then end-of-file (like `ssh -n` when there is no input): a command that reads stdin
        // sees it end instead of waiting for its time limit.
        channel
            .eof()
            .await
            .map_err(|e| self.protocol_error("closing the command's input", e))?;
        Ok(channel)
    }

    /// Hands the command's output on until the channel closes; returns how the command ended.
    async fn pump(
        &self,
        reader: &mut ChannelReadHalf,
        header: &mut PgidHeader,
        on_output: &mut (impl FnMut(OutputStream, &[u8]) + Send),
    ) -> Result<ExitStatus, SshError> {
        let mut status = None;
        while let Some(msg) = reader.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    let own = header.feed(&data);
                    if !own.is_empty() {
                        on_output(OutputStream::Stdout, &own);
                    }
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => on_output(OutputStream::Stderr, &data),
                ChannelMsg::ExitStatus { exit_status } => {
                    status = Some(ExitStatus::Code(exit_status))
                }
                ChannelMsg::ExitSignal {
                    signal_name: sig,
                    core_dumped,
                    ..
                } => {
                    status = Some(ExitStatus::Signal {
                        name: signal_name(&sig),
                        core_dumped,
                    })
                }
                // The reply to `exec(want_reply = true)`: the server would not run it.
                ChannelMsg::Failure => {
                    return Err(SshError::ExecRefused {
                        host: self.label.clone(),
                    });
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        let rest = header.finish();
        if !rest.is_empty() {
            on_output(OutputStream::Stdout, &rest);
        }
        status.ok_or_else(|| SshError::NoExitStatus {
            host: self.label.clone(),
        })
    }

    /// Ends process group `pgid` on the server over a fresh channel of the same connection.
    async fn kill_group(&self, pgid: u32) -> KillOutcome {
        let script = kill_script(pgid, self.options.kill_grace);
        let limit = self.options.kill_timeout;
        let outcome = tokio::time::timeout(limit, async {
            let (mut reader, _writer) = self.start(&script, &[]).await?.split();
            let mut stdout = Vec::new();
            let mut header = PgidHeader::pass_through();
            let mut collect = |stream, data: &[u8]| {
                if stream == OutputStream::Stdout {
                    stdout.extend_from_slice(data);
                }
            };
            self.pump(&mut reader, &mut header, &mut collect).await?;
            Ok::<_, SshError>(stdout)
        })
        .await;
        match outcome {
            Ok(Ok(stdout)) => parse_kill_report(pgid, &stdout),
            Ok(Err(e)) => KillOutcome::KillFailed {
                pgid,
                reason: e.to_string(),
            },
            Err(_) => KillOutcome::KillFailed {
                pgid,
                reason: format!("no answer within {limit:?}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_in_pieces(input: &[u8], piece: usize) -> (Vec<u8>, Option<u32>) {
        let mut h = PgidHeader::new();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            out.extend(h.feed(chunk));
        }
        out.extend(h.finish());
        (out, h.pgid())
    }

    #[test]
    fn header_is_taken_off_whatever_the_chunking() {
        let input = b"HIVE-PGID:4242\nhello\nworld\n";
        for piece in 1..input.len() + 1 {
            let (out, pgid) = feed_in_pieces(input, piece);
            assert_eq!(pgid, Some(4242), "piece {piece}");
            assert_eq!(out, b"hello\nworld\n", "piece {piece}");
        }
    }

    #[test]
    fn output_without_header_passes_untouched() {
        for input in [
            &b"HIVE-PG"[..],
            b"plain output\n",
            b"HIVE-PGID:abc\nx",
            b"",
            b"H",
        ] {
            for piece in 1..input.len().max(1) + 1 {
                let (out, pgid) = feed_in_pieces(input, piece);
                assert_eq!(out, input, "piece {piece}");
                assert_eq!(pgid, None);
            }
        }
    }

    #[test]
    fn pass_through_keeps_a_header_lookalike_as_output() {
        let mut h = PgidHeader::pass_through();
        assert_eq!(h.feed(b"HIVE-PGID:42\nx"), b"HIVE-PGID:42\nx");
        assert_eq!(h.pgid(), None);
    }

    #[test]
    fn dangerous_group_ids_are_refused() {
        for input in [
            &b"HIVE-PGID:1\nx"[..],
            b"HIVE-PGID:0\nx",
            b"HIVE-PGID:-5\nx",
        ] {
            let (out, pgid) = feed_in_pieces(input, 64);
            assert_eq!(pgid, None);
            assert_eq!(out, input);
        }
    }

    #[test]
    fn runaway_header_gives_up() {
        let mut input = b"HIVE-PGID:".to_vec();
        input.extend(std::iter::repeat_n(b'9', 40));
        let (out, pgid) = feed_in_pieces(&input, 3);
        assert_eq!(pgid, None);
        assert_eq!(out, input);
    }

    #[test]
    fn wrapper_prints_header_then_runs_command_verbatim() {
        assert_eq!(
            wrap_command(RemoteShell::Posix, "echo 'a b'; exit 3"),
            "printf 'HIVE-PGID:%s\\n' \"$$\"\necho 'a b'; exit 3"
        );
        assert_eq!(wrap_command(RemoteShell::Verbatim, "dir"), "dir");
    }

    #[test]
    fn kill_script_targets_the_group_and_rounds_grace_up() {
        let s = kill_script(777, Duration::from_millis(250));
        assert!(s.contains("\nkill -TERM -777 "), "{s}");
        assert!(s.contains("$1 == 777 "), "{s}");
        assert!(s.contains("-ge 3 ]"), "{s}");
        assert!(s.contains("kill -KILL -777"), "{s}");
    }

    #[test]
    fn kill_reports_are_read() {
        assert_eq!(
            parse_kill_report(9, b"terminated\n"),
            KillOutcome::Terminated { pgid: 9 }
        );
        assert_eq!(
            parse_kill_report(9, b"killed\n"),
            KillOutcome::Killed { pgid: 9 }
        );
        assert_eq!(
            parse_kill_report(9, b"gone\n"),
            KillOutcome::AlreadyGone { pgid: 9 }
        );
        assert!(matches!(
            parse_kill_report(9, b""),
            KillOutcome::KillFailed { .. }
        ));
    }
}
