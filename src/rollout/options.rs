//! The options of a run, written into the journal's header so a resume uses the same ones.

use serde::{Deserialize, Serialize};

use super::plan::Limit;

/// Options of a run, recorded in the journal's header so a resume uses the same ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutOptions {
    /// Hosts in flight at once, across the whole run.
    pub parallel: usize,
    /// Default per-wave budgets for percentage waves (canary waves default to 0).
    pub max_failed_per_wave: Option<Limit>,
    pub max_unreachable_per_wave: Option<Limit>,
    /// Budgets over the whole run (of all its hosts).
    pub max_failed_total: Option<Limit>,
    pub max_unreachable_total: Option<Limit>,
    /// Stop after the canary waves until `hive rollout promote <run>`.
    pub pause_after_canary: bool,
    /// A job running longer than this is abandoned and the host counted failed.
    pub host_timeout_ms: Option<u64>,
}

impl Default for RolloutOptions {
    fn default() -> Self {
        RolloutOptions {
            parallel: 16,
            max_failed_per_wave: None,
            max_unreachable_per_wave: None,
            max_failed_total: None,
            max_unreachable_total: None,
            pause_after_canary: false,
            host_timeout_ms: None,
        }
    }
}
