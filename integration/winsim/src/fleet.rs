//! The fleet description file: which hosts exist and what each one is.
//!
//! A test or a demo describes a fleet in TOML: `[template.NAME]` tables describe kinds of machine
//! (product, build, files, faults), `[[group]]` stamps out many hosts from a template with generated
//! names and consecutive loopback addresses, `[[host]]` adds single machines. Every table takes the
//! same [`HostSettings`] keys, applied in the order defaults → template chain → group/host, so a
//! host can override one detail of its template. Lists (registry, files, kbs, wire faults) add up
//! rather than replace. Unknown keys are errors: a typo in a fault plan must not silently test
//! nothing. See `fleets/example.toml` for every key.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::host::WsmanOp;
use crate::pe::{Machine, Version};

/// Why a fleet file could not be turned into hosts; each names the file and the place.
#[derive(Debug, Error)]
pub enum FleetError {
    #[error("cannot read fleet file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("fleet file {path}: {source}")]
    Syntax {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("fleet file {path}: {what}: {problem}")]
    Invalid {
        path: PathBuf,
        what: String,
        problem: String,
    },
    #[error("host {host}: cannot create {path}: {source}")]
    Disk {
        host: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// WinRM's `CbtHardeningLevel`: whether an HTTPS logon must be bound to the TLS channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CbtHardening {
    /// Checked when the client sends one (Windows' default): a wrong binding is refused.
    #[default]
    Relaxed,
    /// Required: a logon without the binding, or with a wrong one, is refused.
    Strict,
}

/// Keys shared by `[defaults]`, `[template.X]`, `[[group]]` and `[[host]]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostSettings {
    /// Template to start from (templates may name a template too).
    pub template: Option<String>,
    /// `[[group]]`: how many hosts. Only valid in groups.
    pub count: Option<u32>,
    /// Host name; in a group a pattern where `{n}` (or `{n:03}`) is the 1-based index.
    pub name: Option<String>,
    /// IPv4 address in 127.0.0.0/8; in a group the first one, the rest follow (skipping .0/.255).
    pub address: Option<String>,
    /// `ProductName`, e.g. `Windows 2000 Server`, `Windows Server 2019 Datacenter`.
    pub product: Option<String>,
    /// `EditionID`, e.g. `ServerDatacenter` (leave empty for Windows 2000).
    pub edition: Option<String>,
    /// `CSDVersion`, e.g. `Service Pack 1`.
    pub csd_version: Option<String>,
    /// `major.minor.build`, e.g. `5.0.2195` or `10.0.17763`.
    pub version: Option<String>,
    /// Update Build Revision (Windows 10 / Server 2016 and later).
    pub ubr: Option<u32>,
    pub machine: Option<Machine>,
    /// `%SystemRoot%`, default `C:\Windows` (ADMIN$ is exported as `<host>/Windows`).
    pub system_root: Option<String>,
    /// Whether `powershell.exe` exists; default: yes from Windows Server 2008 (6.0) on.
    pub powershell: Option<bool>,
    /// `$PSVersionTable.PSVersion` of that PowerShell, `major.minor`; default `5.1`. Windows 7 and
    /// Server 2008 R2 shipped `2.0`, which has no `ConvertFrom-Json`.
    pub powershell_version: Option<String>,
    /// PowerShell's output starts with a UTF-8 byte order mark (a profile or logon script that set
    /// `[Console]::OutputEncoding` to UTF-8 does this).
    pub powershell_bom: Option<bool>,
    /// The display language: `en-US` (default) or `de-DE`; cmd.exe's messages are localised.
    pub language: Option<String>,
    /// The host's time zone as Windows names it (`W. Europe Standard Time`); default `UTC`.
    /// Kept where Windows keeps it: `TimeZoneKeyName` from Vista on, `StandardName` before.
    pub time_zone: Option<String>,
    /// The console's OEM code page: 437 (default) or 850. Over SSH, programs read their stdin and
    /// write their output in it (WinRS shells use UTF-8).
    pub oem_code_page: Option<u16>,
    /// Registry keys the remote account may not open (with their subkeys): reading them fails with
    /// "access denied", as SAM or a locked-down vendor key does.
    pub registry_denied: Option<Vec<String>>,
    pub kbs: Option<Vec<String>>,
    /// Hotfix IDs whose servicing package Windows keeps for good once installed (DISM refuses to
    /// remove it with 0x800F0825), as servicing stack updates are.
    pub permanent_packages: Option<Vec<String>>,
    pub registry: Option<Vec<RegistrySetting>>,
    pub files: Option<Vec<FileSetting>>,
    /// Pending-reboot markers set at start: `cbs`, `windows-update`, `file-renames`, `update-exe`.
    pub pending_reboot: Option<Vec<String>>,
    pub free_disk_mb: Option<u64>,
    /// How long ago the host booted (hours).
    pub uptime_hours: Option<u64>,
    pub user: Option<String>,
    pub password: Option<Password>,
    pub winrm_port: Option<u16>,
    /// Set to serve WinRM over HTTPS too (port number).
    pub winrm_https_port: Option<u16>,
    /// `strict`: NTLM over HTTPS must carry the listener certificate's channel binding
    /// (Extended Protection, `CbtHardeningLevel=Strict`); `relaxed` (the default) does not check.
    pub cbt_hardening: Option<CbtHardening>,
    /// WinRM certificate authentication over HTTPS (`Service/Auth/Certificate`, off by default):
    /// the certificate-mapping table, client certificates issued by `issuer` whose subject
    /// matches log on as `user`.
    pub client_certificates: Option<Vec<crate::server::certmap::CertMappingSetting>>,
    pub reboot: Option<RebootSettings>,
    pub faults: Option<FaultSettings>,
    /// Windows services besides the standard ones (EventLog, LanmanServer, WinRM), e.g.
    /// `[{ name = "W3SVC", display_name = "World Wide Web Publishing Service" }]`.
    pub services: Option<Vec<crate::services::ServiceSetting>>,
}

