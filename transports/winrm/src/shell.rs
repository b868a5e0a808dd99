//! One reused WinRS shell per host.
//!
//! pywinrm opens a new shell (and often a new connection and NTLM handshake) for every command,
//! which costs seconds per task across a fleet. A [`Session`] opens its shell once, runs every
//! command in it, and only replaces it when the server says it must (quota faults, a shell that
//! vanished after an idle timeout or reboot) or after `recycle_after` commands, because Windows
//! does not release every per-command resource of a text shell until the shell is deleted.

use std::time::{Duration, Instant};

use tracing::debug;

use crate::client::{ClientConfig, WinrmClient, short_action};
use crate::clixml;
use crate::envelope::{self, ShellSpec};
use crate::error::{Error, Result};
use crate::ns;
use crate::powershell::{self, PreparedScript};
use crate::response::{self, FaultKind};

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Options of one command.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Bytes fed to the command's stdin (then stdin is closed). Empty: stdin stays open.
    pub stdin: Vec<u8>,
    /// Terminate the command (Signal terminate) if it runs longer than this.
    pub timeout: Option<Duration>,
    /// Run the executable directly rather than through `cmd.exe /c`.
    pub skip_cmd_shell: bool,
}

/// Collected result of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Raw stdout bytes.
    pub stdout: Vec<u8>,
    /// Raw stderr bytes.
    pub stderr: Vec<u8>,
    /// Exit code; u32 because installers exit with HRESULTs (0x80240017).
    pub exit_code: u32,
}

impl Output {
    /// stdout as text (lossy UTF-8: the shell runs with code page 65001 by default).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as readable text, with PowerShell CLIXML error records decoded.
    pub fn stderr_text(&self) -> String {
        clixml::decode_stderr(&String::from_utf8_lossy(&self.stderr))
    }

    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
}

/// A host's WinRM session: one authenticated connection and one reused shell.
#[derive(Debug)]
pub struct Session {
    client: WinrmClient,
    spec: ShellSpec,
    shell_id: Option<String>,
    /// A finished command not yet released with a Signal. Its release goes out before the next
    /// command, or never if the shell is deleted first (Delete frees every command in the shell):
    /// a one-command session, such as a scan's probe, saves that round trip.
    unreleased: Option<(String, String)>,
    commands_in_shell: u32,
    /// Replace the shell after this many commands (0: never proactively).
    pub recycle_after: u32,
    /// Shells created so far (for tests and metrics).
    pub shells_opened: u32,
    /// How long opening a shell waits for one to free while the user is at MaxShellsPerUser
    /// (other sessions, other tools, shells a crashed client left behind until their idle
    /// timeout). Zero fails at once.
    pub shell_quota_wait: Duration,
}

