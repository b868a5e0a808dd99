//! The host's hash of a file while it is being copied in: a PowerShell script on the host follows
//! the file as it grows and hashes each byte once it is final, so the host's SHA-256 is ready a
//! moment after the last byte lands instead of a whole re-read later.
//!
//! Why the result is as strong as hashing after the copy (`certutil -hashfile`):
//! - nobody else can write the file while it is followed: hive's SMB open grants other openers
//!   read and delete sharing only, so any other open for writing fails until hive closes the file,
//!   which it does only after the follower has answered;
//! - the follower reads only bytes that are final: hive's writes never run more than the upload's
//!   lag bound ahead of its lowest unanswered write, so everything below the file's size minus
//!   that bound has been written, and hive writes each byte once. The rest is read after hive
//!   creates the "all sent" marker beside the file, which it does once every write was answered
//!   (once seen, the marker counts even if removed: a follower abandoned with a broken copy then
//!   ends with the next copy's marker instead of waiting out its idle limit);
//! - the hash covers the file from its first byte to its final size, and the caller compares both
//!   the size and the hash with what it expects. A follower that cannot answer, or answers with
//!   another hash, makes the caller hash the file again after the copy, the old way.
//!
//! Written for Windows PowerShell 2.0 (.NET 2.0: no `Get-FileHash`, no `CopyTo`): the .NET
//! `SHA256` class fed block by block. The file is opened with a buffer of 1 byte, which turns
//! FileStream's own read-ahead off: a buffered stream would fetch 64 KiB past the final bytes and
//! later hand out what it read there before the copy had written it. It reports in fixed words and
//! the innermost .NET exception type (PowerShell wraps a method's exception in its own), never in
//! localised messages.

use std::time::Duration;

use super::ps_literal;

/// The first line of the script: what the script is, for a reader of the host's logs (and for
/// the simulator, which recognises it).
pub const MARKER_LINE: &str = "# hive follow-hash 1";

/// The suffix of the "all sent" marker file created beside the copied file.
pub const SENT_SUFFIX: &str = ".hive-sent";

/// How long the follower waits without the file growing before it gives up.
pub const IDLE: Duration = Duration::from_secs(120);

/// The path of the "all sent" marker for `remote`.
pub fn sent_marker(remote: &str) -> String {
    format!("{remote}{SENT_SUFFIX}")
}

/// The follower script for `remote`, whose writes run at most `behind` bytes ahead of the last
/// final byte; it gives up after `idle` without growth.
pub fn script(remote: &str, behind: u64, idle: Duration) -> String {
    format!(
        r#"{MARKER_LINE}
& {{
$path = {path}
$sent = {sent}
$behind = [long]{behind}
$idle = [TimeSpan]::FromSeconds({idle})
$stream = $null
try {{
    $sha = [System.Security.Cryptography.SHA256]::Create()
    $share = [System.IO.FileShare]'ReadWrite, Delete'
    $quiet = [DateTime]::UtcNow
    while ($stream -eq $null) {{
        try {{
            $stream = New-Object System.IO.FileStream($path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, $share, 1)
        }} catch {{
            if (([DateTime]::UtcNow - $quiet) -gt $idle) {{ throw }}
            Start-Sleep -Milliseconds 10
        }}
    }}
    $buffer = New-Object byte[] 1048576
    $done = [long]0
    $seen = [long]-1
    $last = $false
    while ($true) {{
        if (-not $last) {{ $last = [System.IO.File]::Exists($sent) }}
        $size = $stream.Length
        if ($size -ne $seen) {{ $seen = $size; $quiet = [DateTime]::UtcNow }}
        $upto = $size
        if (-not $last) {{ $upto = $size - $behind }}
        if ($done -lt $upto) {{
            $want = [int][Math]::Min([long]$buffer.Length, $upto - $done)
            $got = $stream.Read($buffer, 0, $want)
            if ($got -le 0) {{ throw (New-Object System.IO.EndOfStreamException) }}
            [void]$sha.TransformBlock($buffer, 0, $got, $null, 0)
            $done += $got
        }} elseif ($last) {{
            break
        }} elseif (([DateTime]::UtcNow - $quiet) -gt $idle) {{
            throw (New-Object System.TimeoutException)
        }} else {{
            Start-Sleep -Milliseconds 10
        }}
    }}
    [void]$sha.TransformFinalBlock($buffer, 0, 0)
    $hex = [BitConverter]::ToString($sha.Hash).Replace('-', '').ToLowerInvariant()
    'hive-follow ok ' + $done + ' ' + $hex
}} catch {{
    $e = $_.Exception
    while ($e.InnerException -ne $null) {{ $e = $e.InnerException }}
    'hive-follow failed ' + $e.GetType().FullName
}} finally {{
    if ($stream -ne $null) {{ $stream.Close() }}
}}
}}
"#,
        path = ps_literal(remote),
        sent = ps_literal(&sent_marker(remote)),
        idle = idle.as_secs().max(1),
    )
}

