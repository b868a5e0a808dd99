//! The host's time zone, as Windows keeps it: a fact the probe reads like any registry value
//! (PowerShell and `reg query` hosts alike, fail-soft: a key it cannot read is left unknown), and
//! that a run reads with one `reg query` before it starts when a host's maintenance windows are
//! in the host's own zone ([`crate::window::zones`] maps the id to an IANA zone).
//!
//! Vista and later name the zone in `TimeZoneKeyName` (`W. Europe Standard Time`); older Windows
//! only has `StandardName`, which there is the same English id (on Vista and later it is a
//! `@tzres.dll,-321` resource reference, useless here, so it is read only as a fallback).

use std::collections::BTreeMap;

use super::facts::HostFacts;
use crate::remote::{Command, RemoteError, Target};

/// Where Windows keeps its time zone.
pub const TIME_ZONE_KEY: &str = r"HKLM\SYSTEM\CurrentControlSet\Control\TimeZoneInformation";
/// The values of [`TIME_ZONE_KEY`] that name the zone, most telling first.
pub const ZONE_VALUES: [&str; 2] = ["TimeZoneKeyName", "StandardName"];

/// The Windows zone id among a key's values (names matched case-insensitively).
pub fn windows_zone_in(values: &BTreeMap<String, String>) -> Option<String> {
    ZONE_VALUES.iter().find_map(|name| {
        let data = HostFacts::registry_value(values, name)?;
        // Some Windows builds leave bytes after the terminating NUL of TimeZoneKeyName.
        let data = data.split('\0').next().unwrap_or("").trim();
        (!data.is_empty() && !data.starts_with('@')).then(|| data.to_string())
    })
}

/// The host's Windows zone id as its scan read it, if the probe could tell.
pub fn zone_in_facts(facts: &HostFacts) -> Option<String> {
    facts
        .registry_key(TIME_ZONE_KEY)
        .flatten()
        .and_then(windows_zone_in)
}

/// `reg query` of the zone key: one cmd.exe line, the same over WinRM and SSH.
pub fn zone_query() -> String {
    format!("reg query \"{TIME_ZONE_KEY}\"")
}

/// The Windows zone id in `reg query` output of [`TIME_ZONE_KEY`].
pub fn zone_in_reg_output(stdout: &str) -> Option<String> {
    let mut dump = super::legacy::RegDump::new();
    super::legacy::parse_reg_output(stdout, &mut dump);
    let values: BTreeMap<String, String> = dump
        .get(&TIME_ZONE_KEY.to_ascii_lowercase())?
        .iter()
        .map(|(name, (_, data))| (name.clone(), data.clone()))
        .collect();
    windows_zone_in(&values)
}

/// Ask the host for its Windows zone id.
pub async fn read_zone(
    target: &mut dyn Target,
    timeout: std::time::Duration,
) -> Result<String, String> {
    let host = target.host().to_string();
    let out = target
        .exec(&Command::Cmd(zone_query()), timeout)
        .await
        .map_err(|e: RemoteError| format!("{host}: cannot read its time zone: {e}"))?;
    zone_in_reg_output(&out.stdout).ok_or_else(|| {
        format!(
            "{host}: cannot read its time zone (`{}` exited {} with no TimeZoneKeyName or StandardName): set `window_zone` to an IANA name for its group",
            zone_query(),
            out.exit_code
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_is_read_from_reg_query_output_key_name_first() {
        let vista = "\r\nHKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\TimeZoneInformation\r\n    Bias    REG_DWORD    0xffffffc4\r\n    StandardName    REG_SZ    @tzres.dll,-321\r\n    TimeZoneKeyName    REG_SZ    W. Europe Standard Time\r\n\r\n";
        assert_eq!(
            zone_in_reg_output(vista).as_deref(),
            Some("W. Europe Standard Time")
        );
        let xp = "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\TimeZoneInformation\r\n    StandardName    REG_SZ    Eastern Standard Time\r\n";
        assert_eq!(
            zone_in_reg_output(xp).as_deref(),
            Some("Eastern Standard Time")
        );
        let vista_no_key = "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\TimeZoneInformation\r\n    StandardName    REG_SZ    @tzres.dll,-321\r\n";
        assert_eq!(zone_in_reg_output(vista_no_key), None);
        assert_eq!(zone_in_reg_output("ERROR: access denied"), None);
    }
}
