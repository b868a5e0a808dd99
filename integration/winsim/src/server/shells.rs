//! WinRS semantics for one host: shells, commands, stdin, output cursors, and the dispatch of a
//! parsed request to the answer Windows would give.
//!
//! A command runs (through [`SimHost::run`]) from the first Receive, with all stdin sent so far,
//! because that is when a real WinRS client has delivered its script. Output is handed out in
//! slices that fit the client's MaxEnvelopeSize, so a big `reg query` takes several Receives as on
//! Windows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::request::{Action, Request};
use super::response::{self, Fault, ReceiveChunk, ShellInfo};
use crate::host::{CommandOutcome, CommandRequest, SimHost};

/// How long a Receive waits when the client sent no OperationTimeout (WinRM's default is 60 s).
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Tunables of a simulated WinRM service (what `winrm get winrm/config` would show).
#[derive(Debug, Clone)]
pub struct ServiceLimits {
    /// MaxEnvelopeSizekb: the service refuses bigger requests with 413 and reports it on config Get.
    pub max_envelope_size_kb: u32,
    /// Winrs/MaxShellsPerUser (Windows' default: 30).
    pub max_shells_per_user: usize,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        ServiceLimits {
            max_envelope_size_kb: 500,
            max_shells_per_user: 30,
        }
    }
}

/// Who is asking, for the fields Windows echoes (Address, ClientIP, Machine).
pub struct Caller<'a> {
    pub address: &'a str,
    pub client_ip: &'a str,
    pub machine: &'a str,
}

/// One dispatched answer: HTTP status and SOAP envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

struct Running {
    abort: AbortHandle,
    done: watch::Receiver<Option<CommandOutcome>>,
}

struct Command {
    request: CommandRequest,
    running: Option<Running>,
    stdout_sent: usize,
    stderr_sent: usize,
}

impl Drop for Command {
    /// A command whose shell or id goes away is killed, as closing a WinRS shell kills its processes.
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.abort.abort();
        }
    }
}

#[derive(Default)]
struct Shell {
    commands: HashMap<String, Command>,
}

impl Shell {
    /// The command a request names: no id is an invalid request, an id this shell never gave
    /// out (or already deleted) is the unknown-command fault.
    fn command_mut(&mut self, id: Option<&str>) -> Result<&mut Command, Fault> {
        let id = id.ok_or_else(Fault::invalid_parameter)?;
        self.commands.get_mut(id).ok_or_else(Fault::unknown_command)
    }
}

/// The WinRS state of one host, shared by all its connections.
pub struct HostShells {
    host: Arc<dyn SimHost>,
    limits: ServiceLimits,
    shells: Mutex<HashMap<String, Shell>>,
    /// HTTP requests this host's listeners received (every POST, NTLM legs included): the
    /// benchmark's "round trips per host" is counted here, on the server, so a client cannot
    /// under-report its own chatter.
    http_requests: std::sync::atomic::AtomicU64,
}

