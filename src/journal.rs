//! The journal: a durable record of every step on every host of a rollout, so that after Ctrl-C, a
//! crash or `kill -9` the next `hive resume` knows exactly what was done where.
//!
//! One run is one folder, `<repo>/runs/<run-id>/`, holding `journal.ndjson`: an append-only log of
//! JSON records, one per line. The first record is the run header (the plan: waves, hosts,
//! options); then step events (`started`/`finished`), host verdicts, wave gates and run states.
//!
//! Why an append-only NDJSON file and not SQLite:
//! - no C dependency to build and ship beside hive (rusqlite bundles a C library);
//! - crash-safe by construction: each record is written with one `write` and `fsync`ed before
//!   `emit` returns, so the step it announces only starts once the record is on disk; a crash can
//!   at worst tear the *last* line, which the reader recognises (no final newline) and ignores,
//!   and which [`Journal::reopen`] cuts off before appending again;
//! - an admin can read it with `less`, `grep` or `jq` when hive itself is not at hand;
//! - the access pattern is exactly what a log is good at: many small appends while running,
//!   one sequential read on resume or report.
//!
//! A damaged line anywhere but at the end is not a crash artefact: the reader refuses it with the
//! file and line number instead of guessing.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::events::{Event, EventSink, Step, StepState, now_ms};
use crate::rollout::{HostOutcome, HostVerdict, RolloutOptions, Wave};

/// The journal's file name inside a run folder.
pub const JOURNAL_FILE: &str = "journal.ndjson";
/// The marker `hive rollout promote` writes to release a run paused after its canaries.
pub const PROMOTE_FILE: &str = "promote";

/// What a run set out to do, written once as the journal's first record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHeader {
    pub run: String,
    pub created_ms: u64,
    /// The plan as the operator wrote it.
    pub plan: String,
    pub waves: Vec<Wave>,
    pub options: RolloutOptions,
    /// The hosts as resolved at start when they came from a source (a directory, a range, a
    /// list): `hive resume` works on these, not on a second answer from the source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<crate::targets::TargetRecord>,
}

impl RunHeader {
    /// Every host of the run, wave by wave.
    pub fn hosts(&self) -> impl Iterator<Item = &String> {
        self.waves.iter().flat_map(|w| w.hosts.iter())
    }
}

/// Where a run as a whole is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// Waiting for `hive rollout promote` after the canaries.
    Paused,
    /// A budget, a gate or the operator stopped it; `reason` says which.
    Stopped,
    /// Every wave ran.
    Finished,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    Header(RunHeader),
    /// A step event (never `Progress`: those are for the bars only).
    Step(Event),
    /// The end of the work on one host in this run.
    Host {
        host: String,
        wave: usize,
        verdict: HostVerdict,
        detail: String,
        at_ms: u64,
    },
    /// A wave started, passed or failed its gate.
    Wave {
        wave: usize,
        state: String,
        detail: String,
        at_ms: u64,
    },
    /// The run changed state (started, resumed, paused, stopped, finished).
    Run {
        state: RunState,
        reason: String,
        at_ms: u64,
    },
}

#[derive(Debug, Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "journal {path}, line {line}: {message} (only a torn last line is a crash artefact; this one is damage: keep a copy and repair or remove the line by hand)"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("journal {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("run `{run}` not found under {runs}")]
    NoSuchRun { run: String, runs: PathBuf },
    #[error("run id `{run}` is not valid: use letters, digits, '-', '_' and '.' only")]
    BadRunId { run: String },
    #[error("could not record the event durably: {0}")]
    Write(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The folder of all runs in a repository.
pub fn runs_dir(repo_root: &Path) -> PathBuf {
    repo_root.join("runs")
}

/// Run ids become folder names and come back from the command line: no separators, no `..`.
pub fn validate_run_id(run: &str) -> Result<(), JournalError> {
    let ok = !run.is_empty()
        && run.len() <= 64
        && !run.starts_with('.')
        && !run.contains("..")
        && run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(JournalError::BadRunId {
            run: run.to_string(),
        })
    }
}

