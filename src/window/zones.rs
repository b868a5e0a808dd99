//! Windows time zone ids to IANA zones, for windows in a host's own zone (`window_zone =
//! "host"`): the host says its Windows id ([`crate::scan::zone`]), CLDR's windowsZones table says
//! which IANA zone that is, and the window is evaluated there.
//!
//! The table is generated from CLDR's `supplemental/windowsZones.xml` by `zones/generate.py`
//! (territory 001 rows: CLDR's own answer for id -> IANA); regenerate it when CLDR adds zones.

#[rustfmt::skip]
mod windows_zones;

use jiff::tz::TimeZone;

pub use windows_zones::WINDOWS_ZONES;

/// The `window_zone` word for "the host's own zone".
pub const HOST: &str = "host";

/// The IANA zone CLDR maps the Windows zone id `id` to.
pub fn iana_of_windows(id: &str) -> Option<&'static str> {
    let id = id.trim();
    WINDOWS_ZONES
        .binary_search_by(|(w, _)| (*w).cmp(id))
        .ok()
        .or_else(|| {
            WINDOWS_ZONES
                .iter()
                .position(|(w, _)| w.eq_ignore_ascii_case(id))
        })
        .map(|i| WINDOWS_ZONES[i].1)
}

/// A host's zone: its Windows id and the IANA zone it maps to.
#[derive(Debug, Clone)]
pub struct HostZone {
    pub windows_id: String,
    pub iana: &'static str,
    pub tz: TimeZone,
}

/// `host`'s zone from its Windows id, or why it cannot be used, naming the host and the zone.
pub fn zone_of(host: &str, windows_id: &str) -> Result<HostZone, String> {
    let iana = iana_of_windows(windows_id).ok_or_else(|| {
        format!(
            "{host}: its time zone `{windows_id}` is not a Windows zone hive knows (CLDR windowsZones): set `window_zone` to an IANA name for its group"
        )
    })?;
    let tz = TimeZone::get(iana)
        .map_err(|e| format!("{host}: time zone `{windows_id}` maps to `{iana}`: {e}"))?;
    Ok(HostZone {
        windows_id: windows_id.to_string(),
        iana,
        tz,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_table_is_sorted_unique_and_every_zone_exists() {
        assert!(WINDOWS_ZONES.len() > 130, "{}", WINDOWS_ZONES.len());
        for pair in WINDOWS_ZONES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{:?} before {:?}", pair[0], pair[1]);
        }
        for (w, iana) in WINDOWS_ZONES {
            assert!(TimeZone::get(iana).is_ok(), "{w} -> {iana} unknown to jiff");
        }
    }

    #[test]
    fn windows_ids_map_as_cldr_says() {
        assert_eq!(
            iana_of_windows("W. Europe Standard Time"),
            Some("Europe/Berlin")
        );
        assert_eq!(
            iana_of_windows("Pacific Standard Time"),
            Some("America/Los_Angeles")
        );
        assert_eq!(iana_of_windows("Tokyo Standard Time"), Some("Asia/Tokyo"));
        assert_eq!(iana_of_windows("UTC"), Some("Etc/UTC"));
        assert_eq!(iana_of_windows("tokyo standard time"), Some("Asia/Tokyo"));
        assert_eq!(iana_of_windows("Mars Standard Time"), None);
        let e = zone_of("WEB01", "Mars Standard Time").unwrap_err();
        assert!(
            e.contains("WEB01") && e.contains("`Mars Standard Time`"),
            "{e}"
        );
    }
}
