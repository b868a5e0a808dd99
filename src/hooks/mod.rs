//! Hooks: commands an admin runs around hive's work, per group (`[group.NAME.hooks]`).
//!
//! - `pre_host` / `post_host`: cmd.exe command lines on the host, through the same command
//!   channel hive installs with (stop an application service, clear a queue, start it again);
//! - `pre_host_local` / `post_host_local`: commands on this machine with the host's name and
//!   address in `HIVE_HOST_NAME` / `HIVE_HOST_ADDRESS` (drain it from a load balancer, undrain);
//! - `pre_wave` / `post_wave`: commands on this machine around each wave.
//!
//! Each hook has a timeout (`timeout`, 5 minutes by default); on timeout a local hook's whole
//! process group is killed. Output goes to the host's log (`logs/<host>.log`) and, shortened,
//! into the journal step's detail. A failed pre hook skips the host: nothing is installed. A
//! failed post hook marks the host failed, with the hook's evidence.
//!
//! Host hooks are journaled steps ([`Step::Hook`]): after a crash, `hive resume` knows which pre
//! hooks are in effect and does not run them again, and runs their post hooks even when the
//! install failed — a drained server must not stay drained. A post hook runs when its pre hook
//! ran (or when no pre hook of its kind is declared); a pre hook that failed is not undone.

pub mod local;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::events::{HookPoint, Step, StepOutcome};
use crate::inventory::{GroupPolicy, GroupSettings, HookSettings, Host, Secret};
use crate::remote::{BoxFuture, Command, Connector};
use crate::repo::Repository;
use crate::rollout::{
    HostJob, HostOutcome, HostVerdict, JobContext, Wave, WaveHooks, parse_duration,
};

/// How long a hook may run when its group does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How much of a hook's output the journal keeps (the host's log keeps all of it).
const DETAIL_CHARS: usize = 400;

/// A hook setting that cannot be used, naming where it is.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("inventory {layer}, `hooks.{field}`: {message}")]
pub struct HookError {
    pub layer: String,
    pub field: &'static str,
    pub message: String,
}

/// One resolved hook: the command, where it was declared, its timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub command: String,
    /// `[group.web]` or `[group_defaults]`.
    pub from: String,
    pub timeout: Duration,
}

/// A host's hooks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostHooks {
    pub host: BTreeMap<HookPoint, Hook>,
    pub pre_wave: Option<Hook>,
    pub post_wave: Option<Hook>,
}

fn layer_name(group: Option<&str>) -> String {
    match group {
        Some(g) => format!("[group.{g}]"),
        None => "[group_defaults]".to_string(),
    }
}

fn commands(h: &HookSettings) -> [(&'static str, &Option<String>); 6] {
    [
        ("pre_host", &h.pre_host),
        ("post_host", &h.post_host),
        ("pre_host_local", &h.pre_host_local),
        ("post_host_local", &h.post_host_local),
        ("pre_wave", &h.pre_wave),
        ("post_wave", &h.post_wave),
    ]
}

fn check_layer(group: Option<&str>, s: &GroupSettings) -> Result<(), HookError> {
    let Some(h) = &s.hooks else { return Ok(()) };
    let fail = |field, message: String| HookError {
        layer: layer_name(group),
        field,
        message,
    };
    if let Some(t) = &h.timeout {
        let d = parse_duration(t).map_err(|m| fail("timeout", m))?;
        if d.is_zero() {
            return Err(fail(
                "timeout",
                "a hook needs some time: give more than 0".into(),
            ));
        }
    }
    for (field, cmd) in commands(h) {
        if cmd.as_ref().is_some_and(|c| c.trim().is_empty()) {
            return Err(fail(
                field,
                "an empty command: remove the field to have no hook".into(),
            ));
        }
        if let Some(c) = cmd
            && c.contains('\n')
        {
            return Err(fail(field, "one command line, please (no newline)".into()));
        }
    }
    Ok(())
}

/// Every host's hooks, resolved through the layers of `policy`.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    by_host: BTreeMap<String, Arc<HostHooks>>,
}

