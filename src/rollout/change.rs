//! Change control as the engine sees it: maintenance windows (a [`Gate`] asked before each host
//! starts and while it runs) and wave hooks (commands before and after each wave). The windows
//! themselves live in [`crate::window`]; the hook commands in `crate::hooks`, behind
//! [`WaveHooks`], so the engine only knows when to call them.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::plan::Wave;
use super::stop::{StopFlag, StopReason};
use crate::remote::BoxFuture;
use crate::window::{Admission, Gate};

/// Commands run before and after each wave (`pre_wave` / `post_wave`). `Ok` carries what the
/// journal keeps of their output; `Err` why the wave must not go on.
pub trait WaveHooks: Send + Sync + 'static {
    fn before(&self, run: &str, wave: &Wave) -> BoxFuture<'static, Result<String, String>>;
    fn after(
        &self,
        run: &str,
        wave: &Wave,
        gate: &str,
    ) -> BoxFuture<'static, Result<String, String>>;
}

/// A host held back by its window, and until when.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub reason: String,
    pub until: Option<Timestamp>,
}

/// The windows' bookkeeping of one wave: hosts held back, and hosts stopped because their
/// window closed while they ran.
#[derive(Default)]
pub(super) struct WindowWatch {
    pub held: BTreeMap<String, Held>,
    /// In-flight hosts told to stop, with why.
    pub closed: BTreeMap<String, String>,
}

impl WindowWatch {
    /// May `host` start now? Remembers why not.
    pub fn admit(&mut self, gate: Option<&Gate>, host: &str) -> bool {
        let Some(gate) = gate else { return true };
        match gate.admit(host) {
            Admission::Go => {
                self.held.remove(host);
                true
            }
            Admission::Wait { reason, until } => {
                self.held.insert(host.to_string(), Held { reason, until });
                false
            }
        }
    }

    /// Raise the flag of every in-flight host whose window has closed.
    pub fn close_ended(
        &mut self,
        gate: Option<&Gate>,
        in_flight: &BTreeSet<String>,
        flags: &BTreeMap<String, StopFlag>,
    ) {
        let Some(gate) = gate else { return };
        for host in in_flight {
            if self.closed.contains_key(host) {
                continue;
            }
            if let (Some(why), Some(flag)) = (gate.closed(host), flags.get(host)) {
                flag.stop();
                self.closed.insert(host.clone(), why);
            }
        }
    }

    /// The host that may start soonest, and what to tell the operator about the wait.
    pub fn soonest(&self) -> Option<(Timestamp, String)> {
        let (host, h) = self
            .held
            .iter()
            .filter(|(_, h)| h.until.is_some())
            .min_by_key(|(_, h)| h.until)?;
        let more = self.held.len() - 1;
        Some((
            h.until?,
            format!(
                "{}{}",
                h.reason.trim_start_matches(&format!("{host}: ")),
                if more > 0 {
                    format!(" ({host} and {more} more host(s) held back)")
                } else {
                    format!(" ({host})")
                }
            ),
        ))
    }

    /// Why the run pauses here, if windows are the reason.
    pub fn pause(&self, run: &str) -> Option<StopReason> {
        let first = self
            .closed
            .values()
            .next()
            .or_else(|| self.held.values().next().map(|h| &h.reason))?;
        let n = self.closed.len() + self.held.len();
        Some(StopReason::Window {
            run: run.to_string(),
            detail: if n > 1 {
                format!("{first} (and {} more host(s))", n - 1)
            } else {
                first.clone()
            },
        })
    }
}
