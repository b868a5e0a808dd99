//! The inventory: which hosts hive may touch, how to reach them, and which groups they belong to.
//!
//! The inventory is a TOML file an admin writes and reviews. It never holds a secret: each host names
//! a *credential reference* (an environment variable, a 0600 file, or an interactive prompt), so the
//! file can live in version control and be read by anyone who plans a rollout.
//!
//! ```toml
//! [defaults]
//! transport = "winrm-http"          # winrm-http | winrm-https | ssh
//! user = "Administrator"
//! credential = "env:HIVE_PASSWORD"  # env:VAR | file:/path/0600 | prompt (ssh also: ssh-key:/path/0600 | ssh-agent;
//!                                   # winrm also: kerberos:ccache | kerberos:keytab:/path | kerberos:env:VAR, see kerberos)
//!
//! [[host]]
//! name = "web01"
//! address = "10.1.2.3"
//! groups = ["canary", "web"]
//!
//! [[host]]
//! name = "db01"
//! address = "db01.corp.example"
//! transport = "winrm-https"
//! thumbprint = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//!
//! [[host]]
//! name = "app01"                    # Windows OpenSSH: commands and SFTP over port 22
//! transport = "ssh"
//! host_key = "SHA256:rnFg9lQzp3LxgVJUzqLppEBgc8FoGJOdzmX8/FYqyks"
//! ```

mod credentials;
pub mod kerberos;
pub mod groups;
pub mod health;
pub mod sources;

pub use credentials::{
    ClientCertificateRef, CredentialRef, SecretSource, read_client_certificate, read_key_file,
    read_secret_file, resolve_credential, resolve_host, resolve_reference,
};
pub use groups::{GroupPolicy, GroupSettings, HookSettings};
pub use health::{CheckKind, EventLevel, HealthCheckSpec};

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// How hive reaches a host's command channel. SMB is used beside WinRM for files; SSH hosts use SFTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// WinRM on HTTP (5985) with NTLM message encryption: Windows' default listener.
    WinrmHttp,
    /// WinRM on HTTPS (5986), certificate verified or pinned by thumbprint.
    WinrmHttps,
    /// OpenSSH for Windows (22), host key pinned.
    Ssh,
}

impl Transport {
    /// The port Windows listens on for this transport unless the inventory says otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::WinrmHttp => 5985,
            Transport::WinrmHttps => 5986,
            Transport::Ssh => 22,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::WinrmHttp => "winrm-http",
            Transport::WinrmHttps => "winrm-https",
            Transport::Ssh => "ssh",
        })
    }
}

/// A secret read from a credential reference. Its `Debug` never shows the value, so a stray `{:?}`
/// in a log line cannot leak it. It is the SSH transport's own type, so a password goes from the
/// inventory to every transport without a second wrapper to keep in step.
pub use hive_ssh::Secret;

/// One host as the inventory describes it, with defaults applied. It serializes (a run's journal
/// keeps the hosts a source gave it) with its credential as the reference, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Host {
    /// The name an admin knows the host by; used for folders, logs and reports.
    pub name: String,
    /// DNS name or IP address hive connects to.
    pub address: String,
    pub transport: Transport,
    pub port: u16,
    /// Where SMB file copies go: the host itself on Windows; another address when files are
    /// served from elsewhere (a simulated fleet behind one Samba).
    pub smb_address: String,
    /// SMB port for file copies (445 on Windows).
    pub smb_port: u16,
    /// The share that holds the C: drive (`C$` on Windows).
    pub smb_share: String,
    /// The folder inside `smb_share` that stands for `C:\` (empty on Windows, where the share
    /// root is the drive root; a per-host folder when several hosts share one export).
    pub smb_root: String,
    /// SSH hosts: the SFTP path that stands for `C:\`. Empty means Windows OpenSSH's own `/C:`;
    /// a folder when C: is a sub-folder of what the SFTP server shows (the simulated fleet).
    pub sftp_root: String,
    pub user: String,
    pub credential: CredentialRef,
    pub groups: BTreeSet<String>,
    /// SHA-256 thumbprint of a self-signed WinRM HTTPS certificate, or an SSH host key fingerprint.
    pub pin: Option<String>,
    /// Kerberos hosts: the service principal to ask a ticket for, from the host's `spn` or its
    /// groups' (placeholders filled in); `None` means the default (see [`kerberos::spn_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spn: Option<String>,
    /// Kerberos hosts whose ticket comes from a cache or keytab: the password SMB file copies log
    /// on with (hive-smb speaks NTLM only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smb_credential: Option<CredentialRef>,
    /// The site (network segment, data centre) whose workers patch this host when the run's
    /// state is shared (`hive worker --site`); `None` on a single orchestrator.
    pub site: Option<String>,
}

