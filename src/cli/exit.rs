//! How `hive` ends: the exit codes are a contract with the scripts and schedulers that run it, so
//! each outcome a script must tell apart has its own code. The table below is printed by
//! `hive --help` and copied verbatim into the README (a test keeps the two equal).

use hive::rollout::{StopReason, Summary};

/// What a command came to, as its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done: every host (of the run, of the scan) is where it should be.
    Done,
    /// An error before or outside a run (bad inventory, repository, catalog; the network), or one
    /// that ended it (its journal could not be written).
    Error,
    /// Usage: a bad flag or value (clap's message names it).
    Usage,
    /// A failure budget or the canary gate stopped the run before its last wave.
    Stopped,
    /// The run (or the scan) reached its end, but some hosts failed or could not be reached.
    HostsFailed,
    /// The run paused after its canaries, as asked (`hive promote` releases it), or outside its
    /// hosts' maintenance windows (`hive resume` continues it).
    Paused,
    /// Ctrl-C: no new host started; `hive resume` continues the run.
    Interrupted,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Error => 1,
            Outcome::Usage => 2,
            Outcome::Stopped => 3,
            Outcome::HostsFailed => 4,
            Outcome::Paused => 5,
            Outcome::Interrupted => 130,
        }
    }

    /// The end of a rollout, deploy or resume.
    pub fn of_run(summary: &Summary) -> Outcome {
        match &summary.stop {
            None => {
                let c = summary.counts();
                if c.failed + c.unhealthy + c.unreachable + c.reboot_loop + c.withheld > 0 {
                    Outcome::HostsFailed
                } else {
                    Outcome::Done
                }
            }
            Some(StopReason::WaveBudget { .. })
            | Some(StopReason::TotalBudget { .. })
            | Some(StopReason::CanaryGate { .. })
            | Some(StopReason::Hook { .. })
            | Some(StopReason::HealthGate { .. }) => Outcome::Stopped,
            Some(StopReason::Paused { .. }) | Some(StopReason::Window { .. }) => Outcome::Paused,
            Some(StopReason::Operator) | Some(StopReason::Interrupted) => Outcome::Interrupted,
            Some(StopReason::Journal { .. }) => Outcome::Error,
        }
    }

    /// A scan (or a dry run): every host scanned, or not.
    pub fn of_hosts(all_reached: bool) -> Outcome {
        if all_reached {
            Outcome::Done
        } else {
            Outcome::HostsFailed
        }
    }
}

/// The exit-code table of `hive --help` and of the README.
pub const EXIT_CODES: &str = "\
Exit codes:
  0    done: every host is patched, up to date or scanned
  1    error before or outside a run (inventory, repository, catalog, network), or a journal
       that could not be written
  2    usage: a bad flag or value
  3    a failure budget, the canary gate, a host unhealthy during a soak or a failed wave
       hook stopped the run before its last wave
  4    the run (or scan) reached its end, but some hosts failed, were unhealthy, were
       unreachable or stuck in a reboot loop
  5    the run paused after its canaries (--pause-after-canary): `hive promote RUN`, then
       `hive resume RUN`; or outside its hosts' maintenance windows: `hive resume RUN` in
       the next window (or run with --wait-for-window)
  130  interrupted by Ctrl-C: no new host started; `hive resume RUN` continues the run
";

#[cfg(test)]
mod tests {
    use super::*;
    use hive::journal::RunState;
    use hive::rollout::{HostLine, HostVerdict};

    fn summary(stop: Option<StopReason>, verdicts: &[Option<HostVerdict>]) -> Summary {
        Summary {
            run: "r1".into(),
            state: RunState::Finished,
            stop,
            elapsed_ms: 0,
            waves: Vec::new(),
            hosts: verdicts
                .iter()
                .enumerate()
                .map(|(n, v)| HostLine {
                    host: format!("h{n}"),
                    wave: 0,
                    verdict: *v,
                    detail: String::new(),
                    ms: 0,
                    withheld: false,
                })
                .collect(),
            withheld: Vec::new(),
        }
    }

    #[test]
    fn each_way_a_run_ends_has_its_own_code() {
        let ok = [Some(HostVerdict::Patched), Some(HostVerdict::NothingToDo)];
        let cases = [
            (summary(None, &ok), 0),
            (summary(None, &[Some(HostVerdict::Skipped)]), 0),
            (
                summary(
                    None,
                    &[Some(HostVerdict::Patched), Some(HostVerdict::Failed)],
                ),
                4,
            ),
            (summary(None, &[Some(HostVerdict::Unreachable)]), 4),
            (
                summary(
                    Some(StopReason::WaveBudget {
                        wave: "10%".into(),
                        kind: "failed".into(),
                        count: 2,
                        allowed: 1,
                    }),
                    &[Some(HostVerdict::Failed), None],
                ),
                3,
            ),
            (
                summary(
                    Some(StopReason::TotalBudget {
                        kind: "failed".into(),
                        count: 2,
                        allowed: 1,
                    }),
                    &ok,
                ),
                3,
            ),
            (
                summary(
                    Some(StopReason::CanaryGate {
                        wave: "canary".into(),
                        detail: "1 failed".into(),
                    }),
                    &ok,
                ),
                3,
            ),
            (
                summary(Some(StopReason::Paused { run: "r1".into() }), &[None]),
                5,
            ),
            (
                summary(
                    Some(StopReason::Operator),
                    &[Some(HostVerdict::Interrupted)],
                ),
                130,
            ),
            (
                summary(
                    Some(StopReason::Interrupted),
                    &[Some(HostVerdict::Interrupted)],
                ),
                130,
            ),
            (
                summary(
                    Some(StopReason::Journal {
                        error: "disk full".into(),
                    }),
                    &ok,
                ),
                1,
            ),
        ];
        for (s, code) in cases {
            assert_eq!(Outcome::of_run(&s).code(), code, "{:?}", s.stop);
        }
    }

    #[test]
    fn the_table_lists_every_code_once() {
        let all = [
            Outcome::Done,
            Outcome::Error,
            Outcome::Usage,
            Outcome::Stopped,
            Outcome::HostsFailed,
            Outcome::Paused,
            Outcome::Interrupted,
        ];
        let codes: std::collections::BTreeSet<u8> = all.iter().map(|o| o.code()).collect();
        assert_eq!(codes.len(), all.len(), "two outcomes share a code");
        let listed: Vec<u8> = EXIT_CODES
            .lines()
            .filter_map(|l| l.strip_prefix("  ")?.split(' ').next()?.parse().ok())
            .collect();
        assert_eq!(listed, codes.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn the_readme_shows_the_same_table() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(EXIT_CODES),
            "README.md must contain the exit-code table of src/cli/exit.rs verbatim"
        );
    }
}
