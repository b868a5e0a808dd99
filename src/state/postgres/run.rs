//! A run in the database: its header, hosts and state, and its journal records in the order they
//! were kept. Reading back goes through [`RunLog::from_records`], as the NDJSON file does, so the
//! two give the same report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_postgres::types::{Json, Type};

use super::{Db, StateError};
use crate::journal::{JournalError, Record, RecordStore, RunHeader, RunLog, RunState};

/// The words `hive.runs.state` holds: workers claim hosts only while it is `running`.
pub fn state_word(state: RunState) -> &'static str {
    match state {
        RunState::Running => "running",
        RunState::Paused => "paused",
        RunState::Stopped => "stopped",
        RunState::Finished => "finished",
    }
}

/// The run's state and its highest open wave, as the coordinator last set them, and the wave
/// soaking now, if one is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStatus {
    pub state: String,
    pub open_wave: i32,
    pub soak: Option<Soaking>,
}

/// A wave whose soak the coordinator has not judged yet, and what is left of it by the
/// database's clock when it was read (past the deadline: zero, the final checks are due).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soaking {
    pub wave: i32,
    pub left: Duration,
}

/// The columns `r.state, r.open_wave, s.wave, s.left_s` of a query over `hive.runs r` joined with
/// [`OPEN_SOAK`].
pub(crate) fn status_of(row: &tokio_postgres::Row, first: usize) -> RunStatus {
    let wave: Option<i32> = row.get(first + 2);
    let left: Option<f64> = row.get(first + 3);
    RunStatus {
        state: row.get(first),
        open_wave: row.get(first + 1),
        soak: wave.map(|wave| Soaking {
            wave,
            left: seconds(left.unwrap_or(0.0)),
        }),
    }
}

/// The open soak of run `r`, as a lateral join (`s.wave`, `s.left_s`).
pub(crate) const OPEN_SOAK: &str = "LEFT JOIN LATERAL (SELECT wave, \
     extract(epoch FROM until - now())::float8 AS left_s FROM hive.soaks \
     WHERE run = r.run AND ended IS NULL ORDER BY wave DESC LIMIT 1) s ON true";

/// A duration the database computed, in seconds (negative, NaN or huge: none left).
pub(crate) fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

impl RunStatus {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
    pub fn over(&self) -> bool {
        self.state == "finished" || self.state == "stopped"
    }
}

/// Create a run: its row, one row per host (with its site and wave) and the header record, in
/// one statement. `sites` gives each host's site; hosts without one are the site `default`.
pub async fn create(
    db: &Db,
    header: &RunHeader,
    sites: &BTreeMap<String, String>,
) -> Result<(), StateError> {
    let mut hosts = Vec::new();
    let mut host_sites = Vec::new();
    let mut waves = Vec::new();
    for w in &header.waves {
        for h in &w.hosts {
            hosts.push(h.clone());
            host_sites.push(sites.get(h).cloned().unwrap_or_else(|| "default".into()));
            waves.push(w.index as i32);
        }
    }
    let record = Record::Header(header.clone());
    let rid = format!("{}:header", header.run);
    db.query(
        "WITH r AS (INSERT INTO hive.runs (run, header) VALUES ($1, $2) RETURNING run), \
         h AS (INSERT INTO hive.hosts (run, host, site, wave) \
               SELECT r.run, u.host, u.site, u.wave FROM r, unnest($3::text[], $4::text[], $5::int4[]) AS u(host, site, wave) RETURNING 1) \
         INSERT INTO hive.records (run, host, rid, record) SELECT r.run, NULL, $6, $2 FROM r",
        &[
            (&header.run, Type::TEXT),
            (&Json(&record), Type::JSONB),
            (&hosts, Type::TEXT_ARRAY),
            (&host_sites, Type::TEXT_ARRAY),
            (&waves, Type::INT4_ARRAY),
            (&rid, Type::TEXT),
        ],
    )
    .await?;
    Ok(())
}

