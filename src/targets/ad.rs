//! Active Directory as a source of targets: the enabled computer objects under a base DN whose
//! operating system matches a pattern, each with its DNS host name, and groups derived from the
//! OUs it sits in and the groups it is a member of, by rules the admin writes.
//!
//! Binding is an LDAP simple bind, and only inside TLS (LDAPS, or StartTLS on ldap://): a simple
//! bind in clear would hand the account's password to anyone on the path. The server certificate
//! is verified (against the system roots, or the CA file the source names); there is no switch to
//! turn that off. Kerberos (GSSAPI) binding belongs with the domain-logons work (issue #18).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};

use crate::inventory::Secret;

pub use crate::inventory::sources::{AdSource, GroupRule};

/// One computer object as the directory describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computer {
    /// Its name (the `cn`, which is the NetBIOS computer name).
    pub name: String,
    pub dn: String,
    /// `dNSHostName`: what hive connects to.
    pub dns_host_name: String,
    pub os: String,
    pub os_version: String,
    /// Groups the rules gave it.
    pub groups: BTreeSet<String>,
}

/// Why the directory could not be read. Each names the server, the account or the object.
#[derive(Debug, thiserror::Error)]
pub enum AdError {
    #[error("directory source `{url}`: {message}")]
    Config { url: String, message: String },
    #[error(
        "directory source `{url}`: a simple bind is only made inside TLS (it would send the \
         password in clear): use ldaps:// or set starttls = true (--starttls)"
    )]
    ClearText { url: String },
    #[error("CA file {path}: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error("bind password for `{bind_dn}` ({reference}): {message}")]
    Credential {
        bind_dn: String,
        reference: String,
        message: String,
    },
    #[error("cannot reach domain controller {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("TLS with domain controller {url} failed: {message}")]
    Tls { url: String, message: String },
    #[error(
        "domain controller {url} refused the bind as `{bind_dn}`: wrong password, or no such \
         account (LDAP invalidCredentials)"
    )]
    BindRefused { url: String, bind_dn: String },
    #[error("domain controller {url}: bind as `{bind_dn}` failed: {message}")]
    Bind {
        url: String,
        bind_dn: String,
        message: String,
    },
    #[error("base DN `{base}` does not exist on {url}")]
    NoBase { url: String, base: String },
    #[error("search under `{base}` on {url} failed: {message}")]
    Search {
        url: String,
        base: String,
        message: String,
    },
    #[error(
        "{} computer(s) under `{base}` have no dNSHostName, so hive cannot tell where they are: \
         {}; give them one, or leave them out with filter = \"(dNSHostName=*)\"",
        dns.len(),
        dns.join("; ")
    )]
    NoDnsName { base: String, dns: Vec<String> },
    #[error("directory source `{url}`: {0}", url = .1)]
    Timeout(String, String),
}

impl AdSource {
    /// The URL checked: LDAPS, or LDAP with StartTLS; nothing that would bind in clear.
    pub fn check(&self) -> Result<(), AdError> {
        let url = &self.ldap;
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("ldap://") {
            if !self.starttls {
                return Err(AdError::ClearText { url: url.clone() });
            }
        } else if !lower.starts_with("ldaps://") {
            return Err(AdError::Config {
                url: url.clone(),
                message: "the URL must start with ldaps:// (or ldap:// with StartTLS)".into(),
            });
        } else if self.starttls {
            return Err(AdError::Config {
                url: url.clone(),
                message: "starttls applies to ldap:// URLs; ldaps:// is TLS already".into(),
            });
        }
        for rule in &self.rule {
            rule.check().map_err(|message| AdError::Config {
                url: url.clone(),
                message,
            })?;
        }
        if self.base.trim().is_empty() {
            return Err(AdError::Config {
                url: url.clone(),
                message: "no base DN".into(),
            });
        }
        // An empty name with a password is an "unauthenticated bind": it succeeds and then
        // finds nothing, which would read as an empty directory.
        if self.bind_dn.trim().is_empty() {
            return Err(AdError::Config {
                url: url.clone(),
                message: "no bind account (bind_dn, --bind-dn)".into(),
            });
        }
        Ok(())
    }

    /// The LDAP filter: enabled computers whose operating system matches `os`, and `filter`.
    pub fn ldap_filter(&self) -> String {
        let extra = match self.filter.as_deref().map(str::trim) {
            Some(f) if f.starts_with('(') => f.to_string(),
            Some(f) if !f.is_empty() => format!("({f})"),
            _ => String::new(),
        };
        format!(
            "(&(objectCategory=computer)(!(userAccountControl:1.2.840.113556.1.4.803:=2))\
             (operatingSystem={}){extra})",
            escape_keeping_wildcards(&self.os)
        )
    }

    /// Bind, search, and turn every matching computer into a [`Computer`].
    pub async fn computers(&self, password: &Secret) -> Result<Vec<Computer>, AdError> {
        self.check()?;
        let limit = Duration::from_secs(self.timeout_secs.max(1));
        match tokio::time::timeout(limit, self.query(password, limit)).await {
            Ok(r) => r,
            Err(_) => Err(AdError::Timeout(
                format!("no answer within {} s", limit.as_secs()),
                self.ldap.clone(),
            )),
        }
    }

