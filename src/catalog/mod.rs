//! The patch catalog: the source of truth for what to look for on a host and how to install it.
//!
//! - [`model`]: the types everything else is written against.

pub mod model;

pub use model::*;