/// The folder of one run, checked to exist.
pub fn run_dir(repo_root: &Path, run: &str) -> Result<PathBuf, JournalError> {
    validate_run_id(run)?;
    let dir = runs_dir(repo_root).join(run);
    if dir.join(JOURNAL_FILE).is_file() {
        Ok(dir)
    } else {
        Err(JournalError::NoSuchRun {
            run: run.to_string(),
            runs: runs_dir(repo_root),
        })
    }
}

/// A new run id from the clock: `20261125-143200` (UTC), sortable, with `-2`, `-3`... if two runs
/// start within the same second.
pub fn new_run_id(repo_root: &Path) -> String {
    let base = utc_stamp(now_ms() / 1000);
    let runs = runs_dir(repo_root);
    let mut id = base.clone();
    let mut n = 2;
    while runs.join(&id).exists() {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

/// `YYYYMMDD-HHMMSS` for seconds since the epoch (UTC), without a date crate.
pub fn utc_stamp(secs: u64) -> String {
    let (y, m, d) = crate::repo::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The writing side: an open journal that appends and fsyncs each record before returning.
///
/// Appends are group-committed: records from many hosts that arrive while an fsync is under way
/// are written and fsynced together by the next one, and every caller returns only once its own
/// record is on disk. One fsync per record one after the other made 1,000 hosts wait on the disk
/// (2 s of work per host took 12 s); batching keeps durability per record at a fraction of it.
pub struct Journal {
    run: String,
    dir: PathBuf,
    path: PathBuf,
    file: Mutex<File>,
    queue: Mutex<Queue>,
    flushed: Condvar,
}

/// Records waiting for the next write + fsync.
#[derive(Default)]
struct Queue {
    buf: Vec<u8>,
    /// Records queued so far (a sequence number for each caller to wait on).
    queued: u64,
    /// Records written and fsynced.
    durable: u64,
    flushing: bool,
    /// A failed write or fsync: the journal can no longer vouch for anything after it.
    failed: Option<String>,
}

impl Journal {
    /// Start a new run: create its folder and write the header.
    pub fn create(repo_root: &Path, header: &RunHeader) -> Result<Journal, JournalError> {
        validate_run_id(&header.run)?;
        let runs = runs_dir(repo_root);
        std::fs::create_dir_all(&runs).map_err(io(&runs))?;
        let dir = runs.join(&header.run);
        std::fs::create_dir(&dir).map_err(io(&dir))?;
        let path = dir.join(JOURNAL_FILE);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        sync_dir(&dir);
        sync_dir(&runs);
        let journal = Journal {
            run: header.run.clone(),
            dir,
            path,
            file: Mutex::new(file),
            queue: Mutex::new(Queue::default()),
            flushed: Condvar::new(),
        };
        journal.append(&Record::Header(header.clone()))?;
        Ok(journal)
    }

    /// Open an existing run to append to it (resume). A torn last line left by a crash is cut
    /// off first, so the next record starts on a line of its own.
    pub fn reopen(repo_root: &Path, run: &str) -> Result<Journal, JournalError> {
        let dir = run_dir(repo_root, run)?;
        let path = dir.join(JOURNAL_FILE);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        if keep < bytes.len() {
            file.set_len(keep as u64).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        Ok(Journal {
            run: run.to_string(),
            dir,
            path,
            file: Mutex::new(file),
            queue: Mutex::new(Queue::default()),
            flushed: Condvar::new(),
        })
    }

    pub fn run(&self) -> &str {
        &self.run
    }

    /// The run folder (`<repo>/runs/<run-id>`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write one record as one line and fsync it. Only when this returns Ok is the record durable.
    ///
    /// Called from async code, it waits in `block_in_place` on a multi-threaded runtime, so the
    /// other hosts' tasks keep running (and queue their records for the same fsync).
    pub fn append(&self, record: &Record) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(record).map_err(|e| JournalError::Invalid {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.append_line(&line))
            }
            _ => self.append_line(&line),
        }
    }

    fn poisoned(&self) -> JournalError {
        JournalError::Invalid {
            path: self.path.clone(),
            message: "a writer panicked while holding the journal".into(),
        }
    }

    fn append_line(&self, line: &[u8]) -> Result<(), JournalError> {
        let mut q = self.queue.lock().map_err(|_| self.poisoned())?;
        if let Some(e) = &q.failed {
            return Err(JournalError::Write(e.clone()));
        }
        q.buf.extend_from_slice(line);
        q.queued += 1;
        let me = q.queued;
        loop {
            if q.durable >= me {
                return Ok(());
            }
            if let Some(e) = &q.failed {
                return Err(JournalError::Write(e.clone()));
            }
            if q.flushing {
                q = self.flushed.wait(q).map_err(|_| self.poisoned())?;
                continue;
            }
            // Become the flusher for everything queued so far.
            q.flushing = true;
            let batch = std::mem::take(&mut q.buf);
            let upto = q.queued;
            drop(q);
            let result = match self.file.lock() {
                Ok(mut f) => f.write_all(&batch).and_then(|()| f.sync_data()),
                Err(_) => Err(std::io::Error::other("journal file lock poisoned")),
            };
            q = self.queue.lock().map_err(|_| self.poisoned())?;
            q.flushing = false;
            match result {
                Ok(()) => q.durable = upto,
                Err(e) => q.failed = Some(format!("{}: {e}", self.path.display())),
            }
            self.flushed.notify_all();
        }
    }

    /// Record the end of the work on one host.
    pub fn host_done(
        &self,
        host: &str,
        wave: usize,
        outcome: &HostOutcome,
    ) -> Result<(), JournalError> {
        self.append(&Record::Host {
            host: host.to_string(),
            wave,
            verdict: outcome.verdict,
            detail: outcome.detail.clone(),
            at_ms: now_ms(),
        })
    }

    pub fn wave(&self, wave: usize, state: &str, detail: &str) -> Result<(), JournalError> {
        self.append(&Record::Wave {
            wave,
            state: state.to_string(),
            detail: detail.to_string(),
            at_ms: now_ms(),
        })
    }

    pub fn run_state(&self, state: RunState, reason: &str) -> Result<(), JournalError> {
        self.append(&Record::Run {
            state,
            reason: reason.to_string(),
            at_ms: now_ms(),
        })
    }
}

impl EventSink for Journal {
    /// Started and Finished are made durable before the step runs (or is reported done);
    /// Progress events are for the bars and are not written.
    fn emit(&self, event: &Event) -> Result<(), String> {
        if matches!(event.state, StepState::Progress { .. }) {
            return Ok(());
        }
        self.append(&Record::Step(event.clone()))
            .map_err(|e| e.to_string())
    }
}

fn sync_dir(dir: &Path) {
    // A new directory entry is durable only once its parent is synced. Failing to sync a folder
    // (some filesystems refuse) does not endanger records, which are fsynced themselves.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// One step on one host, as the journal saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    pub step: Step,
    pub started_ms: u64,
    /// `None` while (or if, after a crash) the step never finished.
    pub finished: Option<StepEnd>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepEnd {
    pub ok: bool,
    pub outcome: String,
    pub detail: String,
    pub at_ms: u64,
}

/// Everything the journal knows about one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostLog {
    pub steps: Vec<StepRecord>,
    /// The verdict, once the work on the host ended. A host with a verdict is done.
    pub verdict: Option<(HostVerdict, String)>,
    pub first_ms: Option<u64>,
    pub last_ms: Option<u64>,
}

impl HostLog {
    /// A host is done once its verdict is journaled; an `interrupted` verdict does not count.
    pub fn done(&self) -> bool {
        matches!(&self.verdict, Some((v, _)) if *v != HostVerdict::Interrupted)
    }

    pub fn last_step(&self) -> Option<&StepRecord> {
        self.steps.last()
    }

    fn add(&mut self, event: &Event) {
        self.first_ms.get_or_insert(event.at_ms);
        self.last_ms = Some(event.at_ms);
        match &event.state {
            StepState::Started => self.steps.push(StepRecord {
                step: event.step.clone(),
                started_ms: event.at_ms,
                finished: None,
            }),
            StepState::Finished {
                ok,
                outcome,
                detail,
            } => {
                let end = StepEnd {
                    ok: *ok,
                    outcome: outcome.clone(),
                    detail: detail.clone(),
                    at_ms: event.at_ms,
                };
                match self
                    .steps
                    .iter_mut()
                    .rev()
                    .find(|s| s.finished.is_none() && s.step == event.step)
                {
                    Some(open) => open.finished = Some(end),
                    // A Finished with no Started (a sink added mid-step): keep it anyway.
                    None => self.steps.push(StepRecord {
                        step: event.step.clone(),
                        started_ms: event.at_ms,
                        finished: Some(end),
                    }),
                }
            }
            StepState::Progress { .. } => {}
        }
    }

    /// What the per-host work needs to continue on this host without repeating itself.
    ///
    /// Steps are read in the order they started. An install starts a new "reboot cycle": the
    /// reboot that completes it is the one whose last phase (`pending`) finished ok after it.
    /// The boot time the host had before that reboot is the last one the journal saw before the
    /// cycle's first reboot phase (from a scan's or a login phase's `boot time X` detail), so a
    /// resumed run can tell "rebooted while hive was down" from "not rebooted yet".
    pub fn resume_state(&self) -> ResumeState {
        let mut state = ResumeState::default();
        let mut last_boot: Option<String> = None;
        for s in &self.steps {
            let ok = matches!(&s.finished, Some(e) if e.ok);
            let detail = s.finished.as_ref().map(|e| e.detail.as_str()).unwrap_or("");
            match &s.step {
                Step::Stage { patch, .. } if ok => {
                    state.staged_ok.insert(patch.clone());
                }
                Step::VerifyHash { patch } if ok => {
                    state.hash_verified.insert(patch.clone());
                }
                Step::Install { patch, .. } => {
                    state.install_started.insert(patch.clone());
                    // An installer ran after any earlier reboot: that reboot does not complete it.
                    state.reboot_started = false;
                    state.reboot_done = false;
                    state.boot_before_reboot = None;
                    state.verified = false;
                    if ok {
                        state.installed_ok.insert(patch.clone());
                        let outcome = s.finished.as_ref().map(|e| e.outcome.as_str());
                        if matches!(outcome, Some("reboot_required" | "reboot_initiated")) {
                            state.reboot_required = true;
                        }
                    }
                }
                Step::Qchain if ok => {
                    state.qchain_done = true;
                    state.reboot_required = true;
                }
                Step::Reboot { phase } => {
                    if !state.reboot_started || state.reboot_done {
                        // The first phase of a new reboot.
                        state.reboot_started = true;
                        state.reboot_done = false;
                        state.boot_before_reboot = last_boot.clone();
                    }
                    if ok && phase == "pending" {
                        state.reboot_done = true;
                        state.reboot_required = false;
                    }
                }
                Step::Verify if ok => state.verified = true,
                _ => {}
            }
            if matches!(s.step, Step::Scan | Step::Reboot { .. })
                && let Some(boot) = boot_time_in(detail)
            {
                last_boot = Some(boot.to_string());
            }
        }
        state.open_steps = self
            .steps
            .iter()
            .filter(|s| s.finished.is_none())
            .map(|s| s.step.clone())
            .collect();
        // The last step is the one the crash happened in; earlier open ones were left by earlier
        // crashes and are listed in `open_steps` for the resumed run to settle.
        state.interrupted = self
            .steps
            .last()
            .filter(|s| s.finished.is_none())
            .map(|s| s.step.clone());
        state.attempted = !self.steps.is_empty();
        state
    }
}

/// The boot time a step's detail names (`boot time 2026-11-25T13:27:00.000Z`, as the scan and
/// the reboot's login phase write it), if any.
pub fn boot_time_in(detail: &str) -> Option<&str> {
    let at = detail.find("boot time ")? + "boot time ".len();
    let rest = &detail[at..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == ')')
        .unwrap_or(rest.len());
    let boot = &rest[..end];
    (!boot.is_empty()).then_some(boot)
}

/// What an earlier attempt in this run already did on a host. Deploy reads it to never run an
/// installer twice: a patch in `installed_ok` is not installed again; an install left open in
/// `open_steps` (started, never finished: the orchestrator died during it) is settled from the
/// host's own evidence before anything else runs, because the installer may or may not have
/// completed — it may even still be running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeState {
    /// Any step was journaled for this host in this run.
    pub attempted: bool,
    pub staged_ok: BTreeSet<String>,
    pub hash_verified: BTreeSet<String>,
    /// Patches whose installer was started in this run (finished or not).
    pub install_started: BTreeSet<String>,
    pub installed_ok: BTreeSet<String>,
    pub qchain_done: bool,
    /// An installer said a reboot is needed (3010, 1641) or qchain ran, and no reboot completed
    /// since.
    pub reboot_required: bool,
    /// A reboot started after the last install (the reboot command may have been sent).
    pub reboot_started: bool,
    /// That reboot's last phase finished ok: the host came back, settled, nothing pending.
    pub reboot_done: bool,
    /// The boot time the host had before that reboot, when the journal saw one.
    pub boot_before_reboot: Option<String>,
    /// The re-scan after the last install proved every patch.
    pub verified: bool,
    /// The host's last step, if it started and never finished (the crash happened during it).
    pub interrupted: Option<Step>,
    /// Every step that started and never finished, in order (one per crash at most).
    pub open_steps: Vec<Step>,
}

impl ResumeState {
    /// A reboot was under way when the orchestrator stopped.
    pub fn reboot_in_flight(&self) -> bool {
        self.reboot_started && !self.reboot_done
    }

    /// Install steps left open by a crash, oldest first.
    pub fn open_installs(&self) -> impl Iterator<Item = &Step> {
        self.open_steps
            .iter()
            .filter(|s| matches!(s, Step::Install { .. }))
    }
}

/// The whole journal of one run, read back.
#[derive(Debug, Clone)]
pub struct RunLog {
    pub dir: PathBuf,
    pub header: RunHeader,
    pub hosts: BTreeMap<String, HostLog>,
    /// Wave records in order: (wave, state, detail).
    pub waves: Vec<(usize, String, String)>,
    /// The last run state record and its reason.
    pub state: Option<(RunState, String)>,
    /// Line number of a torn last line that was ignored (a crash during its write).
    pub torn_line: Option<usize>,
    pub records: usize,
}

impl RunLog {
    /// Read a run's journal. A torn final line is ignored (and reported in `torn_line`); any
    /// other unreadable line is an error naming its line number.
    pub fn load(repo_root: &Path, run: &str) -> Result<RunLog, JournalError> {
        Self::load_dir(&run_dir(repo_root, run)?)
    }

    pub fn load_dir(dir: &Path) -> Result<RunLog, JournalError> {
        let path = dir.join(JOURNAL_FILE);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let (records, torn_line) = parse_records(&bytes, &path)?;
        let mut it = records.into_iter();
        let header = match it.next() {
            Some(Record::Header(h)) => h,
            _ => {
                return Err(JournalError::Invalid {
                    path,
                    message:
                        "the first record is not the run header (was the run created by hive?)"
                            .into(),
                });
            }
        };
        let mut log = RunLog {
            dir: dir.to_path_buf(),
            hosts: header
                .hosts()
                .map(|h| (h.clone(), HostLog::default()))
                .collect(),
            header,
            waves: Vec::new(),
            state: None,
            torn_line,
            records: 1,
        };
        for record in it {
            log.records += 1;
            match record {
                Record::Header(_) => {
                    return Err(JournalError::Invalid {
                        path,
                        message: format!("a second run header at record {}", log.records),
                    });
                }
                Record::Step(e) => log.hosts.entry(e.host.clone()).or_default().add(&e),
                Record::Host {
                    host,
                    verdict,
                    detail,
                    at_ms,
                    ..
                } => {
                    let h = log.hosts.entry(host).or_default();
                    h.verdict = Some((verdict, detail));
                    h.last_ms = Some(at_ms);
                }
                Record::Wave {
                    wave,
                    state,
                    detail,
                    ..
                } => log.waves.push((wave, state, detail)),
                Record::Run { state, reason, .. } => log.state = Some((state, reason)),
            }
        }
        Ok(log)
    }

    pub fn run(&self) -> &str {
        &self.header.run
    }

    /// What `host` already went through in this run.
    pub fn resume_state(&self, host: &str) -> ResumeState {
        self.hosts
            .get(host)
            .map(HostLog::resume_state)
            .unwrap_or_default()
    }

    /// Hosts with a final verdict, and the verdict.
    pub fn verdicts(&self) -> BTreeMap<String, (HostVerdict, String)> {
        self.hosts
            .iter()
            .filter(|(_, h)| h.done())
            .filter_map(|(n, h)| h.verdict.clone().map(|v| (n.clone(), v)))
            .collect()
    }

    /// Has `hive rollout promote` released this run?
    pub fn promoted(&self) -> bool {
        self.dir.join(PROMOTE_FILE).exists()
    }
}

/// Split journal bytes into records. Lines are separated by `\n`; the last line without one was
/// torn by a crash and is skipped. Empty lines are tolerated.
pub fn parse_records(
    bytes: &[u8],
    path: &Path,
) -> Result<(Vec<Record>, Option<usize>), JournalError> {
    let mut records = Vec::new();
    let mut torn = None;
    let mut lines = bytes.split(|b| *b == b'\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let is_last = lines.peek().is_none();
        if is_last {
            // After the final '\n' split yields an empty slice; anything else is a torn write.
            if !line.is_empty() {
                torn = Some(i + 1);
            }
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record: Record = serde_json::from_slice(line).map_err(|e| JournalError::Corrupt {
            path: path.to_path_buf(),
            line: i + 1,
            message: e.to_string(),
        })?;
        records.push(record);
    }
    Ok((records, torn))
}

/// One line of `hive rollout list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunListing {
    pub run: String,
    pub created_ms: u64,
    pub plan: String,
    pub hosts: usize,
    pub done: usize,
    pub state: Option<RunState>,
    pub reason: String,
    /// Why the journal could not be read, if it could not.
    pub error: Option<String>,
}

/// Every run in a repository, oldest first. A run whose journal cannot be read is listed with the
/// error rather than hidden.
pub fn list_runs(repo_root: &Path) -> Result<Vec<RunListing>, JournalError> {
    let runs = runs_dir(repo_root);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&runs) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(&runs)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io(&runs))?;
        let dir = entry.path();
        if !dir.join(JOURNAL_FILE).is_file() {
            continue;
        }
        let run = entry.file_name().to_string_lossy().to_string();
        out.push(match RunLog::load_dir(&dir) {
            Ok(log) => RunListing {
                run,
                created_ms: log.header.created_ms,
                plan: log.header.plan.clone(),
                hosts: log.hosts.len(),
                done: log.hosts.values().filter(|h| h.done()).count(),
                state: log.state.as_ref().map(|s| s.0),
                reason: log.state.map(|s| s.1).unwrap_or_default(),
                error: None,
            },
            Err(e) => RunListing {
                run,
                created_ms: 0,
                plan: String::new(),
                hosts: 0,
                done: 0,
                state: None,
                reason: String::new(),
                error: Some(e.to_string()),
            },
        });
    }
    out.sort_by(|a, b| a.run.cmp(&b.run));
    Ok(out)
}

