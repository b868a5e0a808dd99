//! Health checks: is a host still doing its job after its patches? The inventory declares the
//! checks per group ([`crate::inventory::health`]); this module runs them against one host and
//! returns a [`HealthReport`] whose evidence an admin can act on ("service W3SVC: state 1 STOPPED,
//! expected RUNNING").
//!
//! Checks through the host (`service`, `eventlog`, `command`) go over the host's [`Target`] as
//! cmd.exe lines (sc.exe, wevtutil), which need no PowerShell and answer in numbers and XML rather
//! than localised text. Checks from the orchestrator (`port`, `http`) use the network, as the
//! host's users do. Each check is retried after its settle delay before it counts as failed:
//! services start late after a boot.
//!
//! A `service` check also compares the start type with the one recorded before the patches
//! ([`record_baseline`]): a patch that leaves IIS running but set to Manual has broken the next
//! boot, not this one.

pub mod eventlog;
pub mod net;
pub mod service;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::inventory::{CheckKind, HealthCheckSpec, Host};
use crate::remote::{Command, RemoteError, Target};

/// What the host looked like before anything was installed: the start type of every service a
/// check names (by lower-cased service name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    pub start_types: BTreeMap<String, String>,
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// `service W3SVC`, `port 443`...
    pub check: String,
    pub healthy: bool,
    /// What was seen (the last attempt's, when all failed).
    pub evidence: String,
    /// Attempts made (1 when the first one passed).
    pub attempts: u32,
}

/// Every check of one host, in the order the inventory declares them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthReport {
    pub host: String,
    pub results: Vec<CheckResult>,
}

impl HealthReport {
    /// Every check passed (a host with no checks is healthy).
    pub fn healthy(&self) -> bool {
        self.results.iter().all(|r| r.healthy)
    }

    /// One line: the failed checks with their evidence, or what passed.
    pub fn summary(&self) -> String {
        let failed: Vec<String> = self
            .results
            .iter()
            .filter(|r| !r.healthy)
            .map(|r| format!("{}: {}", r.check, r.evidence))
            .collect();
        if failed.is_empty() {
            format!("{} check(s) passed", self.results.len())
        } else {
            failed.join("; ")
        }
    }
}

/// Reads the start type of every service the checks name, before anything is installed. A
/// service that cannot be read now is left out (its check then reports the start type
/// unrecorded rather than changed).
pub async fn record_baseline(checks: &[HealthCheckSpec], target: &mut dyn Target) -> Baseline {
    let mut baseline = Baseline::default();
    for c in checks {
        if let CheckKind::Service(name) = &c.kind
            && let Ok(out) = target.exec(&service::config_command(name), c.timeout).await
            && out.exit_code == 0
            && let Some(start) = service::parse_start_type(&out.stdout)
        {
            baseline
                .start_types
                .insert(name.to_ascii_lowercase(), start);
        }
    }
    baseline
}

/// Runs `checks` on `host` (through `target` for those that run on the host), each with its
/// retries and settle delay, and reports every one. Never fails: a check that cannot be made is
/// an unhealthy result with the reason as evidence.
pub async fn run_checks(
    host: &Host,
    checks: &[HealthCheckSpec],
    target: &mut dyn Target,
    baseline: &Baseline,
) -> HealthReport {
    let mut results = Vec::new();
    for c in checks {
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            let r = attempt(host, c, target, baseline).await;
            if r.is_ok() || attempts > c.retries {
                break r;
            }
            tokio::time::sleep(c.settle).await;
        };
        let (healthy, evidence) = match result {
            Ok(e) => (true, e),
            Err(e) => (false, e),
        };
        results.push(CheckResult {
            check: c.kind.label(),
            healthy,
            evidence,
            attempts,
        });
    }
    HealthReport {
        host: host.name.clone(),
        results,
    }
}

