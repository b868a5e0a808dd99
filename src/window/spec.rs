//! One maintenance window as an admin writes it in the inventory, parsed into a [`Span`] that
//! can say when it is open.
//!
//! Three forms, because those are the three ways change boards agree on windows:
//! - weekly: `"Sat 02:00-06:00"`, `"Mon-Fri 22:00-02:00"` (an end before the start runs into the
//!   next day), `"Sat,Sun 01:00-05:00"`;
//! - dated: `"2026-12-24 22:00 - 2026-12-25 04:00"`, or `"2026-12-24 22:00-23:30"` on one day;
//! - relative to Patch Tuesday (the second Tuesday of the month, when Microsoft ships):
//!   `"patch-tuesday+3 02:00-06:00"` (three days after, i.e. the Friday), `"patch-tuesday 20:00-23:00"`.
//!
//! Times are wall-clock times in the window's time zone (`HH:MM` or `HH:MM:SS`); each occurrence's
//! start and end are placed in that zone separately, so "02:00-06:00" stays 02:00-06:00 on the
//! clock across a DST change (and lasts an hour less or more that night). A time that falls in a
//! DST gap moves forward by the gap (02:30 becomes 03:30), one in a repeated hour takes its first
//! pass: jiff's "compatible" rule, which is what most schedulers (and RFC 5545) do.

use std::fmt;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// The largest offset after Patch Tuesday: 27 days keeps the window before the next one.
pub const MAX_PATCH_TUESDAY_OFFSET: i8 = 27;

/// A parsed window form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// Every week on `days`, from `start` to `end` (on the next day when `end <= start`).
    Weekly {
        days: Vec<Weekday>,
        start: Time,
        end: Time,
    },
    /// Once, between two wall-clock date-times.
    Dated { start: DateTime, end: DateTime },
    /// Every month, `days` after its second Tuesday, from `start` to `end` (next day when
    /// `end <= start`).
    PatchTuesday { days: i8, start: Time, end: Time },
}

/// Why a window text is not a window. The caller adds the group and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(text: &str, why: impl fmt::Display) -> Result<T, SpecError> {
    Err(SpecError(format!("window `{text}`: {why}")))
}

/// Parse one window text.
pub fn parse(text: &str) -> Result<Span, SpecError> {
    let t = text.trim();
    if t.is_empty() {
        return err(text, "empty");
    }
    let lower = t.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("patch-tuesday") {
        return parse_patch_tuesday(text, rest);
    }
    if t.as_bytes()[0].is_ascii_digit() {
        return parse_dated(text, t);
    }
    parse_weekly(text, t)
}

fn parse_patch_tuesday(text: &str, rest: &str) -> Result<Span, SpecError> {
    let (offset, times) = match rest.split_once(char::is_whitespace) {
        Some((o, t)) => (o.trim(), t.trim()),
        None => return err(text, "expected `patch-tuesday[+N] HH:MM-HH:MM`"),
    };
    let days = if offset.is_empty() {
        0
    } else {
        let Some(n) = offset.strip_prefix('+') else {
            return err(
                text,
                format!(
                    "`{offset}` after patch-tuesday: write +N (days after it, 0 to {MAX_PATCH_TUESDAY_OFFSET})"
                ),
            );
        };
        match n.parse::<i8>() {
            Ok(n) if (0..=MAX_PATCH_TUESDAY_OFFSET).contains(&n) => n,
            _ => {
                return err(
                    text,
                    format!(
                        "+{n}: the offset must be 0 to {MAX_PATCH_TUESDAY_OFFSET} days (the next Patch Tuesday comes after that)"
                    ),
                );
            }
        }
    };
    let (start, end) = time_range(text, times)?;
    Ok(Span::PatchTuesday { days, start, end })
}

fn parse_weekly(text: &str, t: &str) -> Result<Span, SpecError> {
    let Some((days_text, times)) = t.split_once(char::is_whitespace) else {
        return err(
            text,
            "expected `DAY[-DAY] HH:MM-HH:MM`, e.g. `Sat 02:00-06:00`",
        );
    };
    let mut days = Vec::new();
    for part in days_text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (weekday(text, a)?, weekday(text, b)?);
                let mut d = a;
                loop {
                    push_day(text, &mut days, d)?;
                    if d == b {
                        break;
                    }
                    d = d.next();
                }
            }
            None => push_day(text, &mut days, weekday(text, part)?)?,
        }
    }
    let (start, end) = time_range(text, times.trim())?;
    Ok(Span::Weekly { days, start, end })
}

