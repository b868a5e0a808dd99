//! Reboot control: one `shutdown /r`, then a wait in phases, each with its own timeout and its
//! own `Reboot { phase }` events, so a stuck host says exactly where it is stuck.
//!
//! The boot time is the proof: "wait until it is down, then until it is up" misses a reboot that
//! completes between two polls, and then waits for a down that already happened. Comparing the
//! boot time before and after catches every reboot, fast or slow.

use std::time::{Duration, Instant};

use super::{DeployVerdict, HostContext, RebootRecord, Stop, elapsed_ms};
use crate::events::{RebootPhase, Step, StepOutcome};
use crate::inventory::Host;
use crate::remote::{BoxFuture, Command, RemoteError};

/// What the host says about its boot and servicing, from the probe with nothing else asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// Last boot time, as the host reports it (compared for change, never parsed).
    pub boot: String,
    /// Pending-reboot markers that are set.
    pub pending: Vec<String>,
    /// Servicing still busy: CBS `RebootPending` right after a boot ("configuring updates").
    pub servicing_busy: bool,
}

pub(crate) async fn try_state(
    ctx: &mut HostContext<'_>,
    timeout: Duration,
) -> Result<HostState, String> {
    let facts = crate::scan::run::state_probe(&mut *ctx.target, timeout).await?;
    Ok(HostState {
        pending: crate::scan::probe::pending_reboot_names(&facts.pending_reboot),
        servicing_busy: facts.pending_reboot.cbs_reboot_pending,
        boot: facts.last_boot_time,
    })
}

/// The state probe answered within `budget` in all (connect, logon, command and reply), or an
/// error. A host that is starting accepts connections before its WinRM service answers them; a
/// request to it can hang until the client's HTTP timeout (OperationTimeout + 30 s), which held
/// a reboot phase far past its own timeout. The connection of an attempt cut short is dropped, so
/// the next attempt starts afresh.
async fn state_within(ctx: &mut HostContext<'_>, budget: Duration) -> Result<HostState, String> {
    match tokio::time::timeout(budget, try_state(ctx, budget)).await {
        Ok(state) => state,
        Err(_) => {
            ctx.target.disconnect();
            Err(format!("no answer to the state probe within {budget:?}"))
        }
    }
}

/// The host's state now; failing to get it stops the host (nothing has been changed yet, or
/// the installs are done and the reboot cannot be controlled without it).
pub(crate) async fn host_state(ctx: &mut HostContext<'_>) -> Result<HostState, Stop> {
    let timeout = ctx.options.command_timeout;
    try_state(ctx, timeout).await.map_err(|e| {
        Stop::new(
            DeployVerdict::Unreachable,
            format!("cannot read the boot time: {e}"),
        )
    })
}

/// Reboot with `shutdown /r /t N` and wait for the host to be back, settled and not pending.
pub(crate) async fn reboot(
    ctx: &mut HostContext<'_>,
    boot_before: &str,
) -> Result<RebootRecord, Stop> {
    let step = phase_step(RebootPhase::Shutdown);
    ctx.started(&step)?;
    let line = format!(
        "shutdown /r /t {} /c \"hive run {} installed updates\"",
        ctx.options.shutdown_delay_s, ctx.run
    );
    let out = ctx
        .target
        .exec(&Command::Cmd(line), ctx.options.command_timeout)
        .await;
    match out {
        // 1190: one is already scheduled; 1115: one is in progress. Either way it reboots.
        Ok(o) if matches!(o.exit_code, 0 | 1190 | 1115) => {
            let word = match o.exit_code {
                0 => StepOutcome::Ok,
                1190 => StepOutcome::AlreadyScheduled,
                _ => StepOutcome::InProgress,
            };
            ctx.finished(&step, true, word, &format!("exit {}", o.exit_code))?;
        }
        Ok(o) => {
            let why = format!(
                "shutdown /r exited {}: {}",
                o.exit_code,
                o.stderr.lines().next().unwrap_or("").trim()
            );
            let _ = ctx.finished(&step, false, StepOutcome::Failed, &why);
            return Err(Stop::new(DeployVerdict::RebootFailed, why));
        }
        // The connection may drop as the host goes down: the phases below decide.
        Err(RemoteError::Unreachable(m)) => {
            ctx.finished(&step, true, StepOutcome::ConnectionDropped, &m)?;
        }
        // Or the reply is lost with the host: the Receive times out, or is resent to a host that
        // already restarted and no longer knows the shell. The boot time decides here too (a
        // host that did not go down ends `did_not_reboot`).
        Err(RemoteError::TimedOut(m) | RemoteError::Failed(m)) => {
            ctx.finished(&step, true, StepOutcome::ReplyLost, &m)?;
        }
        Err(e) => {
            let _ = ctx.finished(&step, false, StepOutcome::Failed, &e.to_string());
            return Err(Stop::remote(&e));
        }
    }
    wait_for_reboot(ctx, boot_before, "hive").await
}

