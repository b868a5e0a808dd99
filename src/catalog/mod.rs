//! The patch catalog: the source of truth for what to look for on a host and how to install it.
//!
//! - [`model`]: the types everything else is written against.
//! - [`mssecure`], [`cvrf`]: importers for the two real catalog formats.
//! - [`store`]: the cached catalog on disk (stable JSON, atomic replace) and merging.
//! - [`fetch`]: download over HTTPS through a proxy, verified before it replaces anything.
//! - [`mod@diff`]: what changed between two catalogs.

pub mod builds;
pub mod cvrf;
pub mod detection;
pub mod diff;
pub mod error;
pub mod fetch;
pub mod installer;
pub mod merge;
pub mod model;
pub mod mssecure;
pub mod product_names;
pub mod provenance;
pub mod store;
pub mod verify;
pub mod values;
pub mod xml;

pub use diff::{CatalogDiff, ProductChange, diff};
pub use error::{ImportError, StoreError};
pub use merge::MergeReport;
pub use model::*;
pub use mssecure::ImportReport;
