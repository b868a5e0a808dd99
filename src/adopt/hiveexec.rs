//! `hiveexec.cmd`: the script a HIVE administrator wrote in each approved bulletin's folder to run
//! that hotfix silently (`Q300972_W2K_SP3_x86_en.exe -z -q -m`, and whatever else it needed).
//!
//! hive runs it as it is, from the staged copy of its folder. What hive cannot take over is a line
//! that does hive's job behind its back or reaches for what no longer exists: a `shutdown` or
//! reboot tool (hive reboots once, after Qchain, and watches the boot time change), a `schtasks`
//! or `at` job (hive leaves nothing behind on a target), Qchain (hive runs it after the chain), a
//! UNC path (the targets no longer map the HIVE share) or a `..` path (only the bulletin's own
//! folder is staged), a `pause` (nobody answers it over WinRM)
//! and an installer run without `-z` (it restarts the host in the middle of the chain). Those are
//! [`Finding`]s, reported with file and line when the folder is adopted; the script is never
//! edited by hive.

use std::fmt;
use std::path::{Path, PathBuf};

/// The script's name, matched in any letter case.
pub const SCRIPT: &str = "hiveexec.cmd";

/// The `hiveexec.cmd` of a bulletin folder, in whatever case it is spelled.
pub fn find_script(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let found = crate::folders::any_case(dir, SCRIPT);
    match found.as_slice() {
        [] => Ok(None),
        [one] if one.is_file() => Ok(Some(one.clone())),
        [one] => Err(std::io::Error::other(format!(
            "{} is not a file",
            one.display()
        ))),
        _ => Err(std::io::Error::other(format!(
            "{} holds {} files named hiveexec.cmd in different letter case: keep one",
            dir.display(),
            found.len()
        ))),
    }
}

/// Files of a bulletin folder that are hive's own records, not the script's: they stay in the
/// repository when the folder is staged.
pub fn stays_home(name: &str) -> bool {
    ["recipe.toml", "reason.toml", "tbe.toml"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

/// Write `dir/hiveexec.cmd` running `installer` with `arguments` (`hive triage approve
/// --hiveexec`), for the admin to extend as HIVE admins did. An existing script is kept: it is
/// the admin's.
pub fn write_script(
    dir: &Path,
    installer: &str,
    arguments: &[String],
) -> Result<PathBuf, crate::repo::RepoError> {
    if let Some(existing) = find_script(dir).map_err(|source| crate::repo::RepoError::Io {
        path: dir.to_path_buf(),
        source,
    })? {
        return Ok(existing);
    }
    crate::repo::validate_file_name(installer)?;
    let mut line = installer.to_string();
    for a in arguments {
        line.push(' ');
        line.push_str(a);
    }
    let path = dir.join(SCRIPT);
    let text = format!(
        "@echo off\r\nrem run from its own folder by hive (cmd /c hiveexec.cmd); hive reboots and runs Qchain itself\r\n{line}\r\n"
    );
    crate::repo::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// A line of a `hiveexec.cmd` hive will not run blindly.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// 1-based.
    pub line: usize,
    pub text: String,
    pub why: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {} ({})", self.line, self.text.trim(), self.why)
    }
}

/// Programs that restart or stop the host.
const REBOOT_TOOLS: &[&str] = &[
    "shutdown",
    "psshutdown",
    "tsshutdn",
    "reboot",
    "restart",
    "poweroff",
];

/// Check a script's text line by line.
pub fn lint(text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim().trim_start_matches('@').trim();
        let lower = line.to_ascii_lowercase();
        if line.is_empty()
            || lower == "rem"
            || lower.starts_with("rem ")
            || lower.starts_with("::")
            || lower.starts_with(':')
        {
            continue;
        }
        let finding = |why: String| Finding {
            line: n + 1,
            text: raw.to_string(),
            why,
        };
        if line.contains(r"..\") || line.contains("../") {
            out.push(finding(
                "a `..` path leaves the bulletin's folder: only that folder is staged on the host"
                    .into(),
            ));
        }
        if let Some(at) = unc_path(line) {
            out.push(finding(format!(
                "UNC path {at}: targets no longer map the HIVE share; name the file without a \
                 path, it is staged beside hiveexec.cmd"
            )));
        }
        for command in commands(line) {
            let base = program_of(&command);
            let program = base
                .strip_suffix(".exe")
                .or_else(|| base.strip_suffix(".com"))
                .unwrap_or(&base)
                .to_string();
            let args: Vec<String> = command
                .split_whitespace()
                .skip(1)
                .map(|a| a.to_ascii_lowercase())
                .collect();
            if REBOOT_TOOLS.contains(&program.as_str()) {
                out.push(finding(format!(
                    "`{program}` restarts the host: hive reboots once itself, after Qchain"
                )));
            } else if program == "schtasks" || program == "at" {
                out.push(finding(format!(
                    "`{program}` schedules a task: hive leaves nothing behind on a target"
                )));
            } else if program == "qchain" {
                out.push(finding(
                    "`qchain` runs here: hive runs Qchain itself after the whole chain".into(),
                ));
            } else if program == "pause" {
                out.push(finding(
                    "`pause` waits for a key nobody presses over WinRM".into(),
                ));
            } else if base.ends_with(".exe") || !base.contains('.') {
                let unattended = args
                    .iter()
                    .any(|a| matches!(a.as_str(), "-m" | "/m" | "-u" | "/u" | "-q" | "/q"));
                let no_reboot = args.iter().any(|a| {
                    matches!(
                        a.as_str(),
                        "-z" | "/z" | "/norestart" | "-norestart" | "/forcerestart:no"
                    )
                });
                if unattended && !no_reboot {
                    out.push(finding(format!(
                        "`{program}` runs unattended without -z: it restarts the host in the \
                         middle of the chain"
                    )));
                }
            }
        }
    }
    out
}

