//! Reboot control: one `shutdown /r`, then a wait in phases, each with its own timeout and its
//! own `Reboot { phase }` events, so a stuck host says exactly where it is stuck.
//!
//! The boot time is the proof: "wait until it is down, then until it is up" misses a reboot that
//! completes between two polls, and then waits for a down that already happened. Comparing the
//! boot time before and after catches every reboot, fast or slow.

use std::time::{Duration, Instant};

use super::{HostContext, HostVerdict, RebootRecord, Stop, elapsed_ms};
use crate::events::Step;
use crate::remote::{Command, RemoteError};

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
            HostVerdict::Unreachable,
            format!("cannot read the boot time: {e}"),
        )
    })
}

/// Reboot with `shutdown /r /t N` and wait for the host to be back, settled and not pending.
pub(crate) async fn reboot(
    ctx: &mut HostContext<'_>,
    boot_before: &str,
) -> Result<RebootRecord, Stop> {
    let step = Step::Reboot {
        phase: "shutdown".into(),
    };
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
                0 => "ok",
                1190 => "already_scheduled",
                _ => "in_progress",
            };
            ctx.finished(&step, true, word, &format!("exit {}", o.exit_code))?;
        }
        Ok(o) => {
            let why = format!(
                "shutdown /r exited {}: {}",
                o.exit_code,
                o.stderr.lines().next().unwrap_or("").trim()
            );
            let _ = ctx.finished(&step, false, "failed", &why);
            return Err(Stop::new(HostVerdict::RebootFailed, why));
        }
        // The connection may drop as the host goes down: the phases below decide.
        Err(RemoteError::Unreachable(m)) => {
            ctx.finished(&step, true, "connection_dropped", &m)?;
        }
        // Or the reply is lost with the host: the Receive times out, or is resent to a host that
        // already restarted and no longer knows the shell. The boot time decides here too (a
        // host that did not go down ends `did_not_reboot`).
        Err(RemoteError::TimedOut(m) | RemoteError::Failed(m)) => {
            ctx.finished(&step, true, "reply_lost", &m)?;
        }
        Err(e) => {
            let _ = ctx.finished(&step, false, "failed", &e.to_string());
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
    let step = phase_step("down");
    ctx.started(&step)?;
    let deadline = Instant::now() + o.down_timeout;
    let mut seen = "down";
    loop {
        if !port_open(ctx).await {
            break;
        }
        // A host that still accepts TCP but no longer runs commands is going down (a listener
        // can outlive the shell during shutdown).
        match try_state(ctx, o.poll_interval.max(Duration::from_secs(1))).await {
            Ok(s) if crate::scan::facts::boot_time_moved(boot_before, &s.boot) => {
                seen = "rebooted_between_polls";
                break;
            }
            Ok(_) => {}
            Err(_) => {
                ctx.target.disconnect();
                seen = "not_answering";
                break;
            }
        }
        if Instant::now() >= deadline {
            let why = format!(
                "the host never went down and its boot time is still {boot_before} after {:?}",
                o.down_timeout
            );
            let _ = ctx.finished(&step, false, "timed_out", &why);
            return Err(Stop::new(HostVerdict::DidNotReboot, why));
        }
        tokio::time::sleep(o.poll_interval).await;
    }
    ctx.finished(&step, true, seen, "")?;

    // port: WinRM accepts connections again.
    let step = phase_step("port");
    ctx.started(&step)?;
    let deadline = Instant::now() + o.port_timeout;
    while !port_open(ctx).await {
        if Instant::now() >= deadline {
            let why = format!(
                "the host did not come back: {}:{} still refuses after {:?}",
                ctx.host.address, ctx.host.port, o.port_timeout
            );
            let _ = ctx.finished(&step, false, "timed_out", &why);
            return Err(Stop::new(HostVerdict::NeverReturned, why));
        }
        tokio::time::sleep(o.poll_interval).await;
    }
    ctx.finished(&step, true, "open", "")?;

    // login: a command runs and shows a new boot time.
    let step = phase_step("login");
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
            let _ = ctx.finished(&step, false, "timed_out", &why);
            return Err(Stop::new(HostVerdict::NeverReturned, why));
        }
        tokio::time::sleep(o.poll_interval).await;
    };
    ctx.finished(&step, true, "ok", &format!("boot time {}", state.boot))?;
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
    let step = phase_step("settled");
    ctx.started(&step)?;
    let deadline = Instant::now() + o.settle_timeout;
    let mut state = state;
    while state.servicing_busy {
        if Instant::now() >= deadline {
            let why = format!(
                "still configuring updates (CBS RebootPending) {:?} after coming back",
                o.settle_timeout
            );
            let _ = ctx.finished(&step, false, "timed_out", &why);
            return Err(Stop::new(HostVerdict::StillConfiguring, why));
        }
        tokio::time::sleep(o.poll_interval).await;
        if let Ok(s) = state_within(ctx, attempt_budget(deadline, &o)).await {
            state = s;
        }
    }
    ctx.finished(&step, true, "ok", "")?;

    // pending: nothing asks for another reboot.
    let step = phase_step("pending");
    ctx.started(&step)?;
    if !state.pending.is_empty() {
        let why = format!(
            "a reboot is still pending after the reboot: {}",
            state.pending.join(", ")
        );
        let _ = ctx.finished(&step, false, "still_pending", &why);
        return Err(Stop::new(HostVerdict::RebootStillPending, why));
    }
    ctx.finished(&step, true, "none", "")
}

/// How long one probe of a phase that ends at `deadline` may take: the command timeout, but never
/// more than half of what is left (at least one poll interval), so that one attempt that hangs
/// leaves time for another on a new connection before the phase gives up.
fn attempt_budget(deadline: Instant, o: &super::DeployOptions) -> Duration {
    let left = deadline.saturating_duration_since(Instant::now());
    o.command_timeout.min(left / 2).max(o.poll_interval)
}

fn phase_step(phase: &str) -> Step {
    Step::Reboot {
        phase: phase.to_string(),
    }
}

/// Whether the WinRM port accepts a TCP connection (one short try).
async fn port_open(ctx: &HostContext<'_>) -> bool {
    let addr = (ctx.host.address.as_str(), ctx.host.port);
    matches!(
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}
