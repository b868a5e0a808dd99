//! Wall-clock time as hive writes it: milliseconds since the epoch in records, and UTC stamps in
//! names an admin sorts (run ids, report files). One module so that every stamp names its format
//! and the calendar arithmetic exists once, without a date crate.

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
}

/// `secs` since the epoch as a UTC stamp in `format`.
pub fn utc_stamp(secs: u64, format: StampFormat) -> String {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    match format {
        StampFormat::RunId => format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}"),
        StampFormat::IsoBasic => format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z"),
    }
}

/// Now as a UTC stamp in `format`.
pub fn utc_now(format: StampFormat) -> String {
    utc_stamp(now_secs(), format)
}

/// Today (UTC) as the number `YYYYMMDD`.
pub fn today_yyyymmdd() -> u32 {
    let (y, m, d) = civil_from_days((now_secs() / 86_400) as i64);
    (y as u32) * 10_000 + m * 100 + d
}

/// Howard Hinnant's days-to-civil conversion: (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
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
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(20_782), (2026, 11, 25));
    }
}
