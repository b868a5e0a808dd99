//! The seam between the rollout and where its records are kept: the NDJSON file on one machine
//! ([`super::Journal`]), or a database several orchestrators share (`crate::state::postgres`).
//!
//! Both keep the same [`Record`]s with the same rule: a record is durable before `append`
//! returns, so the step it announces only starts once it is kept. Reading back goes through one
//! function, [`super::RunLog::from_records`], so a report cannot tell the stores apart.

use super::{JournalError, Record, RunState, WaveState};
use crate::rollout::verdict::HostOutcome;
use crate::time::now_ms;

/// Where a run's records go. Implementors make each record durable before returning.
pub trait RecordStore: Send + Sync {
    /// Keep one record; only when this returns Ok may the step it announces go on.
    fn append(&self, record: &Record) -> Result<(), JournalError>;

    /// Record the end of the work on one host.
    fn host_done(
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
            evidence: outcome.evidence.clone(),
        })
    }

    fn wave(&self, wave: usize, state: WaveState, detail: &str) -> Result<(), JournalError> {
        self.append(&Record::Wave {
            wave,
            state,
            detail: detail.to_string(),
            at_ms: now_ms(),
        })
    }

    fn run_state(&self, state: RunState, reason: &str) -> Result<(), JournalError> {
        self.append(&Record::Run {
            state,
            reason: reason.to_string(),
            at_ms: now_ms(),
        })
    }
}

impl RecordStore for super::Journal {
    fn append(&self, record: &Record) -> Result<(), JournalError> {
        super::Journal::append(self, record)
    }
}
