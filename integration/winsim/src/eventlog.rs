//! The System event log of a simulated host, and `wevtutil qe` over it.
//!
//! Entries are written by what a real host would log: every boot (`EventLog` 6005, "The Event log
//! service was started"), every install that lands (`Microsoft-Windows-WindowsUpdateClient` 19,
//! information), services that fail to start or die ([`crate::services`]: Service Control
//! Manager 7000, 7034). Record numbers only grow, as Windows' `EventRecordID` does.
//!
//! `wevtutil qe LOG /q:"XPATH" /f:xml /c:N /rd:true` understands the XPath forms hive sends:
//! `*[System[T and T ...]]` where each T is `Provider[@Name='A' or @Name='B']`, `EventID=N`,
//! `Level=N` or `(Level=N or Level=M ...)`. Any other query fails with "not simulated", so a test
//! can never pass on a filter winsim ignored.

use std::time::SystemTime;

/// Windows event levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Critical = 1,
    Error = 2,
    Warning = 3,
    Information = 4,
}

/// One logged event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub record: u64,
    pub provider: String,
    pub id: u32,
    pub level: Level,
    pub time: SystemTime,
    pub data: Vec<String>,
}

/// The System log.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    events: Vec<LogEvent>,
}

impl EventLog {
    /// A log whose first entry is the boot at `boot`.
    pub fn new(boot: SystemTime) -> EventLog {
        let mut log = EventLog::default();
        log.boot(boot);
        log
    }

    pub fn events(&self) -> &[LogEvent] {
        &self.events
    }

    /// The Event Log service started: what every boot writes first.
    pub fn boot(&mut self, at: SystemTime) {
        self.write_at("EventLog", 6005, Level::Information, vec![], at);
    }

    pub fn write(&mut self, provider: &str, id: u32, level: Level, data: Vec<String>) {
        self.write_at(provider, id, level, data, SystemTime::now());
    }

    fn write_at(
        &mut self,
        provider: &str,
        id: u32,
        level: Level,
        data: Vec<String>,
        at: SystemTime,
    ) {
        let record = self.events.last().map_or(1, |e| e.record + 1);
        self.events.push(LogEvent {
            record,
            provider: provider.to_string(),
            id,
            level,
            time: at,
            data,
        });
    }

    /// `wevtutil` with its arguments: (stdout, stderr, exit code).
    pub fn wevtutil(&self, computer: &str, args: &[String]) -> (String, String, u32) {
        let not_simulated = |what: &str| {
            (
                String::new(),
                format!(
                    "winsim: wevtutil {what} is not simulated (see integration/winsim/COMMANDS.md)\r\n"
                ),
                1,
            )
        };
        let [verb, log, opts @ ..] = args else {
            return not_simulated("without a verb and a log");
        };
        if !verb.eq_ignore_ascii_case("qe") {
            return not_simulated(verb);
        }
        if !log.eq_ignore_ascii_case("System") {
            return (
                String::new(),
                "Failed to read events. The specified channel could not be found.\r\n".into(),
                15007,
            );
        }
        let mut query = None;
        let mut count = usize::MAX;
        let mut newest_first = false;
        for o in opts {
            let lower = o.to_ascii_lowercase();
            if let Some(q) = o.strip_prefix("/q:").or_else(|| o.strip_prefix("/Q:")) {
                query = Some(q.to_string());
            } else if lower == "/f:xml" {
            } else if let Some(c) = lower.strip_prefix("/c:") {
                match c.parse() {
                    Ok(n) => count = n,
                    Err(_) => return not_simulated(o),
                }
            } else if lower == "/rd:true" {
                newest_first = true;
            } else if lower == "/rd:false" {
                newest_first = false;
            } else {
                return not_simulated(o);
            }
        }
        let filter = match query.as_deref().map(Filter::parse) {
            None => Filter::default(),
            Some(Ok(f)) => f,
            Some(Err(e)) => return not_simulated(&format!("query `{e}`")),
        };
        let mut matched: Vec<&LogEvent> =
            self.events.iter().filter(|e| filter.matches(e)).collect();
        if newest_first {
            matched.reverse();
        }
        let out: String = matched
            .into_iter()
            .take(count)
            .map(|e| format!("{}\r\n", xml(e, computer)))
            .collect();
        (out, String::new(), 0)
    }
}

/// The conditions of the XPath forms hive sends (all must hold).
#[derive(Debug, Default, PartialEq, Eq)]
struct Filter {
    providers: Option<Vec<String>>,
    ids: Option<Vec<u32>>,
    levels: Option<Vec<u8>>,
}