/// A host's account password: test-only, but still kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn new(p: impl Into<String>) -> Self {
        Password(p.into())
    }
    /// The password itself, for the one place that needs it (authentication).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// One registry value in the fleet file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySetting {
    pub key: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default = "reg_sz")]
    pub kind: String,
    /// Omitted: only the key is created.
    pub value: Option<serde_json::Value>,
}

fn reg_sz() -> String {
    "REG_SZ".into()
}

/// One binary on the host's disk, generated as a real PE file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSetting {
    pub path: String,
    pub version: Version,
    pub product_version: Option<Version>,
    /// The file has the hidden attribute (`Get-Item` finds it only with `-Force`).
    pub hidden: Option<bool>,
}

/// How reboots go on this host.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RebootSettings {
    /// How long the host refuses connections (default 2000). 0 = the "too fast" reboot: never seen
    /// down, only the boot time changes.
    pub downtime_ms: Option<u64>,
    /// After coming back: how long servicing stays busy ("configuring updates").
    pub configuring_ms: Option<u64>,
    /// The host goes down and never comes back.
    pub never_returns: Option<bool>,
}

/// The fault plan.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// Faults the WinRM face injects into requests.
    pub wire: Option<Vec<WireRule>>,
    /// Every installer hangs (never exits) on this host.
    pub installers_hang: Option<bool>,
    /// C: has (almost) no free space: installers fail with 112, `expand` fails.
    pub disk_full: Option<bool>,
    /// For the SMB harness: drop the connection after this many bytes of one write.
    pub smb_disconnect_after_bytes: Option<u64>,
    /// For the SMB harness: the host loses power for good after this many bytes of one write
    /// (a host that dies while an installer is being copied to it).
    pub smb_power_off_after_bytes: Option<u64>,
    /// Every installer on this host ends with this exit code and changes nothing (e.g. 1603: a
    /// damaged component store fails whatever package is run).
    pub installers_fail_with: Option<u32>,
    /// Pending-reboot markers (as `pending_reboot`) that are set again at every boot: the host
    /// comes back from its reboot still asking for one.
    pub pending_after_reboot: Option<Vec<String>>,
    /// After every boot, the first WinRS Command waits this long before it is answered: the
    /// listener accepts connections before the WinRM service serves them, as right after a
    /// Windows boot.
    pub winrm_stalls_after_boot_ms: Option<u64>,
    /// The host's clock runs this many seconds ahead of the real one (negative: behind), as a
    /// host whose time service lost its source drifts: the probe reports it in `utc_now`.
    pub clock_skew_s: Option<i64>,
    /// Installing a package leaves a service unable to start: `[{ package = "KB5000201",
    /// service = "W3SVC" }]` (see `services.rs`).
    pub breaks_service: Option<Vec<crate::services::BrokenBy>>,
    /// The host's HTTP health endpoint answers 503 from this many answered requests on (0: it is
    /// down from the start).
    pub health_endpoint_fails_after: Option<u32>,
    /// Packages whose install the next boot undoes: `[{ package = "KB5200003" }]` (every boot)
    /// or `boots = 1` (only the first), see `reverts.rs`.
    pub reverts_at_boot: Option<Vec<crate::reverts::RevertsAtBoot>>,
}

