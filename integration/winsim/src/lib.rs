//! winsim: a simulated Windows fleet on loopback, for hive's tests and `hive demo`.
//!
//! There is no Windows here and never will be in CI, so every test of scanning, installing and
//! rebooting runs against these hosts. They must behave like Windows (reg.exe output, exit codes,
//! pending file renames, reboots that take time), not like what hive's client happens to expect:
//! the WinRM face is proven by unmodified pywinrm and pypsrp.
//!
//! Where to start:
//! - [`fleet::load`] / [`Fleet::from_file`]: a TOML fleet file (see `fleets/example.toml`) becomes
//!   hosts, each with its C: drive as a real folder `<root>/<host>/` (what Samba exports), written
//!   at start or, for fleets no Samba share serves, on first use ([`drive::DriveSetup`]).
//! - [`WinHost`] implements [`host::SimHost`]; its `run` is the command interpreter documented in
//!   `COMMANDS.md`; `command_log()`, `registry_value()`, `file_version()`, `boot_time()` let tests
//!   check what happened.
//! - [`probe`] (the `hive-probe` crate): the probe script hive sends and the JSON facts it gets back.
//! - [`installer::Package`]: builds simulated hotfix `.exe`, `.msu`, `.msi` and `qchain.exe` files.
//! - [`pe`]: generates real PE32/PE32+ images with a version resource, and reads one back.
//! - [`ssh::SshFace`]: the SSH face — the harness's real sshd runs `winsim-shell`, which hands each
//!   command to the host model; SFTP is the real `sftp-server` on the host's drive folder.

pub mod clock;
pub mod codepage;
mod cmd;
mod memo;
pub mod drive;
pub mod eventlog;
pub mod fleet;
pub mod hive_folder;
pub mod host;
pub mod installer;
pub mod model;
pub mod os;
pub mod pe;
pub use hive_probe as probe;
pub mod registry;
pub mod reverts;
pub mod services;
pub mod health_http;
mod sim_host;
pub mod ssh;
pub mod ssh_wire;
pub mod smbfront;
pub mod uninstall;

pub use drive::DriveSetup;
pub use fleet::{FleetError, HostConfig};
pub use model::{CommandRecord, Fleet, InstallRecord, WinHost};
pub mod server;
