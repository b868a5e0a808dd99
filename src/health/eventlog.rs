//! The `eventlog` check: no event at the configured level or worse (from the configured sources)
//! since the host's last boot.
//!
//! One cmd.exe line runs two `wevtutil qe` queries: the newest "Event log service was started"
//! record (provider `EventLog`, event 6005, written at every boot, in every language) and the
//! newest matching events. An event is "since the boot" when its `EventRecordID` is above the boot
//! record's: record numbers only grow, so this needs neither the host's clock nor its time zone.
//! When the log no longer holds a boot record (cleared, or wrapped), every event in it is newer
//! than the boot, and every match counts. wevtutil exists from Vista/Server 2008 on; older hosts
//! answer "not recognized" (exit 9009) and the check says so.

use crate::catalog::xml;
use crate::inventory::EventLevel;
use crate::remote::Command;

/// The boot marker: source `EventLog`, event 6005.
const BOOT_PROVIDER: &str = "EventLog";
const BOOT_EVENT: u32 = 6005;
/// Matching events read at most (newest first): more than enough to call a host unhealthy.
const MAX_EVENTS: u32 = 50;

/// The two queries, chained with `&` so one round trip answers both.
pub fn command(log: &str, level: EventLevel, sources: &[String]) -> Command {
    let levels = level
        .numbers()
        .iter()
        .map(|n| format!("Level={n}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let mut filter = format!("({levels})");
    if !sources.is_empty() {
        let names = sources
            .iter()
            .map(|s| format!("@Name='{s}'"))
            .collect::<Vec<_>>()
            .join(" or ");
        filter.push_str(&format!(" and Provider[{names}]"));
    }
    Command::Cmd(format!(
        "wevtutil qe \"{log}\" /q:\"*[System[Provider[@Name='{BOOT_PROVIDER}'] and EventID={BOOT_EVENT}]]\" /f:xml /c:1 /rd:true \
         & wevtutil qe \"{log}\" /q:\"*[System[{filter}]]\" /f:xml /c:{MAX_EVENTS} /rd:true"
    ))
}

/// One event as the check reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub record: u64,
    pub provider: String,
    pub id: u32,
    pub level: u8,
    pub time: String,
    /// The event's data strings (the message inserts), for the evidence.
    pub data: Vec<String>,
}

impl LoggedEvent {
    /// `Service Control Manager 7000 at 2026-12-05T01:02:03Z (W3SVC, ...)`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {} at {}", self.provider, self.id, self.time);
        let data: Vec<&str> = self
            .data
            .iter()
            .map(|d| d.trim())
            .filter(|d| !d.is_empty())
            .collect();
        if !data.is_empty() {
            s.push_str(&format!(" ({})", data.join(", ")));
        }
        s
    }
}

/// Every `<Event>` in wevtutil's `/f:xml` output (a sequence of documents with no common root).
pub fn parse_events(output: &str) -> Result<Vec<LoggedEvent>, String> {
    let start = output.find('<').unwrap_or(output.len());
    let body = &output[start..];
    if body.trim().is_empty() {
        return Ok(Vec::new());
    }
    let root = xml::parse("wevtutil output", &format!("<Events>{body}</Events>"))
        .map_err(|e| format!("wevtutil answered XML hive cannot read: {e}"))?;
    let mut out = Vec::new();
    for event in root.children_named("Event") {
        let Some(system) = event.child("System") else {
            continue;
        };
        let num = |name: &str| system.child_text(name).and_then(|t| t.parse::<u64>().ok());
        out.push(LoggedEvent {
            record: num("EventRecordID").unwrap_or(0),
            provider: system
                .child("Provider")
                .and_then(|p| p.attr("Name"))
                .unwrap_or_default()
                .to_string(),
            id: num("EventID").unwrap_or(0) as u32,
            level: num("Level").unwrap_or(0) as u8,
            time: system
                .child("TimeCreated")
                .and_then(|t| t.attr("SystemTime"))
                .unwrap_or_default()
                .to_string(),
            data: event
                .child("EventData")
                .map(|d| d.children_named("Data").map(|x| x.text.clone()).collect())
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The matching events newer than the last boot, newest first.
pub fn since_boot(events: &[LoggedEvent]) -> Vec<&LoggedEvent> {
    let is_boot = |e: &LoggedEvent| e.provider == BOOT_PROVIDER && e.id == BOOT_EVENT;
    let boot = events
        .iter()
        .filter(|e| is_boot(e))
        .map(|e| e.record)
        .max()
        .unwrap_or(0);
    let mut found: Vec<&LoggedEvent> = events
        .iter()
        .filter(|e| !is_boot(e) && e.record > boot)
        .collect();
    found.sort_by_key(|e| std::cmp::Reverse(e.record));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(record: u64, provider: &str, id: u32, level: u8, data: &str) -> String {
        format!(
            "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='{provider}'/>\
             <EventID Qualifiers='49152'>{id}</EventID><Level>{level}</Level><TimeCreated SystemTime='2026-12-05T01:00:{:02}.000Z'/>\
             <EventRecordID>{record}</EventRecordID><Channel>System</Channel></System><EventData><Data Name='param1'>{data}</Data></EventData></Event>",
            record % 60
        )
    }

    #[test]
    fn only_events_after_the_last_boot_count() {
        let out = format!(
            "{}\r\n{}{}{}\r\n",
            event(40, "EventLog", 6005, 4, ""),
            event(
                41,
                "Service Control Manager",
                7000,
                2,
                "World Wide Web Publishing Service &amp; co"
            ),
            event(30, "Service Control Manager", 7000, 2, "old"),
            event(39, "Disk", 11, 2, "before the boot"),
        );
        let events = parse_events(&out).unwrap();
        assert_eq!(events.len(), 4);
        let found = since_boot(&events);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, 7000);
        assert_eq!(
            found[0].describe(),
            "Service Control Manager 7000 at 2026-12-05T01:00:41.000Z (World Wide Web Publishing Service & co)"
        );
    }

    #[test]
    fn without_a_boot_record_every_match_counts_and_no_output_is_no_event() {
        let out = event(3, "Disk", 11, 2, "x");
        assert_eq!(since_boot(&parse_events(&out).unwrap()).len(), 1);
        assert!(parse_events("").unwrap().is_empty());
        assert!(parse_events("<Event><System>").is_err());
    }

    #[test]
    fn the_command_filters_by_level_and_source() {
        let Command::Cmd(line) = command(
            "System",
            EventLevel::Error,
            &["Service Control Manager".into(), "W3SVC".into()],
        ) else {
            panic!("a cmd line")
        };
        assert!(line.contains("EventID=6005"), "{line}");
        assert!(
            line.contains("/q:\"*[System[(Level=1 or Level=2) and Provider[@Name='Service Control Manager' or @Name='W3SVC']]]\""),
            "{line}"
        );
        assert!(line.contains(" & wevtutil qe \"System\""), "{line}");
    }
}
