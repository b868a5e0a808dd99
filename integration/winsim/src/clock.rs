//! Wall-clock formatting without a date library: the few formats Windows tools print.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// (year, month, day, hour, minute, second, microsecond) in UTC.
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_micros(),
    )
}

/// `2026-11-25T13:27:00.123Z`, as the probe reports boot times.
pub fn iso_utc_millis(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, us) = civil(t);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        us / 1000
    )
}

/// `20261125132700.123456+000`, the CIM_DATETIME form `wmic` prints (offset in minutes).
pub fn cim_datetime(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, us) = civil(t);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}.{us:06}+000")
}

/// `11/25/2026 1:27 PM`, as `net statistics` prints its "Statistics since" line (en-US).
pub fn us_short(t: SystemTime) -> String {
    let (y, mo, d, h, mi, _, _) = civil(t);
    let (h12, ampm) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!("{mo}/{d}/{y} {h12}:{mi:02} {ampm}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        let t = UNIX_EPOCH + Duration::from_micros(1_795_786_020_123_456);
        assert_eq!(iso_utc_millis(t), "2026-11-27T13:27:00.123Z");
        assert_eq!(cim_datetime(t), "20261127132700.123456+000");
        assert_eq!(us_short(t), "11/27/2026 1:27 PM");
        assert_eq!(
            iso_utc_millis(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