fn push_day(text: &str, days: &mut Vec<Weekday>, d: Weekday) -> Result<(), SpecError> {
    if days.contains(&d) {
        return err(text, format!("{} is listed twice", day_name(d)));
    }
    days.push(d);
    Ok(())
}

fn parse_dated(text: &str, t: &str) -> Result<Span, SpecError> {
    // "DATE HH:MM - DATE HH:MM" or "DATE HH:MM-HH:MM".
    let Some((date_text, rest)) = t.split_once(char::is_whitespace) else {
        return err(
            text,
            "expected `YYYY-MM-DD HH:MM-HH:MM` or `YYYY-MM-DD HH:MM - YYYY-MM-DD HH:MM`",
        );
    };
    let day = date(text, date_text)?;
    let rest = rest.trim();
    let (start, end) = if let Some((a, b)) = rest.split_once(" - ") {
        let start = day.to_datetime(time(text, a.trim())?);
        let b = b.trim();
        let Some((end_date, end_time)) = b.split_once(char::is_whitespace) else {
            return err(
                text,
                format!("`{b}`: expected `YYYY-MM-DD HH:MM` after ` - `"),
            );
        };
        let end = date(text, end_date)?.to_datetime(time(text, end_time.trim())?);
        (start, end)
    } else {
        let (s, e) = time_range(text, rest)?;
        let end_date = if e <= s {
            match day.tomorrow() {
                Ok(d) => d,
                Err(e) => return err(text, e),
            }
        } else {
            day
        };
        (day.to_datetime(s), end_date.to_datetime(e))
    };
    if end <= start {
        return err(text, "it ends before it starts");
    }
    Ok(Span::Dated { start, end })
}

fn date(text: &str, s: &str) -> Result<Date, SpecError> {
    match s.parse::<Date>() {
        Ok(d) => Ok(d),
        Err(_) => err(
            text,
            format!("`{s}` is not a date (YYYY-MM-DD, a day that exists)"),
        ),
    }
}

fn time_range(text: &str, s: &str) -> Result<(Time, Time), SpecError> {
    let Some((a, b)) = s.split_once('-') else {
        return err(text, format!("`{s}`: expected HH:MM-HH:MM"));
    };
    let (a, b) = (time(text, a.trim())?, time(text, b.trim())?);
    if a == b {
        return err(
            text,
            "it starts and ends at the same time (an empty window)",
        );
    }
    Ok((a, b))
}

fn time(text: &str, s: &str) -> Result<Time, SpecError> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |p: &str, max: i8| -> Option<i8> {
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse::<i8>().ok().filter(|n| *n <= max)
    };
    let parsed = match parts.as_slice() {
        [h, m] => num(h, 23).zip(num(m, 59)).map(|(h, m)| (h, m, 0)),
        [h, m, sec] => num(h, 23)
            .zip(num(m, 59))
            .zip(num(sec, 59))
            .map(|((h, m), s)| (h, m, s)),
        _ => None,
    };
    match parsed.and_then(|(h, m, s)| Time::new(h, m, s, 0).ok()) {
        Some(t) => Ok(t),
        None => err(
            text,
            format!("`{s}` is not a time of day (HH:MM or HH:MM:SS, 00:00 to 23:59:59)"),
        ),
    }
}

fn weekday(text: &str, s: &str) -> Result<Weekday, SpecError> {
    let d = match s.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => {
            return err(
                text,
                format!("`{s}` is not a day of the week (Mon, Tue, ... Sun)"),
            );
        }
    };
    Ok(d)
}

pub(crate) fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Monday => "Mon",
        Weekday::Tuesday => "Tue",
        Weekday::Wednesday => "Wed",
        Weekday::Thursday => "Thu",
        Weekday::Friday => "Fri",
        Weekday::Saturday => "Sat",
        Weekday::Sunday => "Sun",
    }
}

/// The second Tuesday of `year`-`month`.
pub fn patch_tuesday(year: i16, month: i8) -> Option<Date> {
    Date::new(year, month, 1)
        .ok()?
        .nth_weekday_of_month(2, Weekday::Tuesday)
        .ok()
}

