//! `powershell.exe`: the probe, `Get-FileHash`, and native commands run from a script.
//!
//! winsim does not interpret PowerShell. It recognises hive's probe by its marker line and answers
//! from the host model, and it runs a short, documented list of statements (COMMANDS.md); anything
//! else fails with PowerShell's own "term is not recognized" error and exit code 1.

use std::sync::Arc;

use base64::Engine as _;

use super::{Ctx, Out, exec_line, file_hash};
use crate::clock;
use crate::memo::LastOne;
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
        r.script = Some(Arc::clone(&script));
    }
    run_script(ctx, &script).await
}

/// The scripts decoded from the last `-EncodedCommand` value (see [`crate::memo`]).
static DECODED: LastOne<Option<Arc<str>>> = LastOne::new();

/// The last probe script read: its request and how it reads things (see [`crate::memo`]).
static PROBES: LastOne<Option<Arc<(ProbeRequest, ScriptTraits)>>> = LastOne::new();

/// Where the script comes from: `-EncodedCommand` (UTF-16LE base64), `-Command ...`, or stdin
/// (`-` or `-Command -`). Parameter names may be abbreviated as PowerShell allows.
fn script_from_args(args: &[String], stdin: &[u8]) -> Result<Arc<str>, String> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_ascii_lowercase();
        let a = a.trim_start_matches('/');
        let takes_value = |full: &str, min: usize| a.len() > min && full.starts_with(a);
        if a == "-" {
            return Ok(stdin_text(stdin).into());
        } else if a == "-e" || a == "-ec" || takes_value("-encodedcommand", 2) {
            let b64 = args.get(i + 1).ok_or("Cannot process the command because of a missing parameter. A command must follow -EncodedCommand.\r\n")?;
            let (_, script) = DECODED.get(b64, |b| decode_encoded(b).map(Arc::from));
            return script.ok_or_else(|| "Cannot process the command because the value specified with -EncodedCommand is not properly encoded. The value must be Base64 encoded.\r\n".to_string());
        } else if a == "-c" || takes_value("-command", 2) {
            let rest = args[i + 1..].join(" ");
            return Ok(if rest.trim() == "-" {
                stdin_text(stdin)
            } else {
                rest
            }
            .into());
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
            return Ok(args[i..].join(" ").into());
        }
        i += 1;
    }
    if stdin.is_empty() {
        return Err("winsim: an interactive PowerShell session is not simulated\r\n".into());
    }
    Ok(stdin_text(stdin).into())
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
    if script.starts_with(super::follow::MARKER) {
        return super::follow::run(ctx.host, script).await;
    }
    let (_, probe) = PROBES.get(script, |s| {
        probe::parse_script(s).map(|req| Arc::new((req, ScriptTraits::of(s))))
    });
    if let Some(probe) = probe {
        return run_probe(ctx.host, &probe.0, probe.1);
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
            // Get-FileHash arrived with PowerShell 4.0.
            _ if (stmt.trim_start().starts_with("(Get-FileHash") || lower == "get-filehash")
                && ctx.host.powershell_version.0 >= 4 =>
            {
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

/// What the probe script prints on this host: the legacy signal where PowerShell is older than
/// 3.0, else the facts as ASCII JSON (the script escapes non-ASCII), after a byte order mark on a
/// host whose console writes one.
fn run_probe(host: &WinHost, req: &ProbeRequest, traits: ScriptTraits) -> Out {
    let bom = if host.powershell_bom { "\u{feff}" } else { "" };
    let (major, minor) = host.powershell_version;
    if major < 3 {
        return Out::ok(format!("{bom}{} {major}.{minor}\r\n", probe::LEGACY_SIGNAL));
    }
    let facts = probe_facts_with(host, req, traits);
    let json = serde_json::to_string(&facts).unwrap_or_else(|_| "{}".into());
    Out::ok(format!("{bom}{}\r\n", probe::ascii_json(&json)))
}

/// What the model must know about how the script reads things, where PowerShell's behaviour
/// depends on it: winsim does not run the script, so it looks for the lines that matter.
#[derive(Debug, Clone, Copy)]
struct ScriptTraits {
    /// `Get-Item -Force`: hidden and system files are readable.
    forces_hidden: bool,
}

impl ScriptTraits {
    fn of(script: &str) -> Self {
        ScriptTraits {
            forces_hidden: script.contains("Get-Item -LiteralPath $full -Force"),
        }
    }
}

/// What `[Microsoft.Win32.RegistryKey]::OpenSubKey` throws for a key the account may not read.
const REGISTRY_DENIED: &str = "Requested registry access is not allowed.";

/// The probe's answer, computed from the host model as the script `traits` describes gathers it.
fn probe_facts_with(host: &WinHost, req: &ProbeRequest, traits: ScriptTraits) -> ProbeFacts {
    let st = host.settled();
    let reg = &st.registry;
    let cv = model::CURRENT_VERSION;
    let mut unknown = std::collections::BTreeMap::new();
    let cv_denied = host.registry_denied(cv);
    if cv_denied {
        for n in [
            "ProductName",
            "EditionID",
            "InstallationType",
            "CSDVersion",
            "CurrentBuild",
            "UBR",
        ] {
            unknown.insert(n.to_string(), REGISTRY_DENIED.to_string());
        }
    }
    let text = |n: &str| match reg.get(cv, n) {
        Some(RegValue::Sz(s)) if !cv_denied => s.clone(),
        _ => String::new(),
    };
    let num = |n: &str| match reg.get(cv, n) {
        Some(RegValue::Dword(d)) if !cv_denied => Some(*d),
        _ => None,
    };
    let listed = |key: &str, name: &str| match reg.get(key, name) {
        Some(RegValue::MultiSz(items)) => items.iter().any(|i| !i.is_empty()),
        Some(RegValue::Sz(s)) => !s.is_empty(),
        Some(_) => true,
        None => false,
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
        pending_file_renames: listed(model::SESSION_MANAGER, model::PFRO)
            || listed(model::SESSION_MANAGER, "PendingFileRenameOperations2"),
        update_exe_volatile: matches!(reg.get(model::UPDATES, "UpdateExeVolatile"), Some(RegValue::Dword(v)) if *v != 0),
    };
    let registry = req
        .registry
        .iter()
        .map(|q| match reg.get(&q.key, &q.value) {
            _ if host.registry_denied(&q.key) => RegistryFact {
                key: q.key.clone(),
                value: q.value.clone(),
                found: false,
                kind: None,
                data: None,
                error: Some(REGISTRY_DENIED.into()),
            },
            Some(v) => RegistryFact {
                key: q.key.clone(),
                value: q.value.clone(),
                found: true,
                kind: Some(v.type_name().into()),
                data: Some(reg_json(v)),
                error: None,
            },
            // An empty value name asks whether the key exists (see `probe::RegistryQuery`).
            None => RegistryFact {
                key: q.key.clone(),
                value: q.value.clone(),
                found: q.value.is_empty() && reg.key_exists(&q.key),
                kind: None,
                data: None,
                error: None,
            },
        })
        .collect();
    let files = req
        .files
        .iter()
        .map(|p| file_fact(host, p, traits))
        .collect();
    ProbeFacts {
        schema: probe::PROBE_SCHEMA,
        computer_name: host.name.clone(),
        product_name: text("ProductName"),
        edition_id: text("EditionID"),
        installation_type: text("InstallationType"),
        csd_version: text("CSDVersion"),
        major,
        minor,
        build: text("CurrentBuild").parse().unwrap_or(0),
        ubr: num("UBR").unwrap_or(0),
        installed_kbs: st.kbs.iter().cloned().collect(),
        pending_reboot,
        last_boot_time: clock::iso_utc_millis(st.boot_time),
        free_disk_bytes: st.free_disk,
        utc_now: clock::iso_utc_millis(host.clock_now()),
        registry,
        files,
        unknown,
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

/// The environment of a remote session, as `[Environment]::ExpandEnvironmentVariables` sees it.
fn session_environment(host: &WinHost) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("SystemRoot", host.system_root.clone()),
        ("windir", host.system_root.clone()),
        ("SystemDrive", "C:".to_string()),
        ("ProgramData", r"C:\ProgramData".to_string()),
        ("ProgramFiles", r"C:\Program Files".to_string()),
        (
            "CommonProgramFiles",
            r"C:\Program Files\Common Files".to_string(),
        ),
    ];
    if host.machine != crate::pe::Machine::I386 {
        vars.push(("ProgramFiles(x86)", r"C:\Program Files (x86)".to_string()));
        vars.push((
            "CommonProgramFiles(x86)",
            r"C:\Program Files (x86)\Common Files".to_string(),
        ));
    }
    vars
}

/// Expands `%NAME%` as Windows does (names ignore case; an unknown one stays as it is).
fn expand_environment(host: &WinHost, path: &str) -> String {
    let vars = session_environment(host);
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) => {
                let name = &after[..end];
                match vars.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push('%');
                        out.push_str(name);
                        out.push('%');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn file_fact(host: &WinHost, path: &str, traits: ScriptTraits) -> FileFact {
    let mut fact = FileFact {
        path: path.into(),
        exists: false,
        size: None,
        file_version: None,
        product_version: None,
        error: None,
    };
    let full = expand_environment(host, path);
    if let Some(var) = unexpanded_variable(&full) {
        fact.error = Some(format!(
            "environment variable {var} is not set on this host"
        ));
        return fact;
    }
    if WinHost::foreign_drive(&full) {
        return fact;
    }
    let Some(bytes) = host.read_file(&full) else {
        return fact;
    };
    if host.is_hidden(&full) && !traits.forces_hidden {
        // Test-Path finds it; Get-Item without -Force does not.
        fact.error = Some(format!("Could not find item {full}."));
        return fact;
    }
    let version = crate::pe::read_version(&bytes).ok();
    FileFact {
        path: path.into(),
        exists: true,
        size: Some(bytes.len() as u64),
        file_version: version.as_ref().map(|v| v.file_version.to_string()),
        product_version: version.as_ref().map(|v| v.product_version.to_string()),
        error: None,
    }
}

/// The first `%NAME%` left in an expanded path (what the probe's `-match '%[^%\\]+%'` finds).
fn unexpanded_variable(expanded: &str) -> Option<&str> {
    let start = expanded.find('%')?;
    let len = expanded[start + 1..].find('%')?;
    let name = &expanded[start + 1..start + 1 + len];
    (!name.is_empty() && !name.contains('\\')).then(|| &expanded[start..start + len + 2])
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
