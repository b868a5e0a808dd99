//! `hive inventory from-ad`: an inventory file written from Active Directory, for admins who
//! want the list reviewed and versioned rather than asked for at each run (a `[[source]]` of kind
//! `ad` does the latter).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use hive::inventory::InventoryFile;
use hive::targets::ad::{AdSource, Computer, GroupRule};

use super::args::timeout_secs;

#[derive(Subcommand)]
pub enum InventoryCommand {
    /// Print an inventory (TOML) of the enabled computers under a base DN whose operating system
    /// matches --os, grouped by --rule; e.g. `... > fleet.toml`.
    FromAd(FromAdArgs),
}

#[derive(Args)]
pub struct FromAdArgs {
    /// The domain controller: ldaps://dc01.corp.example, or ldap://... with --starttls. A simple
    /// bind is never made in clear.
    #[arg(long, value_name = "URL")]
    pub ldap: String,
    /// Where to look for computers (subtree): "OU=Servers,DC=corp,DC=example".
    #[arg(long, value_name = "DN")]
    pub base: String,
    /// The account to bind as: a DN or user@corp.example.
    #[arg(long, value_name = "ACCOUNT")]
    pub bind_dn: String,
    /// Where its password comes from: env:VAR, file:/path (0600) or prompt.
    #[arg(long, default_value = "prompt", value_name = "REF")]
    pub bind_credential: String,
    /// StartTLS on an ldap:// URL.
    #[arg(long)]
    pub starttls: bool,
    /// PEM file of the CA that issued the DC's certificate (default: the system's roots).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// operatingSystem pattern; `*` matches anything.
    #[arg(long, default_value = "Windows*", value_name = "PATTERN")]
    pub os: String,
    /// More LDAP filter, ANDed with the built-in one, e.g. "(!(cn=LAB*))".
    #[arg(long, value_name = "FILTER")]
    pub filter: Option<String>,
    /// A group rule: OU=Web:web (computers under an OU named Web join group web) or
    /// member:Patch-Canary:canary (members of that AD group join group canary). Repeatable.
    #[arg(long = "rule", value_parser = GroupRule::parse, value_name = "RULE")]
    pub rules: Vec<GroupRule>,
    /// The credential reference the written inventory's [defaults] names for the hosts.
    #[arg(long, default_value = "prompt", value_name = "REF")]
    pub credential: String,
    /// Seconds to connect, bind and search.
    #[arg(long, default_value_t = 30, value_parser = timeout_secs, value_name = "SECONDS")]
    pub timeout: u64,
}

pub fn run(cmd: InventoryCommand) -> Result<(), Box<dyn std::error::Error>> {
    match cmd {
        InventoryCommand::FromAd(args) => from_ad(args),
    }
}

fn from_ad(args: FromAdArgs) -> Result<(), Box<dyn std::error::Error>> {
    let source = AdSource {
        ldap: args.ldap,
        base: args.base,
        bind_dn: args.bind_dn,
        bind_credential: args.bind_credential,
        starttls: args.starttls,
        ca_file: args.ca_file,
        os: args.os,
        filter: args.filter,
        timeout_secs: args.timeout,
        rule: args.rules,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut prompt = super::scan::TerminalPrompt;
    let computers = runtime.block_on(hive::targets::query_directory(&source, &mut prompt))?;
    if computers.is_empty() {
        return Err(format!(
            "no enabled computer under `{}` on {} has an operating system matching `{}`",
            source.base, source.ldap, source.os
        )
        .into());
    }
    let text = render(&source, &args.credential, &computers);
    // What is printed must load: a name or group the directory allows and an inventory does
    // not is refused here, naming the computer, rather than in the first run.
    InventoryFile::parse(&text, Path::new("<from-ad output>"))?;
    print!("{text}");
    eprintln!("{} computer(s) from {}", computers.len(), source.ldap);
    Ok(())
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn render(source: &AdSource, credential: &str, computers: &[Computer]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Written by `hive inventory from-ad` from {} under {}: {} computer(s).",
        source.ldap,
        source.base,
        computers.len()
    );
    let _ = writeln!(t, "[defaults]\ncredential = {}", quoted(credential));
    for c in computers {
        let _ = writeln!(t, "\n[[host]]");
        let _ = writeln!(
            t,
            "# {} | {} {}",
            c.dn.replace('\n', " "),
            c.os.replace('\n', " "),
            c.os_version.replace('\n', " ")
        );
        let _ = writeln!(t, "name = {}", quoted(&c.name));
        let _ = writeln!(t, "address = {}", quoted(&c.dns_host_name));
        let groups: Vec<String> = c.groups.iter().map(|g| quoted(g)).collect();
        let _ = writeln!(t, "groups = [{}]", groups.join(", "));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_inventory_loads_with_names_groups_and_addresses() {
        let source = AdSource {
            ldap: "ldaps://dc01".into(),
            base: "OU=Servers,DC=corp,DC=example".into(),
            bind_dn: "svc@corp".into(),
            bind_credential: "prompt".into(),
            starttls: false,
            ca_file: None,
            os: "Windows*".into(),
            filter: None,
            timeout_secs: 5,
            rule: vec![],
        };
        let computers = vec![Computer {
            name: "WEB01".into(),
            dn: "CN=WEB01,OU=Web,OU=Servers,DC=corp,DC=example".into(),
            dns_host_name: "web01.corp.example".into(),
            os: "Windows Server 2019 Datacenter".into(),
            os_version: "10.0 (17763)".into(),
            groups: ["canary".to_string(), "web".to_string()].into(),
        }];
        let text = render(&source, "env:HIVE_PASSWORD", &computers);
        let file = InventoryFile::parse(&text, Path::new("x.toml")).unwrap();
        let h = &file.inventory.hosts[0];
        assert_eq!(
            (h.name.as_str(), h.address.as_str()),
            ("WEB01", "web01.corp.example")
        );
        assert!(h.groups.contains("canary") && h.groups.contains("web"));
        assert!(text.contains("# CN=WEB01,OU=Web,OU=Servers,DC=corp,DC=example | Windows Server 2019 Datacenter 10.0 (17763)"));
    }
}
