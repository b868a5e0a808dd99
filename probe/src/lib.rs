//! The probe: one PowerShell script that gathers every fact a scan needs in one round trip.
//!
//! hive's scanner sends [`script`] (via `powershell.exe -NoProfile -NonInteractive
//! -EncodedCommand ...` or with the script on stdin to `powershell.exe -`) and parses the single
//! line of JSON it prints into [`ProbeFacts`]. The same text runs on a real Windows host (PowerShell
//! 3.0 or later: it needs `ConvertFrom-Json`/`ConvertTo-Json`) and on winsim, which recognises it by
//! its first line ([`PROBE_MARKER`]), reads the embedded request, and answers from its host model.
//! Keeping the script, the request and the answer types in one module that both hive and the
//! simulator import is what keeps the two from drifting apart.
//!
//! There is no PowerShell on the build machines, so the PowerShell half of the script is checked
//! by review against Windows PowerShell 5.1 semantics, not executed; the simulator half is tested.

use serde::{Deserialize, Serialize};

mod answer;

pub use answer::{AnswerError, parse_answer};

/// The first line of every probe script; the protocol version is part of it.
pub const PROBE_MARKER: &str = "# hive-probe v1";

/// The JSON document's `schema` field: bumped whenever [`ProbeFacts`] changes incompatibly.
pub const PROBE_SCHEMA: u32 = 1;

/// What a scan wants to know beyond the fixed facts: the registry values and file versions the
/// catalog's detection rules mention.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRequest {
    #[serde(default)]
    pub registry: Vec<RegistryQuery>,
    /// Full Windows paths (`C:\Windows\system32\foo.dll`); `%SystemRoot%` and `%windir%` expand.
    #[serde(default)]
    pub files: Vec<String>,
}

/// One registry value to read.
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
    /// `CurrentVersion\ProductName`, e.g. `Windows Server 2019 Datacenter`.
    pub product_name: String,
    /// `CurrentVersion\EditionID`, e.g. `ServerDatacenter` (empty on systems that lack it).
    pub edition_id: String,
    /// `CurrentVersion\CSDVersion`, e.g. `Service Pack 1` (empty when there is no service pack).
    pub csd_version: String,
    pub major: u32,
    pub minor: u32,
    pub build: u32,
    /// Update Build Revision; 0 where the value does not exist (before Windows 10).
    pub ubr: u32,
    /// Hotfix IDs as `Get-HotFix` lists them (`KB5035845`, `Q300972`), sorted, no duplicates.
    pub installed_kbs: Vec<String>,
    pub pending_reboot: PendingReboot,
    /// Last boot time in UTC, `yyyy-MM-ddTHH:mm:ss.fffZ`. Compare for *change* to detect a reboot.
    pub last_boot_time: String,
    /// Free bytes on C:.
    pub free_disk_bytes: u64,
    pub registry: Vec<RegistryFact>,
    pub files: Vec<FileFact>,
}

/// The four places Windows records that a reboot is pending.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingReboot {
    /// `HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending`.
    pub cbs_reboot_pending: bool,
    /// `HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired`.
    pub windows_update_reboot_required: bool,
    /// `HKLM\SYSTEM\CurrentControlSet\Control\Session Manager` `PendingFileRenameOperations`.
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

/// One requested registry value: `kind` and `data` are absent when `found` is false.
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
}

/// One requested file: versions are absent when it does not exist or has no version resource.
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
}

