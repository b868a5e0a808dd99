//! Wall-clock time as hive writes it: milliseconds since the epoch in records, and UTC stamps in
//! names an admin sorts (run ids, report files, log lines). One module so that every stamp names
//! its format and the calendar arithmetic is jiff's (the same crate that evaluates maintenance
//! windows), never hand-written.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_secs() -> u64 {
    now_ms() / 1000
}

/// How a UTC stamp is written. Both sort as text in time order and are valid file names on
/// every OS (no `:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampFormat {
    /// `20261125-143200`: run ids, typed back on the command line (`hive resume <run>`).
    RunId,
    /// `20261125T143200Z` (ISO 8601 basic): report and scan files, where a reader may not know
    /// the stamp is UTC unless it says so.
    IsoBasic,
    /// `2026-12-05 01:02:03Z`: the start of a line in a host's log, read by people.
    LogLine,
    /// `2026-12-05 01:02:03 UTC`: times in the report, where a reader needs the zone spelled out.
    Text,
    /// `2026-12-05`: a day, as an archive folder's name.
    Day,
}

/// `secs` since the epoch as a UTC stamp in `format`.
pub fn utc_stamp(secs: u64, format: StampFormat) -> String {
    let pattern = match format {
        StampFormat::RunId => "%Y%m%d-%H%M%S",
        StampFormat::IsoBasic => "%Y%m%dT%H%M%SZ",
        StampFormat::LogLine => "%Y-%m-%d %H:%M:%SZ",
        StampFormat::Text => "%Y-%m-%d %H:%M:%S UTC",
        StampFormat::Day => "%Y-%m-%d",
    };
    let at = i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or(jiff::Timestamp::MAX);
    at.strftime(pattern).to_string()
}

/// Now as a UTC stamp in `format`.
pub fn utc_now(format: StampFormat) -> String {
    utc_stamp(now_secs(), format)
}

/// Today (UTC) as the number `YYYYMMDD`.
pub fn today_yyyymmdd() -> u32 {
    utc_stamp(now_secs(), StampFormat::RunId)
        .get(..8)
        .and_then(|day| day.parse().ok())
        .unwrap_or(0)
}

/// An RFC 3339 UTC time as Windows writes it (`2026-11-25T13:27:00.1234567Z`, the probe's
/// `yyyy-MM-ddTHH:mm:ss.fffZ`) to whole seconds since the epoch (the fraction dropped); `None`
/// when it is no such time.
pub fn parse_utc_seconds(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.ends_with('Z') {
        return None;
    }
    text.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_in_both_formats() {
        assert_eq!(utc_stamp(0, StampFormat::RunId), "19700101-000000");
        assert_eq!(
            utc_stamp(1_795_700_000, StampFormat::RunId),
            "20261126-133320"
        );
        assert_eq!(
            utc_stamp(951_782_400, StampFormat::RunId),
            "20000229-000000"
        );
        assert_eq!(
            utc_stamp(1_795_700_000, StampFormat::IsoBasic),
            "20261126T133320Z"
        );
    }

    #[test]
    fn readable_stamps() {
        assert_eq!(
            utc_stamp(1_795_700_000, StampFormat::LogLine),
            "2026-11-26 13:33:20Z"
        );
        assert_eq!(utc_stamp(0, StampFormat::Text), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_stamp(951_782_400, StampFormat::Day), "2000-02-29");
    }

    #[test]
    fn windows_utc_times() {
        assert_eq!(parse_utc_seconds("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_utc_seconds("2026-11-25T13:27:00.999Z"),
            Some(1_795_613_220)
        );
        assert_eq!(
            parse_utc_seconds(" 2026-11-25T13:27:00.9999999Z\r\n"),
            Some(1_795_613_220)
        );
        assert_eq!(parse_utc_seconds("2026-13-25T13:27:00.000Z"), None);
        assert_eq!(parse_utc_seconds("2026-11-25T13:27:00"), None);
        assert_eq!(parse_utc_seconds("yesterday"), None);
    }
}
