//! Maintenance windows: when a host may be worked on.
//!
//! Real estates patch inside agreed windows. Each group (and `[group_defaults]`) may declare
//! `window = [...]` in a time zone: `window_zone`, an IANA name, `"local"` for this machine's zone,
//! or `"host"` for each host's own zone. `"host"` is the default: an admin writing
//! `"Sat 02:00-06:00"` for a server means 02:00 on that server's clock, wherever hive runs. The
//! host's zone is read from its registry before the run ([`zones`]); a host whose zone cannot be
//! read or mapped is not started, with the reason. A host gets the windows of its first group that
//! declares any, else the defaults', else none (always open). The forms are in [`spec`]; [`schedule`] answers "open now, until when, and
//! when next".
//!
//! The rollout asks a [`Gate`] before starting each host: it starts only when a window is open and
//! the host's [`estimate`] (copy at the measured rate, install time per recipe, a reboot budget)
//! fits in what is left of it. While a host runs, the rollout asks whether its window has closed:
//! then no new host starts, hosts in flight finish their current step, and the run pauses (or
//! waits for the next opening with `--wait-for-window`). Time comes from a [`clock::Clock`], so
//! tests can run windows sized in seconds or on a simulated clock.
//!
//! Everything is checked when a run starts (every group's windows, not just the selected hosts'),
//! so a typo in a window is an error naming the group and field, not a run that never starts.

pub mod clock;
pub mod estimate;
pub mod schedule;
pub mod spec;
pub mod zones;

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use thiserror::Error;

use crate::inventory::{GroupPolicy, GroupSettings, Host};

pub use clock::{Clock, SimClock, SystemClock};
pub use estimate::{Estimator, HostWork, RateMeter};
pub use schedule::{Opening, Schedule, Window, WindowState};

/// A window setting that cannot be used, naming where it is.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("inventory {layer}, `{field}`: {message}")]
pub struct WindowError {
    /// `[group.web]` or `[group_defaults]`.
    pub layer: String,
    pub field: &'static str,
    pub message: String,
}

/// The time zone named `name`, from the system's tz database or jiff's bundled copy (so a
/// machine without /usr/share/zoneinfo still knows every zone).
pub fn zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!("`{name}` is not a time zone hive knows: use an IANA name such as `Europe/Berlin`, `America/New_York` or `UTC`")
    })
}

/// The `window_zone` word for this machine's zone.
pub const LOCAL: &str = "local";

/// This machine's zone and its name.
fn system_zone() -> (String, TimeZone) {
    let tz = TimeZone::system();
    let name = tz
        .iana_name()
        .unwrap_or("this machine's time zone")
        .to_string();
    (name, tz)
}

fn layer_name(group: Option<&str>) -> String {
    match group {
        Some(g) => format!("[group.{g}]"),
        None => "[group_defaults]".to_string(),
    }
}

/// Check one layer's own window settings.
fn check_layer(group: Option<&str>, s: &GroupSettings, now: Timestamp) -> Result<(), WindowError> {
    let fail = |field, message| WindowError {
        layer: layer_name(group),
        field,
        message,
    };
    // A host's or this machine's zone is checked against UTC here: overlaps do not depend on it.
    let tz = match s.window_zone.as_deref() {
        Some(z) if !z.eq_ignore_ascii_case(zones::HOST) && !z.eq_ignore_ascii_case(LOCAL) => {
            zone(z).map_err(|m| fail("window_zone", m))?
        }
        _ => TimeZone::UTC,
    };
    if let Some(texts) = &s.window {
        if texts.is_empty() {
            return Err(fail(
                "window",
                "an empty list would never open: remove the field to have no window".into(),
            ));
        }
        let zone_name = s.window_zone.clone().unwrap_or_else(|| "UTC".into());
        let sched = Schedule::new(texts, zone_name, tz).map_err(|e| fail("window", e.0))?;
        sched.check_overlaps(now).map_err(|m| fail("window", m))?;
    }
    Ok(())
}

/// Every host's schedule (`None`: no window, always open).
#[derive(Debug, Clone, Default)]
pub struct HostWindows {
    by_host: BTreeMap<String, Option<Arc<Schedule>>>,
    refused: BTreeMap<String, String>,
}

