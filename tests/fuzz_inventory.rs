//! The inventory parser never panics or hangs, and whatever it accepts is safe to use.
//!
//! An inventory is admin-written TOML, often generated from a CMDB export: damaged files and odd
//! values are everyday input. Seeds are inventories that use every field; mutations break the
//! TOML (brackets, quotes, escapes, nesting bombs), write hostile values into every string and
//! number (traversal, shell metacharacters, ports out of range, credential references), and cut,
//! duplicate or repeat whole tables. Every result must be either an inventory whose every host
//! name, address and group passed validation, or an error that names the file.
//!
//! Budgets: see tests/fuzz_support (`HIVE_FUZZ_SECONDS=600 cargo test -p hive --test
//! fuzz_inventory -- --nocapture --test-threads 1`).

mod fuzz_support;

use std::collections::BTreeSet;
use std::path::Path;

use fuzz_support::{Grammar, Outcome, apply, mutations};
use hive::inventory::{Inventory, validate_host_name};

const SEEDS: [&str; 3] = [
    r#"
[defaults]
transport = "winrm-http"
user = "Administrator"
credential = "env:HIVE_PASSWORD"
smb_port = 445
smb_share = "C$"

[[host]]
name = "web01"
address = "10.1.2.3"
groups = ["canary", "web"]

[[host]]
name = "db01"
address = "db01.corp.example"
transport = "winrm-https"
port = 5986
thumbprint = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
credential = "file:/etc/hive/db.cred"

[[host]]
name = "ssh01"
transport = "ssh"
user = "admin"
host_key = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
credential = "prompt"
smb_address = "127.0.0.1"
smb_root = "hosts/ssh01"
groups = ["linux-jump"]
"#,
    "[[host]]\nname = \"a\"\ncredential = \"prompt\"\n",
    r#"
[defaults]
credential = "env:PW"
[[host]]
name = "CANARY01"
address = "127.0.1.1"
port = 15985
smb_address = "127.0.0.1"
smb_port = 1445
smb_share = "fleet"
smb_root = "CANARY01"
groups = ["canary"]
[[host]]
name = "WEB001"
address = "127.0.1.2"
groups = ["web"]
"#,
];

const TOML: Grammar = Grammar {
    bytes: &[
        b'[', b']', b'=', b'"', b'\'', b'\n', b'#', b'{', b'}', b',', b'.', b'\\', b' ', b'0',
        b'-', 0, 0xC3,
    ],
    tokens: &[
        "[[host]]\nname = \"web01\"\ncredential = \"prompt\"\n",
        "[defaults]\n",
        "[",
        "{a=",
        "a.",
        "\"\"\"",
        "'''",
        "\\u0000",
        "\\uD800",
        "password = \"hunter2\"\n",
        "port = 99999\n",
        "groups = [[\"x\"]]\n",
        "colour = \"red\"\n",
    ],
    values: &[
        "",
        "..",
        "../etc",
        "..\\\\windows",
        "a/b",
        "a\\\\b",
        "a&b",
        "a|b",
        "a^b",
        "%PATH%",
        "a\\\"b",
        "'",
        "$x",
        "`id`",
        "a\\nb",
        "a b",
        "a(1)",
        "é",
        "-x",
        ".x",
        "CON",
        "env:",
        "env:1X",
        "env:A B",
        "file:",
        "file:/etc/shadow",
        "prompt",
        "winrm-https",
        "ssh",
        "SHA256:",
        "hosts/../../x",
        "C:",
        "0",
        "-1",
        "65536",
        "99999999999999999999",
        "1.5",
        "true",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ],
    slots: &[(b"= \"", b'"'), (b"[\"", b'"'), (b"port = ", b'\n')],
    nests: &[],
};

const FILE: &str = "inventories/fuzz.toml";

/// Whatever was accepted must have passed every validation a later step relies on.
fn accepted_is_safe(inv: &Inventory) {
    assert!(!inv.hosts.is_empty());
    let mut seen = BTreeSet::new();
    for h in &inv.hosts {
        validate_host_name(&h.name).unwrap();
        assert!(seen.insert(h.name.to_ascii_lowercase()), "{} twice", h.name);
        for a in [&h.address, &h.smb_address] {
            assert!(
                !a.is_empty()
                    && a.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c)),
                "address {a:?}"
            );
        }
        for g in &h.groups {
            assert!(
                !g.is_empty()
                    && g.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)),
                "group {g:?}"
            );
        }
        assert!(
            !h.smb_root.split(['\\', '/']).any(|p| p == "..") && !h.smb_root.contains(':'),
            "smb_root {:?}",
            h.smb_root
        );
        // A credential reference never carries the secret itself into Debug output.
        let _ = format!("{h:?}");
    }
}

fn check(bytes: &[u8], dir: &Path) -> Outcome {
    let result = match std::str::from_utf8(bytes) {
        Ok(text) => Inventory::parse(text, Path::new(FILE)),
        // Not UTF-8: the file reader must say so, naming the file.
        Err(_) => {
            let path = dir.join("fuzz.toml");
            std::fs::write(&path, bytes).unwrap();
            let r = Inventory::load(&path);
            if let Err(e) = &r {
                assert!(e.to_string().contains("fuzz.toml"), "{e}");
            }
            r
        }
    };
    match result {
        Ok(inv) => {
            accepted_is_safe(&inv);
            Outcome::Accepted
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("fuzz.toml"),
                "error does not name the file: {msg}"
            );
            assert!(
                !msg.contains("hunter2"),
                "an inline password is echoed: {msg}"
            );
            Outcome::Refused
        }
    }
}

#[test]
fn the_seeds_parse() {
    for s in SEEDS {
        let inv = Inventory::parse(s, Path::new(FILE)).unwrap();
        accepted_is_safe(&inv);
    }
}

#[test]
fn inventory_parser_survives_mutations() {
    let dir = tempfile::tempdir().unwrap();
    let tally = fuzz_support::run(
        "inventory parser",
        1500,
        (0..SEEDS.len(), mutations(&TOML, 0)),
        |(i, muts)| check(&apply(&TOML, SEEDS[i].as_bytes(), &[], &muts), dir.path()),
    );
    assert!(tally.accepted > 0, "no mutated inventory parsed at all");
}