    async fn query(&self, password: &Secret, limit: Duration) -> Result<Vec<Computer>, AdError> {
        let url = self.ldap.clone();
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(limit)
            .set_starttls(self.starttls);
        if let Some(ca) = &self.ca_file {
            settings = settings.set_config(Arc::new(client_config(ca)?));
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &url)
            .await
            .map_err(|e| connect_error(&url, e))?;
        ldap3::drive!(conn);
        let bound = ldap
            .simple_bind(&self.bind_dn, password.expose())
            .await
            .map_err(|e| connect_error(&url, e))?;
        match bound.rc {
            0 => {}
            49 => {
                return Err(AdError::BindRefused {
                    url,
                    bind_dn: self.bind_dn.clone(),
                });
            }
            _ => {
                return Err(AdError::Bind {
                    url,
                    bind_dn: self.bind_dn.clone(),
                    message: result_text(bound.rc, &bound.text),
                });
            }
        }
        let search_error = |message: String| AdError::Search {
            url: url.clone(),
            base: self.base.clone(),
            message,
        };
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(500)),
        ];
        let attrs = vec![
            "cn",
            "dNSHostName",
            "operatingSystem",
            "operatingSystemVersion",
            "memberOf",
        ];
        let filter = self.ldap_filter();
        let mut stream = ldap
            .streaming_search_with(adapters, &self.base, Scope::Subtree, &filter, attrs)
            .await
            .map_err(|e| search_error(e.to_string()))?;
        let mut entries = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(entry)) => entries.push(SearchEntry::construct(entry)),
                Ok(None) => break,
                Err(e) => return Err(search_error(e.to_string())),
            }
        }
        let done = stream.finish().await;
        let _ = ldap.unbind().await;
        match done.rc {
            0 => {}
            32 => {
                return Err(AdError::NoBase {
                    url,
                    base: self.base.clone(),
                });
            }
            rc => return Err(search_error(result_text(rc, &done.text))),
        }
        self.to_computers(entries)
    }

    fn to_computers(&self, entries: Vec<SearchEntry>) -> Result<Vec<Computer>, AdError> {
        let mut out = Vec::with_capacity(entries.len());
        let mut no_dns = Vec::new();
        for e in entries {
            let first = |attr: &str| {
                e.attrs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(attr))
                    .and_then(|(_, v)| v.first().cloned())
                    .unwrap_or_default()
            };
            let dns = first("dNSHostName");
            if dns.trim().is_empty() {
                no_dns.push(e.dn.clone());
                continue;
            }
            let parsed = split_dn(&e.dn);
            let name = match first("cn") {
                n if !n.is_empty() => n,
                _ => parsed.first().map(|(_, v)| v.clone()).unwrap_or_default(),
            };
            let member_of: Vec<Vec<(String, String)>> = e
                .attrs
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("memberOf"))
                .flat_map(|(_, v)| v.iter().map(|g| split_dn(g)))
                .collect();
            let groups = self
                .rule
                .iter()
                .filter(|r| r.matches(&parsed, &member_of))
                .map(|r| r.group.clone())
                .collect();
            out.push(Computer {
                name,
                dn: e.dn.clone(),
                dns_host_name: dns.trim().to_string(),
                os: first("operatingSystem"),
                os_version: first("operatingSystemVersion"),
                groups,
            });
        }
        if !no_dns.is_empty() {
            no_dns.sort();
            return Err(AdError::NoDnsName {
                base: self.base.clone(),
                dns: no_dns,
            });
        }
        out.sort_by(|a, b| {
            a.name
                .to_ascii_lowercase()
                .cmp(&b.name.to_ascii_lowercase())
        });
        Ok(out)
    }
}

fn result_text(rc: u32, text: &str) -> String {
    if text.trim().is_empty() {
        format!("LDAP result {rc}")
    } else {
        format!("LDAP result {rc}: {}", text.trim())
    }
}

/// An error while connecting or binding: TLS trouble (a certificate hive cannot verify) is told
/// apart from a DC that does not answer, because the fixes differ.
fn connect_error(url: &str, e: LdapError) -> AdError {
    let message = match &e {
        LdapError::Io { source } => source.to_string(),
        other => other.to_string(),
    };
    let lower = message.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        AdError::Tls {
            url: url.to_string(),
            message,
        }
    } else {
        AdError::Unreachable {
            url: url.to_string(),
            message,
        }
    }
}