impl Hooks {
    /// Check every layer, then resolve each hook (and its timeout) of each host on its own.
    pub fn resolve(policy: &GroupPolicy, hosts: &[Host]) -> Result<Hooks, HookError> {
        check_layer(None, &policy.defaults)?;
        for (g, s) in &policy.groups {
            check_layer(Some(g), s)?;
        }
        let mut by_host = BTreeMap::new();
        for h in hosts {
            // Which layer declares a field, by name, for the error messages.
            let named: Vec<(String, &GroupSettings)> = h
                .groups
                .iter()
                .filter_map(|g| policy.groups.get(g).map(|s| (layer_name(Some(g)), s)))
                .chain(std::iter::once((layer_name(None), &policy.defaults)))
                .collect();
            let timeout = named
                .iter()
                .find_map(|(_, s)| s.hooks.as_ref()?.timeout.as_ref())
                .and_then(|t| parse_duration(t).ok())
                .unwrap_or(DEFAULT_TIMEOUT);
            let find = |pick: fn(&HookSettings) -> &Option<String>| {
                named.iter().find_map(|(name, s)| {
                    let c = pick(s.hooks.as_ref()?).as_ref()?;
                    Some(Hook {
                        command: c.trim().to_string(),
                        from: name.clone(),
                        timeout,
                    })
                })
            };
            let mut host = BTreeMap::new();
            for (point, pick) in [
                (
                    HookPoint::PreHostLocal,
                    (|h| &h.pre_host_local) as fn(&HookSettings) -> &Option<String>,
                ),
                (HookPoint::PreHost, |h| &h.pre_host),
                (HookPoint::PostHost, |h| &h.post_host),
                (HookPoint::PostHostLocal, |h| &h.post_host_local),
            ] {
                if let Some(hook) = find(pick) {
                    host.insert(point, hook);
                }
            }
            let hooks = HostHooks {
                host,
                pre_wave: find(|h| &h.pre_wave),
                post_wave: find(|h| &h.post_wave),
            };
            by_host.insert(h.name.clone(), Arc::new(hooks));
        }
        Ok(Hooks { by_host })
    }

    pub fn of(&self, host: &str) -> Option<&Arc<HostHooks>> {
        self.by_host.get(host)
    }

    /// Does any host have a host hook?
    pub fn any_host_hooks(&self) -> bool {
        self.by_host.values().any(|h| !h.host.is_empty())
    }

    /// Does any host have a wave hook?
    pub fn any_wave_hooks(&self) -> bool {
        self.by_host
            .values()
            .any(|h| h.pre_wave.is_some() || h.post_wave.is_some())
    }
}

/// Where `pre_host` / `post_host` run: the host's command channel.
pub trait HookTarget: Send + Sync + 'static {
    /// Run `command` on `host`; the exit code and output, or why it could not run.
    fn exec(
        &self,
        host: &str,
        command: Command,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(i32, String), String>>;
}

/// Remote hooks through a [`Connector`] (the network, or the demo's simulated hosts).
pub struct ConnectorTarget {
    pub hosts: BTreeMap<String, (Host, Result<Secret, String>)>,
    pub connector: Arc<dyn Connector>,
}

impl HookTarget for Arc<ConnectorTarget> {
    fn exec(
        &self,
        host: &str,
        command: Command,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(i32, String), String>> {
        let me = self.clone();
        let host = host.to_string();
        Box::pin(async move {
            let (h, secret) = me
                .hosts
                .get(&host)
                .ok_or_else(|| format!("{host} is not in the inventory"))?;
            let secret = secret.as_ref().map_err(|e| e.clone())?;
            let mut target = me.connector.open(h, secret).map_err(|e| e.to_string())?;
            let out = target
                .exec(&command, timeout)
                .await
                .map_err(|e| e.to_string())?;
            let mut text = out.stdout;
            text.push_str(&out.stderr);
            Ok((out.exit_code as i32, text))
        })
    }
}

/// The last `n` characters of `text`, on one line, for a journal detail.
fn tail(text: &str, n: usize) -> String {
    let flat: String = text
        .trim()
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let count = flat.chars().count();
    if count <= n {
        flat
    } else {
        format!("...{}", flat.chars().skip(count - n).collect::<String>())
    }
}

/// The deploy job with host hooks around it.
pub struct HookedJob {
    pub inner: Arc<dyn HostJob>,
    pub hooks: Hooks,
    /// Host names → (address, groups) for the local hooks' environment.
    pub hosts: BTreeMap<String, Host>,
    pub remote: Arc<dyn HookTarget>,
    /// Where hook output is kept (`logs/<host>.log`).
    pub repo: Option<Repository>,
}

impl HookedJob {
    fn env(&self, ctx: &JobContext, point: HookPoint) -> Vec<(String, String)> {
        let mut env = vec![
            ("HIVE_RUN".to_string(), ctx.run.clone()),
            ("HIVE_HOOK".to_string(), point.field().to_string()),
            ("HIVE_WAVE".to_string(), ctx.wave.to_string()),
            ("HIVE_HOST_NAME".to_string(), ctx.host.clone()),
        ];
        if let Some(h) = self.hosts.get(&ctx.host) {
            env.push(("HIVE_HOST_ADDRESS".to_string(), h.address.clone()));
            env.push((
                "HIVE_HOST_GROUPS".to_string(),
                h.groups.iter().cloned().collect::<Vec<_>>().join(","),
            ));
        }
        env
    }

