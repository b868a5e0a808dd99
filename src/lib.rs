//! hive: agentless patching of Windows server fleets.
//!
//! The pipeline reads top to bottom: catalog → scan → triage → plan → deploy → verify → report.
//! Modules are declared in that order, after the leaves everything uses (`time`, `events`); a
//! module imports only from modules declared above it.

pub mod time;
pub mod events;
pub mod folders;
pub mod catalog;
pub mod inventory;
pub mod targets;
pub mod remote;
pub mod window;
pub mod health;
pub mod scan;
pub mod repo;
pub mod adopt;
pub mod triage;
pub mod deploy;
pub mod rollout;
/// The rollout's journal, at the path the CLI and tests have always used.
pub use rollout::journal;
pub mod hooks;
pub mod progress;
pub mod report;
pub mod pipeline;
pub mod rollback;
pub mod host_preflight;
pub mod fake;
pub mod state;
