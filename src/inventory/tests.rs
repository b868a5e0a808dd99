use super::*;

fn parse(text: &str) -> Result<Inventory, InventoryError> {
    Inventory::parse(text, Path::new("inv.toml"))
}

#[test]
fn defaults_apply_and_ports_follow_transport() {
    let inv = parse(
        r#"
        [defaults]
        credential = "env:HIVE_PW"
        [[host]]
        name = "web01"
        address = "127.0.1.1"
        groups = ["canary", "web"]
        [[host]]
        name = "db01"
        transport = "ssh"
        user = "admin"
        credential = "file:/etc/hive/db.cred"
        host_key = "SHA256:abc"
        "#,
    )
    .unwrap();
    assert_eq!(inv.hosts.len(), 2);
    let web = &inv.hosts[0];
    assert_eq!(web.transport, Transport::WinrmHttp);
    assert_eq!(web.port, 5985);
    assert_eq!(web.user, "Administrator");
    assert_eq!(web.credential, CredentialRef::Env("HIVE_PW".into()));
    let db = inv.host("DB01").unwrap();
    assert_eq!(db.address, "db01");
    assert_eq!(db.port, 22);
    assert_eq!(
        db.credential,
        CredentialRef::File("/etc/hive/db.cred".into())
    );
    assert_eq!(inv.group("canary").count(), 1);
}

#[test]
fn defaults_give_port_and_file_location_to_hosts_without_their_own() {
    let inv = parse(
        r#"
        [defaults]
        credential = "prompt"
        port = 15985
        smb_address = "127.0.0.1"
        smb_share = "fleet"
        smb_root = 'run7\{name}'
        [[host]]
        name = "web01"
        address = "127.0.1.1"
        [[host]]
        name = "db01"
        port = 5985
        smb_root = "db"
        "#,
    )
    .unwrap();
    let (web, db) = (&inv.hosts[0], &inv.hosts[1]);
    assert_eq!(
        (web.port, web.smb_address.as_str(), web.smb_root.as_str()),
        (15985, "127.0.0.1", "run7\\web01")
    );
    assert_eq!((db.port, db.smb_root.as_str()), (5985, "db"));
    let bad = parse(
        "[defaults]\ncredential = \"prompt\"\nsmb_root = '..\\{name}'\n[[host]]\nname = \"a\"\n",
    );
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("must be a folder inside the share")
    );
}

