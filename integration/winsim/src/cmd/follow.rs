//! hive's follow-hash script (its first line is `# hive follow-hash 1`): the host hashes a file
//! while it is being copied in, reading each byte once it is final.
//!
//! What the script does on Windows, done here on the host's drive: open the file for reading
//! (sharing read, write and delete, so the copier keeps writing), and in a loop read up to the
//! file's size minus `$behind` bytes (the copier's writes never run further ahead of the lowest
//! unanswered one), or up to its whole size once the "all sent" marker `$sent` exists, then stop
//! and print `hive-follow ok BYTES SHA256`; give up after `$idle` without growth. Failures print
//! `hive-follow failed` and the .NET exception type, as the script's catch block does.

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::Digest as _;

use super::Out;
use crate::model::WinHost;

/// The script's first line.
pub(super) const MARKER: &str = "# hive follow-hash 1";

/// How long the loop sleeps when it is caught up.
const POLL: Duration = Duration::from_millis(10);

/// The script's inputs, read from its assignments.
#[derive(Debug, PartialEq, Eq)]
struct Inputs {
    path: String,
    sent: String,
    behind: u64,
    idle: Duration,
}

fn parse(script: &str) -> Option<Inputs> {
    let mut path = None;
    let mut sent = None;
    let mut behind = None;
    let mut idle = None;
    for line in script.lines() {
        let Some((name, value)) = line.trim().split_once(" = ") else {
            continue;
        };
        match name {
            "$path" => path = single_quoted(value),
            "$sent" => sent = single_quoted(value),
            "$behind" => behind = value.strip_prefix("[long]")?.parse().ok(),
            "$idle" => {
                let secs = value
                    .strip_prefix("[TimeSpan]::FromSeconds(")?
                    .strip_suffix(')')?;
                idle = Some(Duration::from_secs(secs.parse().ok()?));
            }
            _ => {}
        }
    }
    Some(Inputs {
        path: path?,
        sent: sent?,
        behind: behind?,
        idle: idle?,
    })
}

/// A PowerShell single-quoted literal (`''` is one quote).
fn single_quoted(value: &str) -> Option<String> {
    let inner = value.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}

/// Runs the follower to its end.
pub(super) async fn run(host: &WinHost, script: &str) -> Out {
    if host.powershell_version.0 < 2 {
        // PowerShell 1.0 has no try/catch: the script does not parse.
        return Out::err(
            "Unexpected token '{' in expression or statement.\r\n    + CategoryInfo          : ParserError: ({:String) [], ParentContainsErrorRecordException\r\n",
            1,
        );
    }
    let Some(inputs) = parse(script) else {
        return Out::err(
            "winsim: a follow-hash script without $path, $sent, $behind and $idle\r\n",
            1,
        );
    };
    if WinHost::foreign_drive(&inputs.path) || WinHost::foreign_drive(&inputs.sent) {
        return Out::ok("hive-follow failed System.IO.DirectoryNotFoundException\r\n");
    }
    let file = host.host_path(&inputs.path);
    let sent = host.host_path(&inputs.sent);
    let (behind, idle) = (inputs.behind, inputs.idle);
    let answer = tokio::task::spawn_blocking(move || follow(&file, &sent, behind, idle)).await;
    match answer {
        Ok(Ok((bytes, sha))) => Out::ok(format!("hive-follow ok {bytes} {sha}\r\n")),
        Ok(Err(kind)) => Out::ok(format!("hive-follow failed {kind}\r\n")),
        Err(e) => Out::err(format!("winsim: the follower stopped: {e}\r\n"), 1),
    }
}

