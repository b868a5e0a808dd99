//! Pre-flight: before a wave starts, each of its hosts is checked, and a host that is not fit to
//! be patched is set aside as `skipped` with the reason, instead of failing (and weighing on the
//! budgets) for something the patch did not cause.
//!
//! The reasons ([`SetAside`]): a reboot already pending (unless the settings say to reboot it
//! first), less free disk than twice its installers, a clock skewed beyond a bound, a refused
//! logon, and a health check failing before anything was installed. A set-aside host counts as
//! skipped, never against a budget; `hive resume --retry-skipped` takes it up again.
//!
//! The judgement on a host's facts is pure ([`judge`]); reading the facts is the job of a
//! [`PreflightCheck`], which the pipeline implements over a host's `Target` and tests implement
//! with closures. The health reason comes from the rollout's [`super::HealthCheck`], run by the
//! engine on hosts that passed the other checks.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::job::JobContext;
use crate::remote::BoxFuture;

/// Why a host was set aside before its wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SetAside {
    /// Windows already asks for a reboot (markers as the probe names them).
    RebootPending { markers: Vec<String> },
    /// Free bytes on the system drive are fewer than twice the host's installers.
    LowDisk { free: u64, installers: u64 },
    /// The host's clock differs from the orchestrator's by more than the bound.
    ClockSkew { skew_s: i64, bound_s: u64 },
    /// The host refused the logon (credentials, account locked, rights).
    LogonRefused { error: String },
    /// A health check failed before anything was installed: the host is sick already.
    Unhealthy { evidence: String },
}

impl fmt::Display for SetAside {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetAside::RebootPending { markers } => {
                write!(f, "a reboot is already pending ({})", markers.join(", "))
            }
            SetAside::LowDisk { free, installers } => write!(
                f,
                "{} free on the system drive, less than twice its installers ({})",
                bytes(*free),
                bytes(*installers)
            ),
            SetAside::ClockSkew { skew_s, bound_s } => write!(
                f,
                "its clock is {} s {} the orchestrator's (bound {bound_s} s)",
                skew_s.unsigned_abs(),
                if *skew_s > 0 { "ahead of" } else { "behind" }
            ),
            SetAside::LogonRefused { error } => write!(f, "the logon was refused: {error}"),
            SetAside::Unhealthy { evidence } => {
                write!(f, "unhealthy before anything was installed: {evidence}")
            }
        }
    }
}

fn bytes(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else {
        format!("{n} bytes")
    }
}

/// What to do with a host that already has a reboot pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PendingReboot {
    /// Set it aside: someone else's reboot is owed, and installing on top of it mixes their
    /// change with ours.
    #[default]
    Skip,
    /// Reboot it first (and check again): the pending reboot is then hive's to pay.
    RebootFirst,
}

/// How strict pre-flight is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightSettings {
    pub pending_reboot: PendingReboot,
    /// The largest clock difference tolerated, in seconds.
    pub max_clock_skew_s: u64,
    /// Free disk must be at least this many times the host's installers.
    pub disk_factor: u64,
}

impl Default for PreflightSettings {
    fn default() -> Self {
        PreflightSettings {
            pending_reboot: PendingReboot::Skip,
            max_clock_skew_s: 300,
            disk_factor: 2,
        }
    }
}

/// A host's facts as pre-flight sees them. `None`: the host could not tell (a legacy host has
/// no free-disk or clock fact); an unknown fact sets nothing aside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreflightFacts {
    pub pending: Vec<String>,
    pub free_disk: Option<u64>,
    /// Bytes of the installers the host is to get.
    pub installer_bytes: u64,
    /// Host clock minus the orchestrator's, in seconds.
    pub clock_skew: Option<Duration>,
    pub clock_ahead: bool,
}

/// The verdict of [`judge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    Fit,
    /// A reboot is pending and the settings say to reboot first.
    RebootFirst(Vec<String>),
    SetAside(SetAside),
}

