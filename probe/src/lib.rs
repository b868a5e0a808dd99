//! The probe: one PowerShell script that gathers every fact a scan needs in one round trip.
//!
//! hive's scanner sends [`script`] (via `powershell.exe -NoProfile -NonInteractive
//! -EncodedCommand ...` or with the script on stdin to `powershell.exe -`) and reads its answer
//! with [`parse_output`]. The same text runs on a real Windows host and on winsim, which
//! recognises it by its first line ([`PROBE_MARKER`]), reads the embedded request, and answers from
//! its host model as the script would. Keeping the script, the request, the answer and its parser
//! in one module that both hive and the simulator import is what keeps the two from drifting apart.
//!
//! What the script must survive on real hosts, and how (each is a test below or in hive's scan
//! tests, and a case winsim models):
//! - Windows PowerShell 2.0 has no `ConvertFrom-Json`: the script checks `$PSVersionTable` first
//!   and prints [`LEGACY_SIGNAL`] instead of failing, so hive takes the `reg query` route.
//! - One failing fact must not cost the others: every fact and every requested item is gathered
//!   in its own `try/catch`; a failure is reported as unknown with its error text
//!   ([`ProbeFacts::unknown`], [`RegistryFact::error`], [`FileFact::error`]), never as "absent".
//! - Over SSH the script travels on stdin, decoded with the console's OEM code page, and its
//!   answer is encoded with it: the script and the request are pure ASCII (`\uXXXX` escapes in the
//!   request JSON) and the answer escapes every non-ASCII character the same way.
//! - The registry is read through `[Microsoft.Win32.RegistryKey]` base keys (64-bit view), not the
//!   PowerShell provider, which splits names at `/` (`RC4 128/128`) and maps only HKLM and HKCU.
//! - The body runs inside `& { ... }`: in `powershell.exe -` mode a parse error outside a block
//!   lets the process exit 0 with no answer.
//!
//! There is no PowerShell on the build machines: the script's syntax is checked with the
//! tree-sitter PowerShell grammar (`tests/powershell_syntax.rs`) and its semantics by review
//! against Windows PowerShell 2.0–5.1; the simulator half is tested.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod answer;

pub use answer::{ProbeOutput, ProbeOutputError, parse_output};

/// The first line of every probe script; the protocol version is part of it.
pub const PROBE_MARKER: &str = "# hive-probe v2";

/// The JSON document's `schema` field: bumped whenever [`ProbeFacts`] changes incompatibly.
pub const PROBE_SCHEMA: u32 = 2;

/// What the script prints, alone on a line, on a host whose PowerShell is older than 3.0 (no
/// `ConvertFrom-Json`): the host must be scanned the legacy way (`reg query`, files over SMB).
/// The PowerShell version follows on the same line.
pub const LEGACY_SIGNAL: &str = "hive-probe: legacy route, PowerShell";

/// What a scan wants to know beyond the fixed facts: the registry values and file versions the
/// catalog's detection rules mention.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRequest {
    #[serde(default)]
    pub registry: Vec<RegistryQuery>,
    /// Full Windows paths (`C:\Windows\system32\foo.dll`); environment variables (`%SystemRoot%`,
    /// `%ProgramFiles%`) expand on the host. A path whose variable does not expand is unknown.
    #[serde(default)]
    pub files: Vec<String>,
}

/// One registry value to read. `key` starts with HKLM, HKCU, HKU or HKCR (or their long names).
///
/// An empty `value` asks about the key itself: `found` is true when the KEY exists (hotfix keys
/// such as `...\Updates\Windows 2000\SP2\Q300972` often hold no values at all), and `kind`/`data`
/// carry the default value when one is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryQuery {
    pub key: String,
    pub value: String,
}