/// The newest run not finished or stopped, for workers started without `--run`.
pub async fn current_run(db: &Db) -> Result<Option<String>, StateError> {
    let rows = db
        .query(
            "SELECT run FROM hive.runs WHERE state IN ('running', 'paused') ORDER BY created_at DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok(rows.first().map(|r| r.get(0)))
}

pub async fn status(db: &Db, run: &str) -> Result<RunStatus, StateError> {
    let sql = format!(
        "SELECT r.state, r.open_wave, s.wave, s.left_s FROM hive.runs r {OPEN_SOAK} WHERE r.run = $1"
    );
    let rows = db.query(&sql, &[(&run, Type::TEXT)]).await?;
    let row = rows
        .first()
        .ok_or_else(|| StateError::NoSuchRun(run.to_string()))?;
    Ok(status_of(row, 0))
}

/// Set the run's state and open wave (a wave once opened stays open).
pub async fn set_status(
    db: &Db,
    run: &str,
    state: RunState,
    open_wave: i32,
) -> Result<(), StateError> {
    db.query(
        "UPDATE hive.runs SET state = $2, open_wave = greatest(open_wave, $3) WHERE run = $1",
        &[
            (&run, Type::TEXT),
            (&state_word(state), Type::TEXT),
            (&open_wave, Type::INT4),
        ],
    )
    .await?;
    Ok(())
}

/// Every record of a run, in the order they were kept.
pub async fn records(db: &Db, run: &str) -> Result<Vec<Record>, StateError> {
    let rows = db
        .query(
            "SELECT record FROM hive.records WHERE run = $1 ORDER BY id",
            &[(&run, Type::TEXT)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            r.try_get::<_, Json<Record>>(0)
                .map(|j| j.0)
                .map_err(|e| StateError::Invalid {
                    run: run.to_string(),
                    message: format!("a record hive cannot read: {e}"),
                })
        })
        .collect()
}

/// A run read back from the database, as [`RunLog::load`] reads one from its file.
pub async fn load(db: &Db, run: &str) -> Result<RunLog, StateError> {
    let records = records(db, run).await?;
    if records.is_empty() {
        return Err(StateError::NoSuchRun(run.to_string()));
    }
    let origin = PathBuf::from(format!("{}/{run}", db.url()));
    RunLog::from_records(&origin, &origin, records).map_err(|e| StateError::Invalid {
        run: run.to_string(),
        message: e.to_string(),
    })
}

/// The run's records not about one host (waves, run states), written by the coordinator. Each
/// carries the writer's own key, so a record sent again after a lost connection is kept once.
pub struct RunRecords {
    pub db: Arc<Db>,
    pub run: String,
    /// Unique per process: the coordinator's name and start time.
    pub writer: String,
    seq: AtomicU64,
}

impl RunRecords {
    pub fn new(db: Arc<Db>, run: &str, writer: String) -> RunRecords {
        RunRecords {
            db,
            run: run.to_string(),
            writer,
            seq: AtomicU64::new(0),
        }
    }

    pub async fn add(&self, record: &Record) -> Result<(), StateError> {
        let rid = format!(
            "{}:{}",
            self.writer,
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        self.db
            .query(
                "INSERT INTO hive.records (run, host, rid, record) VALUES ($1, NULL, $2, $3) \
                 ON CONFLICT (rid) DO NOTHING",
                &[
                    (&self.run, Type::TEXT),
                    (&rid, Type::TEXT),
                    (&Json(record), Type::JSONB),
                ],
            )
            .await?;
        Ok(())
    }
}

impl RecordStore for RunRecords {
    fn append(&self, record: &Record) -> Result<(), JournalError> {
        block_on(self.add(record)).map_err(|e| JournalError::Write(e.to_string()))
    }
}

/// Wait for `f` from synchronous code inside a multi-threaded runtime (the [`RecordStore`] and
/// [`crate::events::EventSink`] seams are synchronous, as the fsynced file is).
pub(crate) fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| handle.block_on(f))
}
