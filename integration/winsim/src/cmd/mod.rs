//! The command interpreter: what a simulated host does with a command line (see COMMANDS.md).
//!
//! It answers the way cmd.exe and the real tools do — same text, same exit codes — for the commands
//! hive sends, and like cmd.exe for everything else (`'x' is not recognized...`, exit 1). It never
//! answers a command it does not simulate with a silent success: a test that relies on an
//! unsimulated command must fail, not pass by accident.

mod batch;
mod follow;
mod packages;
mod powershell;
mod systeminfo;
mod uninstall;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sha1::Digest as _;

use crate::clock;
use crate::host::{CommandOutcome, CommandRequest};
use crate::memo::LastOne;
use crate::model::{CommandRecord, Power, WinHost};
use crate::registry::canonical_path;

/// What a command printed and returned.
#[derive(Debug, Default, Clone)]
pub(crate) struct Out {
    pub stdout: String,
    pub stderr: String,
    pub code: u32,
}

impl Out {
    pub fn ok(stdout: impl Into<String>) -> Out {
        Out {
            stdout: stdout.into(),
            stderr: String::new(),
            code: 0,
        }
    }
    pub fn err(stderr: impl Into<String>, code: u32) -> Out {
        Out {
            stdout: String::new(),
            stderr: stderr.into(),
            code,
        }
    }
}

/// One running command: the host and its log entry.
pub(crate) struct Ctx<'a> {
    pub host: &'a WinHost,
    pub log_index: usize,
    pub stdin: Vec<u8>,
    /// The folder a `cd /d` chose for the rest of the request (see `batch`).
    pub cwd: std::sync::Mutex<Option<String>>,
}

type OutFuture<'a> = Pin<Box<dyn Future<Output = Out> + Send + 'a>>;

/// Marks the log entry killed if the command's future is dropped before it finishes.
struct LogGuard<'a> {
    host: &'a WinHost,
    index: usize,
    done: bool,
}

impl<'a> LogGuard<'a> {
    /// Appends the command to the host's log; the entry is finished by [`LogGuard::finish`] or,
    /// if the command is dropped first, marked killed.
    fn start(host: &'a WinHost, line: &str) -> Self {
        let started = host.wall_now();
        let (command_line, ()) = LINES.get(line, |_| ());
        let mut st = host.lock();
        st.log.push(CommandRecord {
            command_line,
            script: None,
            started,
            exit_code: None,
            killed: false,
        });
        let index = st.log.len() - 1;
        LogGuard {
            host,
            index,
            done: false,
        }
    }

    fn finish(&mut self, code: u32) {
        self.done = true;
        if let Some(r) = self.host.lock().log.get_mut(self.index) {
            r.exit_code = Some(code);
        }
    }
}

impl Drop for LogGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut st = self.host.lock();
            if let Some(r) = st.log.get_mut(self.index) {
                r.killed = true;
            }
        }
    }
}

/// The last command line logged, shared by the hosts that run it (see [`crate::memo`]).
static LINES: LastOne<()> = LastOne::new();

/// Runs one request to completion (the body of [`crate::host::SimHost::run`]).
pub(crate) async fn run(host: &WinHost, request: CommandRequest) -> CommandOutcome {
    let line = command_line(&request);
    let up = matches!(
        host.settled().power,
        Power::Up | Power::RebootScheduled { .. }
    );
    let mut guard = LogGuard::start(host, &line);
    let index = guard.index;
    // cmd.exe refuses lines over 8191 characters; CreateProcess takes up to 32767.
    let limit = if request.skip_cmd_shell {
        32_767
    } else {
        8_191
    };
    let out = if line.chars().count() > limit {
        if request.skip_cmd_shell {
            Out::err("The filename or extension is too long. (206)\r\n", 206)
        } else {
            Out::err("The command line is too long.\r\n", 1)
        }
    } else if up {
        let ctx = Ctx {
            host,
            log_index: index,
            stdin: request.stdin,
            cwd: Default::default(),
        };
        if request.skip_cmd_shell {
            exec_line(&ctx, &line, false).await
        } else {
            // WinRS runs the line as `cmd.exe /c LINE`: cmd.exe strips its outer quotes first.
            let line = cmd_c_line(&line, |p| packages::find_program(host, p).is_some());
            exec_line(&ctx, &line, true).await
        }
    } else {
        // The faces refuse connections while the host is down; a command that still arrives finds
        // the machine shutting down.
        Out::err("A system shutdown is in progress.\r\n", 1115)
    };
    guard.finish(out.code);
    CommandOutcome {
        stdout: out.stdout.into_bytes(),
        stderr: out.stderr.into_bytes(),
        exit_code: out.code,
    }
}

