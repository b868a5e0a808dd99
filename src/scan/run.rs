//! Running a scan: one probe round trip per host, many hosts at once, none able to stop the others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::evaluate::{CatalogIndex, evaluate_with};
use super::legacy;
use super::probe::{facts_from, request_for};
use super::{HostFailure, HostResult, HostScan};
use crate::catalog::model::Catalog;
use crate::inventory::{Host, Secret};
use crate::remote::{Command, Connector, NetworkConnector, RemoteError, Target, Timeouts};
use hive_probe::{ProbeFacts, ProbeOutput, ProbeRequest};
use hive_winrm::powershell::PreparedScript;

/// How a scan runs.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// Hosts scanned at once.
    pub parallel: usize,
    /// The whole scan of one host (connect, probe, parse) must end within this.
    pub host_timeout: Duration,
    pub timeouts: Timeouts,
    pub files: FileSource,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            parallel: 64,
            host_timeout: Duration::from_secs(120),
            timeouts: Timeouts::default(),
            files: FileSource::Probe,
        }
    }
}

/// How a scan reads file versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FileSource {
    /// The probe reads them on the host (PowerShell); hosts without PowerShell fall back to the
    /// file channel (SMB, or SFTP for SSH hosts).
    #[default]
    Probe,
    /// Pull each file's PE header and resource section over the file channel (SMB, or SFTP for
    /// SSH hosts) and parse them here: no command touches the files, and the versions do not
    /// depend on the host's own tools.
    Smb,
}

/// The probe prepared once for a catalog: the request and the script sent to every host, encoded
/// for the wire here so that each host costs only its envelope and sealing.
#[derive(Debug, Clone)]
pub struct PreparedProbe {
    pub request: ProbeRequest,
    /// The script asking for everything.
    pub script: PreparedScript,
    /// The script asking for everything but files (read over SMB instead).
    pub script_without_files: PreparedScript,
    /// The catalog's names and product rules every host's evaluation shares.
    pub index: Arc<CatalogIndex>,
}

impl PreparedProbe {
    pub fn new(catalog: &Catalog) -> Self {
        let request = request_for(catalog);
        let script = hive_probe::script(&request);
        let script_without_files = hive_probe::script(&ProbeRequest {
            files: Vec::new(),
            ..request.clone()
        });
        PreparedProbe {
            request,
            script: PreparedScript::new(&script),
            script_without_files: PreparedScript::new(&script_without_files),
            index: Arc::new(CatalogIndex::new(catalog)),
        }
    }
}

/// cmd.exe's exit code for a program it cannot find, in every language.
const CMD_NOT_FOUND: u32 = 9009;

/// The answer when a program does not exist: the host has no PowerShell. Through cmd.exe it is
/// exit code 9009 with a message in the host's language ("is not recognized" in English, matched
/// too for transports that cut exit codes to 8 bits); started directly (WinRS without cmd.exe) it
/// is ERROR_FILE_NOT_FOUND as an exit code or as the Command request's WS-Man fault
/// ([`RemoteError::NotFound`]).
fn no_powershell(out: &crate::remote::ExecOutput) -> bool {
    out.exit_code == CMD_NOT_FOUND
        || out.exit_code == 0x8007_0002
        || (out.exit_code != 0
            && out
                .stderr
                .contains("is not recognized as an internal or external command"))
}

/// How the probe went on a host.
enum ProbeRun {
    /// The probe answered.
    Answered(Box<ProbeFacts>),
    /// No PowerShell, or one too old for the probe (the reason says which): use the legacy route.
    Legacy(String),
}

/// Runs `script` and reads its answer, telling a host without a usable PowerShell from a failure.
async fn run_probe(
    target: &mut dyn Target,
    script: &Command,
    timeout: Duration,
) -> Result<ProbeRun, RemoteError> {
    let out = match target.exec(script, timeout).await {
        Ok(out) => out,
        Err(RemoteError::NotFound(e)) => {
            return Ok(ProbeRun::Legacy(format!(
                "powershell.exe cannot be started ({e})"
            )));
        }
        Err(e) => return Err(e),
    };
    if no_powershell(&out) {
        return Ok(ProbeRun::Legacy("no powershell.exe".into()));
    }
    // The version check comes first in the script: its signal counts whatever the exit code.
    match hive_probe::parse_output(&out.stdout) {
        Ok(ProbeOutput::Legacy { powershell }) => {
            return Ok(ProbeRun::Legacy(format!("PowerShell {powershell}")));
        }
        Ok(ProbeOutput::Facts(facts)) if out.exit_code == 0 => {
            return Ok(ProbeRun::Answered(facts));
        }
        Err(e) if out.exit_code == 0 => {
            return Err(RemoteError::Failed(format!(
                "{}: the probe's answer is not usable: {e}",
                target.host()
            )));
        }
        _ => {}
    }
    Err(RemoteError::Failed(format!(
        "{}: the probe exited with {} ({})",
        target.host(),
        out.exit_code,
        first_line(&out.stderr)
    )))
}