/// One opening of a window, as instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Occurrence {
    pub start: Timestamp,
    pub end: Timestamp,
}

fn place(dt: DateTime, tz: &TimeZone) -> Option<Timestamp> {
    tz.to_ambiguous_zoned(dt)
        .compatible()
        .ok()
        .map(|z| z.timestamp())
}

fn daily(date: Date, start: Time, end: Time, tz: &TimeZone) -> Option<Occurrence> {
    let end_date = if end <= start {
        date.tomorrow().ok()?
    } else {
        date
    };
    let s = place(date.to_datetime(start), tz)?;
    let e = place(end_date.to_datetime(end), tz)?;
    (e > s).then_some(Occurrence { start: s, end: e })
}

impl Span {
    /// Every occurrence that starts on a civil day from `from` to `to` (inclusive), in order.
    pub fn occurrences(&self, from: Date, to: Date, tz: &TimeZone) -> Vec<Occurrence> {
        let mut out = Vec::new();
        match self {
            Span::Weekly { days, start, end } => {
                let mut d = from;
                while d <= to {
                    if days.contains(&d.weekday())
                        && let Some(o) = daily(d, *start, *end, tz)
                    {
                        out.push(o);
                    }
                    match d.tomorrow() {
                        Ok(n) => d = n,
                        Err(_) => break,
                    }
                }
            }
            Span::Dated { start, end } => {
                if (from..=to).contains(&start.date())
                    && let (Some(s), Some(e)) = (place(*start, tz), place(*end, tz))
                    && e > s
                {
                    out.push(Occurrence { start: s, end: e });
                }
            }
            Span::PatchTuesday { days, start, end } => {
                // The month of `from` minus one (an offset reaches into the next month), to `to`.
                let mut m = from.first_of_month().checked_sub(1.month()).unwrap_or(from);
                while m <= to {
                    if let Some(pt) = patch_tuesday(m.year(), m.month())
                        && let Ok(day) = pt.checked_add((*days as i32).days())
                        && (from..=to).contains(&day)
                        && let Some(o) = daily(day, *start, *end, tz)
                    {
                        out.push(o);
                    }
                    match m.checked_add(1.month()) {
                        Ok(n) => m = n,
                        Err(_) => break,
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).expect("bundled tz data")
    }

    #[test]
    fn weekly_forms() {
        assert_eq!(
            parse("Sat 02:00-06:00").unwrap(),
            Span::Weekly {
                days: vec![Weekday::Saturday],
                start: time(2, 0, 0, 0),
                end: time(6, 0, 0, 0)
            }
        );
        let Span::Weekly { days, .. } = parse("mon-fri 22:00-02:00").unwrap() else {
            panic!("not weekly")
        };
        assert_eq!(days.len(), 5);
        let Span::Weekly { days, end, .. } = parse("Fri-Mon,Wed 01:00:00-01:00:30").unwrap() else {
            panic!("not weekly")
        };
        assert_eq!(
            days,
            [
                Weekday::Friday,
                Weekday::Saturday,
                Weekday::Sunday,
                Weekday::Monday,
                Weekday::Wednesday
            ]
        );
        assert_eq!(end, time(1, 0, 30, 0));
    }

    #[test]
    fn dated_forms() {
        assert_eq!(
            parse("2026-12-24 22:00 - 2026-12-25 04:00").unwrap(),
            Span::Dated {
                start: date(2026, 12, 24).at(22, 0, 0, 0),
                end: date(2026, 12, 25).at(4, 0, 0, 0)
            }
        );
        assert_eq!(
            parse("2026-12-31 23:00-01:00").unwrap(),
            Span::Dated {
                start: date(2026, 12, 31).at(23, 0, 0, 0),
                end: date(2027, 1, 1).at(1, 0, 0, 0)
            }
        );
    }

    #[test]
    fn patch_tuesday_forms() {
        assert_eq!(
            parse("patch-tuesday+3 02:00-06:00").unwrap(),
            Span::PatchTuesday {
                days: 3,
                start: time(2, 0, 0, 0),
                end: time(6, 0, 0, 0)
            }
        );
        assert_eq!(
            parse("Patch-Tuesday 20:00-23:00").unwrap(),
            Span::PatchTuesday {
                days: 0,
                start: time(20, 0, 0, 0),
                end: time(23, 0, 0, 0)
            }
        );
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        let cases = [
            ("Sat 06:00-06:00", "same time"),
            ("Sat 24:00-06:00", "not a time of day"),
            ("Sat 2:00-06:00", "not a time of day"),
            ("Sot 02:00-06:00", "not a day of the week"),
            ("Sat,Sat 02:00-06:00", "listed twice"),
            ("Sat", "expected"),
            ("2026-02-30 01:00-02:00", "not a date"),
            (
                "2026-12-25 04:00 - 2026-12-24 22:00",
                "ends before it starts",
            ),
            ("patch-tuesday+28 02:00-06:00", "0 to 27"),
            ("patch-tuesday-1 02:00-06:00", "write +N"),
            ("patch-tuesday", "expected"),
            ("", "empty"),
        ];
        for (text, want) in cases {
            let e = parse(text).expect_err(text).0;
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.contains(&format!("`{text}`")) || text.is_empty(), "{e}");
        }
    }

    #[test]
    fn patch_tuesday_is_the_second_tuesday() {
        // December 2026 starts on a Tuesday: the second Tuesday is the 8th, not the 1st or 15th.
        assert_eq!(patch_tuesday(2026, 12), Some(date(2026, 12, 8)));
        // September 2026 starts on a Tuesday too.
        assert_eq!(patch_tuesday(2026, 9), Some(date(2026, 9, 8)));
        // A month starting on a Wednesday has its second Tuesday as late as it gets: the 14th.
        assert_eq!(patch_tuesday(2026, 7), Some(date(2026, 7, 14)));
        assert_eq!(patch_tuesday(2027, 4), Some(date(2027, 4, 13)));
        assert_eq!(patch_tuesday(2026, 11), Some(date(2026, 11, 10)));
    }

    #[test]
    fn patch_tuesday_offset_crosses_into_the_next_month() {
        // Second Tuesday of July 2026 is the 14th; +20 days is 3 August. Asked about August, the
        // July rule's occurrence is found.
        let span = parse("patch-tuesday+20 02:00-04:00").unwrap();
        let z = tz("UTC");
        let occ = span.occurrences(date(2026, 8, 1), date(2026, 8, 31), &z);
        let starts: Vec<String> = occ.iter().map(|o| o.start.to_string()).collect();
        assert_eq!(starts, ["2026-08-03T02:00:00Z", "2026-08-31T02:00:00Z"]);
    }

    #[test]
    fn dst_keeps_wall_clock_times() {
        let z = tz("Europe/Berlin");
        // 2026-03-29 02:00 → 03:00 in Berlin: the 01:00-05:00 window lasts 3 hours that night.
        let span = parse("Sun 01:00-05:00").unwrap();
        let o = span.occurrences(date(2026, 3, 29), date(2026, 3, 29), &z)[0];
        assert_eq!(o.start.to_string(), "2026-03-29T00:00:00Z");
        assert_eq!(o.end.to_string(), "2026-03-29T03:00:00Z");
        // 2026-10-25 03:00 → 02:00: the same window lasts 5 hours.
        let o = span.occurrences(date(2026, 10, 25), date(2026, 10, 25), &z)[0];
        assert_eq!(o.end.duration_since(o.start).as_hours(), 5);
        // A start inside the spring-forward gap (02:30 does not exist) begins after the gap.
        let span = parse("Sun 02:30-04:00").unwrap();
        let o = span.occurrences(date(2026, 3, 29), date(2026, 3, 29), &z)[0];
        assert_eq!(o.start.to_string(), "2026-03-29T01:30:00Z");
        assert_eq!(o.end.to_string(), "2026-03-29T02:00:00Z");
    }

    #[test]
    fn overnight_weekly_window_ends_the_next_day() {
        let span = parse("Fri 22:00-02:00").unwrap();
        let o = span.occurrences(date(2026, 12, 4), date(2026, 12, 4), &tz("UTC"))[0];
        assert_eq!(o.start.to_string(), "2026-12-04T22:00:00Z");
        assert_eq!(o.end.to_string(), "2026-12-05T02:00:00Z");
    }
}
