//! Rollout: canary hosts first, then the fleet in waves, with gates between waves, failure budgets,
//! a bound on hosts in flight, and a journal that lets a stopped run resume where it was.
//!
//! The per-host work is a [`HostJob`]: given a host, what an earlier attempt already did there
//! ([`ResumeState`]) and an event sink, it returns a [`HostOutcome`]. Deploy plugs its
//! stage → install → reboot → verify pipeline in here; tests plug in simulated hosts. The rollout
//! itself never talks to a host, except through an optional [`HealthCheck`].
//!
//! Stopping is cooperative: when a budget is exceeded (or the operator presses Ctrl-C) no new host
//! starts and the [`StopFlag`] every job holds is raised, so in-flight jobs end after the step they
//! are in — an installer is never cut off halfway by hive unless the operator asks for it twice.
//!
//! By job: [`plan`] (the plan language, waves), [`options`], [`verdict`] (how a host ended),
//! [`job`] (the seam to the per-host work), [`stop`] (stop reasons, Ctrl-C), [`budget`] (budgets
//! and the canary gate), [`change`] (maintenance windows and wave hooks, as the engine sees
//! them), [`engine`] (runs it all), [`summary`] (the end of a run and its
//! watchers), [`journal`] (the durable record; the rollout is its only writer), [`report`]
//! (`hive report`, from the journal alone).

pub mod budget;
pub mod change;
pub mod engine;
pub mod health;
pub mod evidence;
pub mod job;
pub mod journal;
pub mod options;
pub mod plan;
pub mod preflight;
pub mod quarantine;
pub mod report;
pub(crate) mod soak;
pub mod stop;
pub mod summary;
pub mod verdict;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod window_tests;
#[cfg(test)]
mod quarantine_tests;

pub use change::WaveHooks;
pub use engine::{Rollout, RolloutError, plan_waves, promote};
pub use evidence::{HostEvidence, PatchEvidence};
pub use health::{InventoryHealth, InventoryHealthCheck};
pub use job::{CommandHealth, HealthCheck, HostJob, JobContext};
pub use journal::ResumeState;
pub use options::RolloutOptions;
pub use plan::{Limit, PlanError, Stage, Wave, format_duration, parse_duration, parse_plan};
pub use stop::{StopFlag, StopReason, stop_on_ctrl_c};
pub use summary::{HostHealth, HostLine, Quiet, RunWatcher, SoakStatus, Summary, WaveLine};
pub use verdict::{HostCounts, HostOutcome, HostVerdict};