/// Scan one host through an open target: one probe round trip (plus ranged SMB reads when file
/// versions come over SMB), evaluated locally.
pub async fn scan_target(
    target: &mut dyn Target,
    catalog: &Catalog,
    probe: &PreparedProbe,
    timeout: Duration,
    files: FileSource,
) -> Result<HostResult, RemoteError> {
    let script = match files {
        FileSource::Probe => &probe.script,
        FileSource::Smb => &probe.script_without_files,
    };
    let command = Command::Prepared(script.clone());
    let (mut answer, mut file_source) = match run_probe(target, &command, timeout).await? {
        ProbeRun::Legacy(why) => {
            let channel = target.file_channel();
            (legacy_scan(target, probe, timeout, &why).await?, channel)
        }
        ProbeRun::Answered(answer) => (*answer, "probe"),
    };
    if files == FileSource::Smb && file_source == "probe" {
        let root = system_root(&answer);
        answer.files = legacy::files_over_smb(target, &probe.request, &root).await?;
        file_source = target.file_channel();
    }
    let mut facts = facts_from(&answer, &probe.request);
    facts.file_source = file_source.to_string();
    let verdicts = evaluate_with(catalog, &probe.index, &facts);
    Ok(HostResult { facts, verdicts })
}

/// Boot time and pending-reboot state only (no catalog questions): the PowerShell probe, or on
/// hosts without PowerShell `reg query` and `net statistics server`. Used while waiting for a
/// reboot, so it must be cheap and work on every Windows hive patches.
pub async fn state_probe(target: &mut dyn Target, timeout: Duration) -> Result<ProbeFacts, String> {
    let request = ProbeRequest::default();
    let script = Command::PowerShell(hive_probe::script(&request));
    match run_probe(target, &script, timeout)
        .await
        .map_err(|e| e.to_string())?
    {
        ProbeRun::Answered(facts) => {
            if let Some(why) = facts.unknown.get("last_boot_time") {
                return Err(format!("the host could not give its boot time: {why}"));
            }
            Ok(*facts)
        }
        ProbeRun::Legacy(_) => {
            let facts = legacy_answer(target, &request, timeout)
                .await
                .map_err(|e| e.to_string())?;
            if facts.last_boot_time.is_empty() {
                return Err("net statistics server did not give the boot time".into());
            }
            Ok(facts)
        }
    }
}

/// The host's system root from the registry answer (`C:\WINNT` on a Windows 2000 upgraded from
/// NT 4, `C:\Windows` otherwise).
fn system_root(answer: &ProbeFacts) -> String {
    answer
        .registry
        .iter()
        .find(|r| {
            r.found
                && r.key.eq_ignore_ascii_case(legacy::CURRENT_VERSION)
                && r.value.eq_ignore_ascii_case("SystemRoot")
        })
        .and_then(|r| r.data.as_ref())
        .and_then(|d| d.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| r"C:\Windows".to_string())
}

/// The registry and boot-time part of a probe answer, read with `reg query` and `net statistics`
/// on hosts without PowerShell (no files: those come over SMB).
async fn legacy_answer(
    target: &mut dyn Target,
    request: &ProbeRequest,
    timeout: Duration,
) -> Result<ProbeFacts, RemoteError> {
    let mut dump = legacy::RegDump::new();
    let mut net = String::new();
    for line in legacy::commands(request) {
        let out = target.exec(&Command::Cmd(line), timeout).await?;
        legacy::parse_reg_output(&out.stdout, &mut dump);
        if out.stdout.contains("Statistics since") {
            net = out.stdout;
        }
    }
    Ok(legacy::probe_facts_from(&dump, &net, request, Vec::new()))
}

/// Hosts without PowerShell: `reg query` chained on cmd.exe lines, files over SMB.
async fn legacy_scan(
    target: &mut dyn Target,
    probe: &PreparedProbe,
    timeout: Duration,
    why: &str,
) -> Result<ProbeFacts, RemoteError> {
    let mut answer = legacy_answer(target, &probe.request, timeout).await?;
    if answer.major == 0 {
        return Err(RemoteError::Failed(format!(
            "{}: {why}, and reg query did not return the Windows version",
            target.host()
        )));
    }
    let root = system_root(&answer);
    answer.files = legacy::files_over_smb(target, &probe.request, &root).await?;
    Ok(answer)
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no error text")
}

