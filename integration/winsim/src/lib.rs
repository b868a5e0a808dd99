//! winsim: a simulated Windows fleet on loopback, for hive's tests and `hive demo`.
//!
//! There is no Windows here and never will be in CI, so every test of scanning, installing and
//! rebooting runs against these hosts. They must behave like Windows (reg.exe output, exit codes,
//! pending file renames, reboots that take time), not like what hive's client happens to expect:
//! the WinRM face is proven by unmodified pywinrm and pypsrp.

pub mod clock;
mod cmd;
pub mod fleet;
pub mod host;
pub mod installer;
pub mod model;
pub mod pe;
pub mod probe;
pub mod registry;

pub use fleet::{FleetError, HostConfig};
pub use model::{CommandRecord, Fleet, WinHost};
pub mod server;
