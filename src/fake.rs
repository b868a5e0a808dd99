//! A scripted [`Target`] for tests: a host that answers from a script instead of a socket, so the
//! reboot, settle, verify and stage logic can be tested in milliseconds, the way a sans-IO
//! protocol core is tested by feeding it bytes.
//!
//! What it scripts:
//! - replies per command: the first rule whose pattern the command text contains answers; a rule
//!   holds a queue of replies and repeats its last one (`exit 3010` then `exit 0`, a probe that
//!   hangs once, a connection dropped by `shutdown`);
//! - the host's boot time, pending-reboot markers and servicing state, which the state probe
//!   (hive's own probe script, recognised by its marker) reports as a real host would;
//! - a reboot: what happens after `shutdown /r` — when the host goes down, how long it stays
//!   down, its new boot time, how long servicing stays busy — over a simulated clock;
//! - files: `put_file` keeps the bytes in memory, `remote_sha256` and reads see them.
//!
//! The clock is simulated and deterministic: every call the host sees (a command, a file
//! operation, a port check) is one tick, and a script says "down after 1 tick, for 3 ticks". A
//! test therefore never depends on how fast the machine runs it; hive's own deadlines (real
//! time) are made short in tests so a host that never comes back fails in milliseconds.
//!
//! Every call is recorded ([`FakeTarget::calls`]), for tests that check what hive sent and in
//! which order (one `shutdown`, no installer run twice).

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hive_probe::{PROBE_MARKER, PROBE_SCHEMA, PendingReboot, ProbeFacts};
use sha2::Digest as _;

use crate::deploy::reboot::PortProbe;
use crate::inventory::Host;
use crate::remote::{BoxFuture, Command, ExecOutput, PutReport, RemoteError, Target};

/// One scripted answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The command ran and left this.
    Output(ExecOutput),
    /// The transport failed with this error.
    Error(RemoteError),
    /// No answer at all: the call never returns (the caller's timeout must cut it off).
    Hang,
    /// Answer as the host would without a rule (the probe's facts, or exit 0): for a rule that
    /// misbehaves only a given number of times.
    Normal,
}

impl Reply {
    /// A command that exited `code` with `stdout`.
    pub fn exit(code: u32, stdout: &str) -> Reply {
        Reply::Output(ExecOutput {
            stdout: stdout.to_string(),
            stderr: String::new(),
            exit_code: code,
        })
    }
}

/// What the host does once it is told `shutdown /r`, in ticks of the fake's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootScript {
    /// Ticks from the `shutdown` command until the host stops answering.
    pub down_after: u64,
    /// Ticks it stays down; `None`: it never comes back.
    pub down_for: Option<u64>,
    /// The boot time it reports once back.
    pub new_boot: String,
    /// Ticks after coming back during which servicing is still busy (CBS `RebootPending`).
    pub configuring_for: u64,
    /// Pending-reboot markers still set after the reboot.
    pub pending_after: PendingReboot,
}

impl RebootScript {
    /// Down on the next tick, back three ticks later with `new_boot`, settled at once.
    pub fn quick(new_boot: &str) -> RebootScript {
        RebootScript {
            down_after: 1,
            down_for: Some(3),
            new_boot: new_boot.to_string(),
            configuring_for: 0,
            pending_after: PendingReboot::default(),
        }
    }
}

/// One call the host saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A command line, or `powershell: <first line>` for a script (the probe shows as
    /// `powershell: # hive-probe v1`).
    Exec(String),
    Put(String),
    ReadRange(String),
    Sha256(String),
    RemoveFile(String),
    RemoveDir(String),
    Disconnect,
    PortCheck,
}

#[derive(Debug)]
struct Rule {
    pattern: String,
    replies: VecDeque<Reply>,
}

#[derive(Debug)]
struct FakeHost {
    tick: u64,
    boot: String,
    pending: PendingReboot,
    servicing_busy_until: u64,
    rules: Vec<Rule>,
    reboot: Option<RebootScript>,
    /// Ticks of the current outage: `[from, until)`; `until == None`: for good.
    down: Option<(u64, Option<u64>)>,
    /// What the host reports once the outage ends.
    after_outage: Option<RebootScript>,
    calls: Vec<Call>,
    files: BTreeMap<String, Vec<u8>>,
    probe: Option<ProbeFacts>,
    /// What the probe reports once the host runs with a given boot time (after a reboot).
    probe_at_boot: BTreeMap<String, ProbeFacts>,
}

