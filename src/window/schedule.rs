//! A host's maintenance windows in their time zone: is one open now, until when, and when does
//! the next one open.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::spec::{self, Occurrence, Span};

/// One window as the inventory wrote it, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The text as written: what the journal and the progress display name it by.
    pub label: String,
    pub span: Span,
}

/// Where a host's windows stand at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowState {
    /// `window` is open until `until` (windows that follow each other without a gap count as
    /// one opening).
    Open { window: String, until: Timestamp },
    /// Closed; `next` is the next opening, if any window opens again.
    Closed { next: Option<Opening> },
}

/// The next time a window opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    pub window: String,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Every window of one host (or group), in one time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The zone's IANA name (or the system's zone name).
    pub zone: String,
    pub tz: TimeZone,
    pub windows: Vec<Window>,
}

/// How far ahead the next opening is looked for: a dated window more than this far ahead is
/// "no opening" for a run, which is what an operator wants to hear about.
const HORIZON_DAYS: [i64; 3] = [8, 62, 400];

impl Schedule {
    /// Windows parsed from their texts, in `tz`.
    pub fn new(texts: &[String], zone: String, tz: TimeZone) -> Result<Schedule, spec::SpecError> {
        let windows = texts
            .iter()
            .map(|t| {
                Ok(Window {
                    label: t.trim().to_string(),
                    span: spec::parse(t)?,
                })
            })
            .collect::<Result<Vec<_>, spec::SpecError>>()?;
        Ok(Schedule { zone, tz, windows })
    }

    fn date_of(&self, t: Timestamp) -> Date {
        t.to_zoned(self.tz.clone()).date()
    }

    /// Openings that start on civil days `from` to `to` in this zone, by start.
    fn openings(&self, from: Date, to: Date) -> Vec<(usize, Occurrence)> {
        let mut all: Vec<(usize, Occurrence)> = self
            .windows
            .iter()
            .enumerate()
            .flat_map(|(i, w)| {
                w.span
                    .occurrences(from, to, &self.tz)
                    .into_iter()
                    .map(move |o| (i, o))
            })
            .collect();
        all.sort_by_key(|(_, o)| *o);
        all
    }

    /// Is a window open at `t`, and until when; else when the next one opens.
    pub fn state_at(&self, t: Timestamp) -> WindowState {
        let day = self.date_of(t);
        let back = day.checked_sub(2.days()).unwrap_or(day);
        let ahead = day.checked_add(HORIZON_DAYS[0].days()).unwrap_or(day);
        let near = self.openings(back, ahead);
        if let Some((i, o)) = near.iter().find(|(_, o)| o.start <= t && t < o.end) {
            let mut until = o.end;
            // Windows back to back are one opening for what fits in it.
            while let Some((_, next)) = near.iter().find(|(_, n)| n.start == until) {
                until = next.end;
            }
            return WindowState::Open {
                window: self.windows[*i].label.clone(),
                until,
            };
        }
        WindowState::Closed {
            next: self.next_opening(t),
        }
    }

    /// The first opening that starts after `t`.
    pub fn next_opening(&self, t: Timestamp) -> Option<Opening> {
        let day = self.date_of(t);
        for days in HORIZON_DAYS {
            let to = day.checked_add(days.days()).unwrap_or(day);
            if let Some((i, o)) = self
                .openings(day, to)
                .into_iter()
                .find(|(_, o)| o.start > t)
            {
                return Some(Opening {
                    window: self.windows[i].label.clone(),
                    start: o.start,
                    end: o.end,
                });
            }
        }
        None
    }