impl Filter {
    fn parse(q: &str) -> Result<Filter, String> {
        let inner = q
            .trim()
            .strip_prefix("*[System[")
            .and_then(|r| r.strip_suffix("]]"))
            .ok_or_else(|| q.to_string())?;
        let mut f = Filter::default();
        for term in split_and(inner) {
            let term = term.trim();
            if let Some(names) = term
                .strip_prefix("Provider[")
                .and_then(|r| r.strip_suffix(']'))
            {
                let mut list = Vec::new();
                for n in names.split(" or ") {
                    let v = n
                        .trim()
                        .strip_prefix("@Name='")
                        .and_then(|r| r.strip_suffix('\''))
                        .ok_or_else(|| q.to_string())?;
                    list.push(v.to_string());
                }
                f.providers = Some(list);
            } else if let Some(id) = term.strip_prefix("EventID=") {
                f.ids = Some(vec![id.trim().parse().map_err(|_| q.to_string())?]);
            } else {
                let body = term
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .unwrap_or(term);
                let mut levels = Vec::new();
                for l in body.split(" or ") {
                    let n = l
                        .trim()
                        .strip_prefix("Level=")
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| q.to_string())?;
                    levels.push(n);
                }
                f.levels = Some(levels);
            }
        }
        Ok(f)
    }

    fn matches(&self, e: &LogEvent) -> bool {
        self.providers
            .as_ref()
            .is_none_or(|p| p.iter().any(|n| n.eq_ignore_ascii_case(&e.provider)))
            && self.ids.as_ref().is_none_or(|i| i.contains(&e.id))
            && self
                .levels
                .as_ref()
                .is_none_or(|l| l.contains(&(e.level as u8)))
    }
}

/// Splits on ` and ` outside brackets and parentheses.
fn split_and(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'[' | b'(' => depth += 1,
            b']' | b')' => depth -= 1,
            b' ' if depth == 0 && s[i..].starts_with(" and ") => {
                out.push(&s[start..i]);
                i += 5;
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&s[start..]);
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}

/// One event as `wevtutil qe /f:xml` prints it.
fn xml(e: &LogEvent, computer: &str) -> String {
    let qualifiers = if e.provider == "Service Control Manager" {
        " Qualifiers='49152'"
    } else {
        ""
    };
    let data: String = e
        .data
        .iter()
        .enumerate()
        .map(|(i, d)| format!("<Data Name='param{}'>{}</Data>", i + 1, escape(d)))
        .collect();
    let provider = escape(&e.provider);
    format!(
        "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='{provider}' EventSourceName='{provider}'/><EventID{qualifiers}>{}</EventID><Version>0</Version><Level>{}</Level><Task>0</Task><Opcode>0</Opcode><Keywords>0x8080000000000000</Keywords><TimeCreated SystemTime='{}'/><EventRecordID>{}</EventRecordID><Correlation/><Execution ProcessID='0' ThreadID='0'/><Channel>System</Channel><Computer>{}</Computer><Security/></System><EventData>{data}</EventData></Event>",
        e.id,
        e.level as u8,
        crate::clock::iso_utc_millis(e.time),
        e.record,
        escape(computer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn queries_filter_by_provider_event_and_level_newest_first() {
        let mut log = EventLog::new(SystemTime::now());
        log.write(
            "Service Control Manager",
            7000,
            Level::Error,
            vec!["IIS & co".into()],
        );
        log.boot(SystemTime::now());
        log.write("Disk", 11, Level::Error, vec![]);
        log.write(
            "Microsoft-Windows-WindowsUpdateClient",
            19,
            Level::Information,
            vec![],
        );
        let (out, _, code) = log.wevtutil(
            "WEB01",
            &args(&[
                "qe",
                "System",
                "/q:*[System[Provider[@Name='EventLog'] and EventID=6005]]",
                "/f:xml",
                "/c:1",
                "/rd:true",
            ]),
        );
        assert_eq!(code, 0);
        assert_eq!(out.matches("<Event ").count(), 1);
        assert!(out.contains("<EventRecordID>3</EventRecordID>"), "{out}");
        let (out, _, _) = log.wevtutil(
            "WEB01",
            &args(&[
                "qe",
                "System",
                "/q:*[System[(Level=1 or Level=2)]]",
                "/f:xml",
                "/c:50",
                "/rd:true",
            ]),
        );
        assert_eq!(out.matches("<Event ").count(), 2);
        assert!(
            out.find("<EventID>11<").unwrap() < out.find(">7000<").unwrap(),
            "{out}"
        );
        assert!(out.contains("IIS &amp; co"), "{out}");
        let (out, _, _) = log.wevtutil(
            "WEB01",
            &args(&[
                "qe",
                "System",
                "/q:*[System[(Level=1 or Level=2) and Provider[@Name='Service Control Manager']]]",
                "/f:xml",
            ]),
        );
        assert_eq!(out.matches("<Event ").count(), 1);
    }

    #[test]
    fn unknown_forms_fail_and_unknown_logs_are_15007() {
        let log = EventLog::new(SystemTime::now());
        assert_eq!(log.wevtutil("A", &args(&["qe", "Foo"])).2, 15007);
        assert_eq!(
            log.wevtutil("A", &args(&["qe", "System", "/q:*[System[Task=3]]"]))
                .2,
            1
        );
        assert_eq!(log.wevtutil("A", &args(&["el"])).2, 1);
        assert_eq!(log.wevtutil("A", &args(&["qe", "System", "/e:root"])).2, 1);
    }
}