/// WinRS joins the command and its arguments with single spaces, quoting nothing.
fn command_line(r: &CommandRequest) -> String {
    let mut line = r.command.clone();
    for a in &r.arguments {
        line.push(' ');
        line.push_str(a);
    }
    let trimmed = line.trim();
    if trimmed.len() == line.len() {
        line
    } else {
        trimmed.to_string()
    }
}

/// A token of a command line and where it ends in the line (so `cmd /c` can take the rest raw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub text: String,
    pub end: usize,
}

/// Splits like `CommandLineToArgvW` for the cases that matter: whitespace separates, double quotes
/// group (and are removed).
pub(crate) fn tokenize(line: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut quoted = false;
    // Text between separators and quotes is found byte by byte and copied as whole slices: an
    // -EncodedCommand argument is tens of kilobytes of plain ASCII, and a push per character
    // made tokenizing it a visible share of a fleet scan's CPU.
    let bytes = line.as_bytes();
    let mut run = 0;
    let mut at = 0;
    while at < bytes.len() {
        let b = bytes[at];
        if b > b' ' && b != b'"' && b < 0x80 {
            at += 1;
            continue;
        }
        let c = line[at..].chars().next().unwrap_or(' ');
        let next = at + c.len_utf8();
        let separator = c.is_whitespace() && !quoted;
        if c != '"' && !separator {
            at = next;
            continue;
        }
        cur.push_str(&line[run..at]);
        in_token |= at > run;
        run = next;
        if c == '"' {
            quoted = !quoted;
            in_token = true;
        } else if in_token {
            out.push(Token {
                text: std::mem::take(&mut cur),
                end: at,
            });
            in_token = false;
        }
        at = next;
    }
    cur.push_str(&line[run..]);
    in_token |= run < line.len();
    if in_token {
        out.push(Token {
            text: cur,
            end: line.len(),
        });
    }
    out
}

/// cmd.exe's `&`, `&&` and `||`, outside quotes.
fn split_operators(line: &str) -> Vec<(&'static str, String)> {
    let mut parts = Vec::new();
    let mut op = "";
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '&' if !quoted => {
                parts.push((op, std::mem::take(&mut cur)));
                op = if chars.peek() == Some(&'&') {
                    chars.next();
                    "&&"
                } else {
                    "&"
                };
            }
            '|' if !quoted && chars.peek() == Some(&'|') => {
                chars.next();
                parts.push((op, std::mem::take(&mut cur)));
                op = "||";
            }
            c => cur.push(c),
        }
    }
    parts.push((op, cur));
    parts
}

/// Runs a line, through cmd.exe's rules when `via_cmd`.
pub(crate) fn exec_line<'a>(ctx: &'a Ctx<'a>, line: &'a str, via_cmd: bool) -> OutFuture<'a> {
    Box::pin(async move {
        if !via_cmd {
            return exec_simple(ctx, line.trim(), false).await;
        }
        let mut total = Out::default();
        let mut last_ok = true;
        for (op, seg) in split_operators(line) {
            let seg = seg.trim();
            if (op == "&&" && !last_ok) || (op == "||" && last_ok) || seg.is_empty() {
                continue;
            }
            let out = exec_redirected(ctx, seg).await;
            last_ok = out.code == 0;
            total.stdout.push_str(&out.stdout);
            total.stderr.push_str(&out.stderr);
            total.code = out.code;
        }
        total
    })
}

/// Handles the redirections hive may use (`>nul`, `2>nul`, `2>&1`); others are refused loudly.
async fn exec_redirected(ctx: &Ctx<'_>, seg: &str) -> Out {
    let mut line = seg.to_string();
    let mut drop_out = false;
    let mut drop_err = false;
    let mut merge = false;
    for (pat, what) in [("2>&1", 0), ("2>nul", 1), ("1>nul", 2), (">nul", 2)] {
        while let Some(at) = line.to_ascii_lowercase().find(pat) {
            line.replace_range(at..at + pat.len(), " ");
            match what {
                0 => merge = true,
                1 => drop_err = true,
                _ => drop_out = true,
            }
        }
    }
    if has_unquoted(&line, &['>', '<', '|']) {
        return Out::err(
            "winsim: pipes and redirection to files are not simulated (see integration/winsim/COMMANDS.md)\r\n",
            1,
        );
    }
    let mut out = exec_simple(ctx, line.trim(), true).await;
    if merge {
        let err = std::mem::take(&mut out.stderr);
        out.stdout.push_str(&err);
    }
    if drop_err {
        out.stderr.clear();
    }
    if drop_out {
        out.stdout.clear();
    }
    out
}

