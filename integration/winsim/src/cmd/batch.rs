//! Batch files and the current folder: `cd /d DIR` and `cmd /c NAME.cmd`, as cmd.exe runs an
//! administrator's `hiveexec.cmd` from its own folder.
//!
//! Only what such scripts use is simulated: one command a line (with cmd's `&`/`&&`/`||`),
//! `@`, `echo off`, `rem`/`::` comments and `:labels` skipped, `%~dp0` (the script's folder with
//! a trailing `\`), `%errorlevel%`, `if [not] errorlevel N command`, and `exit [/b] [N]`. A program
//! named without a folder is looked for in the current folder first, as cmd.exe does. The exit
//! code is the last command's (or `exit`'s), as `cmd /c script.cmd` returns it. Anything else a
//! line does goes through the normal interpreter, which refuses what it does not simulate.

use super::{Ctx, Out, exec_line, not_recognized};

/// `cd /d DIR` / `chdir DIR`: sets the folder later commands of this request run in.
pub(super) fn cd(ctx: &Ctx<'_>, args: &[String]) -> Out {
    let words: Vec<&String> = args
        .iter()
        .filter(|a| !a.eq_ignore_ascii_case("/d"))
        .collect();
    let Some(dir) = words.first() else {
        return Out::ok(format!("{}\r\n", current_dir(ctx)));
    };
    let dir = dir.trim_matches('"').trim_end_matches('\\').to_string();
    if !ctx.host.host_path(&dir).is_dir() {
        return Out::err("The system cannot find the path specified.\r\n", 1);
    }
    if let Ok(mut cwd) = ctx.cwd.lock() {
        *cwd = Some(dir);
    }
    Out::default()
}

/// The current folder: the last `cd`, else the profile folder WinRS starts in.
pub(super) fn current_dir(ctx: &Ctx<'_>) -> String {
    ctx.cwd
        .lock()
        .ok()
        .and_then(|c| c.clone())
        .unwrap_or_else(|| ctx.host.profile_dir())
}

/// A program token as cmd.exe finds it: relative names in the current folder first.
pub(super) fn in_current_dir(ctx: &Ctx<'_>, token: &str) -> Option<String> {
    if token.contains(['\\', '/', ':']) {
        return None;
    }
    let dir = ctx.cwd.lock().ok().and_then(|c| c.clone())?;
    let full = format!(r"{dir}\{token}");
    let path = ctx.host.host_path(&full);
    let exe = ctx.host.host_path(&format!("{full}.exe"));
    (path.is_file() || exe.is_file()).then_some(full)
}

/// Whether a program token names a batch file.
pub(super) fn is_batch(token: &str) -> bool {
    let lower = token.trim_matches('"').to_ascii_lowercase();
    lower.ends_with(".cmd") || lower.ends_with(".bat")
}

/// Run a batch file's lines.
pub(super) async fn run(ctx: &Ctx<'_>, token: &str) -> Out {
    let token = token.trim_matches('"');
    let full = if token.contains(['\\', '/', ':']) {
        token.to_string()
    } else {
        format!(r"{}\{token}", current_dir(ctx))
    };
    let Ok(bytes) = std::fs::read(ctx.host.host_path(&full)) else {
        return not_recognized(ctx.host, token);
    };
    let folder = full.rsplit_once('\\').map(|(d, _)| d).unwrap_or("");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut total = Out::default();
    for raw in text.lines() {
        let mut line = raw.trim().trim_start_matches('@').trim().to_string();
        let lower = line.to_ascii_lowercase();
        if line.is_empty()
            || lower == "rem"
            || lower.starts_with("rem ")
            || lower.starts_with("::")
            || lower.starts_with(':')
            || lower == "echo off"
            || lower == "echo on"
        {
            continue;
        }
        line = replace_ci(&line, "%~dp0", &format!(r"{folder}\"));
        line = replace_ci(&line, "%errorlevel%", &total.code.to_string());
        if let Some(rest) = strip_errorlevel_test(&line, total.code) {
            match rest {
                Some(command) => line = command,
                None => continue,
            }
        }
        let first = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if first == "exit" {
            let code = line
                .split_whitespace()
                .skip(1)
                .find(|w| !w.eq_ignore_ascii_case("/b"))
                .and_then(|w| w.parse::<i64>().ok());
            if let Some(c) = code {
                total.code = c as u32;
            }
            return total;
        }
        let out = exec_line(ctx, &line, true).await;
        total.stdout.push_str(&out.stdout);
        total.stderr.push_str(&out.stderr);
        total.code = out.code;
    }
    total
}

/// `if [not] errorlevel N command`: `Some(Some(command))` when it runs, `Some(None)` when it does
/// not, `None` when the line is no such test.
fn strip_errorlevel_test(line: &str, last: u32) -> Option<Option<String>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.first().is_none_or(|w| !w.eq_ignore_ascii_case("if")) {
        return None;
    }
    let (not, at) = match words.get(1) {
        Some(w) if w.eq_ignore_ascii_case("not") => (true, 2),
        _ => (false, 1),
    };
    if words
        .get(at)
        .is_none_or(|w| !w.eq_ignore_ascii_case("errorlevel"))
    {
        return None;
    }
    let n: u32 = words.get(at + 1)?.parse().ok()?;
    let runs = (last >= n) != not;
    Some(runs.then(|| words[at + 2..].join(" ")))
}

fn replace_ci(text: &str, pat: &str, with: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::new();
    let mut rest = 0;
    while let Some(at) = lower[rest..].find(pat) {
        out.push_str(&text[rest..rest + at]);
        out.push_str(with);
        rest += at + pat.len();
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errorlevel_tests_follow_cmd() {
        assert_eq!(
            strip_errorlevel_test("if errorlevel 1 exit /b 1", 3010),
            Some(Some("exit /b 1".into()))
        );
        assert_eq!(
            strip_errorlevel_test("if errorlevel 1 exit /b 1", 0),
            Some(None)
        );
        assert_eq!(
            strip_errorlevel_test("if not errorlevel 1 echo ok", 0),
            Some(Some("echo ok".into()))
        );
        assert_eq!(strip_errorlevel_test("echo if", 0), None);
        assert_eq!(replace_ci("%~DP0x.exe", "%~dp0", r"C:\T\"), r"C:\T\x.exe");
    }
}