/// The first pause after a shell-quota fault; it doubles up to [`QUOTA_BACKOFF_MAX`].
const QUOTA_BACKOFF_START: Duration = Duration::from_millis(250);
const QUOTA_BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Session {
    /// A session whose shell skips the user profile and uses UTF-8 (code page 65001).
    pub fn new(cfg: ClientConfig) -> Result<Self> {
        let spec = ShellSpec {
            no_profile: true,
            codepage: Some(65001),
            ..ShellSpec::default()
        };
        Self::with_spec(cfg, spec)
    }

    /// A session with a custom shell specification (environment, working directory, …).
    pub fn with_spec(cfg: ClientConfig, spec: ShellSpec) -> Result<Self> {
        Ok(Session {
            client: WinrmClient::new(cfg)?,
            spec,
            shell_id: None,
            unreleased: None,
            commands_in_shell: 0,
            recycle_after: 500,
            shells_opened: 0,
            shell_quota_wait: Duration::from_secs(60),
        })
    }

    /// The underlying client (e.g. for a config Get).
    pub fn client(&mut self) -> &mut WinrmClient {
        &mut self.client
    }

    fn host(&self) -> String {
        self.client.host().to_string()
    }

    /// The current shell id, if a shell is open.
    pub fn shell_id(&self) -> Option<&str> {
        self.shell_id.as_deref()
    }

    /// Open the shell if none is open; returns its id.
    ///
    /// A host whose user is at MaxShellsPerUser is busy, not broken: the Create is retried with
    /// a doubling pause until a shell frees or [`Session::shell_quota_wait`] has passed, and only
    /// then does the quota fault reach the caller.
    pub async fn open(&mut self) -> Result<String> {
        if let Some(id) = &self.shell_id {
            return Ok(id.clone());
        }
        let deadline = Instant::now() + self.shell_quota_wait;
        let mut pause = QUOTA_BACKOFF_START;
        loop {
            match self.create_shell().await {
                Err(e)
                    if e.fault_kind() == Some(FaultKind::ShellQuota)
                        && Instant::now() + pause <= deadline =>
                {
                    debug!(host = %self.host(), ?pause, "shell quota reached, waiting for a shell to free: {e}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(QUOTA_BACKOFF_MAX);
                }
                other => return other,
            }
        }
    }

    async fn create_shell(&mut self) -> Result<String> {
        let client = &mut self.client;
        let req = envelope::create_shell(client.headers(), &self.spec);
        let text = client.send(&req).await?;
        let created = response::parse_create(&text, &req.message_id)
            .map_err(|e| client.reply_err(&req, e))?;
        debug!(host = %client.host(), shell = %created.shell_id, "shell created");
        self.shell_id = Some(created.shell_id.clone());
        self.commands_in_shell = 0;
        self.shells_opened += 1;
        Ok(created.shell_id)
    }

    /// Delete the shell (the connection stays).
    pub async fn close_shell(&mut self) -> Result<()> {
        // Deleting the shell frees its commands; no separate release is needed.
        self.unreleased = None;
        let Some(id) = self.shell_id.take() else {
            return Ok(());
        };
        let client = self.client();
        let req = envelope::delete(client.headers(), &id);
        let text = client.send(&req).await?;
        response::parse_empty(&text, &req.message_id).map_err(|e| client.reply_err(&req, e))
    }

    /// Delete the shell and drop the connection.
    pub async fn close(mut self) -> Result<()> {
        let r = self.close_shell().await;
        self.client.disconnect();
        r
    }

    /// Start a command whose `<rsp:CommandLine>` is `line` ([`envelope::command_line`]).
    async fn start(&mut self, line: &str, skip_cmd_shell: bool) -> Result<(String, String)> {
        self.release_finished().await;
        if self.recycle_after > 0 && self.commands_in_shell >= self.recycle_after {
            debug!(host = %self.host(), "recycling the shell after {} commands", self.commands_in_shell);
            let _ = self.close_shell().await;
        }
        let mut recycled = false;
        loop {
            let shell_id = self.open().await?;
            let client = self.client();
            let req =
                envelope::command_with_line(client.headers(), &shell_id, line, skip_cmd_shell);
            let result = match client.send(&req).await {
                Ok(text) => response::parse_command(&text, &req.message_id)
                    .map_err(|e| client.reply_err(&req, e)),
                Err(e) => Err(e),
            };
            match result {
                Ok(cid) => {
                    self.commands_in_shell += 1;
                    return Ok((shell_id, cid));
                }
                Err(e) if !recycled => match e.fault_kind() {
                    Some(FaultKind::OperationQuota) | Some(FaultKind::ShellQuota) => {
                        debug!(host = %self.host(), "quota fault, recycling the shell: {e}");
                        let _ = self.close_shell().await;
                        recycled = true;
                    }
                    Some(FaultKind::InvalidSelectors) => {
                        // The shell is gone (idle timeout, reboot): open a new one.
                        self.shell_id = None;
                        recycled = true;
                    }
                    _ => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }

    async fn send_stdin(&mut self, shell_id: &str, cid: &str, data: &[u8]) -> Result<()> {
        let client = self.client();
        // base64 grows data by 4/3; keep each envelope well under MaxEnvelopeSize.
        let max = (client.headers().max_envelope_size as usize).saturating_sub(4096) / 4 * 3;
        let chunk = max.max(1024);
        let mut parts: Vec<&[u8]> = data.chunks(chunk).collect();
        if parts.is_empty() {
            parts.push(&[]);
        }
        let last = parts.len() - 1;
        for (i, part) in parts.into_iter().enumerate() {
            let req = envelope::send(client.headers(), shell_id, cid, "stdin", part, i == last);
            let text = client.send(&req).await?;
            response::parse_empty(&text, &req.message_id).map_err(|e| client.reply_err(&req, e))?;
        }
        Ok(())
    }

    async fn signal(&mut self, shell_id: &str, cid: &str) -> Result<()> {
        let client = self.client();
        let req = envelope::signal(client.headers(), shell_id, cid, ns::SIGNAL_TERMINATE);
        let text = client.send(&req).await?;
        response::parse_empty(&text, &req.message_id).map_err(|e| client.reply_err(&req, e))
    }

    /// Run a command, calling `on_output` with each chunk as it arrives; returns the exit code.
    ///
    /// Receives that time out on the server (nothing printed within OperationTimeout) are simply
    /// repeated. When `opts.timeout` passes, the command is terminated and an error returned.
    pub async fn run<F: FnMut(Stream, &[u8])>(
        &mut self,
        command: &str,
        args: &[String],
        opts: &RunOptions,
        on_output: F,
    ) -> Result<u32> {
        let line = envelope::command_line(command, args);
        self.run_line(command, &line, opts, on_output).await
    }

    /// [`Session::run`] of a command whose `<rsp:CommandLine>` is built already; `command` names
    /// it in errors.
    async fn run_line<F: FnMut(Stream, &[u8])>(
        &mut self,
        command: &str,
        line: &str,
        opts: &RunOptions,
        mut on_output: F,
    ) -> Result<u32> {
        let (shell_id, cid) = self.start(line, opts.skip_cmd_shell).await?;
        if !opts.stdin.is_empty()
            && let Err(e) = self.send_stdin(&shell_id, &cid, &opts.stdin).await
        {
            let _ = self.signal(&shell_id, &cid).await;
            return Err(e);
        }
        let deadline = opts.timeout.map(|t| Instant::now() + t);
        let exit = loop {
            let client = self.client();
            let mut headers = client.headers().clone();
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let _ = self.signal(&shell_id, &cid).await;
                    return Err(Error::CommandTimeout {
                        host: self.host(),
                        command: command.split_whitespace().next().unwrap_or("").into(),
                        secs: opts.timeout.unwrap_or_default().as_secs(),
                    });
                }
                headers.operation_timeout = headers
                    .operation_timeout
                    .min(left.max(Duration::from_secs(1)));
            }
            let req = envelope::receive(&headers, &shell_id, Some(&cid), "stdout stderr");
            let out = match client.send(&req).await {
                Ok(text) => response::parse_receive(&text, &req.message_id)
                    .map_err(|e| client.reply_err(&req, e)),
                Err(e) => Err(e),
            };
            let out = match out {
                Ok(o) => o,
                Err(e) if e.fault_kind() == Some(FaultKind::TimedOut) => continue,
                Err(e) => {
                    if e.fault_kind() == Some(FaultKind::InvalidSelectors) {
                        self.shell_id = None;
                    }
                    return Err(e);
                }
            };
            for c in &out.chunks {
                if c.data.is_empty() {
                    continue;
                }
                match c.name.as_str() {
                    "stdout" => on_output(Stream::Stdout, &c.data),
                    "stderr" => on_output(Stream::Stderr, &c.data),
                    _ => {}
                }
            }
            if let Some(state) = out.state.filter(|s| s.is_done()) {
                break state.exit_code.ok_or_else(|| Error::Reply {
                    host: self.host(),
                    action: short_action(ns::ACTION_RECEIVE),
                    source: response::ResponseError::Malformed(
                        "command is Done but has no ExitCode".into(),
                    ),
                })?;
            }
        };
        // Windows keeps a finished command until it is signalled or its shell goes; the release
        // is sent lazily (see `unreleased`).
        self.unreleased = Some((shell_id, cid));
        Ok(exit)
    }

    /// Free the previous finished command on the server. Its output is complete and its exit
    /// code already returned: a failed clean-up must not fail the next command; an unfreed
    /// command only brings the shell's recycling closer.
    async fn release_finished(&mut self) {
        let Some((shell_id, cid)) = self.unreleased.take() else {
            return;
        };
        // A shell replaced since (recycled, or gone after a reboot) took the command with it.
        if self.shell_id.as_deref() != Some(shell_id.as_str()) {
            return;
        }
        if let Err(e) = self.signal(&shell_id, &cid).await {
            debug!(host = %self.host(), "releasing the finished command failed: {e}");
            if e.fault_kind() == Some(FaultKind::InvalidSelectors) {
                self.shell_id = None;
            }
        }
    }

    /// Run a command and collect its output.
    pub async fn run_output(
        &mut self,
        command: &str,
        args: &[String],
        opts: &RunOptions,
    ) -> Result<Output> {
        let line = envelope::command_line(command, args);
        self.run_line_output(command, &line, opts).await
    }

    async fn run_line_output(
        &mut self,
        command: &str,
        line: &str,
        opts: &RunOptions,
    ) -> Result<Output> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let exit_code = self
            .run_line(command, line, opts, |s, d| match s {
                Stream::Stdout => stdout.extend_from_slice(d),
                Stream::Stderr => stderr.extend_from_slice(d),
            })
            .await?;
        Ok(Output {
            stdout,
            stderr,
            exit_code,
        })
    }

    /// Run a cmd.exe command line (e.g. `wmic qfe list`) and collect its output.
    pub async fn run_cmd(&mut self, line: &str, timeout: Option<Duration>) -> Result<Output> {
        let opts = RunOptions {
            timeout,
            ..RunOptions::default()
        };
        self.run_output(line, &[], &opts).await
    }

    /// Run a PowerShell script of any length (`-EncodedCommand` when short, stdin otherwise).
    /// [`Output::stderr_text`] decodes its CLIXML error records.
    pub async fn run_powershell(
        &mut self,
        script: &str,
        timeout: Option<Duration>,
    ) -> Result<Output> {
        let inv = powershell::winrs_invocation(script);
        let opts = RunOptions {
            stdin: inv.stdin,
            timeout,
            skip_cmd_shell: inv.skip_cmd_shell,
        };
        self.run_output(&inv.command, &inv.args, &opts).await
    }

    /// [`Session::run_powershell`] of a script encoded once for many hosts: what is left to do
    /// per host is the envelope and its sealing.
    pub async fn run_prepared(
        &mut self,
        script: &PreparedScript,
        timeout: Option<Duration>,
    ) -> Result<Output> {
        let inv = script.winrs();
        let opts = RunOptions {
            stdin: inv.stdin.clone(),
            timeout,
            skip_cmd_shell: inv.skip_cmd_shell,
        };
        self.run_line_output(&inv.command, script.winrs_command_line(), &opts)
            .await
    }
}

impl Drop for Session {
    /// Best effort: delete the shell in the background so it does not count against the user's
    /// MaxShellsPerUser until its idle timeout. Call [`Session::close`] to know it worked.
    fn drop(&mut self) {
        let Some(id) = self.shell_id.take() else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let mut client = self.client.detach();
            rt.spawn(async move {
                let req = envelope::delete(client.headers(), &id);
                let _ = client.send(&req).await;
            });
        }
    }
}