fn has_unquoted(s: &str, chars: &[char]) -> bool {
    let mut quoted = false;
    for c in s.chars() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted && chars.contains(&c) {
            return true;
        }
    }
    false
}

/// The program part of a token: `C:\WINDOWS\system32\Reg.EXE` → `reg`.
fn program_name(token: &str) -> (String, bool) {
    let base = token.rsplit(['\\', '/']).next().unwrap_or(token);
    let lower = base.to_ascii_lowercase();
    let stem = lower
        .strip_suffix(".exe")
        .or_else(|| lower.strip_suffix(".com"))
        .unwrap_or(&lower);
    (stem.to_string(), token.contains(['\\', '/', ':']))
}

/// cmd.exe's answer to a program it cannot find: exit code 9009 in every language, the message in
/// the host's.
pub(crate) fn not_recognized(host: &WinHost, name: &str) -> Out {
    let text = match host.language.as_str() {
        "de-DE" => format!(
            "Der Befehl \"{name}\" ist entweder falsch geschrieben oder\r\nkonnte nicht gefunden werden.\r\n"
        ),
        _ => format!(
            "'{name}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
        ),
    };
    Out::err(text, 9009)
}

/// `sc query NAME` and `sc qc NAME` read a service; anything else (create, config, start...) is
/// refused as persistence is.
fn sc(host: &WinHost, args: &[String]) -> Out {
    match args {
        [verb, name] if ["query", "qc"].contains(&verb.to_ascii_lowercase().as_str()) => {
            let (stdout, code) = host.settled().services.sc(&verb.to_ascii_lowercase(), name);
            if code == 0 {
                Out::ok(stdout)
            } else {
                Out {
                    stdout,
                    stderr: String::new(),
                    code,
                }
            }
        }
        _ => Out::err(
            "[SC] OpenSCManager FAILED 5:\r\n\r\nAccess is denied.\r\n\r\n",
            5,
        ),
    }
}

/// Runs one command (no operators left).
fn exec_simple<'a>(ctx: &'a Ctx<'a>, line: &'a str, via_cmd: bool) -> OutFuture<'a> {
    Box::pin(async move {
        let tokens = tokenize(line);
        let Some(first) = tokens.first() else {
            return Out::default();
        };
        let args: Vec<String> = tokens[1..].iter().map(|t| t.text.clone()).collect();
        let (name, has_path) = program_name(&first.text);
        let host = ctx.host;
        let system_tool = !has_path
            || host
                .host_path(&first.text)
                .starts_with(host.host_path(&host.system_root));
        if system_tool {
            if via_cmd {
                match name.as_str() {
                    "echo" => return echo(line, first.end),
                    "echo." => return Out::ok("\r\n"),
                    "exit" => return exit(&args),
                    "type" => return type_file(host, &args),
                    "cd" | "chdir" => return batch::cd(ctx, &args),
                    "ver" => return ver(host),
                    _ => {}
                }
            }
            match name.as_str() {
                "cmd" => return cmd_c(ctx, line, &tokens).await,
                "hostname" => return Out::ok(format!("{}\r\n", host.name)),
                "whoami" if host.release().has_whoami() => {
                    return Out::ok(format!(
                        "{}\\{}\r\n",
                        host.name.to_ascii_lowercase(),
                        host.account_user().to_ascii_lowercase()
                    ));
                }
                "ipconfig" => return ipconfig(host, &args),
                "systeminfo" if host.release().has_systeminfo() => {
                    return systeminfo::systeminfo(host, &args);
                }
                "reg" => return reg(host, &args),
                "wmic" if host.at_least(5, 1) => return wmic(host, &args),
                "net" => return net(host, &args),
                "tasklist" if host.at_least(5, 1) => return tasklist(host, &args),
                "shutdown" => return shutdown(host, &args),
                "certutil" => return certutil(host, &args),
                "schtasks" => return Out::err("ERROR: Access is denied.\r\n", 1),
                "sc" => return sc(host, &args),
                "wevtutil" if host.at_least(6, 0) => {
                    let (stdout, stderr, code) = host.settled().events.wevtutil(&host.name, &args);
                    return Out {
                        stdout,
                        stderr,
                        code,
                    };
                }
                "powershell" if host.powershell => return powershell::run(ctx, &args).await,
                "expand" => return packages::expand(host, &args),
                "dism" => return packages::dism(ctx, &args).await,
                "msiexec" => return packages::msiexec(ctx, &args).await,
                "wusa" => return packages::wusa(host, &args),
                _ => {}
            }
        }
        if via_cmd && batch::is_batch(&first.text) {
            return batch::run(ctx, &first.text).await;
        }
        let program = batch::in_current_dir(ctx, &first.text).unwrap_or(first.text.clone());
        match packages::find_program(host, &program) {
            Some(path) => packages::run_program(ctx, &first.text, &path, &args).await,
            None if via_cmd => not_recognized(host, &first.text),
            None => Out::err(
                format!(
                    "winsim: cannot start `{}`: The system cannot find the file specified. (0x80070002)\r\n",
                    first.text
                ),
                0x8007_0002,
            ),
        }
    })
}

