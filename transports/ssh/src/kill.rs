//! What became of a timed-out command's remote processes: reported by [`exec`](crate::exec), carried
//! by [`SshError::CommandTimedOut`](crate::SshError::CommandTimedOut).

use std::fmt;

/// What happened to a timed-out command's remote processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillOutcome {
    /// The group ended after SIGTERM.
    Terminated { pgid: u32 },
    /// The group ignored SIGTERM for the grace period and was sent SIGKILL.
    Killed { pgid: u32 },
    /// The group had already gone when the kill arrived.
    AlreadyGone { pgid: u32 },
    /// No process group was known (verbatim command, or it timed out before starting): only the
    /// channel was closed, and the process may still run.
    ChannelClosedOnly,
    /// The kill exec itself failed; the process may still run.
    KillFailed { pgid: u32, reason: String },
}

impl fmt::Display for KillOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KillOutcome::Terminated { pgid } => {
                write!(f, "remote process group {pgid} ended by SIGTERM")
            }
            KillOutcome::Killed { pgid } => write!(
                f,
                "remote process group {pgid} ignored SIGTERM and was sent SIGKILL"
            ),
            KillOutcome::AlreadyGone { pgid } => {
                write!(f, "remote process group {pgid} had already ended")
            }
            KillOutcome::ChannelClosedOnly => write!(
                f,
                "no remote process group known, channel closed: the process may still run"
            ),
            KillOutcome::KillFailed { pgid, reason } => write!(
                f,
                "killing remote process group {pgid} failed ({reason}): it may still run"
            ),
        }
    }
}