/// Builds the probe script for `request`. The request travels as JSON inside a single-quoted
/// here-string, so no PowerShell quoting of paths is needed (a line starting with `'@` cannot occur
/// in compact JSON).
pub fn script(request: &ProbeRequest) -> String {
    let json = serde_json::to_string(request).unwrap_or_else(|_| "{}".to_string());
    format!("{PROBE_MARKER}\n$hiveRequest = @'\n{json}\n'@\n{PROBE_BODY}")
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

/// The part of the script that runs on a real host. Errors are kept out of the JSON's way: each
/// fact is gathered so that a missing key or file yields `found`/`exists` false, never an exception.
const PROBE_BODY: &str = r#"$ErrorActionPreference = 'Stop'
$req = $hiveRequest | ConvertFrom-Json
$cv = 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
function Get-HiveValue([string]$key, [string]$name) {
  $psKey = ($key -replace '^(HKLM|HKEY_LOCAL_MACHINE)\\', 'HKLM:\') -replace '^(HKCU|HKEY_CURRENT_USER)\\', 'HKCU:\'
  $k = Get-Item -LiteralPath $psKey -ErrorAction SilentlyContinue
  if ($null -eq $k) { return @{ key = $key; value = $name; found = $false } }
  if (-not ($k.GetValueNames() -contains $name)) { return @{ key = $key; value = $name; found = ($name -eq '') } }
  $raw = $k.GetValue($name, $null, 'DoNotExpandEnvironmentNames')
  $kind = switch ($k.GetValueKind($name).ToString()) { 'String' {'REG_SZ'} 'ExpandString' {'REG_EXPAND_SZ'} 'MultiString' {'REG_MULTI_SZ'} 'DWord' {'REG_DWORD'} 'QWord' {'REG_QWORD'} default {'REG_BINARY'} }
  if ($kind -eq 'REG_BINARY') { $raw = (@($raw) | ForEach-Object { $_.ToString('X2') }) -join '' }
  if ($kind -eq 'REG_DWORD') { $raw = [BitConverter]::ToUInt32([BitConverter]::GetBytes([int32]$raw), 0) }
  if ($kind -eq 'REG_QWORD') { $raw = [BitConverter]::ToUInt64([BitConverter]::GetBytes([int64]$raw), 0) }
  return @{ key = $key; value = $name; found = $true; kind = $kind; data = $raw }
}
function Get-HiveNumber([string]$name) {
  $v = (Get-HiveValue ('HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion') $name)
  if ($v.found) { return [uint32]$v.data } else { return [uint32]0 }
}
function Get-HiveText([string]$name) {
  $v = (Get-HiveValue ('HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion') $name)
  if ($v.found) { return [string]$v.data } else { return '' }
}
$ver = [Environment]::OSVersion.Version
$major = Get-HiveNumber 'CurrentMajorVersionNumber'; if ($major -eq 0) { $major = [uint32]$ver.Major }
$minor = Get-HiveNumber 'CurrentMinorVersionNumber'; if ($major -lt 10) { $minor = [uint32]$ver.Minor }
$os = Get-WmiObject Win32_OperatingSystem
$boot = [Management.ManagementDateTimeConverter]::ToDateTime($os.LastBootUpTime).ToUniversalTime()
$disk = Get-WmiObject Win32_LogicalDisk -Filter "DeviceID='C:'"
$kbs = @(Get-HotFix | ForEach-Object { $_.HotFixID } | Where-Object { $_ } | Sort-Object -Unique)
$sm = Get-ItemProperty 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' -ErrorAction SilentlyContinue
$uev = Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Updates' -ErrorAction SilentlyContinue
$files = @(foreach ($p in @($req.files)) {
  $full = [Environment]::ExpandEnvironmentVariables($p)
  if (Test-Path -LiteralPath $full -PathType Leaf) {
    $fi = Get-Item -LiteralPath $full
    $vi = [Diagnostics.FileVersionInfo]::GetVersionInfo($full)
    $f = @{ path = $p; exists = $true; size = [uint64]$fi.Length }
    if ($vi.FileVersion -or $vi.FileMajorPart) {
      $f.file_version = '{0}.{1}.{2}.{3}' -f $vi.FileMajorPart, $vi.FileMinorPart, $vi.FileBuildPart, $vi.FilePrivatePart
      $f.product_version = '{0}.{1}.{2}.{3}' -f $vi.ProductMajorPart, $vi.ProductMinorPart, $vi.ProductBuildPart, $vi.ProductPrivatePart
    }
    $f
  } else { @{ path = $p; exists = $false } }
})
$facts = @{
  schema = 1
  computer_name = $env:COMPUTERNAME
  product_name = Get-HiveText 'ProductName'
  edition_id = Get-HiveText 'EditionID'
  csd_version = Get-HiveText 'CSDVersion'
  major = $major
  minor = $minor
  build = [uint32](Get-HiveText 'CurrentBuild')
  ubr = Get-HiveNumber 'UBR'
  installed_kbs = $kbs
  pending_reboot = @{
    cbs_reboot_pending = (Test-Path 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending')
    windows_update_reboot_required = (Test-Path 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired')
    pending_file_renames = ($null -ne $sm -and $null -ne $sm.PendingFileRenameOperations)
    update_exe_volatile = ($null -ne $uev -and $null -ne $uev.UpdateExeVolatile -and $uev.UpdateExeVolatile -ne 0)
  }
  last_boot_time = $boot.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'")
  free_disk_bytes = [uint64]$disk.FreeSpace
  registry = @(foreach ($q in @($req.registry)) { Get-HiveValue $q.key $q.value })
  files = $files
}
$facts | ConvertTo-Json -Depth 6 -Compress
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_survives_the_script() {
        let req = ProbeRequest {
            registry: vec![RegistryQuery {
                key: r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300972".into(),
                value: "Installed".into(),
            }],
            files: vec![r"C:\Windows\system32\it's.dll".into()],
        };
        let text = script(&req);
        assert!(text.starts_with(PROBE_MARKER));
        assert_eq!(parse_script(&text), Some(req));
        assert_eq!(parse_script("Get-Date"), None);
    }
}
