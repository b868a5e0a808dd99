//! The reading side: a run's records back into one log per host, for resume, `hive report` and
//! `hive rollout list`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::replay::ResumeState;
use super::runs::{run_dir, runs_dir};
use super::{JOURNAL_FILE, JournalError, PROMOTE_FILE, Record, RunHeader, RunState, WaveState, io};
use crate::events::{Event, Step, StepOutcome, StepState};
use crate::rollout::evidence::HostEvidence;
use crate::rollout::quarantine::{Release, Withheld};
use crate::rollout::verdict::HostVerdict;

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
    pub outcome: StepOutcome,
    pub detail: String,
    /// The boot time the step saw, when its record has the field (see [`super::replay`] for
    /// records from before it had).
    pub boot_time: Option<String>,
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
    /// What the scan found, patch by patch, from the host's last verdict record that had it.
    pub evidence: Option<HostEvidence>,
}

impl HostLog {
    /// A host is done once its verdict is journaled; an `interrupted` verdict does not count.
    pub fn done(&self) -> bool {
        matches!(&self.verdict, Some((v, _)) if *v != HostVerdict::Interrupted)
    }

    pub fn last_step(&self) -> Option<&StepRecord> {
        self.steps.last()
    }

    pub(crate) fn add(&mut self, event: &Event) {
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
                boot_time,
            } => {
                let end = StepEnd {
                    ok: *ok,
                    outcome: *outcome,
                    detail: detail.clone(),
                    boot_time: boot_time.clone(),
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
}

/// The whole journal of one run, read back.
#[derive(Debug, Clone)]
pub struct RunLog {
    pub dir: PathBuf,
    pub header: RunHeader,
    pub hosts: BTreeMap<String, HostLog>,
    /// Wave records in order: (wave, state, detail).
    pub waves: Vec<(usize, WaveState, String)>,
    /// The last run state record and its reason.
    pub state: Option<(RunState, String)>,
    /// Patches withheld and not released since, in the order they were (see
    /// [`crate::rollout::quarantine`]).
    pub withheld: Vec<Withheld>,
    /// Quarantines lifted by hand, as journaled.
    pub released: Vec<Release>,
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
        let mut log = Self::from_records(dir, &path, records)?;
        log.torn_line = torn_line;
        Ok(log)
    }

    /// A run's records, in the order they were written, back into a log: the one reading of
    /// records whatever stored them (the NDJSON file, or the shared state's table), so `hive
    /// report` says the same from either. `dir` is where the run's markers live; `origin` names
    /// the store in errors.
    pub fn from_records(
        dir: &Path,
        origin: &Path,
        records: Vec<Record>,
    ) -> Result<RunLog, JournalError> {
        let path = origin.to_path_buf();
        let torn_line = None;
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
            withheld: Vec::new(),
            released: Vec::new(),
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
                    evidence,
                    ..
                } => {
                    let h = log.hosts.entry(host).or_default();
                    h.verdict = Some((verdict, detail));
                    h.last_ms = Some(at_ms);
                    if evidence.is_some() {
                        h.evidence = evidence;
                    }
                }
                Record::Wave {
                    wave,
                    state,
                    detail,
                    ..
                } => log.waves.push((wave, state, detail)),
                Record::Run { state, reason, .. } => log.state = Some((state, reason)),
                Record::Quarantine {
                    patch,
                    host,
                    evidence,
                    ..
                } => log.withheld.push(Withheld {
                    patch,
                    host,
                    evidence,
                }),
                Record::Release { patch, by, .. } => {
                    // A release lifts the quarantines journaled before it.
                    log.withheld.retain(|w| w.patch != patch);
                    log.released.push(Release { patch, by });
                }
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn an_unknown_outcome_word_is_damage_named_by_line() {
        let p = Path::new("j");
        let line = br#"{"record":"step","run":"r","host":"h","step":"scan","state":"finished","ok":true,"outcome":"okay","detail":"","at_ms":1}"#;
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\n");
        let e = parse_records(&bytes, p).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("okay"), "{e}");
    }
}
