//! Reading the probe's answer: the last line of JSON it printed, checked against the schema this
//! side speaks.

use crate::{PROBE_SCHEMA, ProbeFacts};

/// Why a probe's output is not an answer this side can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("no JSON object in the output")]
    NoJson,
    #[error("{0}")]
    BadJson(String),
    #[error("probe schema {found} (this hive speaks {PROBE_SCHEMA})")]
    Schema { found: u32 },
}

/// The probe prints one line of JSON; anything before it (a profile banner) is ignored.
pub fn parse_answer(stdout: &str) -> Result<ProbeFacts, AnswerError> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .ok_or(AnswerError::NoJson)?;
    let facts: ProbeFacts =
        serde_json::from_str(line).map_err(|e| AnswerError::BadJson(e.to_string()))?;
    if facts.schema != PROBE_SCHEMA {
        return Err(AnswerError::Schema {
            found: facts.schema,
        });
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"{"schema":1,"computer_name":"A","product_name":"Windows Server 2019 Datacenter","edition_id":"ServerDatacenter","csd_version":"","major":10,"minor":0,"build":17763,"ubr":5458,"installed_kbs":[],"pending_reboot":{"cbs_reboot_pending":false,"windows_update_reboot_required":false,"pending_file_renames":false,"update_exe_volatile":false},"last_boot_time":"2026-11-25T10:00:00.000Z","free_disk_bytes":1,"registry":[],"files":[]}"#;

    #[test]
    fn the_answer_is_found_after_a_banner() {
        let out = format!("Windows PowerShell\r\nCopyright\r\n{ANSWER}\r\n");
        assert_eq!(parse_answer(&out).map(|f| f.build), Ok(17763));
    }

    #[test]
    fn output_without_an_answer_or_of_another_schema_is_refused() {
        assert_eq!(parse_answer("nothing").err(), Some(AnswerError::NoJson));
        assert!(matches!(
            parse_answer("{\"schema\":1}"),
            Err(AnswerError::BadJson(_))
        ));
        let wrong = ANSWER.replace("\"schema\":1", "\"schema\":99");
        let err = parse_answer(&wrong).unwrap_err();
        assert_eq!(err, AnswerError::Schema { found: 99 });
        assert_eq!(err.to_string(), "probe schema 99 (this hive speaks 1)");
    }
}