    /// Run one host hook as a journaled step. `Err` is its evidence.
    async fn run_hook(
        &self,
        ctx: &JobContext,
        point: HookPoint,
        hook: &Hook,
    ) -> Result<(), String> {
        let step = Step::Hook { hook: point };
        ctx.started(step.clone())
            .map_err(|e| format!("journal: {e}"))?;
        let local = matches!(point, HookPoint::PreHostLocal | HookPoint::PostHostLocal);
        let result = if local {
            local::run(&hook.command, &self.env(ctx, point), hook.timeout)
                .await
                .map(|r| (r.code.unwrap_or(-1), r.output))
        } else {
            let cmd = Command::Cmd(hook.command.clone());
            match tokio::time::timeout(
                hook.timeout + Duration::from_secs(5),
                self.remote.exec(&ctx.host, cmd, hook.timeout),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "no end within {}",
                    crate::rollout::format_duration(hook.timeout)
                )),
            }
        };
        let (ok, outcome, detail, output) = match &result {
            Ok((0, out)) => (true, StepOutcome::Ok, "exit 0".to_string(), out.clone()),
            Ok((code, out)) => (
                false,
                StepOutcome::Failed,
                format!("exit {code}"),
                out.clone(),
            ),
            Err(e) if e.starts_with("no end within") => {
                (false, StepOutcome::TimedOut, e.clone(), String::new())
            }
            Err(e) => (false, StepOutcome::Failed, e.clone(), String::new()),
        };
        if let Some(repo) = &self.repo {
            let mut line = format!("hook {point} ({}) `{}`: {detail}", hook.from, hook.command);
            for l in output.lines() {
                line.push_str("\n  | ");
                line.push_str(l);
            }
            let _ = repo.append_host_log(&ctx.host, &line);
        }
        let text = if output.trim().is_empty() {
            detail.clone()
        } else {
            format!("{detail}; output: {}", tail(&output, DETAIL_CHARS))
        };
        ctx.finished(step, ok, outcome, &text)
            .map_err(|e| format!("journal: {e}"))?;
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{point} hook `{}` ({}): {text}",
                hook.command, hook.from
            ))
        }
    }

    async fn run_host(self: Arc<Self>, ctx: JobContext) -> HostOutcome {
        let hooks = match self.hooks.of(&ctx.host) {
            Some(h) if !h.host.is_empty() => h.clone(),
            _ => return self.inner.run(ctx).await,
        };
        // Hook steps a crash left open are closed here; the inner job settles its own.
        let mut inner_ctx = ctx.clone();
        for step in &ctx.resume.open_steps {
            if matches!(step, Step::Hook { .. })
                && let Err(e) = ctx.finished(
                    step.clone(),
                    false,
                    StepOutcome::Interrupted,
                    "hive stopped during this hook (Ctrl-C, crash or kill); resumed",
                )
            {
                return HostOutcome::new(HostVerdict::Failed, format!("journal: {e}"));
            }
        }
        inner_ctx
            .resume
            .open_steps
            .retain(|s| !matches!(s, Step::Hook { .. }));
        if matches!(inner_ctx.resume.interrupted, Some(Step::Hook { .. })) {
            inner_ctx.resume.interrupted = None;
        }

        // Pre hooks: those a resumed run finds in effect have done their work already.
        let mut in_effect: Vec<HookPoint> = Vec::new();
        let mut early: Option<HostOutcome> = None;
        for point in [HookPoint::PreHostLocal, HookPoint::PreHost] {
            let Some(hook) = hooks.host.get(&point) else {
                continue;
            };
            if ctx.resume.hooks_in_effect.get(&point) == Some(&true) {
                in_effect.push(point);
                continue;
            }
            if ctx.stop.is_stopped() {
                early = Some(HostOutcome::new(
                    HostVerdict::Interrupted,
                    "stopped before its pre hooks ran",
                ));
                break;
            }
            match self.run_hook(&ctx, point, hook).await {
                Ok(()) => in_effect.push(point),
                Err(e) => {
                    early = Some(HostOutcome::new(
                        HostVerdict::Skipped,
                        format!("nothing installed: {e}"),
                    ));
                    break;
                }
            }
        }
        let worked = early.is_none();
        let mut outcome = match early {
            Some(o) => o,
            None => self.inner.run(inner_ctx).await,
        };
        if ctx.stop.is_aborted() {
            return outcome;
        }

        // Post hooks, innermost first: on the host, then on this machine.
        for point in [HookPoint::PostHost, HookPoint::PostHostLocal] {
            let Some(hook) = hooks.host.get(&point) else {
                continue;
            };
            let pre = point.undoes().filter(|p| hooks.host.contains_key(p));
            let due = match pre {
                Some(p) => in_effect.contains(&p),
                None => worked,
            };
            if !due {
                continue;
            }
            if let Err(e) = self.run_hook(&ctx, point, hook).await {
                // The host's state is unknown after a failed post hook: not healthy.
                outcome = match outcome.verdict {
                    HostVerdict::Failed | HostVerdict::Unreachable => {
                        HostOutcome::new(outcome.verdict, format!("{}; then {e}", outcome.detail))
                    }
                    _ => HostOutcome::new(
                        HostVerdict::Failed,
                        format!("{e} (after: {})", outcome.detail),
                    ),
                };
            }
        }
        outcome
    }
}

