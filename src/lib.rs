//! hive: agentless patching of Windows server fleets.
//!
//! The pipeline reads top to bottom: catalog → scan → triage → plan → deploy → verify → report.
//! Modules are declared in that order.

pub mod catalog;
pub mod inventory;
pub mod remote;
pub mod scan;
pub mod repo;
pub mod triage;
pub mod events;
pub mod deploy;
pub mod journal;
pub mod rollout;
pub mod progress;
pub mod report;
pub mod pipeline;