/// What the follower said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// It hashed `bytes` bytes, from the first to the file's final size.
    Hashed { bytes: u64, sha256: String },
    /// It could not: the reason (a .NET exception type, or what the shell said instead).
    Failed(String),
}

/// Reads the follower's answer from its standard output (and, when it has none, its standard
/// error and exit code: a host without PowerShell answers through cmd.exe).
pub fn parse(stdout: &str, stderr: &str, exit_code: u32) -> Followed {
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("hive-follow") {
            continue;
        }
        return match (words.next(), words.next(), words.next()) {
            (Some("ok"), Some(bytes), Some(sha)) => match bytes.parse::<u64>() {
                Ok(bytes) if sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()) => {
                    Followed::Hashed {
                        bytes,
                        sha256: sha.to_ascii_lowercase(),
                    }
                }
                _ => Followed::Failed(format!("unreadable answer: {}", line.trim())),
            },
            (Some("failed"), Some(kind), _) => Followed::Failed(kind.to_string()),
            _ => Followed::Failed(format!("unreadable answer: {}", line.trim())),
        };
    }
    let said = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no answer");
    Followed::Failed(format!("exit code {exit_code}: {said}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_names_the_file_its_marker_and_the_bounds() {
        let s = script(r"C:\Windows\Temp\hive\r1\it's.exe", 16 << 20, IDLE);
        assert!(s.starts_with(MARKER_LINE));
        assert!(
            s.contains(r"$path = 'C:\Windows\Temp\hive\r1\it''s.exe'"),
            "{s}"
        );
        assert!(
            s.contains(r"$sent = 'C:\Windows\Temp\hive\r1\it''s.exe.hive-sent'"),
            "{s}"
        );
        assert!(s.contains("$behind = [long]16777216"));
        assert!(s.contains("[TimeSpan]::FromSeconds(120)"));
    }

    #[test]
    fn a_hash_is_read_with_its_size() {
        let h = "AB".repeat(32);
        assert_eq!(
            parse(&format!("\r\nhive-follow ok 1048576 {h}\r\n"), "", 0),
            Followed::Hashed {
                bytes: 1 << 20,
                sha256: "ab".repeat(32)
            }
        );
    }

    #[test]
    fn failures_say_why_in_words_that_do_not_depend_on_the_language() {
        assert_eq!(
            parse("hive-follow failed System.TimeoutException\r\n", "", 0),
            Followed::Failed("System.TimeoutException".into())
        );
        assert_eq!(
            parse("hive-follow ok 12 nothex\r\n", "", 0),
            Followed::Failed("unreadable answer: hive-follow ok 12 nothex".into())
        );
        // A host without PowerShell answers through cmd.exe.
        let f = parse(
            "",
            "'powershell' is not recognized as an internal or external command,\r\n",
            9009,
        );
        assert!(
            matches!(&f, Followed::Failed(w) if w.starts_with("exit code 9009: 'powershell'")),
            "{f:?}"
        );
    }
}
