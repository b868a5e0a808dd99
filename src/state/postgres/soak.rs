//! A wave's soak over the database: the coordinator cannot reach the hosts (sites are segmented
//! networks), so each site's workers poll their own site's patched hosts, and the coordinator
//! judges the wave from what they wrote.
//!
//! - The coordinator [`begin`]s the soak when the wave passed its gate: a row of `hive.soaks`
//!   with the deadline on the database's clock. A restarted coordinator finds the row and keeps
//!   its deadline.
//! - Workers see the soaking wave in their heartbeat and run a [`SiteSoak`]: the same soak a
//!   single orchestrator runs (`rollout::soak`), over their site's hosts of the
//!   wave whose verdict is `patched`. What it found is [`report`]ed in one statement per worker:
//!   a host found unhealthy gets the verdict `unhealthy` and its journal record, the others are
//!   marked `healthy` after their final check (or `unchecked`, by a worker without health checks).
//! - The coordinator waits until the deadline passed and every patched host of the wave is
//!   marked, or until one is unhealthy, then [`close`]s the soak: a worker's report that comes
//!   later changes nothing, so the gate the coordinator records is the one the database holds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::types::{Json, Type};

use super::run::seconds;
use super::{Db, StateError};
use crate::events::{Event, EventSink};
use crate::journal::Record;
use crate::rollout::job::HealthCheck;
use crate::rollout::soak::{Soak, turned_unhealthy};
use crate::rollout::stop::StopFlag;
use crate::rollout::summary::{HostHealth, Quiet, RunWatcher};
use crate::time::now_ms;

/// What the soak found on one host (the words of `hive.hosts.soak`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Its final check passed.
    Healthy,
    /// Its worker has no health check: nothing was polled.
    Unchecked,
    /// A check failed: the host's verdict is now `unhealthy`.
    Unhealthy,
}

impl Found {
    pub fn word(self) -> &'static str {
        match self {
            Found::Healthy => "healthy",
            Found::Unchecked => "unchecked",
            Found::Unhealthy => "unhealthy",
        }
    }
}

/// The soak as the coordinator sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Time left by the database's clock (zero once past the deadline).
    pub left: Duration,
    /// Whether the coordinator already judged it.
    pub ended: bool,
    /// Patched hosts of the wave not marked yet (their final check is due).
    pub pending: usize,
    /// Hosts the soak found unhealthy, with the evidence, by name.
    pub unhealthy: Vec<(String, String)>,
    /// Each host of the soak as the progress display shows it.
    pub hosts: BTreeMap<String, HostHealth>,
}

impl Progress {
    /// Nothing more to wait for: a host is unhealthy, or the deadline passed and every host had
    /// its final check.
    pub fn settled(&self) -> bool {
        !self.unhealthy.is_empty() || (self.left.is_zero() && self.pending == 0)
    }
}

/// Start the soak of `wave` for `length`, or find the one started before (a restarted
/// coordinator): its deadline does not move.
pub async fn begin(db: &Db, run: &str, wave: usize, length: Duration) -> Result<(), StateError> {
    let wave = wave as i32;
    let secs = length.as_secs_f64();
    db.query(
        "INSERT INTO hive.soaks (run, wave, until) VALUES ($1, $2, now() + make_interval(secs => $3)) \
         ON CONFLICT (run, wave) DO NOTHING",
        &[
            (&run, Type::TEXT),
            (&wave, Type::INT4),
            (&secs, Type::FLOAT8),
        ],
    )
    .await?;
    Ok(())
}

/// Where the soak of `wave` is, in one round trip.
pub async fn progress(db: &Db, run: &str, wave: usize) -> Result<Progress, StateError> {
    let wave = wave as i32;
    let rows = db
        .query(
            "SELECT extract(epoch FROM s.until - now())::float8, s.ended IS NOT NULL, \
             h.host, h.verdict, h.soak, h.soak_evidence \
             FROM hive.soaks s LEFT JOIN hive.hosts h ON h.run = s.run AND h.wave = s.wave \
               AND (h.verdict = 'patched' OR h.soak IS NOT NULL) \
             WHERE s.run = $1 AND s.wave = $2 ORDER BY h.host",
            &[(&run, Type::TEXT), (&wave, Type::INT4)],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Err(StateError::Invalid {
            run: run.to_string(),
            message: format!("wave {wave} has no soak in the database"),
        });
    };
    let mut p = Progress {
        left: seconds(first.get(0)),
        ended: first.get(1),
        ..Progress::default()
    };
    for r in &rows {
        let Some(host) = r.get::<_, Option<String>>(2) else {
            continue;
        };
        let soak: Option<String> = r.get(4);
        let evidence: Option<String> = r.get(5);
        let health = match soak.as_deref() {
            None => {
                p.pending += 1;
                HostHealth::default()
            }
            Some("unhealthy") => {
                let evidence = evidence.unwrap_or_default();
                p.unhealthy.push((host.clone(), evidence.clone()));
                HostHealth {
                    healthy: Some(false),
                    evidence,
                    polls: 1,
                }
            }
            Some("healthy") => HostHealth {
                healthy: Some(true),
                evidence: String::new(),
                polls: 1,
            },
            Some(_) => HostHealth::default(),
        };
        p.hosts.insert(host, health);
    }
    Ok(p)
}

