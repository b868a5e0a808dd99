//! `powershell.exe`: the probe, `Get-FileHash`, and native commands run from a script.
//!
//! winsim does not interpret PowerShell. It recognises hive's probe by its marker line and answers
//! from the host model, and it runs a short, documented list of statements (COMMANDS.md); anything
//! else fails with PowerShell's own "term is not recognized" error and exit code 1.

use base64::Engine as _;

use super::{Ctx, Out, exec_line, file_hash};
use crate::clock;
use crate::model::{self, WinHost};
use crate::probe::{self, FileFact, PendingReboot, ProbeFacts, ProbeRequest, RegistryFact};
use crate::registry::RegValue;

/// Runs `powershell.exe` with its command-line switches.
pub(super) async fn run(ctx: &Ctx<'_>, args: &[String]) -> Out {
    let script = match script_from_args(args, &ctx.stdin) {
        Ok(s) => s,
        Err(e) => return Out::err(e, 0xFFFF_FFFD),
    };
    if let Some(r) = ctx.host.lock().log.get_mut(ctx.log_index) {
        r.script = Some(script.clone());
    }
    run_script(ctx, &script).await
}

/// Where the script comes from: `-EncodedCommand` (UTF-16LE base64), `-Command ...`, or stdin
/// (`-` or `-Command -`). Parameter names may be abbreviated as PowerShell allows.
fn script_from_args(args: &[String], stdin: &[u8]) -> Result<String, String> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_ascii_lowercase();
        let a = a.trim_start_matches('/');
        let takes_value = |full: &str, min: usize| a.len() > min && full.starts_with(a);
        if a == "-" {
            return Ok(stdin_text(stdin));
        } else if a == "-e" || a == "-ec" || takes_value("-encodedcommand", 2) {
            let b64 = args.get(i + 1).ok_or("Cannot process the command because of a missing parameter. A command must follow -EncodedCommand.\r\n")?;
            return decode_encoded(b64).ok_or_else(|| "Cannot process the command because the value specified with -EncodedCommand is not properly encoded. The value must be Base64 encoded.\r\n".to_string());
        } else if a == "-c" || takes_value("-command", 2) {
            let rest = args[i + 1..].join(" ");
            return Ok(if rest.trim() == "-" {
                stdin_text(stdin)
            } else {
                rest
            });
        } else if a == "-f" || takes_value("-file", 2) {
            return Err("winsim: powershell -File is not simulated; send the script with -EncodedCommand or on stdin\r\n".into());
        } else if [
            "-executionpolicy",
            "-ep",
            "-ex",
            "-inputformat",
            "-outputformat",
            "-windowstyle",
            "-version",
        ]
        .iter()
        .any(|p| p.starts_with(a) && a.len() > 3 || *p == a)
        {
            i += 1; // these take a value
        } else if !a.starts_with('-') {
            // A bare script after the switches, as `powershell Get-Date`.
            return Ok(args[i..].join(" "));
        }
        i += 1;
    }
    if stdin.is_empty() {
        return Err("winsim: an interactive PowerShell session is not simulated\r\n".into());
    }
    Ok(stdin_text(stdin))
}

fn stdin_text(stdin: &[u8]) -> String {
    String::from_utf8_lossy(stdin)
        .trim_start_matches('\u{feff}')
        .to_string()
}