#[test]
fn inline_password_is_refused_naming_the_host() {
    let err = parse(
        r#"
        [[host]]
        name = "web01"
        credential = "prompt"
        password = "hunter2"
        "#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("web01") && err.contains("inline passwords are refused"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn hostile_names_are_refused() {
    for name in [
        "../etc", "a/b", "a\\b", "x;rm -rf", "a&b", "", ".hidden", "a b", "a|b",
    ] {
        let text = format!("[[host]]\nname = {name:?}\ncredential = \"prompt\"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("not valid"), "{name}: {err}");
    }
}

#[test]
fn odd_addresses_are_refused() {
    for addr in [
        "web..01",
        "-oProxyCommand=x",
        ".corp",
        "a b",
        "a/b",
        "a;b",
        "10.0.0.1%eth0",
    ] {
        let text = format!("[[host]]\nname = \"a\"\naddress = {addr:?}\ncredential = \"prompt\"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("is not a host name or IP address"),
            "{addr}: {err}"
        );
    }
    for addr in [
        "10.1.2.3",
        "db01.corp.example",
        "::1",
        "[fe80::1]",
        "web_01",
    ] {
        let text = format!("[[host]]\nname = \"a\"\naddress = {addr:?}\ncredential = \"prompt\"\n");
        assert!(parse(&text).is_ok(), "{addr}");
    }
}

#[test]
fn duplicate_hosts_and_bad_references_are_refused() {
    let dup = "[[host]]\nname=\"a\"\ncredential=\"prompt\"\n[[host]]\nname=\"A\"\ncredential=\"prompt\"\n";
    assert!(parse(dup).unwrap_err().to_string().contains("listed twice"));
    let bad = "[[host]]\nname=\"a\"\ncredential=\"hunter2\"\n";
    let err = parse(bad).unwrap_err().to_string();
    assert!(err.contains("not a reference"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "a password in the wrong field is echoed: {err}"
    );
    let none = "[[host]]\nname=\"a\"\n";
    assert!(
        parse(none)
            .unwrap_err()
            .to_string()
            .contains("no credential reference")
    );
    let unknown = "[[host]]\nname=\"a\"\ncredential=\"prompt\"\ncolour=\"red\"\n";
    assert!(parse(unknown).unwrap_err().to_string().contains("colour"));
}

/// Regression (found by tests/fuzz_inventory.rs): a password outside any known field made
/// the TOML error quote its line, password included.
#[test]
fn syntax_errors_say_where_not_what() {
    for text in [
        "password = \"hunter2\"\n[[host]]\nname=\"a\"\ncredential=\"prompt\"\n",
        "[[host]]\nname=\"a\"\ncredential=\"prompt\"\npasword = \"hunter2\"\n",
        "[[host]]\nname=\"a\"\ncredential=\"prompt\"\n\"hunter2\n",
    ] {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("inv.toml") && err.contains("line "), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    let err = parse("[[host]]\nname=\"a\"\ncredential=\"prompt\"\ncolour=1\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 4, column 1") && err.contains("colour"),
        "{err}"
    );
}

#[test]
fn thumbprint_is_normalized_and_checked() {
    let tp = "9F:86:D0:81:88:4C:7D:65:9A:2F:EA:A0:C5:5A:D0:15:A3:BF:4F:1B:2B:0B:82:2C:D1:5D:6C:15:B0:F0:0A:08";
    let text = format!(
        "[[host]]\nname=\"a\"\ntransport=\"winrm-https\"\ncredential=\"prompt\"\nthumbprint=\"{tp}\"\n"
    );
    let inv = parse(&text).unwrap();
    assert_eq!(
        inv.hosts[0].pin.as_deref(),
        Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
    );
    let wrong = "[[host]]\nname=\"a\"\ntransport=\"winrm-https\"\ncredential=\"prompt\"\nthumbprint=\"abc\"\n";
    assert!(
        parse(wrong)
            .unwrap_err()
            .to_string()
            .contains("64 hex digits")
    );
}

#[test]
fn world_readable_credential_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pw");
    std::fs::write(&path, "s3cret\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = read_secret_file(&path).unwrap_err();
    assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");
    assert!(!err.contains("s3cret"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_secret_file(&path).unwrap().expose(), "s3cret");
}

#[test]
fn secret_debug_is_redacted() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
}

#[test]
fn env_credential_resolves_and_reports_missing() {
    struct NoPrompt;
    impl SecretSource for NoPrompt {
        fn prompt(&mut self, _: &str) -> Result<Secret, String> {
            Err("no terminal".into())
        }
    }
    let inv = parse("[[host]]\nname=\"a\"\ncredential=\"env:HIVE_TEST_UNSET_VAR_XYZ\"\n").unwrap();
    let err = resolve_credential(&inv.hosts[0], &mut NoPrompt)
        .unwrap_err()
        .to_string();
    assert!(err.contains("host `a`") && err.contains("not set"), "{err}");
    let inv = parse("[[host]]\nname=\"a\"\ncredential=\"prompt\"\n").unwrap();
    let err = resolve_credential(&inv.hosts[0], &mut NoPrompt)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no terminal"), "{err}");
}

#[test]
fn group_settings_tables_parse_and_layer_group_before_defaults() {
    let text = "[group_defaults]\n[group.web]\n[[host]]\nname = \"w1\"\naddress = \"10.0.0.1\"\ncredential = \"env:P\"\ngroups = [\"web\", \"db\"]\n";
    let inv = Inventory::parse(text, Path::new("inv.toml")).unwrap();
    assert_eq!(inv.policy.groups.len(), 1);
    assert!(inv.policy.groups.contains_key("web"));
    let layers: Vec<_> = inv.policy.layers(&inv.hosts[0]).collect();
    assert_eq!(
        layers.len(),
        2,
        "web's table, then the defaults (db has none)"
    );
}

#[test]
fn unknown_group_setting_is_refused_with_its_name() {
    let text = "[group.web]\nbogus = 1\n[[host]]\nname = \"w1\"\naddress = \"10.0.0.1\"\ncredential = \"env:P\"\n";
    let err = Inventory::parse(text, Path::new("inv.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn ssh_key_references_parse_and_apply_to_ssh_only() {
    let text = "[[host]]\nname=\"a\"\ntransport=\"ssh\"\ncredential=\"ssh-key:/etc/hive/id_ed25519\"\n\
                [[host]]\nname=\"b\"\ntransport=\"ssh\"\ncredential=\"ssh-agent\"\n";
    let inv = parse(text).unwrap();
    assert_eq!(
        inv.hosts[0].credential,
        CredentialRef::SshKey("/etc/hive/id_ed25519".into())
    );
    assert_eq!(
        inv.hosts[0].credential.to_string(),
        "ssh-key:/etc/hive/id_ed25519"
    );
    assert_eq!(inv.hosts[1].credential, CredentialRef::SshAgent);
    let err = parse("[[host]]\nname=\"w\"\ncredential=\"ssh-agent\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("only applies to transport ssh"), "{err}");
}

#[test]
fn a_key_file_readable_by_others_is_refused_like_a_credential_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id_ed25519");
    std::fs::write(
        &path,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = read_key_file(&path).unwrap_err();
    assert!(
        err.contains("mode 0644") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(read_key_file(&path).is_ok());
    std::fs::write(&path, "hunter2\n").unwrap();
    let err = read_key_file(&path).unwrap_err();
    assert!(
        err.contains("not a private key") && !err.contains("hunter2"),
        "{err}"
    );
}

#[test]
fn kerberos_references_take_spn_from_host_group_or_default_and_smb_credential_only_without_password()
 {
    let text = "[defaults]\nsmb_credential = \"env:SMB\"\n\
                [group_defaults]\nspn = \"HTTP/{name}.corp.example\"\n\
                [group.sql]\nspn = \"MSSQLSvc/{address}\"\n\
                [[host]]\nname = \"w1\"\naddress = \"10.0.0.1\"\ncredential = \"kerberos:ccache\"\n\
                [[host]]\nname = \"s1\"\naddress = \"10.0.0.2\"\ncredential = \"kerberos:ccache\"\ngroups = [\"sql\"]\n\
                [[host]]\nname = \"o1\"\naddress = \"10.0.0.3\"\ncredential = \"kerberos:env:P\"\nspn = \"HTTP/own\"\n\
                [[host]]\nname = \"n1\"\ncredential = \"env:P\"\n";
    let inv = Inventory::parse(text, Path::new("inv.toml")).unwrap();
    let spns: Vec<_> = inv.hosts.iter().map(|h| h.spn.as_deref()).collect();
    assert_eq!(
        spns,
        [
            Some("HTTP/w1.corp.example"),
            Some("MSSQLSvc/10.0.0.2"),
            Some("HTTP/own"),
            None
        ]
    );
    assert_eq!(
        inv.hosts[0].smb_credential,
        Some(CredentialRef::Env("SMB".into()))
    );
    assert_eq!(inv.hosts[2].smb_credential, None, "its password serves SMB");
    assert_eq!(
        inv.hosts[3].smb_credential, None,
        "NTLM hosts have their password"
    );

    for (bad, what) in [
        (
            "credential = \"env:P\"\nspn = \"HTTP/x\"",
            "`spn` only applies",
        ),
        (
            "credential = \"kerberos:env:P\"\nsmb_credential = \"env:S\"",
            "smb_credential",
        ),
        (
            "credential = \"kerberos:ccache\"\nspn = \"nohost\"",
            "service/host",
        ),
        (
            "credential = \"kerberos:ccache\"\ntransport = \"ssh\"",
            "WinRM",
        ),
    ] {
        let err = Inventory::parse(
            &format!("[[host]]\nname = \"b1\"\n{bad}\n"),
            Path::new("inv.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("b1") && err.contains(what), "{bad}: {err}");
    }
}

#[test]
fn a_host_site_comes_from_the_host_or_the_defaults() {
    let inv = Inventory::parse(
        "[defaults]\ncredential = \"env:P\"\nsite = \"paris\"\n\
         [[host]]\nname = \"A\"\n[[host]]\nname = \"B\"\nsite = \"berlin\"\n",
        Path::new("inv.toml"),
    )
    .unwrap();
    assert_eq!(inv.hosts[0].site.as_deref(), Some("paris"));
    assert_eq!(inv.hosts[1].site.as_deref(), Some("berlin"));
    let err = Inventory::parse(
        "[[host]]\nname = \"A\"\ncredential = \"env:P\"\nsite = \"a b\"\n",
        Path::new("inv.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("site") && err.contains("inv.toml"), "{err}");
}