/// Called as hosts finish, for progress bars.
pub trait ScanProgress: Send + Sync {
    fn host_done(&self, scan: &HostScan);
}

impl ScanProgress for () {
    fn host_done(&self, _: &HostScan) {}
}

/// One inventory host with its secret, or why its secret could not be read.
pub type FleetHost = (Host, Result<Secret, String>);

/// Scan every host, at most `parallel` at a time, each bounded by `host_timeout`. Results come back
/// in inventory order; a host that fails gets a [`HostFailure`] and the others go on.
pub async fn scan_fleet(
    hosts: Arc<[FleetHost]>,
    catalog: Arc<Catalog>,
    options: ScanOptions,
    progress: Arc<dyn ScanProgress>,
) -> Vec<HostScan> {
    let open = Arc::new(NetworkConnector::new(options.timeouts));
    scan_fleet_with(hosts, catalog, options, progress, open).await
}

/// [`scan_fleet`] with a chosen way to open each host (the demo's simulated drives, a test's
/// scripted hosts).
///
/// Every host's scan is a task of its own, so the runtime's workers share the work of thousands
/// of hosts (sealing, parsing, evaluating) instead of the one thread that polls this future. A
/// scan that panics ends its task only: its host gets a [`HostFailure`] like any other failure.
pub async fn scan_fleet_with(
    hosts: Arc<[FleetHost]>,
    catalog: Arc<Catalog>,
    options: ScanOptions,
    progress: Arc<dyn ScanProgress>,
    open: Arc<dyn Connector>,
) -> Vec<HostScan> {
    let probe = Arc::new(PreparedProbe::new(&catalog));
    let parallel = options.parallel.max(1);
    let mut results: Vec<Option<HostScan>> = (0..hosts.len()).map(|_| None).collect();
    let mut running: HashMap<tokio::task::Id, usize> = HashMap::with_capacity(parallel);
    let mut tasks = JoinSet::new();
    let mut next = 0;
    loop {
        while tasks.len() < parallel && next < hosts.len() {
            let task = scan_task(
                hosts.clone(),
                next,
                catalog.clone(),
                probe.clone(),
                options,
                progress.clone(),
                open.clone(),
            );
            running.insert(tasks.spawn(task).id(), next);
            next += 1;
        }
        let (id, scan) = match tasks.join_next_with_id().await {
            None => break,
            Some(Ok((id, scan))) => (id, scan),
            Some(Err(e)) => {
                let id = e.id();
                let Some(&i) = running.get(&id) else { continue };
                let scan = HostScan {
                    host: hosts[i].0.name.clone(),
                    result: Err(HostFailure::ProbeFailed(format!(
                        "{}: the scan stopped: {}",
                        hosts[i].0.name,
                        task_end(e)
                    ))),
                };
                progress.host_done(&scan);
                (id, scan)
            }
        };
        if let Some(i) = running.remove(&id) {
            results[i] = Some(scan);
        }
    }
    results.into_iter().flatten().collect()
}

/// One host's scan as a task: owns what it reads, reports its result to `progress` itself.
async fn scan_task(
    hosts: Arc<[FleetHost]>,
    i: usize,
    catalog: Arc<Catalog>,
    probe: Arc<PreparedProbe>,
    options: ScanOptions,
    progress: Arc<dyn ScanProgress>,
    open: Arc<dyn Connector>,
) -> HostScan {
    let (host, secret) = &hosts[i];
    let result = match secret {
        Err(e) => Err(HostFailure::Credential(e.clone())),
        Ok(secret) => scan_one(host, secret, &catalog, &probe, options, open.as_ref()).await,
    };
    let scan = HostScan {
        host: host.name.clone(),
        result,
    };
    progress.host_done(&scan);
    scan
}

/// Why a host's task ended without a result: its panic message (a hive bug), or the runtime
/// shutting down under it.
fn task_end(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return "the task was cancelled".into();
    }
    let payload = e.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    format!("hive panicked ({message})")
}

