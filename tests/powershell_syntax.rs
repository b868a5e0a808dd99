//! The PowerShell syntax gate: every PowerShell text hive sends, rendered for awkward inputs, must
//! parse with the tree-sitter PowerShell grammar (no PowerShell runs on the build machines).
//!
//! The scripts are written into a temporary folder, one `.ps1` each, and checked by
//! `integration/syntax-gate/check-powershell.cjs` (node + web-tree-sitter + the grammar's .wasm),
//! which `integration/test.sh` installs and names in `HIVE_TEST_PS_GATE`. The gate is also run on a
//! deliberately broken script, so a gate that passes everything cannot go unnoticed.

use std::path::{Path, PathBuf};
use std::process::Command;

use hive::catalog::model::Catalog;
use hive::scan::run::PreparedProbe;
use winsim::probe::{ProbeRequest, RegistryQuery, script};

fn gate() -> String {
    std::env::var("HIVE_TEST_PS_GATE").unwrap_or_else(|_| {
        panic!(
            "HIVE_TEST_PS_GATE is not set: run this test through integration/test.sh \
             (it installs the PowerShell syntax gate)"
        )
    })
}

/// Every PowerShell text hive sends, by a name for the file, rendered with inputs chosen to break
/// quoting: quotes, `'@`, `$`, backticks, non-ASCII, `/` in registry names, every root key.
fn scripts() -> Vec<(&'static str, String)> {
    let awkward = ProbeRequest {
        registry: vec![
            RegistryQuery {
                key: r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Ciphers\RC4 128/128".into(),
                value: "Enabled".into(),
            },
            RegistryQuery {
                key: r"HKU\.DEFAULT\Software\Fabrikam 'quoted' $x `tick".into(),
                value: String::new(),
            },
            RegistryQuery {
                key: r"HKCR\CLSID\{00000000-0000-0000-0000-000000000000}".into(),
                value: "'@".into(),
            },
            RegistryQuery {
                key: r"HKCU\Software\Überwachung".into(),
                value: "Größe".into(),
            },
        ],
        files: vec![
            r"%windir%\system32\it's.dll".into(),
            r"%ProgramFiles(x86)%\Fabrikam\'@".into(),
            "C:\\emoji\\\u{1f600}\\\"quoted\".dll".into(),
        ],
    };
    let catalog = Catalog::default();
    let prepared = PreparedProbe::new(&catalog);
    vec![
        ("probe-empty", script(&ProbeRequest::default())),
        ("probe-awkward", script(&awkward)),
        ("probe-catalog", prepared.script.script().to_string()),
        (
            "probe-catalog-without-files",
            prepared.script_without_files.script().to_string(),
        ),
        (
            "hash-plain",
            hive::deploy::stage::hash_script(r"C:\Windows\Temp\hive\KB5035845.msu"),
        ),
        (
            "hash-awkward",
            hive::deploy::stage::hash_script("C:\\Windows\\Temp\\it's $x `y\\Größe.msu"),
        ),
        (
            "follow-plain",
            hive::remote::follow::script(
                r"C:\Windows\Temp\hive\r1\KB5035845.msu",
                16 << 20,
                hive::remote::follow::IDLE,
            ),
        ),
        (
            "follow-awkward",
            hive::remote::follow::script(
                "C:\\Windows\\Temp\\it's $x `y\\'@Größe.msu",
                0,
                std::time::Duration::ZERO,
            ),
        ),
    ]
}

fn write_all(dir: &Path, scripts: &[(&str, String)]) {
    for (name, text) in scripts {
        std::fs::write(dir.join(format!("{name}.ps1")), text).expect("write a script");
    }
}

fn run_gate(dir: &Path) -> (i32, String) {
    let out = Command::new("node")
        .arg(gate())
        .arg(dir)
        .output()
        .expect("run node (integration/test.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hive-ps-gate-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temp folder");
    dir
}

#[test]
fn every_powershell_text_hive_sends_parses() {
    let dir = temp_dir("all");
    let scripts = scripts();
    write_all(&dir, &scripts);
    let (code, text) = run_gate(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "the syntax gate failed:\n{text}");
    assert!(
        text.contains(&format!("{0} of {0} scripts parse", scripts.len())),
        "{text}"
    );
}

#[test]
fn the_gate_fails_on_broken_scripts() {
    let dir = temp_dir("broken");
    let probe = script(&ProbeRequest::default());
    let broken = [
        // A closing brace lost at the end of the probe.
        (
            "probe-unclosed",
            probe.trim_end().trim_end_matches('}').to_string(),
        ),
        // The grammar gap the probe works around: a one-line switch without `;`.
        (
            "switch-without-semicolons",
            "$k = switch ($v) { 'String' {'REG_SZ'} default {'REG_BINARY'} }\n".to_string(),
        ),
        // An unterminated string, as a quoting bug would leave.
        (
            "hash-unquoted",
            "(Get-FileHash -LiteralPath 'C:\\it's.msu' -Algorithm SHA256).Hash\n".to_string(),
        ),
    ];
    for (name, text) in &broken {
        let one = dir.join(name);
        std::fs::create_dir_all(&one).expect("create a folder");
        write_all(&one, &[(name, text.clone())]);
        let (code, out) = run_gate(&one);
        assert_eq!(code, 1, "{name} passed the gate:\n{out}");
        assert!(out.contains("ERROR") || out.contains("MISSING"), "{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