impl WinHost {
    pub(crate) fn account_user(&self) -> &str {
        crate::host::SimHost::account(self).0
    }
}

fn echo(line: &str, name_end: usize) -> Out {
    let rest = line.get(name_end..).unwrap_or("").trim_start();
    if rest.is_empty() {
        return Out::ok("ECHO is on.\r\n");
    }
    Out::ok(format!("{rest}\r\n"))
}

fn exit(args: &[String]) -> Out {
    let code = args
        .iter()
        .find(|a| !a.eq_ignore_ascii_case("/b"))
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or(0);
    Out {
        code: code as u32,
        ..Out::default()
    }
}

fn type_file(host: &WinHost, args: &[String]) -> Out {
    let Some(p) = args.first() else {
        return Out::err("The syntax of the command is incorrect.\r\n", 1);
    };
    match std::fs::read(host.host_path(p)) {
        Ok(b) if !WinHost::foreign_drive(p) => Out::ok(String::from_utf8_lossy(&b).into_owned()),
        _ => Out::err("The system cannot find the file specified.\r\n", 1),
    }
}

fn ver(host: &WinHost) -> Out {
    let st = host.settled();
    let cv = crate::model::CURRENT_VERSION;
    let build = match st.registry.get(cv, "CurrentBuild") {
        Some(crate::registry::RegValue::Sz(s)) => s.clone(),
        _ => String::new(),
    };
    let ubr = match st.registry.get(cv, "UBR") {
        Some(crate::registry::RegValue::Dword(u)) => Some(*u),
        _ => None,
    };
    let banner = host
        .release()
        .ver_banner(host.major, host.minor, &build, ubr);
    Out::ok(format!("\r\n{banner}\r\n"))
}

/// `cmd /c <rest>`: the rest of the line runs through cmd's rules; one pair of outer quotes goes.
async fn cmd_c(ctx: &Ctx<'_>, line: &str, tokens: &[Token]) -> Out {
    let Some(pos) = tokens
        .iter()
        .position(|t| t.text.eq_ignore_ascii_case("/c") || t.text.eq_ignore_ascii_case("/k"))
    else {
        return Out::err(
            "winsim: an interactive cmd.exe is not simulated; use cmd /c\r\n",
            1,
        );
    };
    let rest = cmd_c_line(line[tokens[pos].end..].trim(), |p| {
        packages::find_program(ctx.host, p).is_some()
    });
    exec_line(ctx, &rest, true).await
}

/// What `cmd /c REST` runs of REST: cmd.exe's outer-quote rule (`cmd /?`). The quotes stay only
/// when there are exactly two, nothing special (`&<>()@^|`) and some whitespace lies between
/// them, and they enclose the name of an existing program; otherwise, when REST starts with a
/// quote, that quote and the last one go and everything else stays. So `"reg query HKLM\X"`
/// runs `reg query HKLM\X`, `"tasklist"` runs `tasklist` and `""` runs nothing (exit 0).
pub(crate) fn cmd_c_line(rest: &str, is_program: impl Fn(&str) -> bool) -> String {
    let rest = rest.trim();
    if !rest.starts_with('"') {
        return rest.to_string();
    }
    let Some(last) = rest.rfind('"') else {
        return rest.to_string();
    };
    if rest.matches('"').count() == 2 {
        let inner = &rest[1..last];
        let keep = !inner.contains(['&', '<', '>', '(', ')', '@', '^', '|'])
            && inner.contains(char::is_whitespace)
            && is_program(inner);
        if keep {
            return rest.to_string();
        }
    }
    if last == 0 {
        return rest[1..].to_string();
    }
    format!("{}{}", &rest[1..last], &rest[last + 1..])
}

