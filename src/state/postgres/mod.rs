//! Shared run state on PostgreSQL: what is in the database and who writes it.
//!
//! - [`connect`]: the URL (`sslmode`, TLS verified unless the URL says `sslmode=disable`), one
//!   connection per process that comes back after the database restarts; every query counted.
//! - [`migrate`]: the schema `hive`, created and upgraded by hive from the versioned files in
//!   `migrations/postgres/`.
//! - [`run`]: a run's header, state and journal records; [`run::RunRecords`] is the
//!   [`crate::journal::RecordStore`] the coordinator writes through, and reading back gives the
//!   same [`crate::journal::RunLog`] the NDJSON journal gives.
//! - [`lease`]: hosts claimed with `FOR UPDATE SKIP LOCKED`, held by a lease the worker renews,
//!   and every record of a host written only while its lease is still the writer's (a fence).
//! - [`coordinator`] opens waves and judges gates and budgets over the whole fleet;
//!   [`worker`] patches the hosts of one site.
//! - [`soak`]: a wave's soak, polled by each site's workers and judged by the coordinator.
//! - [`unsupported`]: what a coordinated run does not do yet, refused when it starts.

pub mod connect;
pub mod coordinator;
pub mod lease;
pub mod migrate;
pub mod run;
pub mod soak;
pub mod unsupported;
pub mod worker;

pub use connect::{Db, StateUrl};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StateError {
    #[error("state URL: {0}")]
    Url(String),
    #[error("state database {url}: {message}")]
    Database { url: String, message: String },
    #[error(
        "state database {url}: the schema is at version {found}, newer than this hive knows ({known}); use a newer hive"
    )]
    TooNew { url: String, found: i32, known: i32 },
    #[error("run `{0}` is not in the state database")]
    NoSuchRun(String),
    #[error("run `{run}` in the state database: {message}")]
    Invalid { run: String, message: String },
    #[error(
        "host `{host}`: its lease now belongs to another worker; this worker stops working on it"
    )]
    LeaseLost { host: String },
    #[error("TLS to the state database: {0}")]
    Tls(String),
    #[error("the soak of wave {wave}: {message}")]
    Soak { wave: i32, message: String },
}