impl HostWindows {
    /// The hosts whose windows are in their own zone (`window_zone = "host"` or none named):
    /// their zones must be read ([`crate::scan::zone::read_zone`]) before [`HostWindows::resolve`].
    pub fn need_host_zone(policy: &GroupPolicy, hosts: &[Host]) -> Vec<String> {
        hosts
            .iter()
            .filter(|h| policy.layers(h).any(|s| s.window.is_some()))
            .filter(|h| {
                policy
                    .layers(h)
                    .find_map(|s| s.window_zone.as_deref())
                    .is_none_or(|z| z.eq_ignore_ascii_case(zones::HOST))
            })
            .map(|h| h.name.clone())
            .collect()
    }

    /// Check every layer of `policy`, then resolve each host's windows and zone (each on its own,
    /// through the layers). `host_zones` has the zone of each host of
    /// [`HostWindows::need_host_zone`], or why it could not be had: such a host is refused.
    pub fn resolve(
        policy: &GroupPolicy,
        hosts: &[Host],
        now: Timestamp,
        host_zones: &BTreeMap<String, Result<zones::HostZone, String>>,
    ) -> Result<HostWindows, WindowError> {
        check_layer(None, &policy.defaults, now)?;
        for (g, s) in &policy.groups {
            check_layer(Some(g), s, now)?;
        }
        let mut out = HostWindows::default();
        for h in hosts {
            let texts = policy.layers(h).find_map(|s| s.window.as_ref());
            let sched = match texts {
                None => None,
                Some(texts) => {
                    let named = policy.layers(h).find_map(|s| s.window_zone.as_ref());
                    let (name, tz) = match named.map(String::as_str) {
                        Some(z) if z.eq_ignore_ascii_case(LOCAL) => system_zone(),
                        Some(z) if !z.eq_ignore_ascii_case(zones::HOST) => (
                            z.to_string(),
                            zone(z).map_err(|message| WindowError {
                                layer: format!("host {}", h.name),
                                field: "window_zone",
                                message,
                            })?,
                        ),
                        _ => match host_zones.get(&h.name) {
                            Some(Ok(z)) => (
                                format!("{} ({}, the host's zone)", z.iana, z.windows_id),
                                z.tz.clone(),
                            ),
                            Some(Err(why)) => {
                                out.refused.insert(h.name.clone(), why.clone());
                                continue;
                            }
                            None => {
                                out.refused.insert(
                                    h.name.clone(),
                                    format!("{}: its time zone was not read", h.name),
                                );
                                continue;
                            }
                        },
                    };
                    let s = Schedule::new(texts, name, tz).map_err(|e| WindowError {
                        layer: format!("host {}", h.name),
                        field: "window",
                        message: e.0,
                    })?;
                    Some(Arc::new(s))
                }
            };
            out.by_host.insert(h.name.clone(), sched);
        }
        Ok(out)
    }

    /// Why `host` may not start at all (its windows are in its own zone, which could not be read
    /// or is unknown).
    pub fn refused(&self, host: &str) -> Option<&str> {
        self.refused.get(host).map(String::as_str)
    }

    /// Give `host` a schedule directly (tests, library users without an inventory).
    pub fn set(&mut self, host: &str, schedule: Option<Schedule>) {
        self.by_host
            .insert(host.to_string(), schedule.map(Arc::new));
    }

    pub fn of(&self, host: &str) -> Option<&Schedule> {
        self.by_host.get(host).and_then(|s| s.as_deref())
    }

    /// Does any host have a window (or is refused for its zone)?
    pub fn any(&self) -> bool {
        self.by_host.values().any(Option::is_some) || !self.refused.is_empty()
    }
}

/// An instant as an admin reads it, in the window's zone.
pub fn show(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%a %Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// A span of time as an admin reads it.
pub fn show_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s.div_ceil(60)),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600).div_ceil(60).min(59)),
    }
}

/// The rollout's question before a host starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Start it.
    Go,
    /// Not now: `reason` says why; `until` is when it may start (`None`: no window ahead fits).
    Wait {
        reason: String,
        until: Option<Timestamp>,
    },
}

/// Windows, estimates and a clock: what the rollout consults before and while it works on hosts.
pub struct Gate {
    pub clock: Arc<dyn Clock>,
    pub windows: HostWindows,
    pub estimator: Estimator,
}