/// The probe's answer: one JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeFacts {
    pub schema: u32,
    pub computer_name: String,
    /// `CurrentVersion\ProductName`, e.g. `Windows Server 2019 Datacenter`. Windows 11 still
    /// says "Windows 10 ..." here: the build tells them apart.
    pub product_name: String,
    /// `CurrentVersion\EditionID`, e.g. `ServerDatacenter` (empty on systems that lack it).
    pub edition_id: String,
    /// `CurrentVersion\InstallationType`: `Client`, `Server`, `Server Core` or `Nano Server`
    /// (empty before Windows 7 / Server 2008 R2). Server Core shares its EditionID with the full
    /// installation, so this is the only way to tell them apart.
    #[serde(default)]
    pub installation_type: String,
    /// `CurrentVersion\CSDVersion`, e.g. `Service Pack 1` (empty when there is no service pack).
    pub csd_version: String,
    pub major: u32,
    pub minor: u32,
    pub build: u32,
    /// Update Build Revision; 0 where the value does not exist (before Windows 10).
    pub ubr: u32,
    /// Hotfix IDs as `Win32_QuickFixEngineering` lists them (`KB5035845`, `Q300972`), sorted, no
    /// duplicates. Windows (CBS) updates only: Office or SQL Server updates are never listed.
    pub installed_kbs: Vec<String>,
    pub pending_reboot: PendingReboot,
    /// Last boot time in UTC, `yyyy-MM-ddTHH:mm:ss.fffZ` (invariant culture). Compare for a
    /// *change* of more than a minute to detect a reboot (see `boot_time_moved`).
    pub last_boot_time: String,
    /// Free bytes on the system drive (`$env:SystemDrive`).
    pub free_disk_bytes: u64,
    /// The host's clock as the probe ran, UTC `yyyy-MM-ddTHH:mm:ss.fffZ` (invariant culture):
    /// pre-flight compares it with the orchestrator's (a skewed clock breaks Kerberos and
    /// signed-timestamp checks of installers). Empty when unknown: answers from before this
    /// field, and the legacy route. An additive field with a default, so schema 2 stands.
    #[serde(default)]
    pub utc_now: String,
    pub registry: Vec<RegistryFact>,
    pub files: Vec<FileFact>,
    /// Facts the host could not give, by field name (`installed_kbs`, `last_boot_time`,
    /// `free_disk_bytes`, `utc_now`, `pending_reboot`, or a `CurrentVersion` value name such as
    /// `CurrentBuild`), with the error text. Their fields above hold empty placeholders.
    #[serde(default)]
    pub unknown: BTreeMap<String, String>,
}

/// The places Windows records that a reboot is pending.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingReboot {
    /// `HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending`.
    pub cbs_reboot_pending: bool,
    /// `HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired`.
    pub windows_update_reboot_required: bool,
    /// `HKLM\SYSTEM\CurrentControlSet\Control\Session Manager` `PendingFileRenameOperations` or
    /// `PendingFileRenameOperations2` holding at least one non-empty entry (an empty value is
    /// left behind by some installers and means nothing).
    pub pending_file_renames: bool,
    /// `HKLM\SOFTWARE\Microsoft\Updates` `UpdateExeVolatile` present and non-zero.
    pub update_exe_volatile: bool,
}

impl PendingReboot {
    pub fn any(&self) -> bool {
        self.cbs_reboot_pending
            || self.windows_update_reboot_required
            || self.pending_file_renames
            || self.update_exe_volatile
    }
}

/// One requested registry value: `kind` and `data` are absent when `found` is false. `error` is
/// set when the host could not tell (access denied, a bad path): the value is then unknown, not
/// absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryFact {
    pub key: String,
    pub value: String,
    pub found: bool,
    /// `REG_SZ`, `REG_EXPAND_SZ`, `REG_MULTI_SZ`, `REG_DWORD`, `REG_QWORD` or `REG_BINARY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A string (SZ, EXPAND_SZ unexpanded), a number (DWORD, QWORD), an array of strings
    /// (MULTI_SZ), or uppercase hex (BINARY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One requested file: versions are absent when it does not exist or has no version resource.
/// `error` is set when the host could not tell (an environment variable that does not expand,
/// access denied): the file is then unknown, not absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFact {
    pub path: String,
    pub exists: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The binary `VS_FIXEDFILEINFO` file version, `a.b.c.d` — the one to compare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// JSON text with every non-ASCII character written as `\uXXXX` (UTF-16 surrogate pairs above
