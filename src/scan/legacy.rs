//! Scanning hosts without PowerShell (Windows 2000, NT 4): `reg query` for the registry, `net
//! statistics` for the boot time, and file versions pulled over SMB and parsed locally.
//!
//! hfnetchk scanned exactly these hosts. The registry part is still one round trip: the queries are
//! chained with `&` on one cmd.exe line (split only when the line would pass cmd.exe's 8191-char
//! limit), and whole subtrees (`...\CurrentVersion /s`, `...\Updates /s`) are read at once so a
//! catalog that asks about 181 hotfix keys costs a handful of queries, not 181.
//!
//! The answer is assembled into the same [`ProbeFacts`] a PowerShell probe returns, so everything
//! after this point (facts, evaluation, reports) does not care how the host was read.

use std::collections::BTreeMap;

use hive_probe::{FileFact, PendingReboot, ProbeFacts, ProbeRequest, RegistryFact};

use super::pe::{HEADER_BYTES, resource_span, version_from_parts};
use crate::remote::{RemoteError, Target};

/// cmd.exe refuses longer lines.
const CMD_LINE_LIMIT: usize = 8191;

pub const CURRENT_VERSION: &str = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion";
const UPDATES: &str = r"HKLM\SOFTWARE\Microsoft\Updates";
const SESSION_MANAGER: &str = r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager";
pub const PRODUCT_OPTIONS: &str = r"HKLM\SYSTEM\CurrentControlSet\Control\ProductOptions";

/// Subtrees read whole with `/s`: where hotfix and update keys live.
const SUBTREES: [&str; 2] = [CURRENT_VERSION, UPDATES];

/// Registry content as `reg query` printed it: key (lowercase, `HKLM\...`) → value name
/// (lowercase) → (type, data). A key present with no values maps to an empty map.
pub type RegDump = BTreeMap<String, BTreeMap<String, (String, String)>>;

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

/// A key is safe on a cmd.exe line inside double quotes when it has none of the characters cmd
/// would still interpret there.
fn safe_key(key: &str) -> bool {
    !key.contains(['"', '%', '\r', '\n', '^', '&', '|', '<', '>'])
}

fn under(key: &str, root: &str) -> bool {
    let k = key.to_ascii_lowercase();
    let r = root.to_ascii_lowercase();
    k == r || k.starts_with(&format!("{r}\\"))
}

/// The cmd.exe lines that read everything `request` asks for, plus the OS facts.
pub fn commands(request: &ProbeRequest) -> Vec<String> {
    let mut parts: Vec<String> = SUBTREES
        .iter()
        .map(|k| format!("reg query {} /s", quote(k)))
        .collect();
    parts.push(format!("reg query {}", quote(SESSION_MANAGER)));
    parts.push(format!("reg query {}", quote(PRODUCT_OPTIONS)));
    let mut singles: Vec<&str> = request
        .registry
        .iter()
        .map(|q| q.key.as_str())
        .filter(|k| safe_key(k) && !SUBTREES.iter().any(|root| under(k, root)))
        .collect();
    singles.sort_by_key(|k| k.to_ascii_lowercase());
    singles.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    parts.extend(
        singles
            .into_iter()
            .map(|k| format!("reg query {}", quote(k))),
    );
    parts.push("net statistics server".into());

    let mut lines = Vec::new();
    let mut line = String::new();
    for p in parts {
        if !line.is_empty() && line.len() + 3 + p.len() > CMD_LINE_LIMIT {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push_str(" & ");
        }
        line.push_str(&p);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `HKEY_LOCAL_MACHINE\X` → `hklm\x`, the form keys are compared in.
fn short_key(key: &str) -> String {
    let k = key.trim();
    let lower = k.to_ascii_lowercase();
    for (long, short) in [
        ("hkey_local_machine", "hklm"),
        ("hkey_current_user", "hkcu"),
        ("hkey_classes_root", "hkcr"),
        ("hkey_users", "hku"),
    ] {
        if let Some(rest) = lower.strip_prefix(long) {
            return format!("{short}{rest}");
        }
    }
    lower
}

/// Parse `reg query` output (any number of them, concatenated).
pub fn parse_reg_output(text: &str, dump: &mut RegDump) {
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if line.starts_with("HKEY_") {
            let key = short_key(line);
            dump.entry(key.clone()).or_default();
            current = Some(key);
        } else if let Some(rest) = line.strip_prefix("    ") {
            let Some(key) = &current else { continue };
            let mut fields = rest.splitn(3, "    ");
            let name = fields.next().unwrap_or("").trim();
            let kind = fields.next().unwrap_or("").trim();
            let data = fields.next().unwrap_or("").to_string();
            if !kind.starts_with("REG_") {
                continue;
            }
            let name = if name == "(Default)" { "" } else { name };
            dump.entry(key.clone())
                .or_default()
                .insert(name.to_ascii_lowercase(), (kind.to_string(), data));
        } else if line.trim().is_empty() {
            // A blank line ends a key's values; the next key line names the next key.
        } else {
            current = None;
        }
    }
}

fn value<'a>(dump: &'a RegDump, key: &str, name: &str) -> Option<&'a (String, String)> {
    dump.get(&short_key(key))?.get(&name.to_ascii_lowercase())
}