/// Wait, phase by phase, for a reboot someone started (hive or an installer's 1641).
pub(crate) async fn wait_for_reboot(
    ctx: &mut HostContext<'_>,
    boot_before: &str,
    by: &str,
) -> Result<RebootRecord, Stop> {
    let start = Instant::now();
    ctx.target.disconnect();
    let o = ctx.options.clone();

    // down: the port refuses, or (a reboot faster than the poll) the boot time already moved.
    let step = phase_step(RebootPhase::Down);
    ctx.started(&step)?;
    let deadline = Instant::now() + o.down_timeout;
    let mut seen = StepOutcome::Down;
    loop {
        if !port_open(ctx).await {
            break;
        }
        // A host that still accepts TCP but no longer runs commands is going down (a listener
        // can outlive the shell during shutdown).
        match try_state(ctx, o.poll_interval.max(Duration::from_secs(1))).await {
            Ok(s) if crate::scan::facts::boot_time_moved(boot_before, &s.boot) => {
                seen = StepOutcome::RebootedBetweenPolls;
                break;
            }
            Ok(_) => {}
            Err(_) => {
                ctx.target.disconnect();
                seen = StepOutcome::NotAnswering;
                break;
            }
        }
        if Instant::now() >= deadline {
            let why = format!(
                "the host never went down and its boot time is still {boot_before} after {:?}",
                o.down_timeout
            );
            let _ = ctx.finished(&step, false, StepOutcome::TimedOut, &why);
            return Err(Stop::new(DeployVerdict::DidNotReboot, why));
        }
        tokio::time::sleep(o.poll_interval).await;
    }
    ctx.finished(&step, true, seen, "")?;

    // port: WinRM accepts connections again.
    let step = phase_step(RebootPhase::Port);
    ctx.started(&step)?;
    let deadline = Instant::now() + o.port_timeout;
    while !port_open(ctx).await {
        if Instant::now() >= deadline {
            let why = format!(
                "the host did not come back: {}:{} still refuses after {:?}",
                ctx.host.address, ctx.host.port, o.port_timeout
            );
            let _ = ctx.finished(&step, false, StepOutcome::TimedOut, &why);
            return Err(Stop::new(DeployVerdict::NeverReturned, why));
        }
        tokio::time::sleep(o.poll_interval).await;
    }
    ctx.finished(&step, true, StepOutcome::Open, "")?;

    // login: a command runs and shows a new boot time.
    let step = phase_step(RebootPhase::Login);
    ctx.started(&step)?;
    let deadline = Instant::now() + o.login_timeout;
    let state = loop {
        ctx.target.disconnect();
        let last = match state_within(ctx, attempt_budget(deadline, &o)).await {
            Ok(s) if crate::scan::facts::boot_time_moved(boot_before, &s.boot) => break s,
            Ok(s) => format!("boot time still {}", s.boot),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            let why = format!(
                "no logon with a new boot time after {:?}: {last}",
                o.login_timeout
            );
            let _ = ctx.finished(&step, false, StepOutcome::TimedOut, &why);
            return Err(Stop::new(DeployVerdict::NeverReturned, why));
        }
        tokio::time::sleep(o.poll_interval).await;
    };
    ctx.finished_at_boot(
        &step,
        StepOutcome::Ok,
        &format!("boot time {}", state.boot),
        &state.boot,
    )?;
    let boot_after = state.boot.clone();
    settle_phases(ctx, state).await?;
    Ok(RebootRecord {
        by: by.to_string(),
        boot_before: boot_before.to_string(),
        boot_after: Some(boot_after),
        duration_ms: elapsed_ms(start),
    })
}