/// One wire fault: fires on the `nth` request of `op` (any op when omitted), `times` times in a row
/// (0 = from then on, forever).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WireRule {
    /// `reset`, `soap-fault`, `unauthorized`, `too-big` or `delay`.
    pub kind: String,
    /// `Create`, `Command`, `Send`, `Receive`, `Signal`, `Delete`, `Get`.
    pub op: Option<String>,
    pub nth: Option<u32>,
    pub times: Option<u32>,
    pub delay_ms: Option<u64>,
    /// WS-Man error code for `soap-fault` (default 2150858843 = 0x803381DB, shell not found).
    pub code: Option<u32>,
    pub text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    #[serde(default)]
    defaults: HostSettings,
    #[serde(default)]
    template: BTreeMap<String, HostSettings>,
    #[serde(default)]
    group: Vec<HostSettings>,
    #[serde(default)]
    host: Vec<HostSettings>,
}

/// A host fully described: what [`crate::model::WinHost`] is built from.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub name: String,
    pub address: Ipv4Addr,
    pub product: String,
    pub edition: String,
    pub csd_version: String,
    pub major: u32,
    pub minor: u32,
    pub build: u32,
    pub ubr: u32,
    pub machine: Machine,
    pub system_root: String,
    pub powershell: bool,
    /// `(major, minor)` of the host's PowerShell.
    pub powershell_version: (u32, u32),
    pub powershell_bom: bool,
    pub language: String,
    /// The Windows time zone id.
    pub time_zone: String,
    pub oem_code_page: u16,
    pub registry_denied: Vec<String>,
    pub kbs: Vec<String>,
    pub permanent_packages: Vec<String>,
    pub registry: Vec<(String, String, Option<crate::registry::RegValue>)>,
    pub files: Vec<FileSetting>,
    pub pending_reboot: Vec<String>,
    pub free_disk_bytes: u64,
    pub uptime: Duration,
    pub user: String,
    pub password: Password,
    pub winrm_port: u16,
    pub winrm_https_port: Option<u16>,
    pub cbt_hardening: CbtHardening,
    pub client_certificates: Vec<crate::server::certmap::CertMappingSetting>,
    pub reboot_downtime: Duration,
    pub configuring: Duration,
    pub reboot_never_returns: bool,
    pub faults: FaultPlan,
    pub services: Vec<crate::services::ServiceSetting>,
}

/// A host's faults in resolved form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultPlan {
    pub wire: Vec<WireFaultRule>,
    pub installers_hang: bool,
    pub smb_disconnect_after_bytes: Option<u64>,
    pub smb_power_off_after_bytes: Option<u64>,
    pub installers_fail_with: Option<u32>,
    pub pending_after_reboot: Vec<String>,
    pub winrm_stall_after_boot: Option<Duration>,
    /// Seconds the host's clock is ahead of the real one (negative: behind).
    pub clock_skew_s: i64,
    pub breaks_service: Vec<crate::services::BrokenBy>,
    pub health_endpoint_fails_after: Option<u32>,
    pub reverts_at_boot: Vec<crate::reverts::RevertsAtBoot>,
}

/// A resolved wire rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WireFaultRule {
    #[serde(skip)]
    pub op: Option<WsmanOp>,
    pub kind: String,
    pub nth: u32,
    /// 0 = forever.
    pub times: u32,
    pub delay_ms: u64,
    pub code: u32,
    pub text: String,
}

