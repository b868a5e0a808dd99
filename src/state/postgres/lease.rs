//! Hosts claimed by one worker: what a lease is and what holding one allows.
//!
//! A worker claims hosts of its site in the waves the coordinator opened, with
//! `FOR UPDATE SKIP LOCKED` (two workers never wait on, nor take, the same row). A claim sets
//! `owner` and `lease_until`; the worker renews every lease it holds each heartbeat. A worker
//! that dies stops renewing, and once `lease_until` is past, another worker of the site may claim
//! the host.
//!
//! The lease is also a fence: every record about a host is inserted only if the host's `owner`
//! is still the writer, in the same statement. Records are kept before the step they announce
//! starts, so a worker whose lease was taken over (it was paused, partitioned, or thought dead)
//! cannot start one more step on that host: its next write fails and its job stops there. The
//! new owner reads the host's records and settles the open step from the host first, with the
//! rules `hive resume` uses ([`crate::journal::ResumeState`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_postgres::types::{Json, Type};

use super::run::RunStatus;
use super::{Db, StateError};
use crate::events::{Event, EventSink, StepState};
use crate::journal::{HostLog, Record};
use crate::rollout::verdict::{HostOutcome, HostVerdict};
use crate::time::now_ms;

/// A host this worker claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub host: String,
    pub wave: usize,
    /// How many times the host was claimed, this claim included: above 1, an earlier worker
    /// may have left steps open on it.
    pub claims: i32,
}

/// One worker's leases in one run.
pub struct Leases {
    pub db: Arc<Db>,
    pub run: String,
    pub site: String,
    /// Unique: the worker's name, its process and its start time.
    pub worker: String,
    pub lease: Duration,
    seq: AtomicU64,
}

impl Leases {
    pub fn new(db: Arc<Db>, run: &str, site: &str, worker: String, lease: Duration) -> Leases {
        Leases {
            db,
            run: run.to_string(),
            site: site.to_string(),
            worker,
            lease,
            seq: AtomicU64::new(0),
        }
    }

    fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    /// Say this worker takes part (for an operator looking at `hive.workers`).
    pub async fn register(&self) -> Result<(), StateError> {
        self.db
            .query(
                "INSERT INTO hive.workers (run, worker, site) VALUES ($1, $2, $3) \
                 ON CONFLICT (run, worker) DO UPDATE SET heartbeat_at = now()",
                &[
                    (&self.run, Type::TEXT),
                    (&self.worker, Type::TEXT),
                    (&self.site, Type::TEXT),
                ],
            )
            .await?;
        Ok(())
    }

    /// Claim up to `n` hosts of this site in waves up to `open_wave` that have no verdict and no
    /// live lease, in wave then name order.
    pub async fn claim(&self, n: usize, open_wave: i32) -> Result<Vec<Claimed>, StateError> {
        if n == 0 || open_wave < 0 {
            return Ok(Vec::new());
        }
        let limit = n as i64;
        let rows = self
            .db
            .query(
                "UPDATE hive.hosts h SET owner = $3, lease_until = now() + make_interval(secs => $4), \
                 claims = h.claims + 1 \
                 FROM (SELECT host FROM hive.hosts WHERE run = $1 AND site = $2 AND verdict IS NULL \
                       AND wave <= $5 AND (owner IS NULL OR lease_until < now()) \
                       ORDER BY wave, host LIMIT $6 FOR UPDATE SKIP LOCKED) c \
                 WHERE h.run = $1 AND h.host = c.host RETURNING h.host, h.wave, h.claims",
                &[
                    (&self.run, Type::TEXT),
                    (&self.site, Type::TEXT),
                    (&self.worker, Type::TEXT),
                    (&self.lease_secs(), Type::FLOAT8),
                    (&open_wave, Type::INT4),
                    (&limit, Type::INT8),
                ],
            )
            .await?;
        let mut claimed: Vec<Claimed> = rows
            .iter()
            .map(|r| Claimed {
                host: r.get(0),
                wave: r.get::<_, i32>(1).max(0) as usize,
                claims: r.get(2),
            })
            .collect();
        claimed.sort_by(|a, b| (a.wave, &a.host).cmp(&(b.wave, &b.host)));
        Ok(claimed)
    }

    /// Renew every lease this worker holds; the run's status and the hosts still ours.
    pub async fn heartbeat(&self) -> Result<(RunStatus, BTreeSet<String>), StateError> {
        let sql = format!(
            "WITH mine AS (UPDATE hive.hosts SET lease_until = now() + make_interval(secs => $3) \
               WHERE run = $1 AND owner = $2 AND verdict IS NULL RETURNING host), \
             w AS (UPDATE hive.workers SET heartbeat_at = now() WHERE run = $1 AND worker = $2) \
             SELECT coalesce((SELECT array_agg(host) FROM mine), '{{}}'), \
             r.state, r.open_wave, s.wave, s.left_s FROM hive.runs r {} WHERE r.run = $1",
            super::run::OPEN_SOAK
        );
        let rows = self
            .db
            .query(
                &sql,
                &[
                    (&self.run, Type::TEXT),
                    (&self.worker, Type::TEXT),
                    (&self.lease_secs(), Type::FLOAT8),
                ],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| StateError::NoSuchRun(self.run.clone()))?;
        let hosts: Vec<String> = row.get(0);
        Ok((super::run::status_of(row, 1), hosts.into_iter().collect()))
    }