fn text<'a>(dump: &'a RegDump, key: &str, name: &str) -> &'a str {
    value(dump, key, name)
        .map(|(_, d)| d.as_str())
        .unwrap_or("")
}

/// A reg.exe datum as the JSON a PowerShell probe would have given.
fn json_of(kind: &str, data: &str) -> serde_json::Value {
    match kind {
        "REG_DWORD" | "REG_QWORD" => u64::from_str_radix(data.trim().trim_start_matches("0x"), 16)
            .map(serde_json::Value::from)
            .unwrap_or_else(|_| serde_json::Value::from(data)),
        "REG_MULTI_SZ" => serde_json::Value::from(
            data.split("\\0")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>(),
        ),
        _ => serde_json::Value::from(data),
    }
}

/// `Statistics since 11/25/2026 1:27 PM` → `2026-11-25T13:27:00.000Z` (the host's local time;
/// only compared for change).
pub fn boot_time_from_net_statistics(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.contains("Statistics since"))?;
    let rest = line.split("Statistics since").nth(1)?.trim();
    let mut words = rest.split_whitespace();
    let date = words.next()?;
    let time = words.next()?;
    let ampm = words.next().unwrap_or("");
    let mut d = date.split('/');
    let (m, day, y): (u32, u32, u32) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let mut t = time.split(':');
    let (mut h, min): (u32, u32) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec: u32 = t.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    match ampm.to_ascii_uppercase().as_str() {
        "PM" if h < 12 => h += 12,
        "AM" if h == 12 => h = 0,
        _ => {}
    }
    Some(format!(
        "{y:04}-{m:02}-{day:02}T{h:02}:{min:02}:{sec:02}.000Z"
    ))
}

