//! The `service` check: `sc.exe query` for the state, `sc.exe qc` for the start type.
//!
//! sc.exe exists on every Windows hive patches (2000 on) and needs no PowerShell. Its field names
//! (`STATE`, `START_TYPE`) and the numbers after them are the same in every display language;
//! only the words after the numbers could differ, so the verdict reads the numbers. A service
//! that does not exist is sc's exit code 1060, not a message.

use crate::remote::Command;

/// ERROR_SERVICE_DOES_NOT_EXIST.
pub const NO_SUCH_SERVICE: u32 = 1060;
/// SERVICE_RUNNING in `STATE`.
pub const RUNNING: u32 = 4;

/// `sc query "NAME"` (the name was checked for quote-breaking characters with the inventory).
pub fn query_command(service: &str) -> Command {
    Command::Cmd(format!("sc query \"{service}\""))
}

/// `sc qc "NAME"`: the configuration, where the start type is.
pub fn config_command(service: &str) -> Command {
    Command::Cmd(format!("sc qc \"{service}\""))
}

/// The value of `KEY : value` in sc's output, trimmed.
fn field<'a>(output: &'a str, key: &str) -> Option<&'a str> {
    output.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The number a field starts with (`4  RUNNING` → 4).
fn number(value: &str) -> Option<u32> {
    value.split_whitespace().next()?.parse().ok()
}

/// `STATE` from `sc query`: its number, and the whole value as evidence.
pub fn parse_state(output: &str) -> Option<(u32, String)> {
    let v = field(output, "STATE")?;
    Some((
        number(v)?,
        v.split_whitespace().collect::<Vec<_>>().join(" "),
    ))
}

/// `START_TYPE` from `sc qc`, normalised (`2 AUTO_START (DELAYED)`): what is compared before and
/// after the patches, so a delayed start turned plain is a change too.
pub fn parse_start_type(output: &str) -> Option<String> {
    let v = field(output, "START_TYPE")?;
    number(v)?;
    Some(v.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Words for the state numbers, for evidence when sc's own word is missing.
pub fn state_word(n: u32) -> &'static str {
    match n {
        1 => "stopped",
        2 => "start pending",
        3 => "stop pending",
        4 => "running",
        5 => "continue pending",
        6 => "pause pending",
        7 => "paused",
        _ => "unknown state",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUERY_RUNNING: &str = "\r\nSERVICE_NAME: W3SVC\r\n        TYPE               : 20  WIN32_SHARE_PROCESS\r\n        STATE              : 4  RUNNING\r\n                                (STOPPABLE, PAUSABLE, ACCEPTS_SHUTDOWN)\r\n        WIN32_EXIT_CODE    : 0  (0x0)\r\n        SERVICE_EXIT_CODE  : 0  (0x0)\r\n        CHECKPOINT         : 0x0\r\n        WAIT_HINT          : 0x0\r\n";
    const QC: &str = "[SC] QueryServiceConfig SUCCESS\r\n\r\nSERVICE_NAME: W3SVC\r\n        TYPE               : 20  WIN32_SHARE_PROCESS\r\n        START_TYPE         : 2   AUTO_START  (DELAYED)\r\n        ERROR_CONTROL      : 1   NORMAL\r\n        BINARY_PATH_NAME   : C:\\Windows\\system32\\svchost.exe -k iissvcs\r\n        DISPLAY_NAME       : World Wide Web Publishing Service\r\n";

    #[test]
    fn state_and_start_type_are_read_by_number() {
        assert_eq!(parse_state(QUERY_RUNNING), Some((4, "4 RUNNING".into())));
        // A localised word after the number does not matter.
        let stopped = QUERY_RUNNING.replace("4  RUNNING", "1  BEENDET");
        assert_eq!(parse_state(&stopped).map(|s| s.0), Some(1));
        assert_eq!(
            parse_start_type(QC).as_deref(),
            Some("2 AUTO_START (DELAYED)")
        );
        // The path's drive colon is not mistaken for a field.
        assert_eq!(parse_state("BINARY_PATH_NAME : C:\\x"), None);
        assert_eq!(parse_start_type("garbage"), None);
        assert_eq!(parse_state("STATE : RUNNING"), None);
    }

    #[test]
    fn commands_quote_the_name() {
        assert_eq!(
            query_command("W3SVC"),
            Command::Cmd("sc query \"W3SVC\"".into())
        );
        assert_eq!(
            config_command("MSSQL$SQLEXPRESS"),
            Command::Cmd("sc qc \"MSSQL$SQLEXPRESS\"".into())
        );
        assert_eq!(state_word(RUNNING), "running");
    }
}