/// Decodes `-EncodedCommand`: base64 of UTF-16LE.
pub fn decode_encoded(b64: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

fn term_not_recognized(term: &str) -> Out {
    Out::err(
        format!(
            "{term} : The term '{term}' is not recognized as the name of a cmdlet, function, script file, or operable program. Check the spelling of the name, or if a path was included, verify that the path is correct and try again.\r\n    + CategoryInfo          : ObjectNotFound: ({term}:String) [], CommandNotFoundException\r\n    + FullyQualifiedErrorId : CommandNotFoundException\r\n \r\n"
        ),
        1,
    )
}

async fn run_script(ctx: &Ctx<'_>, script: &str) -> Out {
    if let Some(req) = probe::parse_script(script) {
        return Out::ok(format!("{}\r\n", probe_json(ctx.host, &req)));
    }
    let mut total = Out::default();
    let mut last_exit: u32 = 0;
    let mut ok = true;
    for stmt in statements(script) {
        let words = ps_words(&stmt);
        let Some(first) = words.first() else { continue };
        let lower = first.to_ascii_lowercase();
        let out = match lower.as_str() {
            "exit" => {
                let code = match words.get(1).map(String::as_str) {
                    Some(v) if v.eq_ignore_ascii_case("$lastexitcode") => last_exit,
                    Some(v) => v.parse::<i64>().map(|c| c as u32).unwrap_or(0),
                    None => 0,
                };
                total.code = code;
                return total;
            }
            "write-output" | "echo" | "write-host" => {
                Out::ok(format!("{}\r\n", words[1..].join(" ")))
            }
            "$env:computername" | "hostname" => Out::ok(format!("{}\r\n", ctx.host.name)),
            "restart-computer" => restart(ctx.host),
            _ if stmt.trim_start().starts_with("(Get-FileHash") || lower == "get-filehash" => {
                get_file_hash(ctx.host, &stmt)
            }
            "&" => native(ctx, &words[1..], &mut last_exit).await,
            _ if first.contains('-') && !first.contains(['\\', '.']) => term_not_recognized(first),
            _ => native(ctx, &words, &mut last_exit).await,
        };
        ok = out.code == 0;
        total.stdout.push_str(&out.stdout);
        total.stderr.push_str(&out.stderr);
        if !out.stderr.is_empty() && out.stderr.contains("CommandNotFoundException") {
            total.code = 1;
            return total;
        }
    }
    total.code = u32::from(!ok);
    total
}

/// A native program called from PowerShell: runs without cmd.exe; `$LASTEXITCODE` is its code.
async fn native(ctx: &Ctx<'_>, words: &[String], last_exit: &mut u32) -> Out {
    let Some(program) = words.first() else {
        return Out::default();
    };
    let line = words
        .iter()
        .map(|w| {
            if w.contains(' ') {
                format!("\"{w}\"")
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    // A program a script starts is a process of its own: it gets its own log entry, so tests can
    // check its exact switches.
    let mut entry = super::LogGuard::start(ctx.host, &line);
    let out = exec_line(ctx, &line, false).await;
    entry.finish(out.code);
    if out.code == 0x8007_0002 && out.stderr.starts_with("winsim: cannot start") {
        return term_not_recognized(program);
    }
    *last_exit = out.code;
    // PowerShell shows a native program's stderr but the statement itself "succeeds" unless the
    // program exits non-zero.
    out
}

fn restart(host: &WinHost) -> Out {
    let mut st = host.settled();
    match host.schedule_reboot(&mut st, std::time::Duration::ZERO) {
        Ok(()) => Out::ok(""),
        Err(_) => Out::err(
            "Restart-Computer : Failed to restart the computer with the following error message: A system shutdown is in progress.\r\n",
            1,
        ),
    }
}

/// `Get-FileHash [-Path|-LiteralPath] P [-Algorithm A]`, plain (table), as `(Get-FileHash ...).Hash`
/// or piped to `Select-Object -ExpandProperty Hash`.
fn get_file_hash(host: &WinHost, stmt: &str) -> Out {
    let s = stmt.trim();
    let (inner, hash_only) = if let Some(rest) = s.strip_prefix('(') {
        match rest.rsplit_once(")") {
            Some((inner, tail)) if tail.trim().eq_ignore_ascii_case(".hash") => {
                (inner.to_string(), true)
            }
            _ => return term_not_recognized(s),
        }
    } else if let Some((cmd, pipe)) = s.split_once('|') {
        let p: Vec<String> = ps_words(pipe)
            .iter()
            .map(|w| w.to_ascii_lowercase())
            .collect();
        let expand = matches!(
            p.iter().map(String::as_str).collect::<Vec<_>>().as_slice(),
            [
                "select-object" | "select",
                "-expandproperty" | "-expand",
                "hash"
            ]
        );
        if !expand {
            return Out::err(
                "winsim: only `| Select-Object -ExpandProperty Hash` is simulated after Get-FileHash\r\n",
                1,
            );
        }
        (cmd.to_string(), true)
    } else {
        (s.to_string(), false)
    };
    let words = ps_words(&inner);
    let mut path = None;
    let mut alg = "SHA256".to_string();
    let mut i = 1;
    while i < words.len() {
        let w = words[i].to_ascii_lowercase();
        if w == "-path" || w == "-literalpath" {
            path = words.get(i + 1).cloned();
            i += 1;
        } else if w == "-algorithm" {
            alg = words
                .get(i + 1)
                .cloned()
                .unwrap_or_default()
                .to_ascii_uppercase();
            i += 1;
        } else if !w.starts_with('-') && path.is_none() {
            path = Some(words[i].clone());
        }
        i += 1;
    }
    let Some(path) = path else {
        return Out::err(
            "winsim: Get-FileHash without -Path/-LiteralPath is not simulated\r\n",
            1,
        );
    };
    let bytes = match std::fs::read(host.host_path(&path)) {
        Ok(b) if !WinHost::foreign_drive(&path) => b,
        _ => {
            return Out::err(
                format!(
                    "Get-FileHash : Cannot find path '{path}' because it does not exist.\r\n    + CategoryInfo          : ObjectNotFound: ({path}:String) [Get-FileHash], ItemNotFoundException\r\n"
                ),
                1,
            );
        }
    };
    let Some(hash) = file_hash(&bytes, &alg) else {
        return Out::err(
            format!(
                "Get-FileHash : Cannot validate argument on parameter 'Algorithm'. The argument \"{alg}\" does not belong to the set \"SHA1,SHA256,SHA384,SHA512,MD5\".\r\n"
            ),
            1,
        );
    };
    if hash_only {
        return Out::ok(format!("{hash}\r\n"));
    }
    let pad = " ".repeat(hash.len().saturating_sub(4) + 7);
    Out::ok(format!(
        "\r\nAlgorithm       Hash{pad}Path\r\n---------       ----{pad}----\r\n{alg:<15} {hash}       {path}\r\n\r\n\r\n"
    ))
}

/// Statements: lines and `;`, outside quotes; comments dropped.
fn statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in script.lines() {
        let mut cur = String::new();
        let mut q: Option<char> = None;
        for c in line.chars() {
            match (q, c) {
                (None, '#') => break,
                (None, ';') => out.push(std::mem::take(&mut cur)),
                (None, '\'' | '"') => {
                    q = Some(c);
                    cur.push(c);
                }
                (Some(open), c) if c == open => {
                    q = None;
                    cur.push(c);
                }
                _ => cur.push(c),
            }
        }
        out.push(cur);
    }
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Words of a statement with PowerShell quoting: '...' literal (with '' for a quote), "..." as is.
fn ps_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    let mut q: Option<char> = None;
    while let Some(c) = chars.next() {
        match (q, c) {
            (Some('\''), '\'') if chars.peek() == Some(&'\'') => {
                chars.next();
                cur.push('\'');
            }
            (Some(open), c) if c == open => q = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                q = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// The probe's answer, computed from the host model.
pub(crate) fn probe_json(host: &WinHost, req: &ProbeRequest) -> String {
    let facts = probe_facts(host, req);
    serde_json::to_string(&facts).unwrap_or_else(|_| "{}".into())
}

pub(crate) fn probe_facts(host: &WinHost, req: &ProbeRequest) -> ProbeFacts {
    let st = host.settled();
    let reg = &st.registry;
    let cv = model::CURRENT_VERSION;
    let text = |n: &str| match reg.get(cv, n) {
        Some(RegValue::Sz(s)) => s.clone(),
        _ => String::new(),
    };
    let num = |n: &str| match reg.get(cv, n) {
        Some(RegValue::Dword(d)) => Some(*d),
        _ => None,
    };
    let current: Vec<u32> = text("CurrentVersion")
        .split('.')
        .filter_map(|p| p.parse().ok())
        .collect();
    let major = num("CurrentMajorVersionNumber")
        .unwrap_or_else(|| current.first().copied().unwrap_or(host.major));
    let minor =
        num("CurrentMinorVersionNumber").unwrap_or_else(|| current.get(1).copied().unwrap_or(0));
    let pending_reboot = PendingReboot {
        cbs_reboot_pending: reg.key_exists(model::CBS_REBOOT_PENDING),
        windows_update_reboot_required: reg.key_exists(model::WU_REBOOT_REQUIRED),
        pending_file_renames: reg.get(model::SESSION_MANAGER, model::PFRO).is_some(),
        update_exe_volatile: matches!(reg.get(model::UPDATES, "UpdateExeVolatile"), Some(RegValue::Dword(v)) if *v != 0),
    };
    let registry = req
        .registry
        .iter()
        .map(|q| match reg.get(&q.key, &q.value) {
            Some(v) => RegistryFact {
                key: q.key.clone(),
                value: q.value.clone(),
                found: true,
                kind: Some(v.type_name().into()),
                data: Some(reg_json(v)),
            },
            // An empty value name asks whether the key exists (see `probe::RegistryQuery`).
            None => RegistryFact {
                key: q.key.clone(),
                value: q.value.clone(),
                found: q.value.is_empty() && reg.key_exists(&q.key),
                kind: None,
                data: None,
            },
        })
        .collect();
    let files = req.files.iter().map(|p| file_fact(host, p)).collect();
    ProbeFacts {
        schema: probe::PROBE_SCHEMA,
        computer_name: host.name.clone(),
        product_name: text("ProductName"),
        edition_id: text("EditionID"),
        csd_version: text("CSDVersion"),
        major,
        minor,
        build: text("CurrentBuild").parse().unwrap_or(0),
        ubr: num("UBR").unwrap_or(0),
        installed_kbs: st.kbs.iter().cloned().collect(),
        pending_reboot,
        last_boot_time: clock::iso_utc_millis(st.boot_time),
        free_disk_bytes: st.free_disk,
        registry,
        files,
    }
}

fn reg_json(v: &RegValue) -> serde_json::Value {
    match v {
        RegValue::Sz(s) | RegValue::ExpandSz(s) => s.as_str().into(),
        RegValue::MultiSz(items) => items.clone().into(),
        RegValue::Dword(d) => (*d).into(),
        RegValue::Qword(q) => (*q).into(),
        RegValue::Binary(_) => v.reg_exe_data().into(),
    }
}

fn file_fact(host: &WinHost, path: &str) -> FileFact {
    let local = host.host_path(path);
    let meta = std::fs::metadata(&local)
        .ok()
        .filter(|m| m.is_file() && !WinHost::foreign_drive(path));
    let Some(meta) = meta else {
        return FileFact {
            path: path.into(),
            exists: false,
            size: None,
            file_version: None,
            product_version: None,
        };
    };
    let version = std::fs::read(&local)
        .ok()
        .and_then(|b| crate::pe::read_version(&b).ok());
    FileFact {
        path: path.into(),
        exists: true,
        size: Some(meta.len()),
        file_version: version.as_ref().map(|v| v.file_version.to_string()),
        product_version: version.as_ref().map(|v| v.product_version.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_commands_round_trip() {
        let s = "Get-FileHash -LiteralPath 'C:\\x y\\z.exe'";
        assert_eq!(
            decode_encoded(&probe::encode_command(s)).as_deref(),
            Some(s)
        );
        assert_eq!(decode_encoded("###"), None);
    }

    #[test]
    fn words_and_statements() {
        assert_eq!(
            ps_words("Get-FileHash -LiteralPath 'C:\\it''s x' -Algorithm SHA1"),
            vec![
                "Get-FileHash",
                "-LiteralPath",
                "C:\\it's x",
                "-Algorithm",
                "SHA1"
            ]
        );
        assert_eq!(statements("a; b # c\n'x;y'"), vec!["a", "b", "'x;y'"]);
    }
}