/// The whole inventory, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub hosts: Vec<Host>,
    /// Per-group settings (`[group.NAME]`, `[group_defaults]`).
    pub policy: GroupPolicy,
}

/// Why an inventory or a credential could not be used. Every message names the file and the host or
/// field at fault, because an admin fixing a 2,000-line inventory needs to know where to look.
#[derive(Debug, Error)]
pub enum InventoryError {
    #[error("cannot read inventory {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("inventory {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("inventory {path}, host `{host}`: {message}")]
    Host {
        path: PathBuf,
        host: String,
        message: String,
    },
    #[error("credential {reference} for host `{host}`: {message}")]
    Credential {
        host: String,
        reference: String,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    host: Vec<RawHost>,
    /// Hosts found at run time (Active Directory, address ranges, host lists): see `crate::targets`.
    #[serde(default)]
    source: Vec<sources::SourceSpec>,
    #[serde(default)]
    group_defaults: GroupSettings,
    #[serde(default)]
    group: std::collections::BTreeMap<String, GroupSettings>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    transport: Option<Transport>,
    /// The command port of every host that names none (hosts found by a source name none).
    port: Option<u16>,
    user: Option<String>,
    credential: Option<String>,
    smb_port: Option<u16>,
    smb_share: Option<String>,
    /// Where every host's files go when not to the host itself (hosts found by a source).
    smb_address: Option<String>,
    /// The folder standing for `C:\` in the share; `{name}` becomes the host's name, so hosts
    /// found by a source can share one export (a simulated fleet behind one Samba).
    smb_root: Option<String>,
    smb_credential: Option<String>,
    /// The site of every host that names none.
    site: Option<String>,
    password: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: String,
    address: Option<String>,
    transport: Option<Transport>,
    port: Option<u16>,
    smb_address: Option<String>,
    smb_port: Option<u16>,
    smb_share: Option<String>,
    smb_root: Option<String>,
    sftp_root: Option<String>,
    user: Option<String>,
    credential: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    thumbprint: Option<String>,
    host_key: Option<String>,
    spn: Option<String>,
    smb_credential: Option<String>,
    site: Option<String>,
    /// Accepted by the parser only to refuse it with a clear message.
    password: Option<toml::Value>,
}

const INLINE_SECRET: &str = "inline passwords are refused: name a credential reference instead \
     (credential = \"env:VAR\", \"file:/path\" or \"prompt\")";

impl Inventory {
    /// An inventory of these hosts with no per-group settings.
    pub fn new(hosts: Vec<Host>) -> Self {
        Inventory {
            hosts,
            policy: GroupPolicy::default(),
        }
    }

    /// Read and validate an inventory file.
    pub fn load(path: &Path) -> Result<Self, InventoryError> {
        Self::parse(&read_inventory(path)?, path)
    }

    /// Parse inventory text; `path` is only used to name the file in errors. An inventory with
    /// `[[source]]` entries is refused here: its hosts exist only once `crate::targets::resolve`
    /// has asked the directory, the range or the list.
    pub fn parse(text: &str, path: &Path) -> Result<Self, InventoryError> {
        let file = InventoryFile::parse(text, path)?;
        let syntax = |message: &str| InventoryError::Syntax {
            path: path.to_path_buf(),
            message: message.into(),
        };
        if !file.sources.is_empty() {
            return Err(syntax(
                "[[source]] entries are resolved at run time (hive::targets::resolve)",
            ));
        }
        if file.inventory.hosts.is_empty() {
            return Err(syntax("no [[host]] entries"));
        }
        Ok(file.inventory)
    }