impl FakeHost {
    /// One tick passes; the host comes back if its outage is over.
    fn tick(&mut self) -> u64 {
        self.tick += 1;
        let now = self.tick;
        if let Some((_, Some(until))) = self.down
            && now >= until
        {
            self.down = None;
            if let Some(script) = self.after_outage.take() {
                self.boot = script.new_boot;
                self.pending = script.pending_after;
                self.servicing_busy_until = now + script.configuring_for;
            }
        }
        now
    }

    fn is_down(&self) -> bool {
        matches!(self.down, Some((from, _)) if self.tick >= from)
    }

    fn facts(&self) -> ProbeFacts {
        let mut facts = self
            .probe_at_boot
            .get(&self.boot)
            .or(self.probe.as_ref())
            .cloned()
            .unwrap_or_else(FakeTarget::plain_facts);
        facts.last_boot_time = self.boot.clone();
        facts.pending_reboot = self.pending.clone();
        facts.pending_reboot.cbs_reboot_pending |= self.tick < self.servicing_busy_until;
        facts
    }
}

/// The scripted host. Clones share the same host, so a test keeps one to script and inspect
/// while hive owns another.
#[derive(Debug, Clone)]
pub struct FakeTarget {
    name: String,
    host: Arc<Mutex<FakeHost>>,
}