/// The last two phases of a reboot, once the host answers with its new boot time: `settled`
/// (servicing finished configuring updates) and `pending` (nothing asks for another reboot).
pub(crate) async fn settle_phases(ctx: &mut HostContext<'_>, state: HostState) -> Result<(), Stop> {
    let o = ctx.options.clone();
    // settled: servicing finished configuring updates.
    let step = phase_step(RebootPhase::Settled);
    ctx.started(&step)?;
    let deadline = Instant::now() + o.settle_timeout;
    let mut state = state;
    while state.servicing_busy {
        if Instant::now() >= deadline {
            let why = format!(
                "still configuring updates (CBS RebootPending) {:?} after coming back",
                o.settle_timeout
            );
            let _ = ctx.finished(&step, false, StepOutcome::TimedOut, &why);
            return Err(Stop::new(DeployVerdict::StillConfiguring, why));
        }
        tokio::time::sleep(o.poll_interval).await;
        if let Ok(s) = state_within(ctx, attempt_budget(deadline, &o)).await {
            state = s;
        }
    }
    ctx.finished(&step, true, StepOutcome::Ok, "")?;

    // pending: nothing asks for another reboot.
    let step = phase_step(RebootPhase::Pending);
    ctx.started(&step)?;
    if !state.pending.is_empty() {
        let why = format!(
            "a reboot is still pending after the reboot: {}",
            state.pending.join(", ")
        );
        let _ = ctx.finished(&step, false, StepOutcome::StillPending, &why);
        return Err(Stop::new(DeployVerdict::RebootStillPending, why));
    }
    ctx.finished(&step, true, StepOutcome::NothingPending, "")
}

/// How long one probe of a phase that ends at `deadline` may take: the command timeout, but never
/// more than half of what is left (at least one poll interval), so that one attempt that hangs
/// leaves time for another on a new connection before the phase gives up.
fn attempt_budget(deadline: Instant, o: &super::DeployOptions) -> Duration {
    let left = deadline.saturating_duration_since(Instant::now());
    o.command_timeout.min(left / 2).max(o.poll_interval)
}

fn phase_step(phase: RebootPhase) -> Step {
    Step::Reboot { phase }
}

/// Whether the host's remote-management port accepts connections: how the `down` and `port`
/// phases see a host go and come back without logging on. A seam of its own (not a [`Target`]
/// call) because it must work while no session to the host can exist.
///
/// [`Target`]: crate::remote::Target
pub trait PortProbe: Send + Sync {
    fn open<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, bool>;
}

/// The real one: a TCP connection to the inventory's address and port (one short try).
pub struct TcpPortProbe;

impl PortProbe for TcpPortProbe {
    fn open<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let addr = (host.address.as_str(), host.port);
            matches!(
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                    .await,
                Ok(Ok(_))
            )
        })
    }
}