/// End the soak of `wave`: from now on no worker's report changes a host of it. A report under
/// way when this runs either finished first (and is counted by the next [`progress`]) or is
/// refused: reports hold the soak's row `FOR SHARE` and check it is still open.
pub async fn close(db: &Db, run: &str, wave: usize) -> Result<(), StateError> {
    let wave = wave as i32;
    db.query(
        "UPDATE hive.soaks SET ended = now() WHERE run = $1 AND wave = $2 AND ended IS NULL",
        &[(&run, Type::TEXT), (&wave, Type::INT4)],
    )
    .await?;
    Ok(())
}

/// The soak of `wave` as one site's worker starts it: the time left and the site's hosts of
/// the wave still to judge (patched, not marked), or `None` once the coordinator ended it.
pub async fn site_hosts(
    db: &Db,
    run: &str,
    site: &str,
    wave: i32,
) -> Result<Option<(Duration, Vec<String>)>, StateError> {
    let rows = db
        .query(
            "SELECT extract(epoch FROM s.until - now())::float8, \
             coalesce((SELECT array_agg(host ORDER BY host) FROM hive.hosts \
               WHERE run = $1 AND site = $2 AND wave = $3 AND verdict = 'patched' AND soak IS NULL), '{}') \
             FROM hive.soaks s WHERE s.run = $1 AND s.wave = $3 AND s.ended IS NULL",
            &[
                (&run, Type::TEXT),
                (&site, Type::TEXT),
                (&wave, Type::INT4),
            ],
        )
        .await?;
    Ok(rows.first().map(|r| (seconds(r.get(0)), r.get(1))))
}

/// One host's result as a worker reports it, with the journal records that go with it.
#[derive(Debug, Clone)]
pub struct HostFound {
    pub host: String,
    pub found: Found,
    pub evidence: Option<String>,
    pub records: Vec<Record>,
}

