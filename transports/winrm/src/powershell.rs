//! Running PowerShell through WinRS.
//!
//! cmd.exe limits a command line to 8191 characters, and `-EncodedCommand` (base64 of UTF-16LE)
//! multiplies a script's length by 2.67. Short scripts go on the command line (one round trip
//! less); longer ones are fed on stdin to `powershell.exe -NoProfile -NonInteractive -`.

use std::sync::Arc;

use base64::Engine as _;

use crate::envelope;

/// Longest command line we build; cmd.exe's limit is 8191, keep a margin for `cmd /c` and quoting.
pub const MAX_COMMAND_LINE: usize = 8000;

/// Longest command line for a process WinRS starts directly (`WINRS_SKIP_CMD_SHELL`):
/// CreateProcess takes 32,767 characters; keep a margin.
pub const MAX_PROCESS_COMMAND_LINE: usize = 32_000;

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
    /// Start powershell.exe directly, without cmd.exe (WinRS's `WINRS_SKIP_CMD_SHELL`).
    pub skip_cmd_shell: bool,
}

/// Choose `-EncodedCommand` or stdin for `script`, for a command line that cmd.exe runs (as
/// over SSH, where the server's shell is cmd.exe).
pub fn invocation(script: &str) -> Invocation {
    invocation_within(script, &encode_command(script), MAX_COMMAND_LINE, false)
}

/// [`invocation`] as the one line cmd.exe is given (arguments joined by spaces), and the bytes to
/// feed on its stdin (empty when the script is on the line).
pub fn cmd_line(script: &str) -> (String, Vec<u8>) {
    cmd_line_encoded(script, &encode_command(script))
}

fn cmd_line_encoded(script: &str, encoded: &str) -> (String, Vec<u8>) {
    let inv = invocation_within(script, encoded, MAX_COMMAND_LINE, false);
    let mut line = inv.command;
    for a in &inv.args {
        line.push(' ');
        line.push_str(a);
    }
    (line, inv.stdin)
}

/// Choose for a WinRS shell, which can start powershell.exe without cmd.exe: scripts up to
/// CreateProcess's limit then go on the command line, in the Command request itself. Feeding
/// them on stdin instead costs a Send round trip per host.
pub fn winrs_invocation(script: &str) -> Invocation {
    winrs_invocation_encoded(script, &encode_command(script))
}

/// [`winrs_invocation`] with the script's [`encode_command`] already worked out.
fn winrs_invocation_encoded(script: &str, encoded: &str) -> Invocation {
    let via_cmd = invocation_within(script, encoded, MAX_COMMAND_LINE, false);
    if via_cmd.stdin.is_empty() {
        return via_cmd;
    }
    invocation_within(script, encoded, MAX_PROCESS_COMMAND_LINE, true)
}

