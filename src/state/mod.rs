//! Where a run's state lives. By default the NDJSON journal in the repository
//! ([`crate::journal`]): one orchestrator, one machine. With `--state postgres://...` (or
//! `HIVE_STATE`) the run, its plan, every host's claim and every journal record live in
//! PostgreSQL, so several orchestrators (one `hive worker` per site, `hive rollout` as the
//! coordinator) take part in one rollout, and losing any of them loses no work.
//!
//! The database is reached through [`postgres::Db`]; the shape of the design and its failure
//! cases are in `docs/scale.md`.

pub mod postgres;