impl HostShells {
    pub fn new(host: Arc<dyn SimHost>, limits: ServiceLimits) -> HostShells {
        HostShells {
            host,
            limits,
            shells: Mutex::new(HashMap::new()),
            http_requests: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Count one HTTP request received for this host.
    pub fn count_request(&self) {
        self.http_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// HTTP requests received so far.
    pub fn http_requests(&self) -> u64 {
        self.http_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn host(&self) -> &Arc<dyn SimHost> {
        &self.host
    }

    pub fn limits(&self) -> &ServiceLimits {
        &self.limits
    }

    /// Forget every shell (the host went down: its processes died with it).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many shells are open (for tests and the bench).
    pub fn open_shells(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Shell>> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.shells.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answer one parsed request as the WinRM service of this host would.
    pub async fn dispatch(&self, req: &Request, caller: &Caller<'_>) -> Answer {
        let relates = req.message_id.as_deref();
        let fault = |f: Fault| Answer {
            status: 500,
            body: f.render(relates, caller.machine),
        };
        let timeout = match req.operation_timeout() {
            Ok(t) => t.unwrap_or(DEFAULT_OPERATION_TIMEOUT),
            Err(raw) => {
                return fault(Fault::bad_header(&format!(
                    "The XML contains an invalid timeout field in the SOAP header: {raw}."
                )));
            }
        };
        let relates = relates.unwrap_or_default();
        let ok = |body: String| Answer { status: 200, body };
        let Some(action) = &req.action else {
            return fault(Fault::bad_header("The request has no Action header."));
        };
        match action {
            Action::Get
                if req
                    .resource_uri
                    .as_deref()
                    .is_some_and(|u| u.ends_with("/wsman/1/config")) =>
            {
                ok(response::config_response(
                    relates,
                    self.limits.max_envelope_size_kb,
                ))
            }
            Action::Create
                if req
                    .resource_uri
                    .as_deref()
                    .is_some_and(|u| u != response::CMD_RESOURCE_URI) =>
            {
                fault(Fault::unknown_resource(
                    req.resource_uri.as_deref().unwrap_or_default(),
                ))
            }
            Action::Create => match self.create() {
                Ok(id) => ok(response::create_response(
                    relates,
                    &ShellInfo {
                        shell_id: &id,
                        address: caller.address,
                        owner: self.host.account().0,
                        client_ip: caller.client_ip,
                        environment: &req.environment,
                        working_directory: req.working_directory.as_deref(),
                        idle_timeout_secs: req
                            .idle_timeout
                            .as_deref()
                            .and_then(super::request::parse_duration)
                            .map_or(7200.0, |d| d.as_secs_f64()),
                    },
                )),
                Err(f) => fault(f),
            },
            Action::Command => match self.command(req) {
                Ok(id) => ok(response::command_response(relates, &id)),
                Err(f) => fault(f),
            },
            Action::Send => match self.send(req) {
                Ok(()) => ok(response::send_response(relates)),
                Err(f) => fault(f),
            },
            Action::Receive => match self.receive(req, timeout).await {
                Ok(body) => ok(response::receive_response(relates, &body.as_chunk())),
                Err(f) => fault(f),
            },
            Action::Signal => match self.signal(req) {
                Ok(()) => ok(response::signal_response(relates)),
                Err(f) => fault(f),
            },
            Action::Delete => match self.delete(req) {
                Ok(()) => ok(response::delete_response(relates)),
                Err(f) => fault(f),
            },
            Action::Get => fault(Fault::action_not_supported(
                "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
            )),
            Action::Other(uri) => fault(Fault::action_not_supported(uri)),
        }
    }

    fn create(&self) -> Result<String, Fault> {
        let mut shells = self.lock();
        if shells.len() >= self.limits.max_shells_per_user {
            return Err(Fault::too_many_shells(self.limits.max_shells_per_user));
        }
        let id = response::new_id();
        shells.insert(id.clone(), Shell::default());
        Ok(id)
    }

    /// Runs `f` on the request's shell under the lock; a shell id the host never gave out is the
    /// fault Windows sends for it.
    fn with_shell<R>(
        &self,
        req: &Request,
        f: impl FnOnce(&mut Shell) -> Result<R, Fault>,
    ) -> Result<R, Fault> {
        let shell_id = self.shell_id(req)?;
        let mut shells = self.lock();
        let shell = shells
            .get_mut(shell_id)
            .ok_or_else(|| Fault::unknown_shell_id(shell_id))?;
        f(shell)
    }

    fn shell_id<'r>(&self, req: &'r Request) -> Result<&'r str, Fault> {
        req.shell_id
            .as_deref()
            .ok_or_else(|| Fault::unknown_shell_id(""))
    }

    fn command(&self, req: &Request) -> Result<String, Fault> {
        self.with_shell(req, |shell| {
            let command = req.command.clone().ok_or_else(Fault::invalid_parameter)?;
            let skip_cmd_shell = req
                .option("WINRS_SKIP_CMD_SHELL")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let id = response::new_id();
            shell.commands.insert(
                id.clone(),
                Command {
                    request: CommandRequest {
                        command,
                        arguments: req.arguments.clone(),
                        stdin: Vec::new(),
                        skip_cmd_shell,
                    },
                    running: None,
                    stdout_sent: 0,
                    stderr_sent: 0,
                },
            );
            Ok(id)
        })
    }

    fn send(&self, req: &Request) -> Result<(), Fault> {
        self.with_shell(req, |shell| {
            for chunk in &req.input {
                let command = shell.command_mut(chunk.command_id.as_deref())?;
                let bytes = B64
                    .decode(chunk.data.as_bytes())
                    .map_err(|_| Fault::invalid_parameter())?;
                command.request.stdin.extend_from_slice(&bytes);
            }
            Ok(())
        })
    }

    /// Start the command if this is its first Receive; return its completion watch.
    pub fn start(&self, req: &Request) -> Result<watch::Receiver<Option<CommandOutcome>>, Fault> {
        self.with_shell(req, |shell| {
            let command = shell.command_mut(req.command_id.as_deref())?;
            if let Some(r) = &command.running {
                return Ok(r.done.clone());
            }
            let (tx, rx) = watch::channel(None);
            let host = Arc::clone(&self.host);
            // The process gets its command line and input once, at its start: a Send that comes
            // later is not seen by it (the simulated command reads all its stdin up front).
            let request = std::mem::take(&mut command.request);
            let task = tokio::spawn(async move {
                let outcome = host.run(request).await;
                // Nobody listening means the shell is gone; the outcome is dropped like the process.
                let _ = tx.send(Some(outcome));
            });
            command.running = Some(Running {
                abort: task.abort_handle(),
                done: rx.clone(),
            });
            Ok(rx)
        })
    }

    async fn receive(&self, req: &Request, timeout: Duration) -> Result<Output, Fault> {
        let mut done = self.start(req)?;
        let finished = tokio::time::timeout(timeout, done.wait_for(Option::is_some)).await;
        let outcome = match finished {
            Err(_) => return Err(Fault::timed_out()),
            // The sender vanished: the command was killed (Signal, Delete) while we waited.
            Ok(Err(_)) => return Err(Fault::unknown_command()),
            Ok(Ok(outcome)) => outcome.clone().unwrap_or_default(),
        };
        self.next_slice(req, &outcome, max_output_bytes(req, &self.limits))
    }

    /// The next piece of output that fits one envelope; the exit code rides on the last piece.
    fn next_slice(
        &self,
        req: &Request,
        outcome: &CommandOutcome,
        budget: usize,
    ) -> Result<Output, Fault> {
        self.with_shell(req, |shell| {
            let command = shell.command_mut(req.command_id.as_deref())?;
            let out_end = (command.stdout_sent + budget).min(outcome.stdout.len());
            let stdout = outcome.stdout[command.stdout_sent..out_end].to_vec();
            let left = budget - stdout.len();
            let err_end = (command.stderr_sent + left).min(outcome.stderr.len());
            let stderr = outcome.stderr[command.stderr_sent..err_end].to_vec();
            command.stdout_sent = out_end;
            command.stderr_sent = err_end;
            let complete = out_end == outcome.stdout.len() && err_end == outcome.stderr.len();
            Ok(Output {
                command_id: req.command_id.clone().unwrap_or_default(),
                stdout,
                stderr,
                exit_code: complete.then_some(outcome.exit_code),
            })
        })
    }

    fn signal(&self, req: &Request) -> Result<(), Fault> {
        self.with_shell(req, |shell| {
            let id = req
                .command_id
                .as_deref()
                .ok_or_else(Fault::invalid_parameter)?;
            // terminate and ctrl_c both end the process; dropping the Command aborts its future.
            shell
                .commands
                .remove(id)
                .ok_or_else(Fault::unknown_command)?;
            Ok(())
        })
    }

    fn delete(&self, req: &Request) -> Result<(), Fault> {
        let shell_id = self.shell_id(req)?;
        self.lock()
            .remove(shell_id)
            .ok_or_else(|| Fault::unknown_shell_id(shell_id))?;
        Ok(())
    }
}

/// Output of one Receive, owned so the shell lock is not held while rendering.
struct Output {
    command_id: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit_code: Option<u32>,
}

impl Output {
    fn as_chunk(&self) -> ReceiveChunk<'_> {
        ReceiveChunk {
            command_id: &self.command_id,
            stdout: &self.stdout,
            stderr: &self.stderr,
            exit_code: self.exit_code,
        }
    }
}

/// Raw output bytes that fit one response: base64 grows by 4/3 and the envelope needs ~2 KiB.
fn max_output_bytes(req: &Request, limits: &ServiceLimits) -> usize {
    let client = req
        .max_envelope_size
        .as_deref()
        .and_then(|v| v.trim().parse::<usize>().ok());
    let service = limits.max_envelope_size_kb as usize * 1024;
    let envelope = client.unwrap_or(service).min(service);
    (envelope.saturating_sub(4096) / 4 * 3).max(1024)
}