/// Release a run paused after its canaries: `hive rollout promote <run>`. The marker is a file so
/// that promoting works from any shell, while the paused hive waits or after it exited.
pub fn promote(repo_root: &Path, run: &str, by: &str) -> Result<PathBuf, JournalError> {
    let dir = run_dir(repo_root, run)?;
    let path = dir.join(PROMOTE_FILE);
    let text = format!("promoted by {by} at {}\n", utc_stamp(now_ms() / 1000));
    crate::repo::write_atomic(&path, text.as_bytes()).map_err(|e| JournalError::Invalid {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(1_795_700_000), "20261126-133320");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
    }

    #[test]
    fn torn_last_line_is_skipped_and_middle_damage_is_named() {
        let p = Path::new("j");
        let good = br#"{"record":"run","state":"running","reason":"","at_ms":1}"#;
        let mut bytes = good.to_vec();
        bytes.push(b'\n');
        bytes.extend_from_slice(&good[..20]);
        let (recs, torn) = parse_records(&bytes, p).unwrap();
        assert_eq!((recs.len(), torn), (1, Some(2)));

        let mut bad = good.to_vec();
        bad.extend_from_slice(b"\n{\"record\":\"run\",\"sta\n");
        bad.extend_from_slice(good);
        bad.push(b'\n');
        let e = parse_records(&bad, p).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    fn ev(step: Step, state: StepState) -> Event {
        Event::new("r", "h", step, state)
    }

    fn done(step: Step, ok: bool, outcome: &str, detail: &str) -> Event {
        ev(
            step,
            StepState::Finished {
                ok,
                outcome: outcome.into(),
                detail: detail.into(),
            },
        )
    }

    fn install(patch: &str) -> Step {
        Step::Install {
            patch: patch.into(),
            index: 1,
            total: 2,
        }
    }

    fn phase(p: &str) -> Step {
        Step::Reboot { phase: p.into() }
    }

    fn log_of(events: &[Event]) -> HostLog {
        let mut h = HostLog::default();
        for e in events {
            h.add(e);
        }
        h
    }

    #[test]
    fn a_reboot_is_done_only_when_its_last_phase_is_and_no_install_came_after() {
        let mut events = vec![
            ev(Step::Scan, StepState::Started),
            done(Step::Scan, true, "ok", "2 missing; boot time T0"),
            ev(install("KB1"), StepState::Started),
            done(install("KB1"), true, "reboot_required", "exit 3010"),
            ev(phase("shutdown"), StepState::Started),
            done(phase("shutdown"), true, "ok", "exit 0"),
            ev(phase("down"), StepState::Started),
        ];
        let s = log_of(&events).resume_state();
        assert!(s.reboot_in_flight() && !s.reboot_done && s.reboot_required);
        assert_eq!(s.boot_before_reboot.as_deref(), Some("T0"));
        assert_eq!(s.interrupted, Some(phase("down")));
        assert_eq!(s.installed_ok, BTreeSet::from(["KB1".to_string()]));

        // The resumed run found it rebooted: login and the last phases end ok.
        events.extend([
            done(phase("down"), false, "interrupted", ""),
            ev(phase("resume"), StepState::Started),
            done(phase("resume"), true, "rebooted", "boot time T1 (was T0)"),
            ev(phase("settled"), StepState::Started),
            done(phase("settled"), true, "ok", ""),
            ev(phase("pending"), StepState::Started),
            done(phase("pending"), true, "none", ""),
        ]);
        let s = log_of(&events).resume_state();
        assert!(s.reboot_done && !s.reboot_in_flight() && !s.reboot_required);
        assert!(s.open_steps.is_empty());

        // An installer after that reboot (e.g. after an installer's own restart) needs another.
        events.push(ev(install("KB2"), StepState::Started));
        let s = log_of(&events).resume_state();
        assert!(!s.reboot_done && !s.reboot_started);
        assert_eq!(s.open_installs().collect::<Vec<_>>(), [&install("KB2")]);
        assert_eq!(
            s.install_started,
            BTreeSet::from(["KB1".to_string(), "KB2".to_string()])
        );
        // The next reboot compares with the boot time seen last (the resumed phase's).
        events.extend([
            done(
                install("KB2"),
                true,
                "landed_before_crash",
                "KB2 in the hotfix list",
            ),
            ev(phase("shutdown"), StepState::Started),
        ]);
        let s = log_of(&events).resume_state();
        assert_eq!(s.boot_before_reboot.as_deref(), Some("T1"));
    }

    #[test]
    fn open_steps_of_several_crashes_are_all_listed() {
        let events = vec![
            ev(install("KB1"), StepState::Started),
            ev(Step::Scan, StepState::Started),
        ];
        let s = log_of(&events).resume_state();
        assert_eq!(s.open_steps, [install("KB1"), Step::Scan]);
        assert_eq!(s.interrupted, Some(Step::Scan));
        assert_eq!(s.open_installs().count(), 1);
    }

    #[test]
    fn boot_times_are_read_from_details() {
        assert_eq!(
            boot_time_in("3 missing; boot time 2026-11-25T13:27:00.000Z"),
            Some("2026-11-25T13:27:00.000Z")
        );
        assert_eq!(boot_time_in("boot time X, unchanged: rebooting"), Some("X"));
        assert_eq!(boot_time_in("exit 0"), None);
    }

    #[test]
    fn run_ids_refuse_paths() {
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(validate_run_id(bad).is_err(), "{bad}");
        }
        assert!(validate_run_id("20261125-143200-2").is_ok());
    }
}
