//! docs/inventory.example.toml is the inventory reference the README links to: it must parse, and
//! every host and source in it must come out as its comments say.

use std::path::Path;

use hive::inventory::{CredentialRef, InventoryFile, Transport};

#[test]
fn the_documented_inventory_parses_as_its_comments_say() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/inventory.example.toml");
    let file = InventoryFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let hosts = &file.inventory.hosts;
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "CANARY01", "WEB001", "DB01", "APP01", "FILE01", "SQL01", "DMZ01"
        ]
    );
    assert!(
        matches!(
            &hosts[6].credential,
            hive::inventory::CredentialRef::Certificate(c)
                if c.key.ends_with("dmz-client.key") && c.smb.is_some()
        ),
        "{:?}",
        hosts[6].credential
    );

    let canary = &hosts[0];
    assert_eq!(canary.transport, Transport::WinrmHttp);
    assert_eq!(canary.port, 5985);
    assert_eq!(canary.smb_share, "C$");
    assert_eq!(canary.smb_address, "10.1.2.10");
    assert_eq!(
        canary.credential,
        CredentialRef::Env("HIVE_PASSWORD".into())
    );
    assert!(canary.groups.iter().any(|g| g == "canary"));

    let db = &hosts[2];
    assert_eq!(db.transport, Transport::WinrmHttps);
    assert_eq!(db.port, 5986);
    assert_eq!(db.user, "CORP\\svc-patch");
    assert!(db.pin.is_some(), "the thumbprint pins the certificate");

    let app = &hosts[3];
    assert_eq!(app.transport, Transport::Ssh);
    assert_eq!(app.port, 22);
    assert_eq!(app.credential, CredentialRef::Prompt);
    assert!(app.pin.is_some(), "the host key is pinned");

    let file01 = &hosts[4];
    assert_eq!(
        (file01.port, file01.smb_address.as_str(), file01.smb_port),
        (15985, "10.1.4.6", 1445)
    );
    assert_eq!(
        (file01.smb_share.as_str(), file01.smb_root.as_str()),
        ("ADMIN$", "staging")
    );

    let sql = &hosts[5];
    assert_eq!(
        sql.credential.to_string(),
        "kerberos:keytab:/etc/hive/svc-patch.keytab"
    );
    assert_eq!(sql.spn.as_deref(), Some("HTTP/sql01.corp.example"));
    assert_eq!(
        sql.smb_credential,
        Some(CredentialRef::Env("HIVE_SMB_PASSWORD".into()))
    );

    assert_eq!(file.sources.len(), 3, "ad, range and hosts-file sources");
    assert!(file.inventory.policy.groups.contains_key("canary"));
}

#[test]
fn an_inline_password_in_the_example_would_be_refused() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/inventory.example.toml");
    let text = std::fs::read_to_string(&path).expect("the example");
    let with_password = text.replacen(
        "name = \"WEB001\"",
        "name = \"WEB001\"\npassword = \"hunter2\"",
        1,
    );
    let Err(err) = InventoryFile::parse(&with_password, &path) else {
        panic!("an inline password was accepted");
    };
    let err = err.to_string();
    assert!(
        err.contains("WEB001") && err.contains("inline passwords are refused"),
        "{err}"
    );
}