/// The image a command line runs, as tasklist names it: its program after cmd.exe's quote rule,
/// without any folder, `.exe` added when it has no extension.
fn image_name(host: &WinHost, command_line: &str) -> String {
    let line = cmd_c_line(command_line, |p| packages::find_program(host, p).is_some());
    let first = tokenize(&line)
        .into_iter()
        .next()
        .map(|t| t.text)
        .unwrap_or_default();
    let base = first.rsplit(['\\', '/']).next().unwrap_or(&first);
    if base.contains('.') {
        base.to_string()
    } else {
        format!("{base}.exe")
    }
}

/// `ipconfig [/all]` in the layout of the host's release (title, indent, labels, adapter name).
fn ipconfig(host: &WinHost, args: &[String]) -> Out {
    let os = host.release();
    let all = args.iter().any(|a| a.eq_ignore_ascii_case("/all"));
    let pad = os.ipconfig_indent();
    let field = |label: &str, value: &str| format!("{pad}{label} : {value}\r\n");
    let mut s = format!("\r\n{}\r\n\r\n", os.ipconfig_title());
    if all {
        s.push_str(&field("Host Name . . . . . . . . . . . .", &host.name));
        s.push_str(&field("Primary Dns Suffix  . . . . . . .", ""));
        s.push_str(&field("Node Type . . . . . . . . . . . .", "Hybrid"));
        s.push_str(&field("IP Routing Enabled. . . . . . . .", "No"));
        s.push_str(&field("WINS Proxy Enabled. . . . . . . .", "No"));
    }
    s.push_str(&format!(
        "\r\nEthernet adapter {}:\r\n\r\n",
        os.adapter_name()
    ));
    s.push_str(&field("Connection-specific DNS Suffix  .", ""));
    if all {
        s.push_str(&field(
            "Description . . . . . . . . . . .",
            "winsim Virtual Ethernet Adapter",
        ));
        let o = host.address().octets();
        let mac = format!("00-15-5D-{:02X}-{:02X}-{:02X}", o[1], o[2], o[3]);
        s.push_str(&field("Physical Address. . . . . . . . .", &mac));
        s.push_str(&field("DHCP Enabled. . . . . . . . . . .", "No"));
    }
    s.push_str(&field(
        os.ipconfig_address_label(),
        &host.address().to_string(),
    ));
    s.push_str(&field("Subnet Mask . . . . . . . . . . .", "255.0.0.0"));
    s.push_str(&field("Default Gateway . . . . . . . . .", ""));
    Out::ok(s)
}

const REG_NOT_FOUND: &str =
    "ERROR: The system was unable to find the specified registry key or value.\r\n";
const REG_SYNTAX: &str = "ERROR: Invalid syntax.\r\nType \"REG QUERY /?\" for usage.\r\n";

/// `reg query KEY [/v NAME | /ve] [/s]`, in reg.exe's exact layout.
fn reg(host: &WinHost, args: &[String]) -> Out {
    let Some(op) = args.first() else {
        return Out::err(
            "ERROR: Invalid syntax.\r\nType \"REG /?\" for usage.\r\n",
            1,
        );
    };
    if !op.eq_ignore_ascii_case("query") {
        return Out::err(
            format!("winsim: `reg {op}` is not simulated (only reg query)\r\n"),
            1,
        );
    }
    let Some(key) = args.get(1) else {
        return Out::err(REG_SYNTAX, 1);
    };
    let mut value: Option<String> = None;
    let mut recursive = false;
    let mut i = 2;
    while i < args.len() {
        match args[i].to_ascii_lowercase().as_str() {
            "/v" => {
                let Some(v) = args.get(i + 1) else {
                    return Out::err(REG_SYNTAX, 1);
                };
                value = Some(v.clone());
                i += 1;
            }
            "/ve" => value = Some(String::new()),
            "/s" => recursive = true,
            // The registry view switches: one registry here, so both views are the same.
            "/reg:64" | "/reg:32" => {}
            _ => return Out::err(REG_SYNTAX, 1),
        }
        i += 1;
    }
    if canonical_path(key).is_err() {
        return Out::err(
            "ERROR: Invalid key name.\r\nType \"REG QUERY /?\" for usage.\r\n",
            1,
        );
    }
    let st = host.settled();
    let reg = &st.registry;
    if !reg.key_exists(key) {
        return Out::err(REG_NOT_FOUND, 1);
    }
    // reg.exe spells out the root key but echoes the rest of the path as typed; subkeys it lists
    // get their stored names appended to that.
    let display = canonical_path(key).unwrap_or_else(|_| key.to_string());
    let leaf = |full: &str| full.rsplit('\\').next().unwrap_or(full).to_string();
    let line = |name: &str, v: &crate::registry::RegValue| {
        let shown = if name.is_empty() { "(Default)" } else { name };
        format!(
            "    {shown}    {}    {}\r\n",
            v.type_name(),
            v.reg_exe_data()
        )
    };
    if let Some(name) = value {
        return match reg.get(key, &name) {
            Some(v) => Out::ok(format!("\r\n{display}\r\n{}\r\n", line(&name, v))),
            None => Out::err(REG_NOT_FOUND, 1),
        };
    }
    let mut s = String::new();
    if recursive {
        let mut stack = vec![display.clone()];
        while let Some(k) = stack.pop() {
            s.push_str(&format!("\r\n{k}\r\n"));
            for (n, v) in reg.values(&k).unwrap_or(&[]) {
                s.push_str(&line(n, v));
            }
            let subs = reg.subkeys(&k);
            stack.extend(subs.iter().rev().map(|sub| format!("{k}\\{}", leaf(sub))));
        }
        s.push_str("\r\n");
        return Out::ok(s);
    }
    s.push_str("\r\n");
    let values = reg.values(key).unwrap_or(&[]);
    if !values.is_empty() {
        s.push_str(&format!("{display}\r\n"));
        for (n, v) in values {
            s.push_str(&line(n, v));
        }
        s.push_str("\r\n");
    }
    for sub in reg.subkeys(key) {
        s.push_str(&format!("{display}\\{}\r\n", leaf(&sub)));
    }
    Out::ok(s)
}

