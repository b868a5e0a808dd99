//! The end of a run: per-host and per-wave lines, the one-line recap, and the watchers (progress
//! bars, NDJSON) that see the run as it goes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::journal::{RunHeader, RunState};
use super::plan::{Wave, format_duration};
use super::quarantine::Withheld;
use super::stop::StopReason;
use super::verdict::{HostCounts, HostOutcome, HostVerdict};
use crate::events::{Event, EventSink};

/// One host's line in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLine {
    pub host: String,
    pub wave: usize,
    /// `None`: never started in this run (the run stopped before its wave or turn).
    pub verdict: Option<HostVerdict>,
    pub detail: String,
    /// Time spent on the host in this invocation (0 for hosts done before a resume).
    pub ms: u64,
    /// A quarantined patch explains the host's failure: the patch is withheld and the host does
    /// not count against the budgets (see [`super::quarantine`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withheld: bool,
}

/// The end of a run (or of one invocation of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub run: String,
    pub state: RunState,
    pub stop: Option<StopReason>,
    pub elapsed_ms: u64,
    pub waves: Vec<WaveLine>,
    pub hosts: Vec<HostLine>,
    /// Patches withheld when the run ended (quarantined from the fleet, or from one host), each
    /// with its evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<Withheld>,
}

/// One wave's line in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveLine {
    pub name: String,
    pub counts: HostCounts,
    /// `passed`, `failed: ...`, or `not reached`.
    pub gate: String,
}

impl Summary {
    pub fn counts(&self) -> HostCounts {
        let mut c = HostCounts::default();
        for h in &self.hosts {
            c.add_judged(h.verdict, h.withheld);
        }
        c
    }

    /// "200 hosts: 187 patched, 3 failed, 10 unreachable, 0 skipped in 4m12s".
    pub fn recap(&self) -> String {
        let c = self.counts();
        let mut s = format!(
            "{} hosts: {} patched, {} failed, {} unreachable, {} skipped",
            c.total(),
            c.patched,
            c.failed,
            c.unreachable,
            c.skipped
        );
        if c.unhealthy > 0 {
            s.push_str(&format!(", {} unhealthy", c.unhealthy));
        }
        if c.nothing_to_do > 0 {
            s.push_str(&format!(", {} already up to date", c.nothing_to_do));
        }
        if c.interrupted > 0 {
            s.push_str(&format!(", {} interrupted", c.interrupted));
        }
        if c.reboot_loop > 0 {
            s.push_str(&format!(", {} in a reboot loop", c.reboot_loop));
        }
        if c.withheld > 0 {
            s.push_str(&format!(
                ", {} failed with a withheld patch (outside the budgets)",
                c.withheld
            ));
        }
        if c.not_started > 0 {
            s.push_str(&format!(", {} not started", c.not_started));
        }
        s.push_str(&format!(
            " in {}",
            format_duration(Duration::from_millis(self.elapsed_ms))
        ));
        if let Some(why) = &self.stop {
            s.push_str(&format!("; stopped: {why}"));
        }
        let fleet: Vec<&str> = self
            .withheld
            .iter()
            .filter(|w| w.host.is_none())
            .map(|w| w.patch.as_str())
            .collect();
        if !fleet.is_empty() {
            s.push_str(&format!("; withheld: {}", fleet.join(", ")));
        }
        s
    }

    /// One line per withheld patch, with its evidence (the summary's "withheld patches" part).
    pub fn withheld_lines(&self) -> Vec<String> {
        self.withheld.iter().map(Withheld::line).collect()
    }
}

/// Where a wave's soak is, for the progress display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SoakStatus {
    pub wave: String,
    pub left_ms: u64,
    /// This status follows a poll of the hosts (not only the clock moving on).
    pub polled: bool,
    pub hosts: std::collections::BTreeMap<String, HostHealth>,
}

/// One soaking host's health so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostHealth {
    /// `None` until its first poll.
    pub healthy: Option<bool>,
    pub evidence: String,
    pub polls: u32,
}

/// Who watches a run besides the journal: the progress bars or the NDJSON printer. Every method
/// has a no-op default.
pub trait RunWatcher: EventSink {
    fn run_started(&self, _header: &RunHeader, _done_before: usize) {}
    fn wave_started(&self, _wave: &Wave) {}
    fn host_started(&self, _host: &str, _wave: usize) {}
    fn host_finished(&self, _host: &str, _wave: usize, _outcome: &HostOutcome) {}
    fn wave_finished(&self, _wave: &Wave, _gate: &str) {}
    fn paused(&self, _run: &str) {}
    /// The run waits (e.g. for a maintenance window): `what` says for what and until when.
    fn waiting(&self, _what: &str) {}
    /// A wave is soaking: the time left and each host's health so far.
    fn soak(&self, _status: &SoakStatus) {}
    fn run_finished(&self, _summary: &Summary) {}
}

/// A watcher that shows nothing.
pub struct Quiet;

impl EventSink for Quiet {
    fn emit(&self, _: &Event) -> Result<(), String> {
        Ok(())
    }
}
impl RunWatcher for Quiet {}