async fn port_open(ctx: &HostContext<'_>) -> bool {
    ctx.port.open(ctx.host).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::test_support::Bench;
    use crate::fake::{FakeTarget, RebootScript, Reply};
    use hive_probe::{PROBE_MARKER, PendingReboot};

    fn phases(b: &Bench) -> Vec<(RebootPhase, bool, StepOutcome)> {
        b.ends()
            .into_iter()
            .filter_map(|(step, ok, outcome, _)| match step {
                Step::Reboot { phase } => Some((phase, ok, outcome)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_reboot_waits_for_a_new_boot_time_then_settles() {
        let fake = FakeTarget::new("H1", "B0").reboots(RebootScript {
            configuring_for: 3,
            ..RebootScript::quick("B1")
        });
        let mut b = Bench::new(fake);
        let record = reboot(&mut b.ctx(), "B0").await.expect("rebooted");
        assert_eq!(record.boot_after.as_deref(), Some("B1"));
        assert_eq!(
            (record.by.as_str(), record.boot_before.as_str()),
            ("hive", "B0")
        );
        use RebootPhase::*;
        assert_eq!(
            phases(&b),
            [
                (Shutdown, true, StepOutcome::Ok),
                (Down, true, StepOutcome::Down),
                (Port, true, StepOutcome::Open),
                (Login, true, StepOutcome::Ok),
                (Settled, true, StepOutcome::Ok),
                (Pending, true, StepOutcome::NothingPending),
            ]
        );
        // The logon phase journals the new boot time as a field.
        let login = b
            .ends()
            .into_iter()
            .find(|(s, ..)| *s == Step::Reboot { phase: Login })
            .and_then(|(.., boot)| boot);
        assert_eq!(login.as_deref(), Some("B1"));
        assert_eq!(b.fake.commands_with("shutdown /r").len(), 1);
        assert!(b.all_closed());
    }

    #[tokio::test]
    async fn a_reboot_faster_than_the_poll_is_seen_by_its_boot_time() {
        // The host never refuses its port: the boot time alone shows the reboot.
        let fake = FakeTarget::new("H1", "B0").reboots(RebootScript {
            down_after: 1,
            down_for: Some(0),
            ..RebootScript::quick("B1")
        });
        let mut b = Bench::new(fake);
        reboot(&mut b.ctx(), "B0").await.expect("rebooted");
        assert_eq!(
            phases(&b)[1],
            (RebootPhase::Down, true, StepOutcome::RebootedBetweenPolls)
        );
    }

    #[tokio::test]
    async fn a_host_that_never_goes_down_did_not_reboot() {
        let mut b = Bench::new(FakeTarget::new("H1", "B0"));
        let stop = reboot(&mut b.ctx(), "B0").await.expect_err("no reboot");
        assert_eq!(stop.verdict, DeployVerdict::DidNotReboot, "{}", stop.why);
        assert_eq!(
            phases(&b).last(),
            Some(&(RebootPhase::Down, false, StepOutcome::TimedOut))
        );
        assert!(b.all_closed());
    }

    #[tokio::test]
    async fn a_host_that_never_comes_back_never_returned() {
        let fake = FakeTarget::new("H1", "B0").reboots(RebootScript {
            down_for: None,
            ..RebootScript::quick("B1")
        });
        let mut b = Bench::new(fake);
        let stop = reboot(&mut b.ctx(), "B0").await.expect_err("down for good");
        assert_eq!(stop.verdict, DeployVerdict::NeverReturned, "{}", stop.why);
        assert_eq!(
            phases(&b).last(),
            Some(&(RebootPhase::Port, false, StepOutcome::TimedOut))
        );
    }

    #[tokio::test]
    async fn a_refused_shutdown_fails_the_reboot_and_1190_is_a_scheduled_one() {
        let fake = FakeTarget::new("H1", "B0").on("shutdown", [Reply::exit(5, "")]);
        let mut b = Bench::new(fake);
        let stop = reboot(&mut b.ctx(), "B0").await.expect_err("refused");
        assert_eq!(stop.verdict, DeployVerdict::RebootFailed);

        let fake = FakeTarget::new("H1", "B0")
            .on("shutdown", [Reply::exit(1190, "")])
            .reboots(RebootScript::quick("B1"));
        let mut b = Bench::new(fake);
        reboot(&mut b.ctx(), "B0").await.expect("rebooted");
        assert_eq!(
            phases(&b)[0],
            (RebootPhase::Shutdown, true, StepOutcome::AlreadyScheduled)
        );
    }

    #[tokio::test]
    async fn a_connection_dropped_by_the_shutdown_is_not_a_failure() {
        let fake = FakeTarget::new("H1", "B0")
            .on(
                "shutdown",
                [Reply::Error(RemoteError::Unreachable("reset".into()))],
            )
            .reboots(RebootScript::quick("B1"));
        let mut b = Bench::new(fake);
        reboot(&mut b.ctx(), "B0").await.expect("rebooted");
        assert_eq!(
            phases(&b)[0],
            (RebootPhase::Shutdown, true, StepOutcome::ConnectionDropped)
        );
    }

    #[tokio::test]
    async fn a_logon_that_hangs_is_cut_off_and_tried_again() {
        // The host accepts connections before its WinRM service answers: the first state probe
        // after the port opens hangs. The attempt budget cuts it off within the login phase.
        let fake = FakeTarget::new("H1", "B0")
            .reboots(RebootScript::quick("B1"))
            .on(PROBE_MARKER, [Reply::Hang, Reply::Normal]);
        let mut b = Bench::new(fake);
        b.options.down_timeout = std::time::Duration::from_secs(5);
        b.options.login_timeout = std::time::Duration::from_secs(5);
        b.options.command_timeout = std::time::Duration::from_millis(50);
        let started = std::time::Instant::now();
        reboot(&mut b.ctx(), "B0").await.expect("rebooted");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[tokio::test]
    async fn servicing_that_never_settles_and_a_pending_reboot_are_named() {
        let fake = FakeTarget::new("H1", "B0").reboots(RebootScript {
            configuring_for: u64::MAX / 2,
            ..RebootScript::quick("B1")
        });
        let mut b = Bench::new(fake);
        let stop = reboot(&mut b.ctx(), "B0").await.expect_err("busy");
        assert_eq!(
            stop.verdict,
            DeployVerdict::StillConfiguring,
            "{}",
            stop.why
        );

        let fake = FakeTarget::new("H1", "B0").reboots(RebootScript {
            pending_after: PendingReboot {
                pending_file_renames: true,
                ..PendingReboot::default()
            },
            ..RebootScript::quick("B1")
        });
        let mut b = Bench::new(fake);
        let stop = reboot(&mut b.ctx(), "B0").await.expect_err("pending");
        assert_eq!(
            stop.verdict,
            DeployVerdict::RebootStillPending,
            "{}",
            stop.why
        );
        assert_eq!(
            phases(&b).last(),
            Some(&(RebootPhase::Pending, false, StepOutcome::StillPending))
        );
    }
}