    /// What earlier workers journaled on `host` in this run.
    pub async fn history(&self, host: &str) -> Result<HostLog, StateError> {
        let rows = self
            .db
            .query(
                "SELECT record FROM hive.records WHERE run = $1 AND host = $2 ORDER BY id",
                &[(&self.run, Type::TEXT), (&host, Type::TEXT)],
            )
            .await?;
        let mut log = HostLog::default();
        for r in &rows {
            let Json(record) =
                r.try_get::<_, Json<Record>>(0)
                    .map_err(|e| StateError::Invalid {
                        run: self.run.clone(),
                        message: format!("{host}: a record hive cannot read: {e}"),
                    })?;
            if let Record::Step(e) = &record {
                log.add(e);
            }
        }
        Ok(log)
    }

    fn rid(&self) -> String {
        format!(
            "{}:{}",
            self.worker,
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Keep a record about `host`, only while this worker holds its lease.
    pub async fn append(&self, host: &str, record: &Record) -> Result<(), StateError> {
        let rid = self.rid();
        let rows = self
            .db
            .query(
                "WITH ins AS (INSERT INTO hive.records (run, host, rid, record) \
                   SELECT $1, $2, $4, $5 WHERE EXISTS \
                   (SELECT 1 FROM hive.hosts WHERE run = $1 AND host = $2 AND owner = $3 AND verdict IS NULL) \
                   ON CONFLICT (rid) DO NOTHING RETURNING 1) \
                 SELECT (SELECT count(*) FROM ins) + (SELECT count(*) FROM hive.records WHERE rid = $4)",
                &[
                    (&self.run, Type::TEXT),
                    (&host, Type::TEXT),
                    (&self.worker, Type::TEXT),
                    (&rid, Type::TEXT),
                    (&Json(record), Type::JSONB),
                ],
            )
            .await?;
        // Kept now, or kept by an earlier send whose reply the connection lost.
        let kept: i64 = rows.first().map(|r| r.get(0)).unwrap_or(0);
        if kept > 0 {
            Ok(())
        } else {
            Err(StateError::LeaseLost {
                host: host.to_string(),
            })
        }
    }

    /// The end of the work on `host`: its verdict record and its row, in one statement, while
    /// the lease is ours. An interrupted host is released (verdict left empty) for the next claim.
    pub async fn settle(
        &self,
        host: &str,
        wave: usize,
        outcome: &HostOutcome,
    ) -> Result<(), StateError> {
        let record = Record::Host {
            host: host.to_string(),
            wave,
            verdict: outcome.verdict,
            detail: outcome.detail.clone(),
            at_ms: now_ms(),
            evidence: outcome.evidence.clone(),
        };
        let verdict: Option<&str> =
            (outcome.verdict != HostVerdict::Interrupted).then(|| verdict_word(outcome.verdict));
        let rid = self.rid();
        let rows = self
            .db
            .query(
                "WITH h AS (UPDATE hive.hosts SET verdict = $4, owner = NULL, lease_until = NULL \
                   WHERE run = $1 AND host = $2 AND owner = $3 AND verdict IS NULL RETURNING host), \
                 ins AS (INSERT INTO hive.records (run, host, rid, record) SELECT $1, $2, $5, $6 FROM h \
                   ON CONFLICT (rid) DO NOTHING RETURNING 1) \
                 SELECT (SELECT count(*) FROM h) + (SELECT count(*) FROM hive.records WHERE rid = $5)",
                &[
                    (&self.run, Type::TEXT),
                    (&host, Type::TEXT),
                    (&self.worker, Type::TEXT),
                    (&verdict, Type::TEXT),
                    (&rid, Type::TEXT),
                    (&Json(&record), Type::JSONB),
                ],
            )
            .await?;
        let kept: i64 = rows.first().map(|r| r.get(0)).unwrap_or(0);
        if kept > 0 {
            Ok(())
        } else {
            Err(StateError::LeaseLost {
                host: host.to_string(),
            })
        }
    }
}

/// The word `hive.hosts.verdict` holds: the verdict's serde name, as the journal writes it.
pub fn verdict_word(v: HostVerdict) -> &'static str {
    match v {
        HostVerdict::Patched => "patched",
        HostVerdict::NothingToDo => "nothing_to_do",
        HostVerdict::Failed => "failed",
        HostVerdict::Unhealthy => "unhealthy",
        HostVerdict::Unreachable => "unreachable",
        HostVerdict::Skipped => "skipped",
        HostVerdict::Interrupted => "interrupted",
        HostVerdict::RebootLoop => "reboot_loop",
    }
}

/// The verdict a `hive.hosts.verdict` word names.
pub fn verdict_of(word: &str) -> Option<HostVerdict> {
    serde_json::from_value(serde_json::Value::String(word.to_string())).ok()
}

/// The step records of a worker's hosts, fenced by their leases: what a job's
/// [`crate::rollout::JobContext`] emits through.
pub struct LeasedSink(pub Arc<Leases>);

impl EventSink for LeasedSink {
    fn emit(&self, event: &Event) -> Result<(), String> {
        if matches!(event.state, StepState::Progress { .. }) {
            return Ok(());
        }
        super::run::block_on(self.0.append(&event.host, &Record::Step(event.clone())))
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_words_are_the_journal_names() {
        for v in [
            HostVerdict::Patched,
            HostVerdict::NothingToDo,
            HostVerdict::Failed,
            HostVerdict::Unhealthy,
            HostVerdict::Unreachable,
            HostVerdict::Skipped,
            HostVerdict::Interrupted,
            HostVerdict::RebootLoop,
        ] {
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::Value::String(verdict_word(v).into())
            );
            assert_eq!(verdict_of(verdict_word(v)), Some(v));
        }
    }
}