impl FakeTarget {
    /// A host up since `boot`, nothing pending, every command exiting 0.
    pub fn new(name: &str, boot: &str) -> FakeTarget {
        FakeTarget {
            name: name.to_string(),
            host: Arc::new(Mutex::new(FakeHost {
                tick: 0,
                boot: boot.to_string(),
                pending: PendingReboot::default(),
                servicing_busy_until: 0,
                rules: Vec::new(),
                reboot: None,
                down: None,
                after_outage: None,
                calls: Vec::new(),
                files: BTreeMap::new(),
                probe: None,
                probe_at_boot: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FakeHost> {
        // A test that panicked while holding the lock has failed already; keep its state.
        self.host.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commands whose text contains `pattern` get `replies` in turn, then the last one again.
    /// Rules are tried in the order they were added.
    pub fn on(self, pattern: &str, replies: impl IntoIterator<Item = Reply>) -> FakeTarget {
        self.lock().rules.push(Rule {
            pattern: pattern.to_string(),
            replies: replies.into_iter().collect(),
        });
        self
    }

    /// What the host does when told `shutdown /r`. Without a script it stays up with its boot
    /// time (a shutdown that never happens).
    pub fn reboots(self, script: RebootScript) -> FakeTarget {
        self.lock().reboot = Some(script);
        self
    }

    /// The host is down now, for `ticks` (`None`: for good), then back as `script` says (its
    /// `down_after` is ignored): a reboot hive did not see start.
    pub fn down_now(self, ticks: Option<u64>, script: RebootScript) -> FakeTarget {
        {
            let mut h = self.lock();
            let now = h.tick;
            h.down = Some((now, ticks.map(|t| now + t)));
            h.after_outage = Some(script);
        }
        self
    }

    /// Pending-reboot markers set now.
    pub fn pending(self, pending: PendingReboot) -> FakeTarget {
        self.lock().pending = pending;
        self
    }

    /// Servicing busy ("configuring updates") for the next `ticks`.
    pub fn configuring_for(self, ticks: u64) -> FakeTarget {
        {
            let mut h = self.lock();
            h.servicing_busy_until = h.tick + ticks;
        }
        self
    }

    /// What the probe reports of a host nobody scripted: Windows Server 2019, no hotfix, no
    /// registry value or file asked for. Tests that scan start from it.
    pub fn plain_facts() -> ProbeFacts {
        ProbeFacts {
            schema: PROBE_SCHEMA,
            computer_name: String::new(),
            product_name: "Windows Server 2019 Datacenter".into(),
            edition_id: "ServerDatacenter".into(),
            installation_type: "Server".into(),
            csd_version: String::new(),
            major: 10,
            minor: 0,
            build: 17763,
            ubr: 0,
            installed_kbs: Vec::new(),
            pending_reboot: PendingReboot::default(),
            last_boot_time: String::new(),
            free_disk_bytes: 10 << 30,
            utc_now: String::new(),
            registry: Vec::new(),
            files: Vec::new(),
            unknown: Default::default(),
        }
    }

    /// The probe's answer besides boot time and pending markers (registry values, file
    /// versions, hotfixes), for tests that scan.
    pub fn probe_facts(self, facts: ProbeFacts) -> FakeTarget {
        self.lock().probe = Some(facts);
        self
    }

    /// The probe's answer once the host has booted with `boot` (a patch that shows only after
    /// a given reboot); other boots answer with [`FakeTarget::probe_facts`].
    pub fn probe_facts_at_boot(self, boot: &str, facts: ProbeFacts) -> FakeTarget {
        self.lock().probe_at_boot.insert(boot.to_string(), facts);
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The command lines (and script first lines) run so far that contain `pattern`.
    pub fn commands_with(&self, pattern: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Exec(text) if text.contains(pattern) => Some(text),
                _ => None,
            })
            .collect()
    }

    /// The host's boot time now.
    pub fn boot(&self) -> String {
        self.lock().boot.clone()
    }

    /// A file's bytes on the host, if it is there.
    pub fn file(&self, remote: &str) -> Option<Vec<u8>> {
        self.lock().files.get(&key(remote)).cloned()
    }

    /// Put a file on the host directly (as if an earlier run had staged it).
    pub fn with_file(self, remote: &str, bytes: &[u8]) -> FakeTarget {
        self.lock().files.insert(key(remote), bytes.to_vec());
        self
    }

    /// The port check deploy's reboot phases use, answering from this host's state.
    pub fn port_probe(&self) -> Arc<dyn PortProbe> {
        Arc::new(FakePort(self.clone()))
    }

    fn unreachable(&self) -> RemoteError {
        RemoteError::Unreachable(format!(
            "{}: connection refused (fake host down)",
            self.name
        ))
    }

    /// One tick, the call recorded; `Err` when the host is down.
    fn enter(&self, call: Call) -> Result<(), RemoteError> {
        let mut h = self.lock();
        h.tick();
        h.calls.push(call);
        if h.is_down() {
            Err(self.unreachable())
        } else {
            Ok(())
        }
    }
}

/// Windows paths are case-insensitive.
fn key(remote: &str) -> String {
    remote.to_ascii_lowercase()
}

fn label(command: &Command) -> String {
    match command.script() {
        None => text(command).to_string(),
        Some(script) => format!("powershell: {}", script.lines().next().unwrap_or("").trim()),
    }
}

fn text(command: &Command) -> &str {
    match command {
        Command::Cmd(line) => line,
        Command::PowerShell(script) => script,
        Command::Prepared(script) => script.script(),
    }
}

impl Target for FakeTarget {
    fn host(&self) -> &str {
        &self.name
    }

    fn exec<'a>(
        &'a mut self,
        command: &'a Command,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, RemoteError>> {
        let reply = (|| {
            self.enter(Call::Exec(label(command)))?;
            let mut h = self.lock();
            let text = text(command);
            if text
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("shutdown /r")
                && let Some(mut script) = h.reboot.clone()
            {
                // Every reboot boots anew: a second one reports a boot time of its own.
                if h.boot == script.new_boot {
                    script.new_boot = format!("{}+", script.new_boot);
                }
                let from = h.tick + script.down_after;
                h.down = Some((from, script.down_for.map(|d| from + d)));
                h.after_outage = Some(script);
            }
            let scripted = h
                .rules
                .iter_mut()
                .find(|r| text.contains(&r.pattern))
                .map(|r| {
                    if r.replies.len() > 1 {
                        r.replies.pop_front()
                    } else {
                        r.replies.front().cloned()
                    }
                });
            match scripted.flatten() {
                Some(Reply::Output(out)) => Ok(Some(out)),
                Some(Reply::Error(e)) => Err(e),
                Some(Reply::Hang) => Ok(None),
                Some(Reply::Normal) | None
                    if command
                        .script()
                        .is_some_and(|s| s.starts_with(PROBE_MARKER)) =>
                {
                    let json = serde_json::to_string(&h.facts())
                        .map_err(|e| RemoteError::Failed(e.to_string()))?;
                    Ok(Some(ExecOutput {
                        stdout: json,
                        stderr: String::new(),
                        exit_code: 0,
                    }))
                }
                Some(Reply::Normal) | None => Ok(Some(ExecOutput::default())),
            }
        })();
        Box::pin(async move {
            match reply {
                Ok(Some(out)) => Ok(out),
                Ok(None) => std::future::pending().await,
                Err(e) => Err(e),
            }
        })
    }

    fn put_file<'a>(
        &'a mut self,
        local: &'a Path,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<PutReport, RemoteError>> {
        let result = self.enter(Call::Put(remote.to_string())).and_then(|()| {
            let bytes = std::fs::read(local)
                .map_err(|e| RemoteError::Failed(format!("{}: {e}", local.display())))?;
            let report = PutReport {
                bytes: bytes.len() as u64,
                resumed_from: 0,
                sha256: hex::encode(sha2::Sha256::digest(&bytes)),
            };
            self.lock().files.insert(key(remote), bytes);
            Ok(report)
        });
        Box::pin(async move { result })
    }

    fn read_file_range<'a>(
        &'a mut self,
        remote: &'a str,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, RemoteError>> {
        let result = self
            .enter(Call::ReadRange(remote.to_string()))
            .and_then(|()| {
                let h = self.lock();
                let bytes = h
                    .files
                    .get(&key(remote))
                    .ok_or_else(|| RemoteError::NotFound(remote.to_string()))?;
                let start = (offset as usize).min(bytes.len());
                let end = start.saturating_add(len as usize).min(bytes.len());
                Ok(bytes[start..end].to_vec())
            });
        Box::pin(async move { result })
    }

    fn remote_sha256<'a>(
        &'a mut self,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, RemoteError>> {
        let result = self.enter(Call::Sha256(remote.to_string())).map(|()| {
            self.lock()
                .files
                .get(&key(remote))
                .map(|b| hex::encode(sha2::Sha256::digest(b)))
        });
        Box::pin(async move { result })
    }

    fn disconnect(&mut self) {
        self.lock().calls.push(Call::Disconnect);
    }

    fn remove_file<'a>(&'a mut self, remote: &'a str) -> BoxFuture<'a, Result<(), RemoteError>> {
        let result = self
            .enter(Call::RemoveFile(remote.to_string()))
            .and_then(|()| {
                self.lock()
                    .files
                    .remove(&key(remote))
                    .map(|_| ())
                    .ok_or_else(|| RemoteError::NotFound(remote.to_string()))
            });
        Box::pin(async move { result })
    }

    fn remove_dir<'a>(&'a mut self, remote: &'a str) -> BoxFuture<'a, Result<(), RemoteError>> {
        let result = self.enter(Call::RemoveDir(remote.to_string()));
        Box::pin(async move { result })
    }
}

/// The fake host's port: open unless the host is down.
struct FakePort(FakeTarget);

impl PortProbe for FakePort {
    fn open<'a>(&'a self, _host: &'a Host) -> BoxFuture<'a, bool> {
        let open = self.0.enter(Call::PortCheck).is_ok();
        Box::pin(async move { open })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &mut FakeTarget, line: &str) -> Result<ExecOutput, RemoteError> {
        let cmd = Command::Cmd(line.into());
        futures::executor::block_on(t.exec(&cmd, Duration::from_secs(1)))
    }