/// The commands of a line: cmd's `&`, `&&`, `||` and `|` separate them (quotes respected).
fn commands(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '&' | '|' if !quoted => {
                if !cur.trim().is_empty() {
                    out.push(std::mem::take(&mut cur).trim().to_string());
                }
                cur.clear();
            }
            c => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The program a command runs, lowercase, without its folder — after `call`,
/// `start [/wait] ["title"]` and `if [not] errorlevel N`.
fn program_of(command: &str) -> String {
    let mut words = command.split_whitespace().peekable();
    let mut program = String::new();
    while let Some(w) = words.next() {
        let lower = w.trim_start_matches('@').to_ascii_lowercase();
        match lower.as_str() {
            "call" | "not" => continue,
            "start" => {
                while words
                    .peek()
                    .is_some_and(|n| n.starts_with('/') || n.starts_with('"'))
                {
                    words.next();
                }
                continue;
            }
            "if" => {
                // `if [not] errorlevel N cmd`, `if exist X cmd`
                let mut w2 = words.next().unwrap_or_default().to_ascii_lowercase();
                if w2 == "not" {
                    w2 = words.next().unwrap_or_default().to_ascii_lowercase();
                }
                if w2 == "errorlevel" || w2 == "exist" || w2 == "defined" {
                    words.next();
                }
                continue;
            }
            _ => {
                program = lower.trim_matches('"').to_string();
                break;
            }
        }
    }
    program
        .rsplit(['\\', '/'])
        .next()
        .unwrap_or(&program)
        .to_string()
}

/// The first `\\server\share` path of a line, if any.
fn unc_path(line: &str) -> Option<String> {
    let at = line.find(r"\\")?;
    let rest = &line[at..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    let path = &rest[..end];
    (path.len() > 2 && path[2..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '%'))
        .then(|| path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whys(text: &str) -> Vec<(usize, String)> {
        lint(text)
            .into_iter()
            .map(|f| (f.line, f.why.split(':').next().unwrap_or("").to_string()))
            .collect()
    }

    #[test]
    fn a_plain_silent_hotfix_script_is_clean() {
        let text = "@echo off\r\nrem MS01-033 IIS\r\nQ300972_W2K_SP3_x86_en.exe -z -q -m\r\n\
                    if errorlevel 1 exit /b %errorlevel%\r\n\"%~dp0Q301625_W2K_SP3_x86_en.exe\" -u -q -z\r\n";
        assert_eq!(lint(text), []);
    }

    #[test]
    fn unsafe_lines_are_named_with_their_line_number() {
        let text = "@echo off\n\
                    copy \\\\HIVESRV\\Hive\\Tools\\x.dll %windir%\\system32\n\
                    Q300972.exe -q -m\n\
                    shutdown -r -t 0\n\
                    schtasks /create /tn x /tr y\n\
                    start /wait \"\" C:\\tools\\PSSHUTDOWN.EXE -r\n\
                    qchain.exe\n\
                    pause\n\
                    call ..\\Tools\\fix.cmd\n\
                    rem shutdown -r is mentioned only in a comment\n";
        let found = whys(text);
        let lines: Vec<usize> = found.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8, 9], "{found:?}");
        assert!(
            found[0]
                .1
                .starts_with("UNC path \\\\HIVESRV\\Hive\\Tools\\x.dll")
        );
        assert!(found[1].1.contains("without -z"), "{found:?}");
        assert!(found[4].1.contains("psshutdown"), "{found:?}");
    }

    #[test]
    fn a_written_script_runs_the_installer_and_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<String> = ["-z", "-q", "-m"].map(String::from).to_vec();
        let path = write_script(dir.path(), "Q300972.exe", &args).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\r\nQ300972.exe -z -q -m\r\n"), "{text}");
        assert_eq!(lint(&text), []);
        std::fs::write(&path, "mine").unwrap();
        write_script(dir.path(), "Q300972.exe", &args).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
    }

    #[test]
    fn the_script_is_found_in_any_case_and_hive_records_stay_home() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find_script(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join("HIVEEXEC.CMD"), "x").unwrap();
        assert_eq!(
            find_script(dir.path()).unwrap(),
            Some(dir.path().join("HIVEEXEC.CMD"))
        );
        assert!(stays_home("Recipe.toml"));
        assert!(!stays_home("Q300972.exe"));
    }
}