    /// Hosts in a group, in inventory order.
    pub fn group<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a Host> + 'a {
        self.hosts.iter().filter(move |h| h.groups.contains(group))
    }

    /// A host by name (case-insensitive, as Windows computer names are).
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
    }
}

/// An inventory file as written: its own hosts, and the sources that add hosts at run time with
/// the file's `[defaults]`.
#[derive(Debug, Clone)]
pub struct InventoryFile {
    pub path: PathBuf,
    /// The `[[host]]` entries.
    pub inventory: Inventory,
    /// The `[[source]]` entries, unresolved.
    pub sources: Vec<sources::SourceSpec>,
    defaults: RawDefaults,
}

impl InventoryFile {
    /// Read an inventory file, sources left unresolved.
    pub fn load(path: &Path) -> Result<Self, InventoryError> {
        Self::parse(&read_inventory(path)?, path)
    }

    /// Parse inventory text, sources left unresolved; `path` only names the file in errors. A
    /// file of `[defaults]` alone is accepted: `--range` and `--hosts-file` bring the hosts.
    pub fn parse(text: &str, path: &Path) -> Result<Self, InventoryError> {
        let raw: RawInventory = toml::from_str(text).map_err(|e| InventoryError::Syntax {
            path: path.to_path_buf(),
            message: syntax_message(text, &e),
        })?;
        let syntax = |message: String| InventoryError::Syntax {
            path: path.to_path_buf(),
            message,
        };
        if raw.defaults.password.is_some() {
            return Err(syntax(format!("[defaults]: {INLINE_SECRET}")));
        }
        let mut seen = BTreeSet::new();
        let mut hosts = Vec::with_capacity(raw.host.len());
        for h in raw.host {
            let name = h.name.clone();
            let bad = |message: String| InventoryError::Host {
                path: path.to_path_buf(),
                host: name.clone(),
                message,
            };
            validate_host_name(&h.name).map_err(&bad)?;
            if !seen.insert(h.name.to_ascii_lowercase()) {
                return Err(bad("listed twice (host names are case-insensitive)".into()));
            }
            if h.password.is_some() {
                return Err(bad(INLINE_SECRET.into()));
            }
            hosts.push(build_host(h, &raw.defaults).map_err(&bad)?);
        }
        let policy = GroupPolicy {
            defaults: raw.group_defaults,
            groups: raw.group,
        };
        let tables = std::iter::once(("[group_defaults]".to_string(), &policy.defaults)).chain(
            policy
                .groups
                .iter()
                .map(|(n, s)| (format!("[group.{n}]"), s)),
        );
        for (table, s) in tables {
            if let Some(spn) = &s.spn {
                kerberos::validate_spn(spn).map_err(|e| syntax(format!("{table}: {e}")))?;
            }
        }
        for h in &mut hosts {
            apply_group_spn(&policy, h);
        }
        Ok(InventoryFile {
            path: path.to_path_buf(),
            inventory: Inventory { hosts, policy },
            sources: raw.source,
            defaults: raw.defaults,
        })
    }

    /// A host a source found (a directory computer, a range address, a list line), with the
    /// file's `[defaults]` for everything the source does not say; checked as a `[[host]]` is.
    pub fn source_host(
        &self,
        name: &str,
        address: &str,
        groups: impl IntoIterator<Item = String>,
    ) -> Result<Host, String> {
        validate_host_name(name)?;
        let mut host = build_host(
            RawHost {
                name: name.to_string(),
                address: Some(address.to_string()),
                groups: groups.into_iter().collect(),
                ..RawHost::default()
            },
            &self.defaults,
        )?;
        apply_group_spn(&self.inventory.policy, &mut host);
        Ok(host)
    }
}