    #[test]
    fn replies_come_in_turn_and_the_last_repeats() {
        let mut t = FakeTarget::new("H", "B0")
            .on("setup.exe", [Reply::exit(1618, ""), Reply::exit(0, "done")]);
        assert_eq!(run(&mut t, "setup.exe /q").unwrap().exit_code, 1618);
        assert_eq!(run(&mut t, "setup.exe /q").unwrap().exit_code, 0);
        assert_eq!(run(&mut t, "setup.exe /q").unwrap().stdout, "done");
        assert_eq!(run(&mut t, "other").unwrap().exit_code, 0);
        assert_eq!(t.commands_with("setup.exe").len(), 3);
    }

    #[test]
    fn a_scripted_reboot_goes_down_and_comes_back_with_its_boot_time() {
        let mut t = FakeTarget::new("H", "B0").reboots(RebootScript::quick("B1"));
        run(&mut t, "shutdown /r /t 0").unwrap();
        // Down from the next tick for three ticks.
        assert!(run(&mut t, "ver").is_err());
        assert!(run(&mut t, "ver").is_err());
        assert!(run(&mut t, "ver").is_err());
        assert_eq!(t.boot(), "B0");
        assert!(run(&mut t, "ver").is_ok());
        assert_eq!(t.boot(), "B1");
    }
}