/// `wmic os get lastbootuptime` and `wmic qfe get hotfixid`, with wmic's `\r\r\n` line ends.
/// `tasklist [/FO CSV] [/NH] [/FI "IMAGENAME eq NAME"]` (Windows XP/2003 and later): the
/// processes are the host's commands still running (the command log's entries with no exit code
/// that were not killed) after `System`, so an installer left running by a client that went away
/// shows here as it does on Windows.
fn tasklist(host: &WinHost, args: &[String]) -> Out {
    let mut csv = false;
    let mut header = true;
    let mut image: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_ascii_lowercase();
        match a.as_str() {
            "/fo"
                if args
                    .get(i + 1)
                    .is_some_and(|f| f.eq_ignore_ascii_case("csv")) =>
            {
                csv = true;
                i += 1;
            }
            "/nh" => header = false,
            "/fi" => {
                let filter = args.get(i + 1).map(|f| f.to_ascii_lowercase());
                let words: Vec<&str> = filter.as_deref().unwrap_or("").split_whitespace().collect();
                match words.as_slice() {
                    ["imagename", "eq", name] => image = Some((*name).to_string()),
                    _ => {
                        return Out::err(
                            "winsim: only tasklist /FI \"IMAGENAME eq NAME\" is simulated\r\n",
                            1,
                        );
                    }
                }
                i += 1;
            }
            _ => {
                return Out::err(
                    format!(
                        "ERROR: Invalid argument/option - '{}'.\r\nType \"TASKLIST /?\" for usage.\r\n",
                        args[i]
                    ),
                    1,
                );
            }
        }
        i += 1;
    }
    let mut rows: Vec<(String, usize)> = vec![("System".to_string(), 4)];
    let running: Vec<(usize, Arc<str>)> = host
        .lock()
        .log
        .iter()
        .enumerate()
        .filter(|(_, c)| c.exit_code.is_none() && !c.killed)
        .map(|(n, c)| (n, c.command_line.clone()))
        .collect();
    for (n, line) in running {
        rows.push((image_name(host, &line), 1000 + 4 * n));
    }
    rows.retain(|(name, _)| image.as_ref().is_none_or(|i| name.eq_ignore_ascii_case(i)));
    if rows.is_empty() {
        return Out::ok("INFO: No tasks are running which match the specified criteria.\r\n");
    }
    let mut s = String::new();
    if csv {
        if header {
            s.push_str("\"Image Name\",\"PID\",\"Session Name\",\"Session#\",\"Mem Usage\"\r\n");
        }
        for (name, pid) in rows {
            s.push_str(&format!(
                "\"{name}\",\"{pid}\",\"Services\",\"0\",\"4,096 K\"\r\n"
            ));
        }
    } else {
        if header {
            s.push_str("\r\nImage Name                     PID Session Name        Session#    Mem Usage\r\n");
            s.push_str(
                "========================= ======== ================ =========== ============\r\n",
            );
        }
        for (name, pid) in rows {
            s.push_str(&format!(
                "{name:<25} {pid:>8} Services                   0      4,096 K\r\n"
            ));
        }
    }
    Out::ok(s)
}

