//! hive: agentless patching of Windows server fleets.
//!
//! The pipeline reads top to bottom: catalog → scan → triage → plan → deploy → verify → report.

pub mod catalog;
pub mod inventory;
pub mod repo;
pub mod scan;
pub mod triage;
pub mod report;
pub mod remote;
pub mod events;
pub mod journal;
pub mod progress;
pub mod rollout;
pub mod deploy;
pub mod pipeline;
pub mod demo;