/// Judge a host's facts: the first reason that applies, in the order an admin fixes them.
pub fn judge(facts: &PreflightFacts, settings: &PreflightSettings) -> Judged {
    if let Some(skew) = facts.clock_skew
        && skew.as_secs() > settings.max_clock_skew_s
    {
        let s = skew.as_secs() as i64;
        return Judged::SetAside(SetAside::ClockSkew {
            skew_s: if facts.clock_ahead { s } else { -s },
            bound_s: settings.max_clock_skew_s,
        });
    }
    if let Some(free) = facts.free_disk {
        let need = facts.installer_bytes.saturating_mul(settings.disk_factor);
        if free < need {
            return Judged::SetAside(SetAside::LowDisk {
                free,
                installers: facts.installer_bytes,
            });
        }
    }
    if !facts.pending.is_empty() {
        return match settings.pending_reboot {
            PendingReboot::Skip => Judged::SetAside(SetAside::RebootPending {
                markers: facts.pending.clone(),
            }),
            PendingReboot::RebootFirst => Judged::RebootFirst(facts.pending.clone()),
        };
    }
    Judged::Fit
}

/// Checks one host before its wave: `Ok(note)` when it may be worked on (the note says what was
/// seen or done, e.g. "rebooted first"), `Err(reason)` to set it aside. Implemented for closures
/// `Fn(JobContext) -> impl Future<Output = Result<String, SetAside>>`.
pub trait PreflightCheck: Send + Sync + 'static {
    fn check(&self, ctx: JobContext) -> BoxFuture<'static, Result<String, SetAside>>;
}

impl<F, Fut> PreflightCheck for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, SetAside>> + Send + 'static,
{
    fn check(&self, ctx: JobContext) -> BoxFuture<'static, Result<String, SetAside>> {
        Box::pin(self(ctx))
    }
}

/// The verdict line of a set-aside host (the summary's and the journal's `skipped` detail).
pub fn set_aside_detail(reason: &SetAside) -> String {
    format!("pre-flight: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> PreflightFacts {
        PreflightFacts {
            pending: vec![],
            free_disk: Some(10 << 30),
            installer_bytes: 100 << 20,
            clock_skew: Some(Duration::from_secs(2)),
            clock_ahead: true,
        }
    }

    #[test]
    fn a_fit_host_passes() {
        assert_eq!(judge(&facts(), &PreflightSettings::default()), Judged::Fit);
    }

    #[test]
    fn each_reason_is_named() {
        let s = PreflightSettings::default();
        let f = PreflightFacts {
            free_disk: Some(150 << 20),
            ..facts()
        };
        let Judged::SetAside(r) = judge(&f, &s) else {
            panic!("low disk passed")
        };
        assert!(r.to_string().contains("150.0 MiB free"), "{r}");

        let f = PreflightFacts {
            clock_skew: Some(Duration::from_secs(900)),
            clock_ahead: false,
            ..facts()
        };
        let Judged::SetAside(r) = judge(&f, &s) else {
            panic!("skew passed")
        };
        assert_eq!(
            r,
            SetAside::ClockSkew {
                skew_s: -900,
                bound_s: 300
            }
        );
        assert!(r.to_string().contains("900 s behind"), "{r}");

        let f = PreflightFacts {
            pending: vec!["CBS RebootPending".into()],
            ..facts()
        };
        assert!(matches!(
            judge(&f, &s),
            Judged::SetAside(SetAside::RebootPending { .. })
        ));
        let first = PreflightSettings {
            pending_reboot: PendingReboot::RebootFirst,
            ..s
        };
        assert_eq!(
            judge(&f, &first),
            Judged::RebootFirst(vec!["CBS RebootPending".into()])
        );
    }

    #[test]
    fn unknown_facts_set_nothing_aside() {
        let f = PreflightFacts {
            free_disk: None,
            clock_skew: None,
            ..facts()
        };
        assert_eq!(judge(&f, &PreflightSettings::default()), Judged::Fit);
    }
}