impl Gate {
    /// May `host` start now?
    pub fn admit(&self, host: &str) -> Admission {
        let Some(s) = self.windows.of(host) else {
            return Admission::Go;
        };
        let now = self.clock.now();
        let need = self.estimator.estimate(host);
        match s.state_at(now) {
            WindowState::Open { window, until } => {
                let left =
                    std::time::Duration::try_from(until.duration_since(now)).unwrap_or_default();
                if need <= left {
                    return Admission::Go;
                }
                let next = self.next_fitting(s, until, need);
                Admission::Wait {
                    reason: format!(
                        "{host} needs about {} but window `{window}` closes at {} ({} left){}",
                        show_duration(need),
                        show(until, &s.tz),
                        show_duration(left),
                        next_words(&next, s),
                    ),
                    until: next.map(|o| o.start),
                }
            }
            WindowState::Closed { next } => {
                let fits = next.and_then(|o| {
                    if window_len(&o) >= need {
                        Some(o)
                    } else {
                        self.next_fitting(s, o.start, need)
                    }
                });
                Admission::Wait {
                    reason: format!("{host}: outside its windows{}", next_words(&fits, s)),
                    until: fits.map(|o| o.start),
                }
            }
        }
    }

    /// The first opening after `after` long enough for `need`.
    fn next_fitting(
        &self,
        s: &Schedule,
        after: Timestamp,
        need: std::time::Duration,
    ) -> Option<Opening> {
        let mut t = after;
        // A year of weekly openings at most; a need longer than every window ends the search.
        for _ in 0..60 {
            let o = s.next_opening(t)?;
            if window_len(&o) >= need {
                return Some(o);
            }
            t = o.start;
        }
        None
    }

    /// Has the window `host` started in closed? (`Some(why)`: finish the current step and stop.)
    pub fn closed(&self, host: &str) -> Option<String> {
        let s = self.windows.of(host)?;
        let now = self.clock.now();
        match s.state_at(now) {
            WindowState::Open { .. } => None,
            WindowState::Closed { .. } => {
                Some(format!("{host}: its window closed at {}", show(now, &s.tz)))
            }
        }
    }

    /// Wait until `at` on the gate's clock.
    pub async fn sleep_until(&self, at: Timestamp) {
        self.clock.sleep_until(at).await
    }
}

/// What `hive deploy --dry-run` shows of the windows: per host, its window now or next, its
/// estimate, and whether it fits.
pub fn listing(gate: &Gate, hosts: &[String]) -> String {
    let now = gate.clock.now();
    let width = hosts.iter().map(|h| h.len()).max().unwrap_or(4).max(4);
    let mut out = format!("Maintenance windows (now {now}):\n");
    for host in hosts {
        if let Some(why) = gate.windows.refused(host) {
            out.push_str(&format!("  {host:<width$}  WOULD NOT START: {why}\n"));
            continue;
        }
        let Some(s) = gate.windows.of(host) else {
            out.push_str(&format!(
                "  {host:<width$}  no window: may start any time\n"
            ));
            continue;
        };
        let need = show_duration(gate.estimator.estimate(host));
        let when = match s.state_at(now) {
            WindowState::Open { window, until } => format!(
                "in window `{window}` ({}) until {}",
                s.zone,
                show(until, &s.tz)
            ),
            WindowState::Closed { next: Some(o) } => format!(
                "next window `{}` ({}) opens {}",
                o.window,
                s.zone,
                show(o.start, &s.tz)
            ),
            WindowState::Closed { next: None } => {
                format!("no window of {} opens in the coming year", s.zone)
            }
        };
        let fit = match gate.admit(host) {
            Admission::Go => format!("needs about {need}: fits, starts now"),
            Admission::Wait { until: Some(t), .. } => {
                format!("needs about {need}: would start {}", show(t, &s.tz))
            }
            Admission::Wait { until: None, .. } => {
                format!("needs about {need}: WOULD NOT FIT in any window")
            }
        };
        out.push_str(&format!("  {host:<width$}  {when}; {fit}\n"));
    }
    out
}

fn window_len(o: &Opening) -> std::time::Duration {
    std::time::Duration::try_from(o.end.duration_since(o.start)).unwrap_or_default()
}

fn next_words(next: &Option<Opening>, s: &Schedule) -> String {
    match next {
        Some(o) => format!(
            "; next window `{}` opens {}",
            o.window,
            show(o.start, &s.tz)
        ),
        None => format!("; no window in the coming year ({}) is long enough", s.zone),
    }
}

#[cfg(test)]
mod tests;