fn read_inventory(path: &Path) -> Result<String, InventoryError> {
    std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// One `[[host]]` with the file's defaults applied, every field checked.
fn build_host(h: RawHost, defaults: &RawDefaults) -> Result<Host, String> {
    if h.password.is_some() {
        return Err(INLINE_SECRET.into());
    }
    let transport = h
        .transport
        .or(defaults.transport)
        .unwrap_or(Transport::WinrmHttp);
    let address = h.address.unwrap_or_else(|| h.name.clone());
    validate_address(&address)?;
    let smb_address = h
        .smb_address
        .or_else(|| defaults.smb_address.clone())
        .unwrap_or_else(|| address.clone());
    validate_address(&smb_address)?;
    let credential_text = h
        .credential
        .or_else(|| defaults.credential.clone())
        .ok_or("no credential reference (set `credential` or [defaults] credential)")?;
    let credential = CredentialRef::parse(&credential_text)?;
    if matches!(
        credential,
        CredentialRef::SshKey(_) | CredentialRef::SshAgent
    ) && transport != Transport::Ssh
    {
        return Err(format!(
            "credential `{credential}` is an SSH key: it only applies to transport ssh"
        ));
    }
    if matches!(credential, CredentialRef::Certificate(_)) && transport != Transport::WinrmHttps {
        return Err(format!(
            "credential `{credential}` is a client certificate: certificate authentication is \
             HTTPS only (set transport = \"winrm-https\")"
        ));
    }
    let (spn, smb_credential) = kerberos_fields(
        &credential,
        transport,
        h.spn,
        (h.smb_credential, defaults.smb_credential.clone()),
        &h.name,
        &address,
    )?;
    let smb_root = h.smb_root.or_else(|| {
        defaults
            .smb_root
            .as_ref()
            .map(|r| r.replace("{name}", &h.name))
    });
    if let Some(root) = &smb_root
        && (root.split(['\\', '/']).any(|p| p == "..") || root.contains(':'))
    {
        return Err(format!(
            "smb_root `{root}` must be a folder inside the share"
        ));
    }
    if let Some(root) = &h.sftp_root
        && (root.split(['\\', '/']).any(|p| p == "..") || !root.starts_with('/'))
    {
        return Err(format!(
            "sftp_root `{root}` must be an absolute SFTP path such as /C:"
        ));
    }
    let user = h
        .user
        .or_else(|| defaults.user.clone())
        .unwrap_or_else(|| "Administrator".to_string());
    let mut groups = BTreeSet::new();
    for g in h.groups {
        validate_group(&g)?;
        groups.insert(g);
    }
    let pin = match (h.thumbprint, h.host_key) {
        (Some(_), Some(_)) => {
            return Err("set either `thumbprint` or `host_key`, not both".into());
        }
        (Some(t), None) => {
            if transport != Transport::WinrmHttps {
                return Err("`thumbprint` only applies to transport winrm-https".into());
            }
            Some(normalize_thumbprint(&t)?)
        }
        (None, Some(k)) => {
            if transport != Transport::Ssh {
                return Err("`host_key` only applies to transport ssh".into());
            }
            if !k.starts_with("SHA256:") {
                return Err(format!(
                    "host_key `{k}` must be an OpenSSH SHA256 fingerprint (SHA256:...)"
                ));
            }
            Some(k)
        }
        (None, None) => None,
    };
    let site = h.site.or_else(|| defaults.site.clone());
    if let Some(site) = &site {
        validate_group(site).map_err(|_| {
            format!("site `{site}` is not valid: use letters, digits, '-' and '_' only")
        })?;
    }
    Ok(Host {
        port: h.port.or(defaults.port).unwrap_or(transport.default_port()),
        smb_address,
        smb_port: h.smb_port.or(defaults.smb_port).unwrap_or(445),
        smb_share: h
            .smb_share
            .or_else(|| defaults.smb_share.clone())
            .unwrap_or_else(|| "C$".to_string()),
        smb_root: smb_root.unwrap_or_default(),
        sftp_root: h.sftp_root.unwrap_or_default(),
        name: h.name,
        address,
        transport,
        user,
        credential,
        groups,
        pin,
        spn,
        smb_credential,
        site,
    })
}

/// The Kerberos-only fields of a host, checked against its credential and transport.
fn kerberos_fields(
    credential: &CredentialRef,
    transport: Transport,
    spn: Option<String>,
    (own_smb, default_smb): (Option<String>, Option<String>),
    name: &str,
    address: &str,
) -> Result<(Option<String>, Option<CredentialRef>), String> {
    let needs_smb = matches!(credential, CredentialRef::Kerberos(k) if !k.has_password());
    if own_smb.is_some() && !needs_smb {
        return Err(format!(
            "`smb_credential` only applies to kerberos:ccache and kerberos:keytab credentials: \
             the password of `{credential}` logs on to SMB too"
        ));
    }
    let CredentialRef::Kerberos(_) = credential else {
        if spn.is_some() {
            return Err(format!(
                "`spn` only applies to a Kerberos credential (kerberos:...), not `{credential}`"
            ));
        }
        // `smb_credential` in [defaults] is for the Kerberos hosts among the others.
        return Ok((None, None));
    };
    if transport == Transport::Ssh {
        return Err(format!(
            "credential `{credential}` is a Kerberos logon for WinRM: it does not apply to transport ssh"
        ));
    }
    if let Some(s) = &spn {
        kerberos::validate_spn(s)?;
    }
    let smb_credential = match own_smb.or(default_smb) {
        Some(_) if !needs_smb => None,
        Some(text) => {
            let r = CredentialRef::parse(&text).map_err(|e| format!("smb_credential: {e}"))?;
            if !matches!(
                r,
                CredentialRef::Env(_) | CredentialRef::File(_) | CredentialRef::Prompt
            ) {
                return Err(format!(
                    "smb_credential `{r}` must be a password reference (env:VAR, file:/path or prompt)"
                ));
            }
            Some(r)
        }
        None => None,
    };
    Ok((
        spn.map(|t| kerberos::spn_for(name, address, Some(&t))),
        smb_credential,
    ))
}

/// A Kerberos host without its own `spn` takes the first of its groups' (or `[group_defaults]`).
fn apply_group_spn(policy: &GroupPolicy, host: &mut Host) {
    if host.spn.is_some() || !matches!(host.credential, CredentialRef::Kerberos(_)) {
        return;
    }
    let spn = policy
        .layers(host)
        .find_map(|s| s.spn.as_deref())
        .map(|t| kerberos::spn_for(&host.name, &host.address, Some(t)));
    host.spn = spn;
}

/// A TOML error as "line L, column C: what". toml's own Display quotes the offending line, and
/// that line may be a password pasted in the wrong place: say where, never what.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            format!("line {line}, column {column}: {}", e.message().trim_end())
        }
        None => e.message().trim_end().to_string(),
    }
}