/// Put the registry dump and the boot time into the probe's answer form.
pub fn probe_facts_from(
    dump: &RegDump,
    net_statistics: &str,
    request: &ProbeRequest,
    files: Vec<FileFact>,
) -> ProbeFacts {
    let cv = CURRENT_VERSION;
    let (major, minor) = {
        let v = text(dump, cv, "CurrentVersion");
        let mut it = v.split('.');
        (
            it.next().and_then(|x| x.trim().parse().ok()).unwrap_or(0),
            it.next().and_then(|x| x.trim().parse().ok()).unwrap_or(0),
        )
    };
    let build = text(dump, cv, "CurrentBuildNumber")
        .trim()
        .parse()
        .or_else(|_| text(dump, cv, "CurrentBuild").trim().parse())
        .unwrap_or(0);
    let hotfix_prefix = format!("{}\\hotfix\\", short_key(cv));
    let mut installed_kbs: Vec<String> = dump
        .keys()
        .filter_map(|k| k.strip_prefix(&hotfix_prefix))
        .filter(|rest| !rest.contains('\\'))
        .map(|q| q.to_ascii_uppercase())
        .collect();
    installed_kbs.sort();
    installed_kbs.dedup();
    let registry = request
        .registry
        .iter()
        .map(|q| {
            let key = dump.get(&short_key(&q.key));
            let found_value = key.and_then(|vals| vals.get(&q.value.to_ascii_lowercase()));
            let found = if q.value.is_empty() {
                key.is_some()
            } else {
                found_value.is_some()
            };
            RegistryFact {
                key: q.key.clone(),
                value: q.value.clone(),
                found,
                kind: found_value.map(|(k, _)| k.clone()),
                data: found_value.map(|(k, d)| json_of(k, d)),
                error: None,
            }
        })
        .collect();
    ProbeFacts {
        schema: hive_probe::PROBE_SCHEMA,
        computer_name: String::new(),
        product_name: text(dump, cv, "ProductName").to_string(),
        edition_id: text(dump, cv, "EditionID").to_string(),
        installation_type: text(dump, cv, "InstallationType").to_string(),
        csd_version: text(dump, cv, "CSDVersion").to_string(),
        major,
        minor,
        build,
        ubr: 0,
        installed_kbs,
        pending_reboot: PendingReboot {
            pending_file_renames: [
                "PendingFileRenameOperations",
                "PendingFileRenameOperations2",
            ]
            .iter()
            .any(|name| lists_something(value(dump, SESSION_MANAGER, name))),
            update_exe_volatile: value(dump, UPDATES, "UpdateExeVolatile")
                .is_some_and(|(_, d)| d.trim() != "0x0" && d.trim() != "0"),
            ..Default::default()
        },
        last_boot_time: boot_time_from_net_statistics(net_statistics).unwrap_or_default(),
        free_disk_bytes: 0,
        utc_now: String::new(),
        registry,
        files,
        // `reg query` and `net statistics` tell neither; pre-flight must not read 0 as "full".
        unknown: [
            (
                "free_disk_bytes",
                "the legacy route (reg query) does not read free disk",
            ),
            (
                "utc_now",
                "the legacy route (reg query) does not read the clock",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    }
}

/// A rename list holds an entry: reg.exe prints a REG_MULTI_SZ as its strings joined by `\0`,
/// and an empty list as nothing.
fn lists_something(v: Option<&(String, String)>) -> bool {
    v.is_some_and(|(_, data)| data.split("\\0").any(|s| !s.trim().is_empty()))
}

/// `%windir%\system32\x.dll` → `C:\WINNT\system32\x.dll`, using the host's own SystemRoot and
/// Windows' default folders for the other variables catalogs use. `None` when a variable is left
/// that hive cannot know without asking the host: that file then stays "not gathered" (NOTE).
pub fn expand_path(path: &str, system_root: &str) -> Option<String> {
    let mut out = path.to_string();
    for (var, value) in [
        ("%windir%", system_root),
        ("%systemroot%", system_root),
        ("%systemdrive%", "C:"),
        ("%commonprogramfiles%", r"C:\Program Files\Common Files"),
        ("%programfiles%", r"C:\Program Files"),
    ] {
        while let Some(i) = out.to_ascii_lowercase().find(var) {
            out.replace_range(i..i + var.len(), value);
        }
    }
    (!out.contains('%')).then_some(out)
}

/// Read one file's version over SMB: two ranged reads, parsed locally.
pub async fn file_fact_over_smb(
    target: &mut dyn Target,
    catalog_path: &str,
    full: &str,
) -> Result<FileFact, RemoteError> {
    let missing = FileFact {
        path: catalog_path.to_string(),
        exists: false,
        size: None,
        file_version: None,
        product_version: None,
        error: None,
    };
    let head = match target.read_file_range(full, 0, HEADER_BYTES).await {
        Ok(h) => h,
        Err(RemoteError::NotFound(_)) => return Ok(missing),
        Err(e) => return Err(e),
    };
    let version = match resource_span(&head) {
        Ok(span) => {
            let rsrc = target.read_file_range(full, span.offset, span.len).await?;
            version_from_parts(&head, &span, &rsrc).ok()
        }
        Err(_) => None,
    };
    Ok(FileFact {
        path: catalog_path.to_string(),
        exists: true,
        size: None,
        file_version: version.map(|v| v.to_string()),
        product_version: None,
        error: None,
    })
}

/// Read every requested file over SMB.
pub async fn files_over_smb(
    target: &mut dyn Target,
    request: &ProbeRequest,
    system_root: &str,
) -> Result<Vec<FileFact>, RemoteError> {
    let mut out = Vec::with_capacity(request.files.len());
    for path in &request.files {
        let Some(full) = expand_path(path, system_root) else {
            continue;
        };
        if !(full.starts_with("C:\\") || full.starts_with("c:\\")) {
            continue;
        }
        out.push(file_fact_over_smb(target, path, &full).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_probe::RegistryQuery;

    const REG: &str = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\r\n    ProductName    REG_SZ    Microsoft Windows 2000\r\n    CSDVersion    REG_SZ    Service Pack 1\r\n    CurrentVersion    REG_SZ    5.0\r\n    CurrentBuildNumber    REG_SZ    2195\r\n    SystemRoot    REG_SZ    C:\\WINNT\r\n\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Hotfix\r\n\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Hotfix\\Q299956\r\n    Installed    REG_DWORD    0x1\r\n\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Hotfix\\Q300972\r\n    Installed    REG_DWORD    0x1\r\n    Comments    REG_SZ    has    four spaces\r\n\r\n";

    #[test]
    fn reg_query_output_parses_into_keys_and_values() {
        let mut dump = RegDump::new();
        parse_reg_output(REG, &mut dump);
        assert_eq!(
            text(&dump, CURRENT_VERSION, "productname"),
            "Microsoft Windows 2000"
        );
        assert_eq!(
            value(
                &dump,
                r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300972",
                "Comments"
            ),
            Some(&("REG_SZ".to_string(), "has    four spaces".to_string()))
        );
        assert!(dump.contains_key(r"hklm\software\microsoft\windows nt\currentversion\hotfix"));
    }

    #[test]
    fn facts_from_a_windows_2000_registry() {
        let mut dump = RegDump::new();
        parse_reg_output(REG, &mut dump);
        let request = ProbeRequest {
            registry: vec![
                RegistryQuery {
                    key: r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300972".into(),
                    value: "Installed".into(),
                },
                RegistryQuery {
                    key: r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q999999".into(),
                    value: "Installed".into(),
                },
                RegistryQuery {
                    key: r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix".into(),
                    value: String::new(),
                },
            ],
            files: vec![],
        };
        let net =
            "Server Statistics for \\\\W2K-001\r\n\r\n\r\nStatistics since 11/25/2026 1:27 PM\r\n";
        let f = probe_facts_from(&dump, net, &request, vec![]);
        assert_eq!((f.major, f.minor, f.build), (5, 0, 2195));
        assert_eq!(f.csd_version, "Service Pack 1");
        assert_eq!(f.installed_kbs, ["Q299956", "Q300972"]);
        assert!(f.registry[0].found);
        assert_eq!(f.registry[0].data, Some(serde_json::json!(1)));
        assert!(!f.registry[1].found);
        assert!(
            f.registry[2].found,
            "a key-only query finds an existing key without values"
        );
        assert_eq!(f.last_boot_time, "2026-11-25T13:27:00.000Z");
    }

    #[test]
    fn an_empty_rename_list_is_no_pending_reboot_and_the_second_list_is() {
        let sm = "\r\nHKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Session Manager\r\n";
        let pending = |values: &str| {
            let mut dump = RegDump::new();
            parse_reg_output(&format!("{sm}{values}\r\n"), &mut dump);
            probe_facts_from(&dump, "", &ProbeRequest::default(), vec![])
                .pending_reboot
                .pending_file_renames
        };
        assert!(!pending(
            "    PendingFileRenameOperations    REG_MULTI_SZ    "
        ));
        assert!(!pending(
            "    PendingFileRenameOperations    REG_MULTI_SZ    \\0"
        ));
        assert!(pending(
            "    PendingFileRenameOperations    REG_MULTI_SZ    \\??\\C:\\x.tmp\\0"
        ));
        assert!(pending(
            "    PendingFileRenameOperations2    REG_MULTI_SZ    \\??\\C:\\x.tmp\\0"
        ));
    }

    #[test]
    fn commands_cover_subtrees_once_and_respect_the_line_limit() {
        let mut request = ProbeRequest::default();
        for i in 0..400 {
            request.registry.push(RegistryQuery {
                key: format!(r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q{i}"),
                value: "Installed".into(),
            });
            request.registry.push(RegistryQuery {
                key: format!(r"HKLM\SOFTWARE\Vendor\Product{i}\Some\Long\Path\Segment"),
                value: "Version".into(),
            });
        }
        request.registry.push(RegistryQuery {
            key: r#"HKLM\SOFTWARE\bad" & del x"#.into(),
            value: String::new(),
        });
        let lines = commands(&request);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.len() <= CMD_LINE_LIMIT));
        let all = lines.join(" & ");
        assert_eq!(
            all.matches("CurrentVersion\\Hotfix").count(),
            0,
            "hotfix keys come from /s"
        );
        assert_eq!(all.matches("Vendor\\Product").count(), 400);
        assert!(
            !all.contains("del x"),
            "a key cmd.exe would interpret is never sent"
        );
        assert!(all.ends_with("net statistics server"));
    }

    #[test]
    fn paths_expand_with_the_hosts_system_root() {
        assert_eq!(
            expand_path(r"%windir%\system32\idq.dll", r"C:\WINNT").as_deref(),
            Some(r"C:\WINNT\system32\idq.dll")
        );
        assert_eq!(
            expand_path(r"%CommonProgramFiles%\x.dll", r"C:\Windows").as_deref(),
            Some(r"C:\Program Files\Common Files\x.dll")
        );
        assert_eq!(expand_path(r"%UnknownVar%\x", r"C:\Windows"), None);
    }

    #[test]
    fn net_statistics_times() {
        assert_eq!(
            boot_time_from_net_statistics("Statistics since 1/2/2001 12:05 AM").as_deref(),
            Some("2001-01-02T00:05:00.000Z")
        );
        assert_eq!(boot_time_from_net_statistics("nothing"), None);
    }
}