impl HostJob for Arc<HookedJob> {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, HostOutcome> {
        Box::pin(self.clone().run_host(ctx))
    }
}

/// `pre_wave` / `post_wave` of the hosts in each wave, each distinct command once.
pub struct WaveHookRunner {
    pub hooks: Hooks,
}

impl WaveHookRunner {
    fn run(
        &self,
        run: &str,
        wave: &Wave,
        pick: fn(&HostHooks) -> &Option<Hook>,
        name: &'static str,
        gate: Option<&str>,
    ) -> BoxFuture<'static, Result<String, String>> {
        let mut todo: Vec<Hook> = Vec::new();
        for h in &wave.hosts {
            if let Some(hook) = self.hooks.of(h).and_then(|hh| pick(hh).clone())
                && !todo.iter().any(|t| t.command == hook.command)
            {
                todo.push(hook);
            }
        }
        let mut env = vec![
            ("HIVE_RUN".to_string(), run.to_string()),
            ("HIVE_HOOK".to_string(), name.to_string()),
            ("HIVE_WAVE".to_string(), wave.index.to_string()),
            ("HIVE_WAVE_NAME".to_string(), wave.name.clone()),
            ("HIVE_WAVE_HOSTS".to_string(), wave.hosts.join(",")),
        ];
        if let Some(g) = gate {
            env.push(("HIVE_WAVE_GATE".to_string(), g.to_string()));
        }
        Box::pin(async move {
            let mut said = Vec::new();
            for hook in todo {
                let r = local::run(&hook.command, &env, hook.timeout).await;
                let what = format!("{name} hook `{}` ({})", hook.command, hook.from);
                match r {
                    Ok(local::LocalRun {
                        code: Some(0),
                        output,
                    }) => said.push(format!(
                        "{what}: exit 0; output: {}",
                        tail(&output, DETAIL_CHARS)
                    )),
                    Ok(r) => {
                        return Err(format!(
                            "{what}: exit {}; output: {}",
                            r.code.map_or("by a signal".to_string(), |c| c.to_string()),
                            tail(&r.output, DETAIL_CHARS)
                        ));
                    }
                    Err(e) => return Err(format!("{what}: {e}")),
                }
            }
            Ok(said.join("; "))
        })
    }
}

impl WaveHooks for WaveHookRunner {
    fn before(&self, run: &str, wave: &Wave) -> BoxFuture<'static, Result<String, String>> {
        self.run(run, wave, |h| &h.pre_wave, "pre_wave", None)
    }
    fn after(
        &self,
        run: &str,
        wave: &Wave,
        gate: &str,
    ) -> BoxFuture<'static, Result<String, String>> {
        self.run(run, wave, |h| &h.post_wave, "post_wave", Some(gate))
    }
}

#[cfg(test)]
mod tests;
