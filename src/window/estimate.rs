//! How long a host will take, so a host starts only when it can finish inside its window:
//! its installers' bytes at the copy rate measured in this run, each installer's time by recipe,
//! and a reboot budget.
//!
//! Before any host has copied, the rate is an assumed one ([`RateMeter::new`]); from the first
//! finished copy on it is what this run measured (bytes over the time of copies that moved bytes,
//! not cached ones), so a slow WAN link makes the estimates grow by itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::catalog::installer::InstallerKind;
use crate::events::{Event, EventSink, Step, StepOutcome, StepState};

/// How long one installer of `kind` takes, typically, on a server: what an admin plans with
/// (an MSU's servicing stack is the slow one).
pub fn install_estimate(kind: InstallerKind) -> Duration {
    Duration::from_secs(match kind {
        InstallerKind::HotfixExe | InstallerKind::UpdateExe => 120,
        InstallerKind::Msi => 300,
        // An admin's hiveexec.cmd may run several installers; plan as for a vendor setup.
        InstallerKind::Exe | InstallerKind::HiveExec => 300,
        InstallerKind::Msu => 900,
    })
}

/// The work a host is expected to need.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostWork {
    /// Bytes to copy to it.
    pub bytes: u64,
    /// Installer run time, summed over its installers' recipes.
    pub install: Duration,
    /// Whether a reboot is expected.
    pub reboot: bool,
}

/// The copy rate this run measured, from the stage steps it sees go by.
#[derive(Debug)]
pub struct RateMeter {
    assumed_bytes_per_sec: u64,
    state: Mutex<Meter>,
}

#[derive(Debug, Default)]
struct Meter {
    /// (host, patch) → (bytes, started at ms).
    open: BTreeMap<(String, String), (u64, u64)>,
    bytes: u64,
    ms: u64,
}

impl RateMeter {
    /// A meter that assumes `assumed_bytes_per_sec` until a copy finished.
    pub fn new(assumed_bytes_per_sec: u64) -> RateMeter {
        RateMeter {
            assumed_bytes_per_sec: assumed_bytes_per_sec.max(1),
            state: Mutex::new(Meter::default()),
        }
    }

    /// Bytes per second: measured when any copy finished, else the assumed rate.
    pub fn bytes_per_sec(&self) -> u64 {
        let m = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if m.bytes == 0 {
            return self.assumed_bytes_per_sec;
        }
        (m.bytes.saturating_mul(1000) / m.ms.max(1)).max(1)
    }
}

impl EventSink for RateMeter {
    fn emit(&self, e: &Event) -> Result<(), String> {
        let Step::Stage { patch, bytes, .. } = &e.step else {
            return Ok(());
        };
        let mut m = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let key = (e.host.clone(), patch.clone());
        match &e.state {
            StepState::Started => {
                m.open.insert(key, (*bytes, e.at_ms));
            }
            StepState::Finished { ok, outcome, .. } => {
                if let Some((b, at)) = m.open.remove(&key)
                    && *ok
                    && *outcome == StepOutcome::Copied
                {
                    m.bytes += b;
                    m.ms += e.at_ms.saturating_sub(at);
                }
            }
            StepState::Progress { .. } => {}
        }
        Ok(())
    }
}

/// Estimates per host.
#[derive(Debug, Clone)]
pub struct Estimator {
    /// The work of a host not in `per_host`.
    pub default_work: HostWork,
    pub per_host: BTreeMap<String, HostWork>,
    /// Time a reboot may take (down, back, settled).
    pub reboot_budget: Duration,
    pub rate: Arc<RateMeter>,
}

impl Estimator {
    /// An estimator that expects nothing to take time: every open window fits.
    pub fn zero() -> Estimator {
        Estimator {
            default_work: HostWork::default(),
            per_host: BTreeMap::new(),
            reboot_budget: Duration::ZERO,
            rate: Arc::new(RateMeter::new(u64::MAX)),
        }
    }

    /// The host's expected time: copy + installs + reboot.
    pub fn estimate(&self, host: &str) -> Duration {
        let w = self.per_host.get(host).unwrap_or(&self.default_work);
        let copy =
            Duration::from_millis(w.bytes.saturating_mul(1000) / self.rate.bytes_per_sec().max(1));
        copy + w.install
            + if w.reboot {
                self.reboot_budget
            } else {
                Duration::ZERO
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(host: &str, state: StepState, at_ms: u64, bytes: u64) -> Event {
        Event {
            run: "r".into(),
            host: host.into(),
            step: Step::Stage {
                patch: "KB1".into(),
                file: "x.exe".into(),
                bytes,
            },
            state,
            at_ms,
        }
    }

    #[test]
    fn rate_is_assumed_until_a_copy_finishes_then_measured() {
        let m = RateMeter::new(1_000_000);
        assert_eq!(m.bytes_per_sec(), 1_000_000);
        m.emit(&ev("a", StepState::Started, 1_000, 4_000_000))
            .unwrap();
        m.emit(&ev(
            "a",
            StepState::finished(true, StepOutcome::Copied, "", None),
            3_000,
            4_000_000,
        ))
        .unwrap();
        assert_eq!(m.bytes_per_sec(), 2_000_000);
        // A cached copy moved no bytes and does not count.
        m.emit(&ev("b", StepState::Started, 5_000, 4_000_000))
            .unwrap();
        m.emit(&ev(
            "b",
            StepState::finished(true, StepOutcome::Cached, "", None),
            5_001,
            4_000_000,
        ))
        .unwrap();
        assert_eq!(m.bytes_per_sec(), 2_000_000);
    }

    #[test]
    fn estimate_adds_copy_install_and_reboot() {
        let e = Estimator {
            default_work: HostWork {
                bytes: 10_000_000,
                install: install_estimate(InstallerKind::HotfixExe) * 2,
                reboot: true,
            },
            per_host: BTreeMap::new(),
            reboot_budget: Duration::from_secs(600),
            rate: Arc::new(RateMeter::new(1_000_000)),
        };
        assert_eq!(e.estimate("any"), Duration::from_secs(10 + 240 + 600));
    }
}