fn wmic(host: &WinHost, args: &[String]) -> Out {
    let q: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
    let q: Vec<&str> = q.iter().map(String::as_str).collect();
    let table = |header: &str, rows: Vec<String>| {
        let width = rows
            .iter()
            .map(String::len)
            .chain([header.len()])
            .max()
            .unwrap_or(0)
            + 2;
        let mut s = format!("{header:<width$}\r\r\n");
        for r in rows {
            s.push_str(&format!("{r:<width$}\r\r\n"));
        }
        s.push_str("\r\r\n");
        Out::ok(s)
    };
    match q.as_slice() {
        ["os", "get", "lastbootuptime", "/value"] => Out::ok(format!(
            "\r\r\n\r\r\nLastBootUpTime={}\r\r\n\r\r\n\r\r\n\r\r\n",
            clock::cim_datetime(host.boot_time())
        )),
        ["os", "get", "lastbootuptime"] => table(
            "LastBootUpTime",
            vec![clock::cim_datetime(host.boot_time())],
        ),
        ["qfe", "get", "hotfixid"] => table("HotFixID", host.installed_kbs()),
        _ => Out::err(
            "winsim: this wmic query is not simulated (see integration/winsim/COMMANDS.md)\r\n",
            1,
        ),
    }
}

/// `net statistics server|workstation`: where NT-era hosts without WMI tools show their boot time.
fn net(host: &WinHost, args: &[String]) -> Out {
    let q: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
    let kind = match q.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["statistics", "server" | "srv"] => "Server",
        ["statistics", "workstation" | "work"] => "Workstation",
        _ => {
            return Out::err(
                "winsim: this net command is not simulated (see integration/winsim/COMMANDS.md)\r\n",
                1,
            );
        }
    };
    Out::ok(format!(
        "{kind} Statistics for \\\\{}\r\n\r\n\r\nStatistics since {}\r\n\r\n\r\nThe command completed successfully.\r\n\r\n",
        host.name,
        clock::us_short(host.boot_time())
    ))
}

/// `shutdown /r /t N` (1190 when one is already scheduled), `/a`, `/s`.
fn shutdown(host: &WinHost, args: &[String]) -> Out {
    let mut restart = false;
    let mut off = false;
    let mut abort = false;
    let mut delay = 30u64;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_ascii_lowercase().replace('-', "/");
        match a.as_str() {
            "/r" | "/g" => restart = true,
            "/s" | "/p" => off = true,
            "/a" => abort = true,
            "/f" => {}
            "/t" => {
                let Some(n) = args
                    .get(i + 1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .filter(|n| *n <= 315_360_000)
                else {
                    return Out::err("The parameter is incorrect.(87)\r\n", 87);
                };
                delay = n;
                i += 1;
            }
            "/c" | "/d" => i += 1,
            _ => {
                return Out::err(
                    format!("{}: The parameter is incorrect.(87)\r\n", args[i]),
                    87,
                );
            }
        }
        i += 1;
    }
    let mut st = host.settled();
    if abort {
        return if host.abort_reboot(&mut st) {
            Out::ok("")
        } else {
            Out::err(
                "Unable to abort the system shutdown because no shutdown was in progress.(1116)\r\n",
                1116,
            )
        };
    }
    if off {
        host.power_off(&mut st);
        return Out::ok("");
    }
    if !restart {
        return Out::err(
            "winsim: shutdown without /r, /s or /a is not simulated\r\n",
            87,
        );
    }
    match host.schedule_reboot(&mut st, Duration::from_secs(delay)) {
        Ok(()) => Out::ok(""),
        Err(1190) => Out::err(
            "A system shutdown has already been scheduled.(1190)\r\n",
            1190,
        ),
        Err(code) => Out::err(
            format!("A system shutdown is in progress.({code})\r\n"),
            code,
        ),
    }
}

/// Hash of a file's bytes in uppercase hex, for `Get-FileHash` and `certutil`.
pub(crate) fn file_hash(bytes: &[u8], algorithm: &str) -> Option<String> {
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02X}")).collect::<String>();
    match algorithm.to_ascii_uppercase().as_str() {
        "SHA256" => Some(hex(&sha2::Sha256::digest(bytes))),
        "SHA384" => Some(hex(&sha2::Sha384::digest(bytes))),
        "SHA512" => Some(hex(&sha2::Sha512::digest(bytes))),
        "SHA1" => Some(hex(&sha1::Sha1::digest(bytes))),
        "MD5" => Some(hex(&md5::Md5::digest(bytes))),
        _ => None,
    }
}