/// A rustls configuration trusting only the CAs of `path` (a PEM file).
fn client_config(path: &Path) -> Result<rustls::ClientConfig, AdError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let fail = |message: String| AdError::CaFile {
        path: path.to_path_buf(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| fail(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| fail(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(fail("holds no PEM certificate".into()));
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| fail(e.to_string()))
}

/// RFC 4515 escaping of a filter value, keeping `*` as the wildcard an admin means by it.
fn escape_keeping_wildcards(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\5c"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// A DN as (attribute, value) pairs, leaf first; `\,` and other escapes kept out of the split.
pub fn split_dn(dn: &str) -> Vec<(String, String)> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
        .into_iter()
        .filter_map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> AdSource {
        AdSource {
            ldap: "ldaps://dc01.corp.example".into(),
            base: "OU=Servers,DC=corp,DC=example".into(),
            bind_dn: "svc-hive@corp.example".into(),
            bind_credential: "env:HIVE_AD_PASSWORD".into(),
            starttls: false,
            ca_file: None,
            os: crate::inventory::sources::default_os(),
            filter: None,
            timeout_secs: 30,
            rule: vec![
                GroupRule::parse("OU=Web:web").unwrap(),
                GroupRule::parse("member:Patch-Canary:canary").unwrap(),
            ],
        }
    }

    fn entry(dn: &str, attrs: &[(&str, &[&str])]) -> SearchEntry {
        SearchEntry {
            dn: dn.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
            bin_attrs: Default::default(),
        }
    }

    #[test]
    fn clear_text_binds_are_refused_before_connecting() {
        let mut s = source();
        s.ldap = "ldap://dc01.corp.example".into();
        let err = s.check().unwrap_err().to_string();
        assert!(err.contains("only made inside TLS"), "{err}");
        s.starttls = true;
        assert!(s.check().is_ok());
        s.ldap = "ldapi:///var/run/ldapi".into();
        assert!(s.check().unwrap_err().to_string().contains("ldaps://"));
        let mut s = source();
        s.bind_dn = " ".into();
        assert!(
            s.check()
                .unwrap_err()
                .to_string()
                .contains("no bind account")
        );
    }

    #[test]
    fn filter_keeps_wildcards_and_escapes_the_rest() {
        let mut s = source();
        s.os = "Windows Server (2019)*".into();
        s.filter = Some("!(cn=LAB*)".into());
        assert_eq!(
            s.ldap_filter(),
            "(&(objectCategory=computer)(!(userAccountControl:1.2.840.113556.1.4.803:=2))\
             (operatingSystem=Windows Server \\282019\\29*)(!(cn=LAB*)))"
        );
    }

    #[test]
    fn rules_give_groups_from_ou_path_and_membership() {
        let s = source();
        let computers = s
            .to_computers(vec![
                entry(
                    "CN=WEB01,OU=Web,OU=Servers,DC=corp,DC=example",
                    &[
                        ("cn", &["WEB01"]),
                        ("dNSHostName", &["web01.corp.example"]),
                        ("operatingSystem", &["Windows Server 2019 Datacenter"]),
                        ("operatingSystemVersion", &["10.0 (17763)"]),
                        ("memberOf", &["CN=Patch-Canary,CN=Users,DC=corp,DC=example"]),
                    ],
                ),
                entry(
                    "CN=DB01,OU=Db,OU=Servers,DC=corp,DC=example",
                    &[("cn", &["DB01"]), ("dNSHostName", &["db01.corp.example"])],
                ),
                // An OU named like the rule's but as the computer's own name does not count.
                entry(
                    "CN=Web,OU=Db,OU=Servers,DC=corp,DC=example",
                    &[("cn", &["Web"]), ("dNSHostName", &["web.corp.example"])],
                ),
            ])
            .unwrap();
        let groups: Vec<(String, Vec<String>)> = computers
            .iter()
            .map(|c| (c.name.clone(), c.groups.iter().cloned().collect()))
            .collect();
        assert_eq!(
            groups,
            vec![
                ("DB01".to_string(), vec![]),
                ("Web".to_string(), vec![]),
                (
                    "WEB01".to_string(),
                    vec!["canary".to_string(), "web".to_string()]
                ),
            ]
        );
        assert_eq!(computers[2].os_version, "10.0 (17763)");
    }

    #[test]
    fn computers_without_dns_name_are_named_not_guessed() {
        let err = source()
            .to_computers(vec![
                entry(
                    "CN=OLD01,OU=Servers,DC=corp,DC=example",
                    &[("cn", &["OLD01"])],
                ),
                entry(
                    "CN=WEB01,OU=Servers,DC=corp,DC=example",
                    &[("cn", &["WEB01"]), ("dNSHostName", &["web01.corp"])],
                ),
            ])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("CN=OLD01,OU=Servers,DC=corp,DC=example")
                && err.contains("no dNSHostName")
                && !err.contains("WEB01"),
            "{err}"
        );
    }

    #[test]
    fn rule_syntax_is_checked() {
        assert!(GroupRule::parse("Web:web").is_err());
        assert!(GroupRule::parse("OU=Web").is_err());
        assert_eq!(
            GroupRule::parse("ou=Web:web").unwrap().ou.as_deref(),
            Some("Web")
        );
        assert_eq!(
            split_dn("CN=Smith\\, John,OU=Web,DC=x"),
            vec![
                ("CN".to_string(), "Smith, John".to_string()),
                ("OU".to_string(), "Web".to_string()),
                ("DC".to_string(), "x".to_string())
            ]
        );
    }
}