async fn scan_one(
    host: &Host,
    secret: &Secret,
    catalog: &Catalog,
    probe: &PreparedProbe,
    options: ScanOptions,
    open: &dyn Connector,
) -> Result<HostResult, HostFailure> {
    let attempt = || async {
        let mut target = open.open(host, secret)?;
        scan_target(
            target.as_mut(),
            catalog,
            probe,
            options.host_timeout,
            options.files,
        )
        .await
    };
    // Everything a scan sends only reads, so a connection lost under it may be tried once more
    // on a new one — when the host still listens (a host that is down is not asked twice). A
    // command that changes a host is never resent: that rule is deploy's, not this one's.
    let work = async {
        match attempt().await {
            Err(RemoteError::Unreachable(lost)) if still_listening(host).await => {
                attempt().await.map_err(|e| match e {
                    RemoteError::Unreachable(m) => RemoteError::Unreachable(format!(
                        "{m} (also on a second connection; the first: {lost})"
                    )),
                    other => other,
                })
            }
            other => other,
        }
    };
    match tokio::time::timeout(options.host_timeout, work).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(HostFailure::from(&e)),
        Err(_) => Err(HostFailure::TimedOut(format!(
            "{}: no result within {} s",
            host.name,
            options.host_timeout.as_secs()
        ))),
    }
}

/// How long [`still_listening`] waits for the host to accept a connection.
const LISTEN_CHECK: Duration = Duration::from_secs(2);

