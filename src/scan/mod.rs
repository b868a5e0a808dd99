//! Scan: find which catalog patches each host lacks, with evidence.
//!
//! `facts` is what one probe round trip learns about a host; `evaluate` is the pure function that
//! turns catalog × facts into verdicts. A host that cannot be scanned gets a [`HostFailure`], kept
//! apart from the results so an unreachable host is never counted as a clean one.

pub mod evaluate;
pub mod facts;
pub mod json;
pub mod legacy;
pub mod pe;
pub mod probe;
pub mod zone;
pub mod products;
pub mod run;

use serde::{Deserialize, Serialize};

use evaluate::Verdict;
use facts::HostFacts;

use crate::remote::RemoteError;

/// Why a host could not be scanned. The scan of every other host goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostFailure {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("authentication failed: {0}")]
    AuthFailed(String),
    #[error("timed out: {0}")]
    TimedOut(String),
    #[error("probe failed: {0}")]
    ProbeFailed(String),
    /// The message names the reference and the host already (`credential env:X for host ...`).
    #[error("{0}")]
    Credential(String),
}

/// The scan's view of a transport failure: the kinds an admin acts on differently (a host that is
/// down, a refused logon, a slow host) keep their own; everything else is the probe failing.
impl From<&RemoteError> for HostFailure {
    fn from(e: &RemoteError) -> Self {
        match e {
            RemoteError::Unreachable(m) => HostFailure::Unreachable(m.clone()),
            RemoteError::AuthFailed(m) => HostFailure::AuthFailed(m.clone()),
            RemoteError::TimedOut(m) => HostFailure::TimedOut(m.clone()),
            other => HostFailure::ProbeFailed(other.to_string()),
        }
    }
}

/// A scanned host: its facts and the verdict on every catalog patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostResult {
    pub facts: HostFacts,
    pub verdicts: Vec<Verdict>,
}

/// One host's line in a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostScan {
    /// The inventory name.
    pub host: String,
    pub result: Result<HostResult, HostFailure>,
}
