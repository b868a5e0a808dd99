use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::inventory::Inventory;

fn inv(extra: &str) -> Inventory {
    let text = format!(
        r#"
[defaults]
user = "Administrator"
credential = "env:HIVE_PASSWORD"

[[host]]
name = "web01"
address = "127.0.0.1"
groups = ["web"]

[[host]]
name = "db01"
address = "127.0.0.2"
groups = ["db"]

[[host]]
name = "app01"
address = "127.0.0.3"
{extra}"#
    );
    Inventory::parse(&text, Path::new("inv.toml")).expect("inventory")
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn no_zones() -> BTreeMap<String, Result<zones::HostZone, String>> {
    BTreeMap::new()
}

#[test]
fn windows_default_to_each_hosts_own_zone_and_an_unknown_zone_refuses_the_host() {
    let i = inv(r#"
[group_defaults]
window = ["Sat 02:00-06:00"]

[group.db]
window_zone = "local"
"#);
    assert_eq!(
        HostWindows::need_host_zone(&i.policy, &i.hosts),
        ["web01", "app01"]
    );
    let mut host_zones = no_zones();
    host_zones.insert(
        "web01".into(),
        zones::zone_of("web01", "Tokyo Standard Time"),
    );
    host_zones.insert(
        "app01".into(),
        zones::zone_of("app01", "Pacific Standard Time"),
    );
    let w =
        HostWindows::resolve(&i.policy, &i.hosts, ts("2026-12-01T00:00:00Z"), &host_zones).unwrap();
    // The same window, in two zones: at 2026-12-05 03:00 in Tokyo (Fri 18:00 UTC) web01's is
    // open and app01's (Fri 10:00 in Los Angeles) is closed.
    let clock = Arc::new(SimClock::starting_at(ts("2026-12-04T18:00:00Z")));
    let gate = Gate {
        clock: Arc::new(clock.clone()),
        windows: w,
        estimator: Estimator::zero(),
    };
    assert_eq!(gate.admit("web01"), Admission::Go);
    let Admission::Wait { until, .. } = gate.admit("app01") else {
        panic!("app01 started at 10:00 on a Friday in Los Angeles")
    };
    assert_eq!(until, Some(ts("2026-12-05T10:00:00Z")));
    assert!(
        gate.windows
            .of("web01")
            .unwrap()
            .zone
            .starts_with("Asia/Tokyo (Tokyo Standard Time"),
        "{}",
        gate.windows.of("web01").unwrap().zone
    );
    assert!(gate.windows.of("db01").is_some());

    host_zones.insert(
        "app01".into(),
        zones::zone_of("app01", "Olympus Mons Standard Time"),
    );
    host_zones.remove("web01");
    let w =
        HostWindows::resolve(&i.policy, &i.hosts, ts("2026-12-01T00:00:00Z"), &host_zones).unwrap();
    let why = w.refused("app01").unwrap();
    assert!(
        why.contains("app01") && why.contains("`Olympus Mons Standard Time`"),
        "{why}"
    );
    assert!(w.refused("web01").unwrap().contains("not read"));
    assert!(w.of("app01").is_none() && w.refused("db01").is_none());
}

#[test]
fn each_host_gets_its_groups_windows_else_the_defaults_and_zones_resolve_on_their_own() {
    let i = inv(r#"
[group_defaults]
window = ["Sun 01:00-05:00"]
window_zone = "America/New_York"

[group.web]
window = ["Sat 02:00-06:00"]

[group.db]
window_zone = "Europe/Berlin"
"#);
    let w =
        HostWindows::resolve(&i.policy, &i.hosts, ts("2026-12-01T00:00:00Z"), &no_zones()).unwrap();
    let web = w.of("web01").unwrap();
    assert_eq!(web.windows[0].label, "Sat 02:00-06:00");
    assert_eq!(web.zone, "America/New_York");
    let db = w.of("db01").unwrap();
    assert_eq!(db.windows[0].label, "Sun 01:00-05:00");
    assert_eq!(db.zone, "Europe/Berlin");
    assert_eq!(w.of("app01").unwrap().zone, "America/New_York");
}

#[test]
fn no_window_anywhere_means_always_open() {
    let i = inv("");
    let w = HostWindows::resolve(&i.policy, &i.hosts, Timestamp::now(), &no_zones()).unwrap();
    assert!(!w.any());
    let gate = Gate {
        clock: Arc::new(SystemClock),
        windows: w,
        estimator: Estimator::zero(),
    };
    assert_eq!(gate.admit("web01"), Admission::Go);
}

#[test]
fn bad_window_settings_name_the_group_and_field() {
    let cases = [
        (
            "[group.web]\nwindow_zone = \"Mars/Olympus\"\n",
            "inventory [group.web], `window_zone`: `Mars/Olympus` is not a time zone",
        ),
        (
            "[group_defaults]\nwindow = [\"Sat 25:00-06:00\"]\n",
            "inventory [group_defaults], `window`: window `Sat 25:00-06:00`",
        ),
        (
            "[group.db]\nwindow = []\n",
            "inventory [group.db], `window`: an empty list",
        ),
        (
            "[group.db]\nwindow = [\"Sat 02:00-06:00\", \"Sat 05:00-07:00\"]\n",
            "inventory [group.db], `window`: windows `Sat 02:00-06:00` and `Sat 05:00-07:00` overlap",
        ),
    ];
    for (extra, want) in cases {
        let i = inv(extra);
        let e = HostWindows::resolve(&i.policy, &i.hosts, ts("2026-12-01T00:00:00Z"), &no_zones())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{extra}: {e}");
    }
}

#[test]
fn unknown_window_keys_are_refused_by_the_inventory() {
    let text = r#"
[[host]]
name = "web01"
address = "127.0.0.1"
user = "a"
credential = "env:X"
[group.web]
windows = ["Sat 02:00-06:00"]
"#;
    let e = Inventory::parse(text, Path::new("inv.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("windows"), "{e}");
}

fn gate_at(start: &str, window: &str, need: Duration) -> (Gate, Arc<SimClock>) {
    let clock = Arc::new(SimClock::starting_at(ts(start)));
    let mut windows = HostWindows::default();
    windows.set(
        "web01",
        Some(Schedule::new(&[window.to_string()], "UTC".into(), jiff::tz::TimeZone::UTC).unwrap()),
    );
    let mut estimator = Estimator::zero();
    estimator.default_work.install = need;
    (
        Gate {
            clock: Arc::new(clock.clone()),
            windows,
            estimator,
        },
        clock,
    )
}

#[test]
fn a_host_starts_only_when_its_estimate_fits_in_what_is_left() {
    // Saturday 2026-12-05, window 02:00-06:00 UTC, the host needs 45 minutes.
    let (gate, clock) = gate_at(
        "2026-12-05T05:00:00Z",
        "Sat 02:00-06:00",
        Duration::from_secs(45 * 60),
    );
    assert_eq!(gate.admit("web01"), Admission::Go);
    assert_eq!(gate.closed("web01"), None);
    clock.set(ts("2026-12-05T05:20:00Z"));
    let Admission::Wait { reason, until } = gate.admit("web01") else {
        panic!("40 minutes left, 45 needed, and it started")
    };
    assert!(
        reason.contains("needs about 45m") && reason.contains("closes at Sat 2026-12-05 06:00:00"),
        "{reason}"
    );
    assert_eq!(until, Some(ts("2026-12-12T02:00:00Z")));
    clock.set(ts("2026-12-05T06:00:00Z"));
    assert!(gate.closed("web01").is_some());
    let Admission::Wait { until, reason } = gate.admit("web01") else {
        panic!("started outside its window")
    };
    assert!(reason.contains("outside its windows"), "{reason}");
    assert_eq!(until, Some(ts("2026-12-12T02:00:00Z")));
    // The clock moved to the next opening: go.
    clock.advance(SignedDuration::from_hours(24 * 6 + 20));
    assert_eq!(gate.admit("web01"), Admission::Go);
}

#[test]
fn a_host_no_window_can_hold_never_starts_and_says_so() {
    let (gate, _clock) = gate_at(
        "2026-12-05T03:00:00Z",
        "Sat 02:00-06:00",
        Duration::from_secs(5 * 3600),
    );
    let Admission::Wait { reason, until } = gate.admit("web01") else {
        panic!("a 5 h host started in a 4 h window")
    };
    assert_eq!(until, None);
    assert!(reason.contains("no window in the coming year"), "{reason}");
}

#[test]
fn the_dry_run_listing_says_where_each_host_falls_and_what_would_not_fit() {
    let (mut gate, _clock) = gate_at(
        "2026-12-05T03:00:00Z",
        "Sat 02:00-06:00",
        Duration::from_secs(30 * 60),
    );
    gate.windows.set(
        "db01",
        Some(
            Schedule::new(
                &["Sun 01:00-02:00".to_string()],
                "Europe/Berlin".into(),
                zone("Europe/Berlin").unwrap(),
            )
            .unwrap(),
        ),
    );
    gate.windows.set("app01", None);
    let text = listing(&gate, &["web01".into(), "db01".into(), "app01".into()]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("Maintenance windows (now 2026-12-05T03:00"),
        "{text}"
    );
    assert!(
        lines[1].contains("web01  in window `Sat 02:00-06:00` (UTC) until Sat 2026-12-05 06:00:00 UTC; needs about 30m: fits, starts now"),
        "{text}"
    );
    assert!(
        lines[2].contains("db01   next window `Sun 01:00-02:00` (Europe/Berlin) opens Sun 2026-12-06 01:00:00 CET; needs about 30m: would start Sun 2026-12-06 01:00:00 CET"),
        "{text}"
    );
    assert!(
        lines[3].contains("app01  no window: may start any time"),
        "{text}"
    );
    gate.estimator.default_work.install = Duration::from_secs(2 * 3600);
    let text = listing(&gate, &["db01".into()]);
    assert!(
        text.contains("needs about 2h00m: WOULD NOT FIT in any window"),
        "{text}"
    );
}
