//! The `[[source]]` entries of an inventory, as written: where hosts come from at run time (Active
//! Directory, address ranges, host lists). The inventory owns its file format; `crate::targets`
//! resolves these into hosts.

use std::path::PathBuf;

use serde::Deserialize;

/// One `[[source]]` of an inventory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SourceSpec {
    Ad(AdSource),
    Range(RangeSource),
    HostsFile(HostsFileSource),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSource {
    pub range: String,
    /// Allow a range larger than `hive::targets::range::DEFAULT_MAX_HOSTS` addresses.
    pub max_hosts: Option<usize>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostsFileSource {
    /// Relative paths are read from the inventory file's folder.
    pub path: PathBuf,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A `[[source]]` of kind `ad`, or the flags of `hive inventory from-ad`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdSource {
    /// `ldaps://dc01.corp.example` (port 636), or `ldap://...` with `starttls = true`.
    pub ldap: String,
    /// Where computers are looked for, subtree: `OU=Servers,DC=corp,DC=example`.
    pub base: String,
    /// The account of the simple bind: a DN or `user@corp.example`.
    pub bind_dn: String,
    /// Where its password comes from: `env:VAR`, `file:/path` or `prompt`.
    pub bind_credential: String,
    /// StartTLS on an `ldap://` URL.
    #[serde(default)]
    pub starttls: bool,
    /// PEM file of the CA(s) that issued the DC's certificate, instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// `operatingSystem` pattern (`*` matches anything).
    #[serde(default = "default_os")]
    pub os: String,
    /// More LDAP filter, ANDed with the built-in one: `(!(cn=LAB*))`.
    pub filter: Option<String>,
    /// Seconds to connect, bind and search.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Group rules, applied to every computer found.
    #[serde(default)]
    pub rule: Vec<GroupRule>,
}

pub(crate) fn default_os() -> String {
    "Windows*".to_string()
}

fn default_timeout() -> u64 {
    30
}

/// `ou = "Web", group = "web"`: computers under an OU named Web join group web.
/// `member_of = "Patch-Canary", group = "canary"`: members of that AD group join group canary.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRule {
    pub ou: Option<String>,
    pub member_of: Option<String>,
    pub group: String,
}

impl GroupRule {
    /// `OU=Web:web` or `member:Patch-Canary:canary`, as `--rule` takes them.
    pub fn parse(text: &str) -> Result<GroupRule, String> {
        let (what, group) = text.rsplit_once(':').ok_or_else(|| {
            format!("rule `{text}`: expected OU=NAME:GROUP or member:GROUPNAME:GROUP")
        })?;
        let rule = if let Some(ou) = what.strip_prefix("member:") {
            GroupRule {
                ou: None,
                member_of: Some(ou.to_string()),
                group: group.to_string(),
            }
        } else if what.len() > 3 && what[..3].eq_ignore_ascii_case("OU=") {
            GroupRule {
                ou: Some(what[3..].to_string()),
                member_of: None,
                group: group.to_string(),
            }
        } else {
            return Err(format!(
                "rule `{text}`: expected OU=NAME:GROUP or member:GROUPNAME:GROUP"
            ));
        };
        rule.check()?;
        Ok(rule)
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        match (&self.ou, &self.member_of) {
            (Some(v), None) | (None, Some(v)) if !v.trim().is_empty() => Ok(()),
            _ => Err(format!(
                "rule for group `{}`: set exactly one of `ou` and `member_of`",
                self.group
            )),
        }
    }

    pub(crate) fn matches(
        &self,
        dn: &[(String, String)],
        member_of: &[Vec<(String, String)>],
    ) -> bool {
        if let Some(ou) = &self.ou {
            let ou = ou.strip_prefix("OU=").unwrap_or(ou);
            // The computer's own RDN is its CN: only the containers above it count.
            return dn
                .iter()
                .skip(1)
                .any(|(k, v)| k.eq_ignore_ascii_case("OU") && v.eq_ignore_ascii_case(ou));
        }
        if let Some(group) = &self.member_of {
            let group = group.strip_prefix("CN=").unwrap_or(group);
            return member_of.iter().any(|g| {
                g.first().is_some_and(|(k, v)| {
                    k.eq_ignore_ascii_case("CN") && v.eq_ignore_ascii_case(group)
                })
            });
        }
        false
    }
}
