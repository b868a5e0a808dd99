//! Running PowerShell through WinRS.
//!
//! cmd.exe limits a command line to 8191 characters, and `-EncodedCommand` (base64 of UTF-16LE)
//! multiplies a script's length by 2.67. Short scripts go on the command line (one round trip
//! less); longer ones are fed on stdin to `powershell.exe -NoProfile -NonInteractive -`.

use base64::Engine as _;

/// Longest command line we build; cmd.exe's limit is 8191, keep a margin for `cmd /c` and quoting.
pub const MAX_COMMAND_LINE: usize = 8000;

/// base64 of the script's UTF-16LE bytes, as `-EncodedCommand` expects.
pub fn encode_command(script: &str) -> String {
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64::engine::general_purpose::STANDARD.encode(utf16)
}

/// How a script will be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Executable.
    pub command: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Bytes to send on stdin (empty for `-EncodedCommand`).
    pub stdin: Vec<u8>,
}

/// Choose `-EncodedCommand` or stdin for `script`.
pub fn invocation(script: &str) -> Invocation {
    let base = ["-NoProfile", "-NonInteractive"];
    let encoded = encode_command(script);
    let line_len =
        "powershell.exe -NoProfile -NonInteractive -EncodedCommand ".len() + encoded.len();
    if line_len <= MAX_COMMAND_LINE {
        let mut args: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        args.push("-EncodedCommand".into());
        args.push(encoded);
        return Invocation {
            command: "powershell.exe".into(),
            args,
            stdin: Vec::new(),
        };
    }
    // In `-` mode PowerShell reads statements line by line as if typed; a blank line after the
    // script closes any open multi-line block so the last statement runs.
    let mut text = script.replace("\r\n", "\n").replace('\n', "\r\n");
    text.push_str("\r\n\r\n");
    let mut args: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    args.push("-".into());
    Invocation {
        command: "powershell.exe".into(),
        args,
        stdin: text.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_command_is_utf16le_base64() {
        // `powershell -EncodedCommand` of "Write-Output 1" as Windows documents the encoding.
        assert_eq!(encode_command("dir"), "ZABpAHIA");
        assert_eq!(encode_command("é"), "6QA=");
    }

    #[test]
    fn short_scripts_use_the_command_line_and_long_ones_stdin() {
        let short = invocation("Get-HotFix | Select-Object HotFixID");
        assert_eq!(short.args[2], "-EncodedCommand");
        assert!(short.stdin.is_empty());
        let long_script = "Write-Output 'x'\n".repeat(400);
        let long = invocation(&long_script);
        assert_eq!(long.args, ["-NoProfile", "-NonInteractive", "-"]);
        assert!(long.stdin.ends_with(b"\r\n\r\n"));
        assert!(!String::from_utf8(long.stdin).unwrap().contains("x'\nW"));
    }
}
