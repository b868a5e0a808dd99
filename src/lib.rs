//! hive: agentless patching of Windows server fleets.
//!
//! The pipeline reads top to bottom: catalog → scan → triage → plan → deploy → verify → report.
//! Modules are declared in that order.

pub mod catalog;
pub mod inventory;
pub mod targets;
pub mod remote;
pub mod scan;
pub mod repo;
pub mod triage;
pub mod deploy;
pub mod events;
pub mod journal;
pub mod rollout;
pub mod progress;
pub mod report;
pub mod pipeline;
pub mod demo;
