//! How a deploy runs: the reboot policy and the timeouts of every phase.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When hive reboots a host after installing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RebootPolicy {
    /// Never: patches needing a reboot stay pending (the verdict says so).
    Never,
    /// When an installer or the host says a reboot is needed.
    #[default]
    IfRequired,
    /// Always once after installing.
    Always,
}

/// How a deploy runs. The defaults suit real servers; tests shorten them.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub reboot: RebootPolicy,
    /// `shutdown /r /t N`.
    pub shutdown_delay_s: u32,
    /// One installer run; a hung installer is killed after this.
    pub install_timeout: Duration,
    /// Short commands (hash, boot time, shutdown).
    pub command_timeout: Duration,
    /// Attempts for an installer that answers 1618 (another install running).
    pub busy_attempts: u32,
    /// The first wait after a 1618; doubles each time.
    pub busy_backoff: Duration,
    /// How often the reboot phases look at the host.
    pub poll_interval: Duration,
    /// Phase `down`: from `shutdown` until the host is seen going down (or back with a new boot
    /// time).
    pub down_timeout: Duration,
    /// Phase `port`: until the WinRM port accepts again.
    pub port_timeout: Duration,
    /// Phase `login`: until a command runs and shows the new boot time.
    pub login_timeout: Duration,
    /// Phase `settled`: until servicing ("configuring updates") is finished.
    pub settle_timeout: Duration,
    /// The re-scan after the reboot.
    pub verify_timeout: Duration,
    /// qchain.exe to stage when legacy hotfixes are chained; `None`: `<repo>/tools/qchain.exe`
    /// if it exists, else the host's own qchain.exe on its search path.
    pub qchain: Option<PathBuf>,
    /// Remove the staged files at the end.
    pub cleanup: bool,
    /// Reboots one host may take in one deploy (an installer's own restart counts) before it
    /// is judged a reboot loop ([`super::reboot_loop`]).
    pub max_reboots: u32,
    /// Installers at least this large are hashed by the host while they arrive, where the
    /// transport can (see [`crate::remote::follow`]); smaller ones are hashed after the copy.
    /// Why a floor: the follower is a PowerShell, and starting one takes a Windows host about
    /// half a second, which a copy of a few megabytes does not hide; `certutil -hashfile` after
    /// such a copy is quicker. From tens of megabytes the copy outlasts the start, and the hash
    /// after the copy (about a second per gigabyte on the host) is what it saves.
    pub hash_on_arrival_from: u64,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            reboot: RebootPolicy::IfRequired,
            shutdown_delay_s: 5,
            install_timeout: Duration::from_secs(30 * 60),
            command_timeout: Duration::from_secs(60),
            busy_attempts: 5,
            busy_backoff: Duration::from_secs(30),
            poll_interval: Duration::from_secs(5),
            down_timeout: Duration::from_secs(600),
            port_timeout: Duration::from_secs(600),
            login_timeout: Duration::from_secs(300),
            settle_timeout: Duration::from_secs(1800),
            verify_timeout: Duration::from_secs(300),
            qchain: None,
            cleanup: true,
            max_reboots: 3,
            hash_on_arrival_from: 32 << 20,
        }
    }
}
