//! Command-line front ends of the library, one module per command group.

pub mod catalog;
pub mod rollout;
pub mod scan;