/// `certutil -hashfile PATH [ALG]` (SHA1 by default, lowercase hex; spaced pairs before Windows 10).
fn certutil(host: &WinHost, args: &[String]) -> Out {
    let verb = args
        .first()
        .map(|a| a.to_ascii_lowercase().replace('/', "-"));
    if verb.as_deref() == Some("-hashfile") && !host.at_least(5, 2) {
        // Windows 2000's certutil predates -hashfile.
        return Out::err("CertUtil: Unknown arg: -hashfile\r\n", 0x8007_0057);
    }
    if verb.as_deref() != Some("-hashfile") {
        return Out::err("winsim: only certutil -hashfile is simulated\r\n", 1);
    }
    let Some(path) = args.get(1) else {
        return Out::err(
            "CertUtil: -hashfile command FAILED: 0x80070057 (WIN32: 87 ERROR_INVALID_PARAMETER)\r\n",
            0x8007_0057,
        );
    };
    let alg = args
        .get(2)
        .map(|a| a.to_ascii_uppercase())
        .unwrap_or_else(|| "SHA1".into());
    let bytes = match std::fs::read(host.host_path(path)) {
        Ok(b) if !WinHost::foreign_drive(path) => b,
        _ => {
            return Out {
                stdout: "CertUtil: -hashfile command FAILED: 0x80070002 (WIN32: 2 ERROR_FILE_NOT_FOUND)\r\nCertUtil: The system cannot find the file specified.\r\n".into(),
                stderr: String::new(),
                code: 0x8007_0002,
            };
        }
    };
    let Some(hash) = file_hash(&bytes, &alg) else {
        return Out {
            stdout: "CertUtil: -hashfile command FAILED: 0x80090008 (-2146893816 NTE_BAD_ALGID)\r\nCertUtil: Invalid algorithm specified.\r\n".into(),
            stderr: String::new(),
            code: 0x8009_0008,
        };
    };
    let lower = hash.to_ascii_lowercase();
    let shown = if host.major >= 10 {
        lower
    } else {
        lower
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    Out::ok(format!(
        "{alg} hash of {path}:\r\n{shown}\r\nCertUtil: -hashfile command completed successfully.\r\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_follow_quotes() {
        let t: Vec<String> =
            tokenize(r#"reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion" /v UBR"#)
                .into_iter()
                .map(|t| t.text)
                .collect();
        assert_eq!(
            t,
            vec![
                "reg",
                "query",
                r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion",
                "/v",
                "UBR"
            ]
        );
    }

    #[test]
    fn tokens_keep_empty_quotes_glued_text_and_their_ends() {
        let t = |line: &str| -> Vec<(String, usize)> {
            tokenize(line)
                .into_iter()
                .map(|t| (t.text, t.end))
                .collect()
        };
        let o = |s: &str, e: usize| (s.to_string(), e);
        assert_eq!(
            t(r#"a "b c"d  e"#),
            vec![o("a", 1), o("b cd", 8), o("e", 11)]
        );
        assert_eq!(t(r#""""#), vec![o("", 2)]);
        assert_eq!(t(r#"x"" y"#), vec![o("x", 3), o("y", 5)]);
        assert_eq!(
            t("  \u{e9}t\u{e9}\u{3000}z "),
            vec![o("\u{e9}t\u{e9}", 7), o("z", 11)]
        );
        assert_eq!(t("\"open quote stays"), vec![o("open quote stays", 17)]);
        assert!(t(" \t ").is_empty());
    }

    #[test]
    fn cmd_c_strips_outer_quotes_as_cmd_exe_does() {
        let none = |_: &str| false;
        assert_eq!(cmd_c_line(r#""tasklist""#, none), "tasklist");
        assert_eq!(cmd_c_line(r#""""#, none), "");
        assert_eq!(cmd_c_line(r#""a b" "c d""#, none), r#"a b" "c d"#);
        assert_eq!(cmd_c_line(r#""echo x" & ver"#, none), "echo x & ver");
        assert_eq!(cmd_c_line(r#"echo "x""#, none), r#"echo "x""#);
        let program = |p: &str| p == r"C:\Program Files\App\app.exe";
        let kept = r#""C:\Program Files\App\app.exe""#;
        assert_eq!(
            cmd_c_line(kept, program),
            kept,
            "an existing program keeps its quotes"
        );
        assert_eq!(cmd_c_line(kept, none), r"C:\Program Files\App\app.exe");
    }

    #[test]
    fn operators_split_outside_quotes() {
        let p = split_operators(r#"echo "a&b" && hostname || ver & x"#);
        let ops: Vec<&str> = p.iter().map(|(o, _)| *o).collect();
        assert_eq!(ops, vec!["", "&&", "||", "&"]);
        assert_eq!(p[0].1.trim(), r#"echo "a&b""#);
    }
}