    /// Two windows whose openings overlap within a year from `from`: an inventory mistake (the
    /// admin meant one window, or got a day wrong), refused rather than silently merged.
    pub fn check_overlaps(&self, from: Timestamp) -> Result<(), String> {
        let day = self.date_of(from);
        let back = day.checked_sub(2.days()).unwrap_or(day);
        let to = day.checked_add(400.days()).unwrap_or(day);
        let all = self.openings(back, to);
        for pair in all.windows(2) {
            let ((a, x), (b, y)) = (pair[0], pair[1]);
            if y.start < x.end {
                let (a, b) = (&self.windows[a].label, &self.windows[b].label);
                let at = x.start.to_zoned(self.tz.clone());
                return Err(if a == b {
                    format!(
                        "window `{a}` overlaps itself (its openings on {} run into each other)",
                        at.date()
                    )
                } else {
                    format!(
                        "windows `{a}` and `{b}` overlap (on {} in {}): make them one window or move one",
                        at.date(),
                        self.zone
                    )
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(texts: &[&str], zone: &str) -> Schedule {
        let texts: Vec<String> = texts.iter().map(|s| s.to_string()).collect();
        Schedule::new(&texts, zone.into(), TimeZone::get(zone).unwrap()).unwrap()
    }
    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn open_until_its_end_then_closed_until_next_week() {
        let s = sched(&["Sat 02:00-06:00"], "Europe/Berlin");
        // 2026-12-05 is a Saturday; Berlin is UTC+1 in December.
        assert_eq!(
            s.state_at(ts("2026-12-05T01:30:00Z")),
            WindowState::Open {
                window: "Sat 02:00-06:00".into(),
                until: ts("2026-12-05T05:00:00Z")
            }
        );
        let WindowState::Closed { next: Some(n) } = s.state_at(ts("2026-12-05T05:00:00Z")) else {
            panic!("open at its end")
        };
        assert_eq!(n.start, ts("2026-12-12T01:00:00Z"));
        let WindowState::Closed { next: Some(n) } = s.state_at(ts("2026-12-05T00:59:59Z")) else {
            panic!("open before its start")
        };
        assert_eq!(n.start, ts("2026-12-05T01:00:00Z"));
    }

    #[test]
    fn windows_back_to_back_are_one_opening() {
        let s = sched(&["Fri 22:00-00:00", "Sat 00:00-04:00"], "UTC");
        let WindowState::Open { until, .. } = s.state_at(ts("2026-12-04T23:00:00Z")) else {
            panic!("closed")
        };
        assert_eq!(until, ts("2026-12-05T04:00:00Z"));
    }

    #[test]
    fn overlapping_windows_are_refused_with_both_names() {
        let s = sched(&["Sat 02:00-06:00", "Sat 05:00-07:00"], "UTC");
        let e = s.check_overlaps(ts("2026-12-01T00:00:00Z")).unwrap_err();
        assert!(
            e.contains("`Sat 02:00-06:00`") && e.contains("`Sat 05:00-07:00`"),
            "{e}"
        );
        // Patch Tuesday + 4 is always a Saturday: it collides with a weekly Saturday window.
        let s = sched(&["Sat 02:00-06:00", "patch-tuesday+4 04:00-08:00"], "UTC");
        assert!(s.check_overlaps(ts("2026-12-01T00:00:00Z")).is_err());
        // A daily overnight window that runs into the next day's start overlaps itself.
        let s = sched(&["Mon-Sun 20:00-21:00", "Sun 20:30-22:00"], "UTC");
        assert!(s.check_overlaps(ts("2026-12-01T00:00:00Z")).is_err());
        let s = sched(&["Sat 02:00-06:00", "Sun 02:00-06:00"], "UTC");
        assert!(s.check_overlaps(ts("2026-12-01T00:00:00Z")).is_ok());
    }

    #[test]
    fn a_past_dated_window_never_opens_again() {
        let s = sched(&["2026-01-01 01:00-02:00"], "UTC");
        assert_eq!(
            s.state_at(ts("2026-12-05T00:00:00Z")),
            WindowState::Closed { next: None }
        );
    }

    #[test]
    fn patch_tuesday_window_next_opening() {
        // December 2026: second Tuesday is the 8th, +3 days the Friday 11th.
        let s = sched(&["patch-tuesday+3 22:00-02:00"], "America/New_York");
        let n = s.next_opening(ts("2026-12-05T00:00:00Z")).unwrap();
        assert_eq!(n.start, ts("2026-12-12T03:00:00Z"));
        assert_eq!(n.end, ts("2026-12-12T07:00:00Z"));
    }
}
