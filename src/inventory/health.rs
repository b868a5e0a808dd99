//! The health checks an admin declares per group (`health = [...]` in `[group.NAME]` or
//! `[group_defaults]`): what "this host still works" means for it, checked after its patches and
//! reboot, and polled during its wave's soak.
//!
//! Only the declaration lives here, because the inventory is read before anything can reach a
//! host; running the checks is `crate::health`. Every check is validated when the inventory is
//! read, so a typo stops the run before the first host is touched, with the field named.
//!
//! ```toml
//! [group.web]
//! health = [
//!   { service = "W3SVC" },                                  # exists, Running, start type unchanged
//!   { port = 443, timeout = 5 },                            # TCP connect from the orchestrator
//!   { http = "https://{address}/health", status = 200, body = "OK" },
//!   { eventlog = { log = "System", level = "error", sources = ["Service Control Manager"] } },
//!   { command = 'C:\tools\selftest.cmd', retries = 1, settle = 30 },
//! ]
//! health_interval = 60                                      # seconds between two soak polls
//! ```
//!
//! Every check takes `timeout` (seconds one attempt may take, default 10), `retries` (attempts
//! after the first, default 3) and `settle` (seconds between attempts, default 10): services
//! start late after a boot, and a check that fails once right after the reboot is not evidence.

use std::time::Duration;

use serde::Deserialize;

/// One declared check with its timing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawCheck")]
pub struct HealthCheckSpec {
    pub kind: CheckKind,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Attempts after the first before the host is called unhealthy.
    pub retries: u32,
    /// The wait between two attempts.
    pub settle: Duration,
}

/// What is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// A Windows service (its short name, e.g. `W3SVC`) exists, is Running, and has the start
    /// type it had before the patches.
    Service(String),
    /// A TCP connect from the orchestrator to the host's address on this port succeeds.
    Port(u16),
    /// An HTTP(S) GET from the orchestrator answers `status` (and contains `body`, when given).
    /// `{address}` and `{name}` in the URL become the host's inventory address and name.
    Http {
        url: String,
        status: u16,
        body: Option<String>,
        /// Accept any certificate (a self-signed test endpoint). Off unless asked for.
        insecure_tls: bool,
    },
    /// No event at `level` or worse in `log` (from one of `sources`, when given) since the host's
    /// last boot.
    EventLog {
        log: String,
        level: EventLevel,
        sources: Vec<String>,
    },
    /// A command line (cmd.exe) on the host: healthy when it exits 0. Its output is kept as the
    /// evidence.
    Command(String),
}

/// Event levels as Windows numbers them; a check for `error` also matches `critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventLevel {
    Critical = 1,
    Error = 2,
    Warning = 3,
}

impl EventLevel {
    /// Windows' level numbers at this level or worse (1 is the worst).
    pub fn numbers(self) -> Vec<u8> {
        (1..=self as u8).collect()
    }
}

impl CheckKind {
    /// How an admin would name the check in a report: `service W3SVC`, `port 443`.
    pub fn label(&self) -> String {
        match self {
            CheckKind::Service(s) => format!("service {s}"),
            CheckKind::Port(p) => format!("port {p}"),
            // The evidence names the URL, with the host's address in it.
            CheckKind::Http { .. } => "http".to_string(),
            CheckKind::EventLog { log, level, .. } => {
                format!("eventlog {log} {}", format!("{level:?}").to_lowercase())
            }
            // The command itself may be long or hold something private: its first word only.
            CheckKind::Command(c) => format!(
                "command {}",
                c.split_whitespace().next().unwrap_or_default()
            ),
        }
    }
}

const DEFAULT_TIMEOUT_S: u64 = 10;
const DEFAULT_RETRIES: u32 = 3;
const DEFAULT_SETTLE_S: u64 = 10;

/// The table as written; [`HealthCheckSpec`] is what it means once checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    service: Option<String>,
    port: Option<u16>,
    http: Option<String>,
    eventlog: Option<RawEventLog>,
    command: Option<String>,
    status: Option<u16>,
    body: Option<String>,
    insecure_tls: Option<bool>,
    timeout: Option<u64>,
    retries: Option<u32>,
    settle: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEventLog {
    log: String,
    level: EventLevel,
    #[serde(default)]
    sources: Vec<String>,
}

/// Characters that would end or escape the quoted text hive puts a name into on the host's
/// command line (cmd.exe quoting and the event log's XPath quotes).
const UNSAFE: &[char] = &['"', '\'', '%', '^', '&', '|', '<', '>', '\r', '\n', '!'];

fn plain(what: &str, s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    if let Some(c) = s.chars().find(|c| UNSAFE.contains(c) || c.is_control()) {
        return Err(format!(
            "{what} `{s}` contains {c:?}, which hive cannot quote"
        ));
    }
    Ok(())
}

