//! Command-line front ends of the library, one module per command group, plus the argument
//! groups they share and the exit-code contract.

pub mod adopt;
pub mod args;
pub mod catalog;
pub mod change;
pub mod connect;
#[cfg(feature = "demo")]
pub mod demo;
pub mod exit;
pub mod inventory;
pub mod rollback;
#[cfg(feature = "demo")]
pub mod lab;
pub mod rollout;
pub mod scan;
pub mod scan_notes;
pub mod shell;
pub mod state;
