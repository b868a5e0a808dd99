//! The probe on hosts that answer as real Windows does (issue 21): what winsim's model of the probe
//! script gives for PowerShell 2.0, hidden files, denied keys, unknown variables, a byte order
//! mark and a German cmd.exe.

mod model_support;

use model_support::{fleet, run_stdin, text};
use winsim::probe::{self, ProbeOutput, ProbeRequest, RegistryQuery};

const QUIRKS: &str = r#"
[[host]]
name = "PS20"
address = "127.0.0.2"
version = "6.1.7601"
product = "Windows Server 2008 R2 Standard"
powershell_version = "2.0"

[[host]]
name = "QUIRKY"
address = "127.0.0.3"
powershell_bom = true
files = [{ path = 'C:\Program Files\Fabrikam\agent.dll', version = "2.0.0.0", hidden = true }]
registry = [{ key = 'HKLM\SOFTWARE\Fabrikam\Secure\Sub', name = "Patched", type = "REG_DWORD", value = 1 }]
registry_denied = ['HKLM\SOFTWARE\Fabrikam\Secure']

[[host]]
name = "DE2003"
address = "127.0.0.4"
version = "5.2.3790"
product = "Windows Server 2003"
language = "de-DE"
"#;

fn request() -> ProbeRequest {
    ProbeRequest {
        registry: vec![RegistryQuery {
            key: r"HKLM\SOFTWARE\Fabrikam\Secure\Sub".into(),
            value: "Patched".into(),
        }],
        files: vec![
            r"%ProgramFiles%\Fabrikam\agent.dll".into(),
            r"%FABRIKAM_HOME%\agent.dll".into(),
        ],
    }
}

async fn probe_output(host: &winsim::WinHost, script: &str) -> (u32, String) {
    let out = run_stdin(host, "powershell.exe -NoProfile -NonInteractive -", script).await;
    (out.exit_code, text(&out.stdout))
}

#[tokio::test]
async fn powershell_2_asks_for_the_legacy_route() {
    let f = fleet(QUIRKS);
    let (code, out) = probe_output(&f.host("PS20"), &probe::script(&request())).await;
    assert_eq!(code, 0);
    assert_eq!(
        probe::parse_output(&out),
        Ok(ProbeOutput::Legacy {
            powershell: "2.0".into()
        })
    );
}

#[tokio::test]
async fn hidden_files_denied_keys_and_unknown_variables_are_told_apart() {
    let f = fleet(QUIRKS);
    let host = f.host("QUIRKY");
    let (code, out) = probe_output(&host, &probe::script(&request())).await;
    assert_eq!(code, 0);
    assert!(out.starts_with('\u{feff}'), "no byte order mark: {out:?}");
    let Ok(ProbeOutput::Facts(facts)) = probe::parse_output(&out) else {
        panic!("no facts in {out:?}");
    };
    let denied = &facts.registry[0];
    assert!(!denied.found);
    assert_eq!(
        denied.error.as_deref(),
        Some("Requested registry access is not allowed.")
    );
    assert!(facts.files[0].exists, "{:?}", facts.files[0]);
    assert_eq!(facts.files[0].file_version.as_deref(), Some("2.0.0.0"));
    assert!(!facts.files[1].exists);
    assert!(
        facts.files[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("%FABRIKAM_HOME%")),
        "{:?}",
        facts.files[1]
    );
    assert_eq!(facts.installation_type, "Server");

    // A probe that forgot `Get-Item -Force` cannot read the hidden file.
    let without_force = probe::script(&request()).replace("$full -Force", "$full");
    let (_, out) = probe_output(&host, &without_force).await;
    let Ok(ProbeOutput::Facts(facts)) = probe::parse_output(&out) else {
        panic!("no facts in {out:?}");
    };
    assert!(!facts.files[0].exists);
    assert!(
        facts.files[0]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("Could not find item")),
        "{:?}",
        facts.files[0]
    );
}

#[tokio::test]
async fn a_german_cmd_exe_says_9009_in_german() {
    let f = fleet(QUIRKS);
    let out = model_support::run(&f.host("DE2003"), "powershell.exe -NoProfile -").await;
    assert_eq!(out.exit_code, 9009);
    assert_eq!(
        text(&out.stderr),
        "Der Befehl \"powershell.exe\" ist entweder falsch geschrieben oder\r\nkonnte nicht gefunden werden.\r\n"
    );
}