impl TryFrom<RawCheck> for HealthCheckSpec {
    type Error = String;

    fn try_from(r: RawCheck) -> Result<Self, String> {
        let kinds = [
            r.service.is_some(),
            r.port.is_some(),
            r.http.is_some(),
            r.eventlog.is_some(),
            r.command.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(
                "a health check names exactly one of service, port, http, eventlog, command".into(),
            );
        }
        if r.http.is_none() && (r.status.is_some() || r.body.is_some() || r.insecure_tls.is_some())
        {
            return Err("status, body and insecure_tls belong to an http check".into());
        }
        let kind = if let Some(s) = r.service {
            plain("service name", &s)?;
            CheckKind::Service(s)
        } else if let Some(p) = r.port {
            if p == 0 {
                return Err("port 0 is not a port".into());
            }
            CheckKind::Port(p)
        } else if let Some(url) = r.http {
            let probe = url.replace("{address}", "host").replace("{name}", "host");
            if !(probe.starts_with("http://") || probe.starts_with("https://")) {
                return Err(format!("http `{url}` is not an http:// or https:// URL"));
            }
            if let Some(bad) = probe.find('{') {
                return Err(format!(
                    "http `{url}`: unknown placeholder at `{}` (use {{address}} or {{name}})",
                    &probe[bad..]
                ));
            }
            CheckKind::Http {
                url,
                status: r.status.unwrap_or(200),
                body: r.body,
                insecure_tls: r.insecure_tls.unwrap_or(false),
            }
        } else if let Some(e) = r.eventlog {
            plain("eventlog log", &e.log)?;
            for s in &e.sources {
                plain("eventlog source", s)?;
            }
            CheckKind::EventLog {
                log: e.log,
                level: e.level,
                sources: e.sources,
            }
        } else {
            let c = r.command.unwrap_or_default();
            if c.trim().is_empty() {
                return Err("command is empty".into());
            }
            CheckKind::Command(c)
        };
        let timeout = r.timeout.unwrap_or(DEFAULT_TIMEOUT_S);
        if timeout == 0 {
            return Err("timeout must be at least 1 second".into());
        }
        Ok(HealthCheckSpec {
            kind,
            timeout: Duration::from_secs(timeout),
            retries: r.retries.unwrap_or(DEFAULT_RETRIES),
            settle: Duration::from_secs(r.settle.unwrap_or(DEFAULT_SETTLE_S)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        health: Vec<HealthCheckSpec>,
    }

    fn parse(text: &str) -> Result<Vec<HealthCheckSpec>, String> {
        toml::from_str::<Doc>(text)
            .map(|d| d.health)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_kind_parses_with_its_defaults() {
        let checks = parse(
            r#"health = [
                { service = "W3SVC" },
                { port = 443, timeout = 5 },
                { http = "https://{address}/health", body = "OK" },
                { eventlog = { log = "System", level = "error", sources = ["Service Control Manager"] } },
                { command = 'C:\tools\check.cmd', retries = 0, settle = 1 },
            ]"#,
        )
        .unwrap();
        assert_eq!(checks[0].kind, CheckKind::Service("W3SVC".into()));
        assert_eq!(checks[0].retries, 3);
        assert_eq!(checks[1].timeout, Duration::from_secs(5));
        assert!(matches!(
            &checks[2].kind,
            CheckKind::Http { status: 200, insecure_tls: false, body: Some(b), .. } if b == "OK"
        ));
        assert!(matches!(
            &checks[3].kind,
            CheckKind::EventLog { level: EventLevel::Error, sources, .. } if sources.len() == 1
        ));
        assert_eq!(checks[4].retries, 0);
        assert_eq!(checks[4].kind.label(), r"command C:\tools\check.cmd");
        assert_eq!(EventLevel::Error.numbers(), vec![1, 2]);
    }

    #[test]
    fn bad_checks_are_refused_with_the_reason() {
        for (text, want) in [
            (
                "health = [{ service = \"W3SVC\", port = 80 }]",
                "exactly one",
            ),
            ("health = [{}]", "exactly one"),
            ("health = [{ service = \"a\\\"b\" }]", "cannot quote"),
            ("health = [{ port = 0 }]", "not a port"),
            ("health = [{ http = \"ftp://x\" }]", "not an http"),
            ("health = [{ http = \"http://{host}/\" }]", "placeholder"),
            (
                "health = [{ port = 80, status = 200 }]",
                "belong to an http",
            ),
            ("health = [{ port = 80, timeout = 0 }]", "at least 1"),
            ("health = [{ port = 80, tiemout = 3 }]", "unknown field"),
            (
                "health = [{ eventlog = { log = \"System\", level = \"info\" } }]",
                "unknown variant",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