/// the BMP). Compact JSON has non-ASCII characters only inside strings, where the escape means
/// the same character, so the text stays equal as JSON and survives any ASCII-compatible code page.
pub fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// Builds the probe script for `request`. The request travels as ASCII JSON inside a
/// single-quoted here-string, so no PowerShell quoting of paths is needed (a line starting with
/// `'@` cannot occur in compact JSON) and no code page can change it.
pub fn script(request: &ProbeRequest) -> String {
    let json = serde_json::to_string(request).unwrap_or_else(|_| "{}".to_string());
    let json = ascii_json(&json);
    format!("{PROBE_MARKER}\n& {{\n$hiveRequest = @'\n{json}\n'@\n{PROBE_BODY}}}\n")
}

/// Encodes a script for `powershell.exe -EncodedCommand`: base64 of its UTF-16LE text (what
/// pywinrm's `run_ps` sends too). Long scripts can exceed cmd.exe's 8191-character line limit;
/// send those on stdin to `powershell.exe -` instead.
pub fn encode_command(script: &str) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The `powershell.exe` arguments that run the probe for `request` with `-EncodedCommand`.
/// The encoded probe is longer than cmd.exe's 8191-character limit, so send it with
/// `WINRS_SKIP_CMD_SHELL` (CreateProcess allows 32767), or send [`script`] on stdin to
/// `powershell.exe -NoProfile -NonInteractive -` instead.
pub fn encoded_arguments(request: &ProbeRequest) -> Vec<String> {
    vec![
        "-NoProfile".into(),
        "-NonInteractive".into(),
        "-EncodedCommand".into(),
        encode_command(&script(request)),
    ]
}

/// Extracts the request from a probe script; `None` if `text` is not a probe of this version.
pub fn parse_script(text: &str) -> Option<ProbeRequest> {
    let text = text.trim_start_matches('\u{feff}');
    let mut lines = text.lines();
    if lines.next()?.trim_end() != PROBE_MARKER {
        return None;
    }
    if lines.next()?.trim_end() != "& {" {
        return None;
    }
    if lines.next()?.trim_end() != "$hiveRequest = @'" {
        return None;
    }
    let mut json = String::new();
    for line in lines {
        if line.trim_end() == "'@" {
            return serde_json::from_str(&json).ok();
        }
        json.push_str(line);
        json.push('\n');
    }
    None
}