/// Reads and resolves a fleet file.
pub fn load(path: &Path) -> Result<Vec<HostConfig>, FleetError> {
    let text = std::fs::read_to_string(path).map_err(|source| FleetError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Resolves fleet text; `path` only names the source in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<HostConfig>, FleetError> {
    let file: FleetFile = toml::from_str(text).map_err(|e| FleetError::Syntax {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    let invalid = |what: String, problem: String| FleetError::Invalid {
        path: path.to_path_buf(),
        what,
        problem,
    };
    for (name, t) in &file.template {
        if t.count.is_some() || t.name.is_some() || t.address.is_some() {
            return Err(invalid(
                format!("template {name}"),
                "count, name and address belong in [[group]]/[[host]]".into(),
            ));
        }
    }
    let mut hosts = Vec::new();
    for (i, g) in file.group.iter().enumerate() {
        let what = format!("group #{}", i + 1);
        let count = g
            .count
            .ok_or_else(|| invalid(what.clone(), "count is missing".into()))?;
        let pattern = g
            .name
            .clone()
            .ok_or_else(|| invalid(what.clone(), "name pattern is missing".into()))?;
        let first = g
            .address
            .as_deref()
            .ok_or_else(|| invalid(what.clone(), "address is missing".into()))?;
        let mut addr = parse_loopback(first).map_err(|p| invalid(what.clone(), p))?;
        let merged = resolve(&file, g).map_err(|p| invalid(what.clone(), p))?;
        for n in 1..=count {
            let name = expand_name(&pattern, n).map_err(|p| invalid(what.clone(), p))?;
            hosts.push(finish(&merged, name, addr).map_err(|p| invalid(what.clone(), p))?);
            addr = next_address(addr)
                .ok_or_else(|| invalid(what.clone(), "ran out of 127.x.y.z addresses".into()))?;
        }
    }
    for (i, h) in file.host.iter().enumerate() {
        let what = format!(
            "host #{} ({})",
            i + 1,
            h.name.as_deref().unwrap_or("unnamed")
        );
        if h.count.is_some() {
            return Err(invalid(what, "count belongs in [[group]]".into()));
        }
        let name = h
            .name
            .clone()
            .ok_or_else(|| invalid(what.clone(), "name is missing".into()))?;
        let addr = parse_loopback(
            h.address
                .as_deref()
                .ok_or_else(|| invalid(what.clone(), "address is missing".into()))?,
        )
        .map_err(|p| invalid(what.clone(), p))?;
        let merged = resolve(&file, h).map_err(|p| invalid(what.clone(), p))?;
        hosts.push(finish(&merged, name, addr).map_err(|p| invalid(what.clone(), p))?);
    }
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    for h in &hosts {
        if !names.insert(h.name.to_ascii_lowercase()) {
            return Err(invalid(
                format!("host {}", h.name),
                "name used twice".into(),
            ));
        }
        if !addrs.insert((h.address, h.winrm_port)) {
            return Err(invalid(
                format!("host {}", h.name),
                format!("address {} used twice", h.address),
            ));
        }
    }
    Ok(hosts)
}

/// defaults → template chain → this table.
fn resolve(file: &FleetFile, own: &HostSettings) -> Result<HostSettings, String> {
    let mut chain = vec![own.clone()];
    let mut seen = HashSet::new();
    let mut next = own.template.clone();
    while let Some(t) = next {
        if !seen.insert(t.clone()) {
            return Err(format!("template {t} includes itself"));
        }
        let tpl = file
            .template
            .get(&t)
            .ok_or_else(|| format!("unknown template `{t}`"))?;
        chain.push(tpl.clone());
        next = tpl.template.clone();
    }
    chain.push(file.defaults.clone());
    let mut out = HostSettings::default();
    for layer in chain.into_iter().rev() {
        merge(&mut out, layer);
    }
    Ok(out)
}

fn merge(base: &mut HostSettings, top: HostSettings) {
    // A field the upper layer sets replaces the lower layer's.
    macro_rules! take {
        ($from:ident => $to:ident: $($f:ident),*) => { $( if $from.$f.is_some() { $to.$f = $from.$f; } )* };
    }
    take!(
        top => base:
        product,
        edition,
        csd_version,
        version,
        ubr,
        machine,
        system_root,
        powershell,
        powershell_version,
        powershell_bom,
        language,
        time_zone,
        oem_code_page,
        free_disk_mb,
        uptime_hours,
        user,
        password,
        winrm_port,
        winrm_https_port,
        cbt_hardening
    );
    // A list the upper layer sets extends the lower layer's.
    macro_rules! add {
        ($from:ident => $to:ident: $($f:ident),*) => { $( if let Some(v) = $from.$f { $to.$f.get_or_insert_with(Vec::new).extend(v); } )* };
    }
    add!(top => base: kbs, permanent_packages, registry, files, pending_reboot, registry_denied, services, client_certificates);
    if let Some(r) = top.reboot {
        let b = base.reboot.get_or_insert_with(Default::default);
        take!(r => b: downtime_ms, configuring_ms, never_returns);
    }
    if let Some(f) = top.faults {
        let b = base.faults.get_or_insert_with(Default::default);
        add!(f => b: wire, pending_after_reboot, breaks_service, reverts_at_boot);
        take!(
            f => b:
            installers_hang,
            disk_full,
            smb_disconnect_after_bytes,
            smb_power_off_after_bytes,
            installers_fail_with,
            winrm_stalls_after_boot_ms,
            clock_skew_s,
            health_endpoint_fails_after
        );
    }
}

fn finish(s: &HostSettings, name: String, address: Ipv4Addr) -> Result<HostConfig, String> {
    if name.is_empty()
        || name.len() > 63
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(format!(
            "host name `{name}` is not a NetBIOS/DNS name (letters, digits, '-')"
        ));
    }
    let version = s.version.as_deref().unwrap_or("10.0.17763");
    let v: Version = version
        .parse()
        .map_err(|e: crate::pe::BadVersion| e.to_string())?;
    let [major, minor, build, _] = v.0.map(u32::from);
    let mut registry = Vec::new();
    for r in s.registry.iter().flatten() {
        crate::registry::canonical_path(&r.key).map_err(|e| e.to_string())?;
        let value = match &r.value {
            Some(v) => Some(
                crate::installer::reg_value_from_json(&r.kind, v)
                    .map_err(|e| format!("registry {}\\{}: {e}", r.key, r.name))?,
            ),
            None => None,
        };
        registry.push((r.key.clone(), r.name.clone(), value));
    }
    let faults = s.faults.clone().unwrap_or_default();
    for p in s
        .pending_reboot
        .iter()
        .flatten()
        .chain(faults.pending_after_reboot.iter().flatten())
    {
        if !["cbs", "windows-update", "file-renames", "update-exe"].contains(&p.as_str()) {
            return Err(format!(
                "pending_reboot `{p}` is not one of cbs, windows-update, file-renames, update-exe"
            ));
        }
    }
    for f in s.files.iter().flatten() {
        let upper = f.path.to_ascii_uppercase();
        if !(upper.starts_with(r"C:\")
            || upper.starts_with("%SYSTEMROOT%")
            || upper.starts_with("%WINDIR%"))
        {
            return Err(format!(
                "file `{}`: simulated hosts have only drive C:",
                f.path
            ));
        }
    }
    let wire = faults
        .wire
        .iter()
        .flatten()
        .map(wire_rule)
        .collect::<Result<Vec<_>, _>>()?;
    let reboot = s.reboot.clone().unwrap_or_default();
    let powershell_version = match s.powershell_version.as_deref() {
        None => (5, 1),
        Some(v) => v
            .split_once('.')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .ok_or_else(|| format!("powershell_version `{v}` is not major.minor (e.g. 2.0)"))?,
    };
    let language = s.language.clone().unwrap_or_else(|| "en-US".into());
    if !["en-US", "de-DE"].contains(&language.as_str()) {
        return Err(format!("language `{language}` is not one of en-US, de-DE"));
    }
    let oem_code_page = s.oem_code_page.unwrap_or(437);
    if !crate::codepage::SUPPORTED.contains(&oem_code_page) {
        return Err(format!(
            "oem_code_page {oem_code_page} is not one of {:?}",
            crate::codepage::SUPPORTED
        ));
    }
    for k in s.registry_denied.iter().flatten() {
        crate::registry::canonical_path(k).map_err(|e| e.to_string())?;
    }
    let free_disk_bytes = if faults.disk_full == Some(true) {
        4096
    } else {
        s.free_disk_mb.unwrap_or(20 * 1024) * 1024 * 1024
    };
    let system_root = s
        .system_root
        .clone()
        .unwrap_or_else(|| r"C:\Windows".into());
    if !system_root.to_ascii_uppercase().starts_with(r"C:\") {
        return Err(format!("system_root `{system_root}` must be on C:"));
    }
    Ok(HostConfig {
        name,
        address,
        product: s
            .product
            .clone()
            .unwrap_or_else(|| "Windows Server 2019 Datacenter".into()),
        edition: s.edition.clone().unwrap_or_default(),
        csd_version: s.csd_version.clone().unwrap_or_default(),
        major,
        minor,
        build,
        ubr: s.ubr.unwrap_or(0),
        machine: s.machine.unwrap_or(if major >= 6 {
            Machine::Amd64
        } else {
            Machine::I386
        }),
        system_root,
        powershell: s.powershell.unwrap_or(major >= 6),
        powershell_version,
        powershell_bom: s.powershell_bom.unwrap_or(false),
        language,
        time_zone: s.time_zone.clone().unwrap_or_else(|| "UTC".into()),
        oem_code_page,
        registry_denied: s.registry_denied.clone().unwrap_or_default(),
        kbs: s.kbs.clone().unwrap_or_default(),
        permanent_packages: s.permanent_packages.clone().unwrap_or_default(),
        registry,
        files: s.files.clone().unwrap_or_default(),
        pending_reboot: s.pending_reboot.clone().unwrap_or_default(),
        free_disk_bytes,
        uptime: Duration::from_secs(s.uptime_hours.unwrap_or(24 * 7) * 3600),
        user: s.user.clone().unwrap_or_else(|| "Administrator".into()),
        password: s
            .password
            .clone()
            .unwrap_or_else(|| Password::new("Winsim-Passw0rd")),
        winrm_port: s.winrm_port.unwrap_or(5985),
        winrm_https_port: s.winrm_https_port,
        cbt_hardening: s.cbt_hardening.unwrap_or_default(),
        client_certificates: s.client_certificates.clone().unwrap_or_default(),
        reboot_downtime: Duration::from_millis(reboot.downtime_ms.unwrap_or(2000)),
        configuring: Duration::from_millis(reboot.configuring_ms.unwrap_or(0)),
        reboot_never_returns: reboot.never_returns.unwrap_or(false),
        faults: FaultPlan {
            wire,
            installers_hang: faults.installers_hang.unwrap_or(false),
            smb_disconnect_after_bytes: faults.smb_disconnect_after_bytes,
            smb_power_off_after_bytes: faults.smb_power_off_after_bytes,
            installers_fail_with: faults.installers_fail_with,
            pending_after_reboot: faults.pending_after_reboot.unwrap_or_default(),
            winrm_stall_after_boot: faults.winrm_stalls_after_boot_ms.map(Duration::from_millis),
            clock_skew_s: faults.clock_skew_s.unwrap_or(0),
            breaks_service: faults.breaks_service.unwrap_or_default(),
            health_endpoint_fails_after: faults.health_endpoint_fails_after,
            reverts_at_boot: faults.reverts_at_boot.unwrap_or_default(),
        },
        services: s.services.clone().unwrap_or_default(),
    })
}

fn wire_rule(r: &WireRule) -> Result<WireFaultRule, String> {
    let op = match r.op.as_deref() {
        None => None,
        Some(o) => Some(match o.to_ascii_lowercase().as_str() {
            "create" => WsmanOp::Create,
            "command" => WsmanOp::Command,
            "send" => WsmanOp::Send,
            "receive" => WsmanOp::Receive,
            "signal" => WsmanOp::Signal,
            "delete" => WsmanOp::Delete,
            "get" => WsmanOp::Get,
            _ => {
                return Err(format!(
                    "wire fault op `{o}` is not Create/Command/Send/Receive/Signal/Delete/Get"
                ));
            }
        }),
    };
    if !["reset", "soap-fault", "unauthorized", "too-big", "delay"].contains(&r.kind.as_str()) {
        return Err(format!(
            "wire fault kind `{}` is not reset/soap-fault/unauthorized/too-big/delay",
            r.kind
        ));
    }
    if r.kind == "delay" && r.delay_ms.is_none() {
        return Err("wire fault `delay` needs delay_ms".into());
    }
    Ok(WireFaultRule {
        op,
        kind: r.kind.clone(),
        nth: r.nth.unwrap_or(1).max(1),
        times: r.times.unwrap_or(1),
        delay_ms: r.delay_ms.unwrap_or(0),
        code: r.code.unwrap_or(0x8033_81DB),
        text: r
            .text
            .clone()
            .unwrap_or_else(|| "The request failed (injected by the winsim fault plan).".into()),
    })
}

fn parse_loopback(s: &str) -> Result<Ipv4Addr, String> {
    let a: Ipv4Addr = s
        .parse()
        .map_err(|_| format!("`{s}` is not an IPv4 address"))?;
    if a.octets()[0] != 127 {
        return Err(format!(
            "{a} is not in 127.0.0.0/8: simulated hosts live on loopback only"
        ));
    }
    Ok(a)
}

/// The next address in 127/8, skipping the .0 and .255 ends of each /24 so every host address
/// looks like an ordinary unicast one.
fn next_address(a: Ipv4Addr) -> Option<Ipv4Addr> {
    let mut n = u32::from(a);
    loop {
        n = n.checked_add(1)?;
        let next = Ipv4Addr::from(n);
        if next.octets()[0] != 127 {
            return None;
        }
        if !matches!(next.octets()[3], 0 | 255) {
            return Some(next);
        }
    }
}

/// `W2K-{n:03}` with n = 7 → `W2K-007`.
fn expand_name(pattern: &str, n: u32) -> Result<String, String> {
    let Some(start) = pattern.find("{n") else {
        return Err(format!("name pattern `{pattern}` has no {{n}}"));
    };
    let end = pattern[start..]
        .find('}')
        .map(|e| start + e)
        .ok_or_else(|| format!("name pattern `{pattern}` is not closed"))?;
    let spec = &pattern[start + 2..end];
    let width = match spec.strip_prefix(":0").or_else(|| spec.strip_prefix(':')) {
        Some(w) => w
            .parse::<usize>()
            .map_err(|_| format!("name pattern `{pattern}`: bad width"))?,
        None if spec.is_empty() => 0,
        None => return Err(format!("name pattern `{pattern}`: use {{n}} or {{n:03}}")),
    };
    Ok(format!(
        "{}{:0width$}{}",
        &pattern[..start],
        n,
        &pattern[end + 1..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_network_and_broadcast_ends() {
        assert_eq!(
            next_address("127.0.1.254".parse().unwrap()),
            Some("127.0.2.1".parse().unwrap())
        );
        assert_eq!(next_address("127.255.255.254".parse().unwrap()), None);
        assert!(parse_loopback("10.0.0.1").is_err());
    }

    #[test]
    fn name_patterns() {
        assert_eq!(expand_name("W2K-{n:03}", 7).unwrap(), "W2K-007");
        assert_eq!(expand_name("web{n}", 12).unwrap(), "web12");
        assert!(expand_name("web", 1).is_err());
    }

    #[test]
    fn hosts_override_templates_and_lists_add_up() {
        let text = r#"
[defaults]
password = "pw"
[template.base]
version = "5.0.2195"
kbs = ["Q1"]
[template.sp1]
template = "base"
csd_version = "Service Pack 1"
kbs = ["Q2"]
[[host]]
name = "one"
address = "127.0.0.9"
template = "sp1"
kbs = ["Q3"]
csd_version = "Service Pack 2"
"#;
        let hosts = parse(text, Path::new("t.toml")).unwrap();
        assert_eq!(hosts[0].kbs, vec!["Q1", "Q2", "Q3"]);
        assert_eq!(hosts[0].csd_version, "Service Pack 2");
        assert_eq!(hosts[0].build, 2195);
        assert_eq!(hosts[0].password.expose(), "pw");
        assert!(
            !format!("{:?}", hosts[0]).contains("pw\""),
            "no password in Debug output"
        );
        assert!(!hosts[0].powershell);
    }

    #[test]
    fn typos_and_loops_are_errors() {
        let e = parse(
            "[[host]]\nname='a'\naddress='127.0.0.2'\nfualts={}\n",
            Path::new("t.toml"),
        );
        assert!(matches!(e, Err(FleetError::Syntax { .. })));
        let e = parse(
            "[template.a]\ntemplate='a'\n[[host]]\nname='a'\naddress='127.0.0.2'\ntemplate='a'\n",
            Path::new("t.toml"),
        );
        assert!(e.unwrap_err().to_string().contains("includes itself"));
    }
}
