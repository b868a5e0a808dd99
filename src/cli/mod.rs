//! Command-line front ends of the library, one module per command group.

pub mod catalog;
#[cfg(feature = "demo")]
pub mod demo;
pub mod rollout;
pub mod scan;