/// The script's loop; the error is the .NET exception type the script would print.
fn follow(
    file: &Path,
    sent: &Path,
    behind: u64,
    idle: Duration,
) -> Result<(u64, String), &'static str> {
    let mut quiet = Instant::now();
    let mut stream = loop {
        match std::fs::File::open(file) {
            Ok(f) => break f,
            Err(e) if quiet.elapsed() > idle => return Err(exception_of(&e)),
            Err(_) => std::thread::sleep(POLL),
        }
    };
    let mut sha = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut done = 0u64;
    let mut seen = None;
    // Once seen, the marker stays seen: removing it (hive does, after the answer) must not send
    // the loop back to waiting for bytes that will never come.
    let mut last = false;
    loop {
        last = last || sent.exists();
        let size = stream.metadata().map_err(|e| exception_of(&e))?.len();
        if seen != Some(size) {
            seen = Some(size);
            quiet = Instant::now();
        }
        let upto = if last {
            size
        } else {
            size.saturating_sub(behind)
        };
        if done < upto {
            let want = (buffer.len() as u64).min(upto - done) as usize;
            let got = stream
                .read(&mut buffer[..want])
                .map_err(|e| exception_of(&e))?;
            if got == 0 {
                return Err("System.IO.EndOfStreamException");
            }
            sha.update(&buffer[..got]);
            done += got as u64;
        } else if last {
            break;
        } else if quiet.elapsed() > idle {
            return Err("System.TimeoutException");
        } else {
            std::thread::sleep(POLL);
        }
    }
    let hex = sha
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok((done, hex))
}

fn exception_of(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "System.IO.FileNotFoundException",
        std::io::ErrorKind::PermissionDenied => "System.UnauthorizedAccessException",
        _ => "System.IO.IOException",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "# hive follow-hash 1\n& {\n$path = 'C:\\Windows\\Temp\\it''s.exe'\n$sent = 'C:\\Windows\\Temp\\it''s.exe.hive-sent'\n$behind = [long]16777216\n$idle = [TimeSpan]::FromSeconds(120)\n}\n";

    #[test]
    fn the_inputs_are_read_from_the_assignments() {
        assert_eq!(
            parse(SCRIPT),
            Some(Inputs {
                path: r"C:\Windows\Temp\it's.exe".into(),
                sent: r"C:\Windows\Temp\it's.exe.hive-sent".into(),
                behind: 16 << 20,
                idle: Duration::from_secs(120),
            })
        );
        assert_eq!(parse("# hive follow-hash 1\n$path = 'x'\n"), None);
    }

    #[test]
    fn it_hashes_a_growing_file_once_the_marker_appears() {
        let dir = std::env::temp_dir().join(format!("winsim-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (file, sent) = (dir.join("f.bin"), dir.join("f.bin.hive-sent"));
        let _ = std::fs::remove_file(&sent);
        std::fs::write(&file, b"").unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let (file, sent, data) = (file.clone(), sent.clone(), data.clone());
            std::thread::spawn(move || {
                use std::io::Write as _;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&file)
                    .unwrap();
                for piece in data.chunks(7_000) {
                    f.write_all(piece).unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::fs::write(&sent, b"").unwrap();
            })
        };
        let got = follow(&file, &sent, 10_000, Duration::from_secs(20)).unwrap();
        writer.join().unwrap();
        let want = sha2::Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        assert_eq!(got, (data.len() as u64, want));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A follower left behind by a copy that broke off sees the next copy's marker only while
    /// that copy's own follower answers; hive then removes it. It must still end.
    #[test]
    fn a_marker_once_seen_counts_after_it_is_removed() {
        let dir = std::env::temp_dir().join(format!("winsim-follow-gone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (file, sent) = (dir.join("f.bin"), dir.join("f.bin.hive-sent"));
        let data: Vec<u8> = (0..64u32 << 20).map(|i| (i % 253) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let _ = std::fs::remove_file(&sent);
        let marker = {
            let sent = sent.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                std::fs::write(&sent, b"").unwrap();
                // Long enough for one 10 ms poll to see it, shorter than hashing 64 MiB.
                std::thread::sleep(Duration::from_millis(25));
                std::fs::remove_file(&sent).unwrap();
            })
        };
        // Everything is "behind": nothing is read before the marker.
        let got = follow(&file, &sent, 64 << 20, Duration::from_millis(800));
        marker.join().unwrap();
        let want = sha2::Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        assert_eq!(got, Ok((data.len() as u64, want)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_that_stops_growing_without_the_marker_times_out() {
        let dir = std::env::temp_dir().join(format!("winsim-follow-idle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f.bin");
        std::fs::write(&file, [1u8; 100]).unwrap();
        let got = follow(&file, &dir.join("none"), 10, Duration::from_millis(100));
        assert_eq!(got, Err("System.TimeoutException"));
        let missing = follow(&dir.join("absent"), &dir.join("none"), 10, Duration::ZERO);
        assert_eq!(missing, Err("System.IO.FileNotFoundException"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