/// Host names become folder names (`machines/<host>/`) and appear in remote command lines, so they
/// are held to what a NetBIOS/DNS name may contain: no separators, no `..`, no shell metacharacters.
pub fn validate_host_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['.', '-'])
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "host name `{name}` is not valid: use letters, digits, '-', '_' and '.' only"
        ))
    }
}

/// Addresses reach DNS, URLs and tool arguments: no empty labels (`..`, a DNS name cannot have
/// them) and no leading `-` or `.` (an argument that starts with `-` is an option to a tool).
fn validate_address(addr: &str) -> Result<(), String> {
    let ok = !addr.is_empty()
        && addr.len() <= 253
        && !addr.starts_with(['-', '.'])
        && !addr.contains("..")
        && addr
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '[' | ']'));
    if ok {
        Ok(())
    } else {
        Err(format!("address `{addr}` is not a host name or IP address"))
    }
}

fn validate_group(group: &str) -> Result<(), String> {
    if !group.is_empty()
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(format!(
            "group `{group}` is not valid: use letters, digits, '-' and '_' only"
        ))
    }
}

fn normalize_thumbprint(t: &str) -> Result<String, String> {
    let hex: String = t
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(format!(
            "thumbprint `{t}` is not a SHA-256 certificate thumbprint (64 hex digits)"
        ))
    }
}

#[cfg(test)]
mod tests;
