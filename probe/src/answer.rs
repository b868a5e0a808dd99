//! Reading the probe's answer: the last line of JSON it printed, checked against the schema this
//! side speaks, or the signal that the host must be scanned the legacy way.

use crate::{LEGACY_SIGNAL, PROBE_SCHEMA, ProbeFacts};

/// What a probe run printed, once understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutput {
    /// The facts.
    Facts(Box<ProbeFacts>),
    /// The host's PowerShell is too old for the probe (its version as it reported it): scan it
    /// the legacy way.
    Legacy { powershell: String },
}

/// Why a probe's output could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeOutputError {
    #[error("no JSON object in the output")]
    NoJson,
    #[error("the JSON does not hold probe facts: {0}")]
    Json(String),
    #[error("probe schema {found} (this hive speaks {PROBE_SCHEMA})")]
    Schema { found: u32 },
}

/// Reads what the probe printed: the last line that is a JSON object (a profile banner or a
/// UTF-8 byte order mark before it is ignored), or the [`LEGACY_SIGNAL`] line.
pub fn parse_output(stdout: &str) -> Result<ProbeOutput, ProbeOutputError> {
    let lines = || {
        stdout
            .lines()
            .rev()
            .map(|l| l.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}'))
    };
    if let Some(rest) = lines().find_map(|l| l.strip_prefix(LEGACY_SIGNAL)) {
        return Ok(ProbeOutput::Legacy {
            powershell: rest.trim().to_string(),
        });
    }
    let line = lines()
        .find(|l| l.starts_with('{'))
        .ok_or(ProbeOutputError::NoJson)?;
    // One parse for the answer of this version; the generic one only to say why another failed.
    let parsed = match serde_json::from_str::<ProbeFacts>(line) {
        Ok(facts) if facts.schema == PROBE_SCHEMA => {
            return Ok(ProbeOutput::Facts(Box::new(facts)));
        }
        other => other,
    };
    let schema = serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("schema").and_then(serde_json::Value::as_u64));
    if let Some(found) = schema
        && found != u64::from(PROBE_SCHEMA)
    {
        return Err(ProbeOutputError::Schema {
            found: u32::try_from(found).unwrap_or(u32::MAX),
        });
    }
    let facts = parsed.map_err(|e| ProbeOutputError::Json(e.to_string()))?;
    Ok(ProbeOutput::Facts(Box::new(facts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"{"schema":2,"computer_name":"A","product_name":"Windows Server 2019 Datacenter","edition_id":"ServerDatacenter","csd_version":"","major":10,"minor":0,"build":17763,"ubr":5458,"installed_kbs":[],"pending_reboot":{"cbs_reboot_pending":false,"windows_update_reboot_required":false,"pending_file_renames":false,"update_exe_volatile":false},"last_boot_time":"2026-11-25T10:00:00.000Z","free_disk_bytes":1,"registry":[],"files":[]}"#;

    #[test]
    fn the_answer_is_found_after_a_banner() {
        let out = format!("Windows PowerShell\r\nCopyright\r\n{ANSWER}\r\n");
        assert_eq!(
            parse_output(&out).map(|o| match o {
                ProbeOutput::Facts(f) => f.build,
                ProbeOutput::Legacy { .. } => 0,
            }),
            Ok(17763)
        );
    }

    #[test]
    fn output_without_an_answer_or_of_another_schema_is_refused() {
        assert_eq!(
            parse_output("nothing").err(),
            Some(ProbeOutputError::NoJson)
        );
        assert!(matches!(
            parse_output("{\"schema\":2}"),
            Err(ProbeOutputError::Json(_))
        ));
        let wrong = ANSWER.replace("\"schema\":2", "\"schema\":99");
        let err = parse_output(&wrong).unwrap_err();
        assert_eq!(err, ProbeOutputError::Schema { found: 99 });
        assert_eq!(err.to_string(), "probe schema 99 (this hive speaks 2)");
    }
}