fn invocation_within(
    script: &str,
    encoded: &str,
    max_line: usize,
    skip_cmd_shell: bool,
) -> Invocation {
    let base = ["-NoProfile", "-NonInteractive"];
    let line_len =
        "powershell.exe -NoProfile -NonInteractive -EncodedCommand ".len() + encoded.len();
    if line_len <= max_line {
        let mut args: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        args.push("-EncodedCommand".into());
        args.push(encoded.to_string());
        return Invocation {
            command: "powershell.exe".into(),
            args,
            stdin: Vec::new(),
            skip_cmd_shell,
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
        skip_cmd_shell: false,
    }
}

/// A script sent to many hosts, encoded once.
///
/// Encoding is the larger part of sending a long script: UTF-16, base64 (`-EncodedCommand`
/// grows the script 2.67 times) and XML escaping of the result. None of it depends on the host,
/// so a fleet-wide probe works it out here, once; each host then only wraps the ready text in its
/// own envelope and seals it. Cloning shares the encoded text.
#[derive(Clone)]
pub struct PreparedScript(Arc<Encoded>);

struct Encoded {
    script: String,
    /// How a WinRS shell runs it ([`winrs_invocation`]).
    winrs: Invocation,
    /// `winrs` as the WinRS Command request's escaped `<rsp:CommandLine>` element.
    winrs_command_line: String,
    /// How cmd.exe runs it ([`cmd_line`]): the line it is given, and its stdin.
    cmd_line: String,
    cmd_stdin: Vec<u8>,
}

impl PreparedScript {
    /// Encode `script` for both ways of running it.
    pub fn new(script: &str) -> Self {
        let encoded = encode_command(script);
        let winrs = winrs_invocation_encoded(script, &encoded);
        let winrs_command_line = envelope::command_line(&winrs.command, &winrs.args);
        let (cmd_line, cmd_stdin) = cmd_line_encoded(script, &encoded);
        PreparedScript(Arc::new(Encoded {
            script: script.to_string(),
            winrs,
            winrs_command_line,
            cmd_line,
            cmd_stdin,
        }))
    }

    /// The PowerShell text.
    pub fn script(&self) -> &str {
        &self.0.script
    }

    /// How a WinRS shell runs the script.
    pub fn winrs(&self) -> &Invocation {
        &self.0.winrs
    }

    /// The escaped `<rsp:CommandLine>` element of [`PreparedScript::winrs`], for
    /// [`envelope::command_with_line`].
    pub fn winrs_command_line(&self) -> &str {
        &self.0.winrs_command_line
    }

    /// The line cmd.exe runs and the bytes to feed on its stdin, as [`cmd_line`] gives them.
    pub fn cmd_line(&self) -> (&str, &[u8]) {
        (&self.0.cmd_line, &self.0.cmd_stdin)
    }
}

/// Only the script: the encoded forms are as long again, and follow from it.
impl std::fmt::Debug for PreparedScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PreparedScript")
            .field(&self.0.script)
            .finish()
    }
}

/// The same script, whatever was worked out from it.
impl PartialEq for PreparedScript {
    fn eq(&self, other: &Self) -> bool {
        self.0.script == other.0.script
    }
}

impl Eq for PreparedScript {}

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

    #[test]
    fn winrs_puts_scripts_up_to_createprocess_limit_on_the_command_line() {
        let short = winrs_invocation("Get-HotFix");
        assert!(
            !short.skip_cmd_shell,
            "short scripts keep going through cmd.exe"
        );
        let medium_script = "Write-Output 'x'\n".repeat(400);
        let medium = winrs_invocation(&medium_script);
        assert!(medium.skip_cmd_shell);
        assert!(medium.stdin.is_empty());
        assert_eq!(medium.args[2], "-EncodedCommand");
        let line = medium.args.iter().map(|a| a.len() + 1).sum::<usize>() + medium.command.len();
        assert!(line > MAX_COMMAND_LINE && line <= MAX_PROCESS_COMMAND_LINE);
        let huge = winrs_invocation(&"Write-Output 'x'\n".repeat(2000));
        assert!(!huge.skip_cmd_shell);
        assert!(!huge.stdin.is_empty());
    }

    #[test]
    fn a_prepared_script_is_sent_as_the_script_alone_would_be() {
        let medium = "Write-Output 'x'\n".repeat(400);
        let huge = "Write-Output 'x'\n".repeat(2000);
        for script in ["Get-HotFix", medium.as_str(), huge.as_str()] {
            let p = PreparedScript::new(script);
            assert_eq!(p.script(), script);
            let winrs = winrs_invocation(script);
            assert_eq!(p.winrs(), &winrs);
            assert_eq!(
                p.winrs_command_line(),
                envelope::command_line(&winrs.command, &winrs.args)
            );
            let cmd = invocation(script);
            let (line, stdin) = p.cmd_line();
            assert_eq!(line, format!("{} {}", cmd.command, cmd.args.join(" ")));
            assert_eq!(stdin, cmd.stdin);
            assert_eq!(cmd_line(script), (line.to_string(), stdin.to_vec()));
        }
    }
}