/// One attempt of one check: `Ok(evidence)` when healthy.
async fn attempt(
    host: &Host,
    c: &HealthCheckSpec,
    target: &mut dyn Target,
    baseline: &Baseline,
) -> Result<String, String> {
    match &c.kind {
        CheckKind::Port(p) => net::port(&host.address, *p, c.timeout).await,
        CheckKind::Http {
            url,
            status,
            body,
            insecure_tls,
        } => {
            let url = net::expand_url(url, host);
            net::http(&url, *status, body.as_deref(), *insecure_tls, c.timeout).await
        }
        CheckKind::Service(name) => check_service(name, c.timeout, target, baseline).await,
        CheckKind::EventLog {
            log,
            level,
            sources,
        } => {
            let out = exec(target, &eventlog::command(log, *level, sources), c.timeout).await?;
            if out.exit_code != 0 {
                return Err(format!(
                    "wevtutil could not read the {log} log (exit {}): {}",
                    out.exit_code,
                    first_line(&out.stderr, &out.stdout)
                ));
            }
            let events = eventlog::parse_events(&out.stdout)?;
            let found = eventlog::since_boot(&events);
            match found.first() {
                None => Ok(format!("no matching {log} event since the last boot")),
                Some(newest) => Err(format!(
                    "{} matching {log} event(s) since the last boot, newest: {}",
                    found.len(),
                    newest.describe()
                )),
            }
        }
        CheckKind::Command(line) => {
            let out = exec(target, &Command::Cmd(line.clone()), c.timeout).await?;
            let output = kept_output(&out.stdout, &out.stderr);
            if out.exit_code == 0 {
                Ok(format!("exit 0: {output}"))
            } else {
                Err(format!("exit {}: {output}", out.exit_code))
            }
        }
    }
}

async fn check_service(
    name: &str,
    timeout: Duration,
    target: &mut dyn Target,
    baseline: &Baseline,
) -> Result<String, String> {
    let out = exec(target, &service::query_command(name), timeout).await?;
    if out.exit_code == service::NO_SUCH_SERVICE {
        return Err("the service does not exist (sc exit 1060)".into());
    }
    if out.exit_code != 0 {
        return Err(format!(
            "sc query exited {}: {}",
            out.exit_code,
            first_line(&out.stderr, &out.stdout)
        ));
    }
    let (state, said) = service::parse_state(&out.stdout)
        .ok_or_else(|| format!("sc query gave no STATE: {}", first_line(&out.stdout, "")))?;
    if state != service::RUNNING {
        return Err(format!(
            "state {said} ({}), expected 4 RUNNING",
            service::state_word(state)
        ));
    }
    let Some(before) = baseline.start_types.get(&name.to_ascii_lowercase()) else {
        return Ok(format!(
            "{said}; start type not recorded before the patches"
        ));
    };
    let out = exec(target, &service::config_command(name), timeout).await?;
    let now = service::parse_start_type(&out.stdout).ok_or_else(|| {
        format!(
            "sc qc gave no START_TYPE (exit {}): {}",
            out.exit_code,
            first_line(&out.stderr, &out.stdout)
        )
    })?;
    if &now != before {
        return Err(format!(
            "running, but its start type changed from {before} to {now}"
        ));
    }
    Ok(format!("{said}, start type {now}"))
}

/// A command on the host; a transport error is the evidence, and the connection is dropped so
/// the next attempt starts a fresh one.
async fn exec(
    target: &mut dyn Target,
    command: &Command,
    timeout: Duration,
) -> Result<crate::remote::ExecOutput, String> {
    match target.exec(command, timeout).await {
        Ok(out) => Ok(out),
        Err(e) => {
            target.disconnect();
            Err(match e {
                RemoteError::TimedOut(_) => format!("no answer within {}s", timeout.as_secs()),
                other => format!("could not run the check on the host: {other}"),
            })
        }
    }
}

fn first_line<'a>(a: &'a str, b: &'a str) -> &'a str {
    a.lines()
        .chain(b.lines())
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// Output kept with a `command` check's result: what it printed, bounded.
const KEPT_OUTPUT: usize = 2000;

fn kept_output(stdout: &str, stderr: &str) -> String {
    let mut s = stdout.trim().to_string();
    if !stderr.trim().is_empty() {
        if !s.is_empty() {
            s.push_str(" | ");
        }
        s.push_str(stderr.trim());
    }
    if s.len() > KEPT_OUTPUT {
        let mut end = KEPT_OUTPUT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str(" ...");
    }
    if s.is_empty() { "no output".into() } else { s }
}

#[cfg(test)]
mod tests;
/// The integration tests' TLS identity (a CA nobody trusts), for the `http` check's tests.
#[cfg(test)]
#[path = "../../tests/tls_support/mod.rs"]
mod tls_support;