/// The part of the script that runs on a real host, inside `& { ... }` after the request.
///
/// Written for Windows PowerShell 2.0 *syntax* (it must parse there to reach the version check)
/// and 3.0–5.1 semantics after it. One-line `switch` statements separate their clauses with `;`
/// (the tree-sitter grammar the syntax gate uses requires it; PowerShell accepts it).
const PROBE_BODY: &str = r#"$ErrorActionPreference = 'Stop'
if ($null -eq $PSVersionTable -or $PSVersionTable.PSVersion.Major -lt 3) {
  $psv = '1.0'
  if ($null -ne $PSVersionTable) { $psv = $PSVersionTable.PSVersion.ToString() }
  'hive-probe: legacy route, PowerShell ' + $psv
  return
}
$unknown = @{}
$req = $hiveRequest | ConvertFrom-Json
function Open-HiveKey([string]$key) {
  $cut = $key.IndexOf('\')
  $root = $key
  $sub = ''
  if ($cut -ge 0) { $root = $key.Substring(0, $cut); $sub = $key.Substring($cut + 1).TrimEnd('\') }
  $hive = switch ($root.ToUpperInvariant()) { 'HKLM' {'LocalMachine'}; 'HKEY_LOCAL_MACHINE' {'LocalMachine'}; 'HKCU' {'CurrentUser'}; 'HKEY_CURRENT_USER' {'CurrentUser'}; 'HKU' {'Users'}; 'HKEY_USERS' {'Users'}; 'HKCR' {'ClassesRoot'}; 'HKEY_CLASSES_ROOT' {'ClassesRoot'}; default {''} }
  if ($hive -eq '') { throw ('not a registry path: ' + $key) }
  $base = [Microsoft.Win32.RegistryKey]::OpenBaseKey($hive, [Microsoft.Win32.RegistryView]::Registry64)
  if ($sub -eq '') { return $base }
  return $base.OpenSubKey($sub, $false)
}
function Get-HiveValue([string]$key, [string]$name) {
  $r = @{ key = $key; value = $name; found = $false }
  try {
    $k = Open-HiveKey $key
    if ($null -eq $k) { return $r }
    if (-not ($k.GetValueNames() -contains $name)) { $r.found = ($name -eq ''); return $r }
    $raw = $k.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
    $kind = switch ($k.GetValueKind($name).ToString()) { 'String' {'REG_SZ'}; 'ExpandString' {'REG_EXPAND_SZ'}; 'MultiString' {'REG_MULTI_SZ'}; 'DWord' {'REG_DWORD'}; 'QWord' {'REG_QWORD'}; default {'REG_BINARY'} }
    if ($kind -eq 'REG_BINARY') { $raw = (@($raw) | ForEach-Object { $_.ToString('X2') }) -join '' }
    if ($kind -eq 'REG_DWORD') { $raw = [BitConverter]::ToUInt32([BitConverter]::GetBytes([int32]$raw), 0) }
    if ($kind -eq 'REG_QWORD') { $raw = [BitConverter]::ToUInt64([BitConverter]::GetBytes([int64]$raw), 0) }
    $r.found = $true
    $r.kind = $kind
    $r.data = $raw
  } catch {
    $r.found = $false
    $r.error = $_.Exception.Message
  }
  return $r
}
$cv = 'HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
function Get-HiveCv([string]$name, $fallback) {
  $v = Get-HiveValue $cv $name
  if ($v.found) { return $v.data }
  if ($null -ne $v.error) { $unknown[$name] = $v.error }
  return $fallback
}
function Test-HiveList($data) {
  return (@(@($data) | Where-Object { $null -ne $_ -and ([string]$_) -ne '' }).Count -gt 0)
}
$ver = [Environment]::OSVersion.Version
$major = [uint32](Get-HiveCv 'CurrentMajorVersionNumber' $ver.Major)
$minor = [uint32]$ver.Minor
if ($major -ge 10) { $minor = [uint32](Get-HiveCv 'CurrentMinorVersionNumber' 0) }
$build = [uint32]0
try { $build = [uint32](Get-HiveCv 'CurrentBuild' $ver.Build) } catch { $unknown['CurrentBuild'] = $_.Exception.Message }
$boot = ''
try {
  $os = Get-CimInstance -ClassName Win32_OperatingSystem -Property LastBootUpTime
  $boot = $os.LastBootUpTime.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", [Globalization.CultureInfo]::InvariantCulture)
} catch { $unknown['last_boot_time'] = $_.Exception.Message }
$free = [uint64]0
try { $free = [uint64](New-Object System.IO.DriveInfo($env:SystemDrive)).TotalFreeSpace } catch { $unknown['free_disk_bytes'] = $_.Exception.Message }
$now = ''
try { $now = [DateTime]::UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", [Globalization.CultureInfo]::InvariantCulture) } catch { $unknown['utc_now'] = $_.Exception.Message }
$kbs = @()
try {
  $kbs = @(Get-CimInstance -ClassName Win32_QuickFixEngineering -Property HotFixID | ForEach-Object { $_.HotFixID } | Where-Object { $_ -and $_ -ne 'File 1' } | Sort-Object -Unique)
} catch { $unknown['installed_kbs'] = $_.Exception.Message }
$pending = @{ cbs_reboot_pending = $false; windows_update_reboot_required = $false; pending_file_renames = $false; update_exe_volatile = $false }
try {
  $pending.cbs_reboot_pending = ($null -ne (Open-HiveKey 'HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending'))
  $pending.windows_update_reboot_required = ($null -ne (Open-HiveKey 'HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired'))
  $sm = Open-HiveKey 'HKLM\SYSTEM\CurrentControlSet\Control\Session Manager'
  if ($null -ne $sm) {
    $pending.pending_file_renames = ((Test-HiveList $sm.GetValue('PendingFileRenameOperations')) -or (Test-HiveList $sm.GetValue('PendingFileRenameOperations2')))
  }
  $upd = Open-HiveKey 'HKLM\SOFTWARE\Microsoft\Updates'
  if ($null -ne $upd) {
    $uev = $upd.GetValue('UpdateExeVolatile')
    $pending.update_exe_volatile = ($null -ne $uev -and $uev -ne 0)
  }
} catch { $unknown['pending_reboot'] = $_.Exception.Message }
$files = @(foreach ($p in @($req.files)) {
  $f = @{ path = $p; exists = $false }
  try {
    $full = [Environment]::ExpandEnvironmentVariables($p)
    if ($full -match '%[^%\\]+%') {
      $f.error = 'environment variable ' + $matches[0] + ' is not set on this host'
    } elseif (Test-Path -LiteralPath $full -PathType Leaf) {
      $fi = Get-Item -LiteralPath $full -Force
      $vi = [Diagnostics.FileVersionInfo]::GetVersionInfo($fi.FullName)
      $f.exists = $true
      $f.size = [uint64]$fi.Length
      if ($vi.FileVersion -or $vi.FileMajorPart) {
        $f.file_version = '{0}.{1}.{2}.{3}' -f $vi.FileMajorPart, $vi.FileMinorPart, $vi.FileBuildPart, $vi.FilePrivatePart
        $f.product_version = '{0}.{1}.{2}.{3}' -f $vi.ProductMajorPart, $vi.ProductMinorPart, $vi.ProductBuildPart, $vi.ProductPrivatePart
      }
    }
  } catch {
    $f.exists = $false
    $f.error = $_.Exception.Message
  }
  $f
})
$registry = @(foreach ($q in @($req.registry)) { Get-HiveValue $q.key $q.value })
$facts = @{
  schema = 2
  computer_name = $env:COMPUTERNAME
  product_name = [string](Get-HiveCv 'ProductName' '')
  edition_id = [string](Get-HiveCv 'EditionID' '')
  installation_type = [string](Get-HiveCv 'InstallationType' '')
  csd_version = [string](Get-HiveCv 'CSDVersion' '')
  major = $major
  minor = $minor
  build = $build
  ubr = [uint32](Get-HiveCv 'UBR' 0)
  installed_kbs = @($kbs)
  pending_reboot = $pending
  last_boot_time = $boot
  free_disk_bytes = $free
  utc_now = $now
  registry = @($registry)
  files = @($files)
  unknown = $unknown
}
$json = $facts | ConvertTo-Json -Depth 6 -Compress
$ascii = New-Object System.Text.StringBuilder
foreach ($c in $json.ToCharArray()) {
  if ([int]$c -gt 126) { [void]$ascii.Append('\u').Append(([int]$c).ToString('x4')) } else { [void]$ascii.Append($c) }
}
$ascii.ToString()
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_survives_the_script() {
        let req = ProbeRequest {
            registry: vec![RegistryQuery {
                key: r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Ciphers\RC4 128/128".into(),
                value: "Enabled".into(),
            }],
            files: vec![
                r"C:\Windows\system32\it's.dll".into(),
                r"C:\Programme\Überwachung\größe.dll".into(),
                "C:\\emoji\\\u{1f600}.dll".into(),
            ],
        };
        let text = script(&req);
        assert!(text.starts_with(PROBE_MARKER));
        assert_eq!(parse_script(&text), Some(req));
        assert_eq!(parse_script("Get-Date"), None);
    }

    /// Over SSH the script is decoded with the console's OEM code page: any non-ASCII byte in it
    /// would reach PowerShell as a different character.
    #[test]
    fn the_script_is_ascii_whatever_the_request_holds() {
        let req = ProbeRequest {
            registry: vec![RegistryQuery {
                key: r"HKLM\SOFTWARE\Fabrikam\Überwachung".into(),
                value: "Größe".into(),
            }],
            files: vec!["C:\\emoji\\\u{1f600}.dll".into()],
        };
        let text = script(&req);
        assert!(text.is_ascii(), "non-ASCII in the script");
        assert!(text.contains(r"\u00dcberwachung") && text.contains(r"\ud83d\ude00"));
        assert_eq!(ascii_json("\"é\""), "\"\\u00e9\"");
    }

    #[test]
    fn output_is_found_after_noise_and_a_byte_order_mark() {
        let json = r#"{"schema":2,"computer_name":"A","product_name":"Windows Server 2019 Datacenter","edition_id":"ServerDatacenter","csd_version":"","major":10,"minor":0,"build":17763,"ubr":5458,"installed_kbs":[],"pending_reboot":{"cbs_reboot_pending":false,"windows_update_reboot_required":false,"pending_file_renames":false,"update_exe_volatile":false},"last_boot_time":"2026-11-25T10:00:00.000Z","free_disk_bytes":1,"registry":[],"files":[]}"#;
        for out in [
            format!("Windows PowerShell\r\nCopyright\r\n{json}\r\n"),
            format!("\u{feff}{json}\r\n"),
        ] {
            match parse_output(&out) {
                Ok(ProbeOutput::Facts(f)) => assert_eq!(f.build, 17763),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(parse_output("nothing"), Err(ProbeOutputError::NoJson));
        let wrong = json.replace("\"schema\":2", "\"schema\":1");
        assert_eq!(
            parse_output(&wrong),
            Err(ProbeOutputError::Schema { found: 1 })
        );
        assert_eq!(
            parse_output("\u{feff}hive-probe: legacy route, PowerShell 2.0\r\n"),
            Ok(ProbeOutput::Legacy {
                powershell: "2.0".into()
            })
        );
    }

    /// The script's text, held to what real Windows PowerShell needs (there is no PowerShell here
    /// to run it; `tests/powershell_syntax.rs` parses it).
    #[test]
    fn the_script_keeps_to_what_real_powershell_needs() {
        let text = script(&ProbeRequest::default());
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("the probe lacks `{needle}`"))
        };
        // 1: the version check comes before anything PowerShell 2.0 lacks.
        assert!(at("$PSVersionTable.PSVersion.Major -lt 3") < at("ConvertFrom-Json"));
        assert!(at("'hive-probe: legacy route, PowerShell '") > 0);
        assert!(LEGACY_SIGNAL.starts_with("hive-probe: legacy route, PowerShell"));
        // 2: hidden and system files need -Force.
        for (i, _) in text.match_indices("Get-Item ") {
            assert!(
                text[i..]
                    .lines()
                    .next()
                    .is_some_and(|l| l.contains("-Force")),
                "Get-Item without -Force"
            );
        }
        // 3: every fact in its own try/catch: as many catches as tries, and more than the facts.
        assert_eq!(
            text.matches("try {").count(),
            text.matches("catch {").count()
        );
        assert!(text.matches("catch {").count() >= 7);
        // 7: the registry through .NET base keys, never the provider (`HKLM:\`), HKU and HKCR too.
        assert!(!text.contains("HKLM:") && !text.contains("HKCU:"));
        assert!(text.contains("OpenBaseKey") && text.contains("'HKU'") && text.contains("'HKCR'"));
        // 8: InstallationType is read.
        assert!(text.contains("'InstallationType'"));
        // 9: the boot time in the invariant culture.
        assert!(text.contains("[Globalization.CultureInfo]::InvariantCulture"));
        // 11: Win32_QuickFixEngineering asking for HotFixID only (Get-HotFix resolves SIDs).
        assert!(!text.contains("Get-HotFix"));
        assert!(text.contains("Win32_QuickFixEngineering -Property HotFixID"));
        // 12: the system drive, both rename lists, and the body inside `& { }`.
        assert!(text.contains("$env:SystemDrive") && !text.contains("'C:'"));
        assert!(text.contains("'PendingFileRenameOperations2'"));
        assert!(text.starts_with(&format!("{PROBE_MARKER}\n& {{\n")) && text.ends_with("}\n"));
        // 6: the answer escapes non-ASCII.
        assert!(text.contains("[int]$c -gt 126"));
    }
}