/// Whether the host's command port accepts a connection now.
async fn still_listening(host: &Host) -> bool {
    let connect = tokio::net::TcpStream::connect((host.address.as_str(), host.port));
    matches!(tokio::time::timeout(LISTEN_CHECK, connect).await, Ok(Ok(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::ExecOutput;

    fn out(code: u32, stderr: &str) -> ExecOutput {
        ExecOutput {
            stdout: String::new(),
            stderr: stderr.into(),
            exit_code: code,
        }
    }

    #[test]
    fn a_missing_powershell_is_recognised_in_any_language() {
        // German cmd.exe: only the exit code says it.
        assert!(no_powershell(&out(
            9009,
            "Der Befehl \"powershell.exe\" ist entweder falsch geschrieben oder\r\nkonnte nicht gefunden werden.\r\n"
        )));
        assert!(no_powershell(&out(
            255,
            "'powershell.exe' is not recognized as an internal or external command,\r\n"
        )));
        assert!(no_powershell(&out(0x8007_0002, "")));
        assert!(!no_powershell(&out(1, "Der Befehl ist falsch")));
        assert!(!no_powershell(&out(0, "")));
    }

    #[test]
    fn the_ws_man_fault_for_a_missing_program_means_no_powershell() {
        let fault = |code: u32| hive_winrm::Error::Fault {
            host: "h:5985".into(),
            action: "Command",
            fault: Box::new(hive_winrm::response::WsmanFault {
                code: "Receiver".into(),
                subcode: Some("InternalError".into()),
                reason: "The system cannot find the file specified.".into(),
                wsman_code: Some(code),
                machine: None,
                message: None,
                detail: None,
            }),
        };
        assert!(matches!(
            RemoteError::from(fault(2)),
            RemoteError::NotFound(_)
        ));
        assert!(matches!(
            RemoteError::from(fault(0x8007_0002)),
            RemoteError::NotFound(_)
        ));
        assert!(matches!(
            RemoteError::from(fault(5)),
            RemoteError::Failed(_)
        ));
    }

    /// Hands out scripted targets in turn and counts the connections opened.
    struct Scripted(std::sync::Mutex<Vec<crate::fake::FakeTarget>>);

    impl Connector for Scripted {
        fn open(&self, _: &Host, _: &Secret) -> Result<Box<dyn Target>, RemoteError> {
            let mut left = self.0.lock().unwrap_or_else(|e| e.into_inner());
            assert!(!left.is_empty(), "more connections opened than scripted");
            Ok(Box::new(left.remove(0)))
        }
    }

    fn host_on(port: u16) -> Host {
        let text = format!(
            "[[host]]\nname = \"WEB01\"\naddress = \"127.0.0.1\"\nport = {port}\ncredential = \"prompt\"\n"
        );
        crate::inventory::Inventory::parse(&text, std::path::Path::new("inv.toml"))
            .expect("inventory")
            .hosts
            .remove(0)
    }

    fn losing(error: RemoteError) -> crate::fake::FakeTarget {
        crate::fake::FakeTarget::new("WEB01", "B0")
            .on(hive_probe::PROBE_MARKER, [crate::fake::Reply::Error(error)])
    }

    async fn scan_with(
        host: &Host,
        targets: Vec<crate::fake::FakeTarget>,
    ) -> (Result<HostResult, HostFailure>, usize) {
        let scripted = Scripted(std::sync::Mutex::new(targets));
        let before = scripted.0.lock().map(|t| t.len()).unwrap_or(0);
        let r = scan_one(
            host,
            &Secret::new("x"),
            &Catalog::default(),
            &PreparedProbe::new(&Catalog::default()),
            ScanOptions::default(),
            &scripted,
        )
        .await;
        let after = scripted.0.lock().map(|t| t.len()).unwrap_or(0);
        (r, before - after)
    }

    #[tokio::test]
    async fn a_lost_connection_is_scanned_again_once_on_a_new_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let host = host_on(listener.local_addr().expect("bound").port());
        let lost = || RemoteError::Unreachable("connection reset by peer".into());

        let (r, opened) = scan_with(
            &host,
            vec![losing(lost()), crate::fake::FakeTarget::new("WEB01", "B0")],
        )
        .await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(opened, 2);

        // Lost twice: given up after the second connection, both reasons kept.
        let (r, opened) = scan_with(
            &host,
            vec![
                losing(lost()),
                losing(lost()),
                crate::fake::FakeTarget::new("WEB01", "B0"),
            ],
        )
        .await;
        assert_eq!(opened, 2, "tried once more, not again");
        let Err(HostFailure::Unreachable(m)) = r else {
            panic!("{r:?}")
        };
        assert!(m.contains("also on a second connection"), "{m}");

        // Other failures are not connection losses: not retried.
        let (r, opened) = scan_with(
            &host,
            vec![
                losing(RemoteError::AuthFailed("logon refused".into())),
                crate::fake::FakeTarget::new("WEB01", "B0"),
            ],
        )
        .await;
        assert!(matches!(r, Err(HostFailure::AuthFailed(_))), "{r:?}");
        assert_eq!(opened, 1);
    }

    /// Opens a scripted host for every name but `PANIC`, whose scan panics.
    struct PanicsOn;

    impl Connector for PanicsOn {
        fn open(&self, host: &Host, _: &Secret) -> Result<Box<dyn Target>, RemoteError> {
            assert!(host.name != "PANIC", "a hive bug on this host");
            Ok(Box::new(crate::fake::FakeTarget::new(&host.name, "B0")))
        }
    }

    /// Counts the hosts reported done.
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl ScanProgress for Count {
        fn host_done(&self, _: &HostScan) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_host_fails_alone_and_results_keep_inventory_order() {
        let names = ["A", "B", "PANIC", "C", "D", "E", "NOSECRET", "F"];
        let text: String = names
            .iter()
            .map(|n| format!("[[host]]\nname = \"{n}\"\ncredential = \"prompt\"\n"))
            .collect();
        let inv = crate::inventory::Inventory::parse(&text, std::path::Path::new("inv.toml"))
            .expect("inventory");
        let hosts: Arc<[FleetHost]> = inv
            .hosts
            .into_iter()
            .map(|h| {
                let secret = match h.name.as_str() {
                    "NOSECRET" => Err("no secret".to_string()),
                    _ => Ok(Secret::new("x")),
                };
                (h, secret)
            })
            .collect();
        let progress = Arc::new(Count::default());
        let options = ScanOptions {
            parallel: 3,
            ..ScanOptions::default()
        };
        let scans = scan_fleet_with(
            hosts,
            Arc::new(Catalog::default()),
            options,
            progress.clone(),
            Arc::new(PanicsOn),
        )
        .await;
        let got: Vec<&str> = scans.iter().map(|s| s.host.as_str()).collect();
        assert_eq!(got, names);
        assert_eq!(
            progress.0.load(std::sync::atomic::Ordering::Relaxed),
            names.len()
        );
        for s in &scans {
            match s.host.as_str() {
                "PANIC" => {
                    let Err(HostFailure::ProbeFailed(m)) = &s.result else {
                        panic!("{s:?}")
                    };
                    assert!(m.contains("a hive bug on this host"), "{m}");
                }
                "NOSECRET" => assert!(matches!(s.result, Err(HostFailure::Credential(_)))),
                _ => assert!(s.result.is_ok(), "{s:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_host_that_no_longer_listens_is_not_asked_twice() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a port")
            .port();
        let host = host_on(port);
        let (r, opened) = scan_with(
            &host,
            vec![
                losing(RemoteError::Unreachable("connection refused".into())),
                crate::fake::FakeTarget::new("WEB01", "B0"),
            ],
        )
        .await;
        assert!(matches!(r, Err(HostFailure::Unreachable(_))), "{r:?}");
        assert_eq!(opened, 1);
    }
}