/// Report what a worker's soak found, in one statement, while the soak is open: a host is
/// marked (and its records kept) only by the first report about it, so several workers of a site
/// polling the same hosts journal each result once. An unhealthy host's verdict becomes
/// `unhealthy` whatever was marked before. Returns the hosts this report changed.
pub async fn report(
    db: &Db,
    run: &str,
    wave: i32,
    writer: &str,
    found: &[HostFound],
) -> Result<Vec<String>, StateError> {
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let mut hosts = Vec::new();
    let mut words = Vec::new();
    let mut evidence = Vec::new();
    let mut record_hosts = Vec::new();
    let mut rids = Vec::new();
    let mut records = Vec::new();
    for f in found {
        hosts.push(f.host.clone());
        words.push(f.found.word().to_string());
        evidence.push(f.evidence.clone());
        for (i, r) in f.records.iter().enumerate() {
            record_hosts.push(f.host.clone());
            rids.push(format!("{writer}:soak:{wave}:{}:{i}", f.host));
            records.push(Json(r));
        }
    }
    let rows = db
        .query(
            "WITH s AS (SELECT 1 FROM hive.soaks WHERE run = $1 AND wave = $2 AND ended IS NULL FOR SHARE), \
             f AS (SELECT * FROM unnest($3::text[], $4::text[], $5::text[]) AS f(host, soak, evidence)), \
             h AS (UPDATE hive.hosts t SET soak = f.soak, soak_evidence = f.evidence, \
                     verdict = CASE WHEN f.soak = 'unhealthy' THEN 'unhealthy' ELSE t.verdict END \
                   FROM f, s WHERE t.run = $1 AND t.wave = $2 AND t.host = f.host \
                     AND t.verdict = 'patched' AND (t.soak IS NULL OR f.soak = 'unhealthy') \
                   RETURNING t.host), \
             ins AS (INSERT INTO hive.records (run, host, rid, record) \
                     SELECT $1, r.host, r.rid, r.record \
                     FROM unnest($6::text[], $7::text[], $8::jsonb[]) WITH ORDINALITY AS r(host, rid, record, n) \
                     WHERE r.host IN (SELECT host FROM h) ORDER BY r.n \
                     ON CONFLICT (rid) DO NOTHING) \
             SELECT host FROM h",
            &[
                (&run, Type::TEXT),
                (&wave, Type::INT4),
                (&hosts, Type::TEXT_ARRAY),
                (&words, Type::TEXT_ARRAY),
                (&evidence, Type::TEXT_ARRAY),
                (&record_hosts, Type::TEXT_ARRAY),
                (&rids, Type::TEXT_ARRAY),
                (&records, Type::JSONB_ARRAY),
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The step records the soak emits, kept until the soak ends: it emits only at its end (the
/// final checks, or the failure that ends it), and they go to the database with the result.
#[derive(Default)]
struct Collected(Mutex<Vec<Event>>);

impl Collected {
    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl EventSink for Collected {
    fn emit(&self, event: &Event) -> Result<(), String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event.clone());
        Ok(())
    }
}

/// One worker's part of a soak: who it is and what it checks with.
pub struct SiteSoak<'a> {
    pub db: &'a Db,
    pub run: &'a str,
    pub site: &'a str,
    /// The worker's unique name (its records' keys start with it).
    pub writer: &'a str,
    pub wave: i32,
    pub wave_name: &'a str,
    pub health: Option<Arc<dyn HealthCheck>>,
    /// Raised when the coordinator ended the soak or the worker stops.
    pub stop: &'a StopFlag,
}

impl SiteSoak<'_> {
    /// Poll the site's patched hosts of the wave until the soak's deadline (or the first
    /// unhealthy one) and report what was found. Returns the hosts this worker found unhealthy.
    pub async fn run(&self) -> Result<Vec<String>, StateError> {
        let Some((left, hosts)) = site_hosts(self.db, self.run, self.site, self.wave).await? else {
            return Ok(Vec::new());
        };
        if hosts.is_empty() {
            return Ok(Vec::new());
        }
        let Some(health) = self.health.clone() else {
            let found: Vec<HostFound> = hosts
                .into_iter()
                .map(|host| HostFound {
                    host,
                    found: Found::Unchecked,
                    evidence: None,
                    records: Vec::new(),
                })
                .collect();
            report(self.db, self.run, self.wave, self.writer, &found).await?;
            return Ok(Vec::new());
        };
        let collected = Arc::new(Collected::default());
        let sink: Arc<dyn EventSink> = collected.clone();
        let watcher: Arc<dyn RunWatcher> = Arc::new(Quiet);
        let soak = Soak {
            run: self.run,
            wave: self.wave_name,
            health,
            watcher: &watcher,
            sink: &sink,
            stop: self.stop,
        };
        let end = soak.run(&hosts, left).await;
        if end.stopped {
            return Ok(Vec::new());
        }
        let mut steps: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for e in collected.take() {
            steps
                .entry(e.host.clone())
                .or_default()
                .push(Record::Step(e));
        }
        let wave = self.wave.max(0) as usize;
        let found: Vec<HostFound> = if end.unhealthy.is_empty() {
            hosts
                .into_iter()
                .map(|host| HostFound {
                    records: steps.remove(&host).unwrap_or_default(),
                    host,
                    found: Found::Healthy,
                    evidence: None,
                })
                .collect()
        } else {
            end.unhealthy
                .into_iter()
                .map(|(host, evidence)| {
                    let outcome = turned_unhealthy(&evidence);
                    let mut records = steps.remove(&host).unwrap_or_default();
                    records.push(Record::Host {
                        host: host.clone(),
                        wave,
                        verdict: outcome.verdict,
                        detail: outcome.detail,
                        at_ms: now_ms(),
                        evidence: None,
                    });
                    HostFound {
                        host,
                        found: Found::Unhealthy,
                        evidence: Some(evidence),
                        records,
                    }
                })
                .collect()
        };
        let changed = report(self.db, self.run, self.wave, self.writer, &found).await?;
        Ok(found
            .into_iter()
            .filter(|f| f.found == Found::Unhealthy && changed.contains(&f.host))
            .map(|f| f.host)
            .collect())
    }
}
