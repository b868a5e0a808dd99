//! Files through real Samba: the harness's `fleet` share exports the hosts' C: drives, so a DLL read
//! over SMB is the simulated host's file and an installer copied over SMB is the one the host runs.
//! The SMB peer is the real `smbclient`.

mod model_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use model_support::{run, text};
use winsim::installer::Package;
use winsim::pe::Version;

/// The Samba `fleet` share as the harness's samba service exports it.
struct FleetShare {
    root: PathBuf,
    unc: String,
    port: String,
    auth: String,
}

fn share() -> FleetShare {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run this test through integration/test.sh (it starts the samba service)")
        })
    };
    FleetShare {
        root: PathBuf::from(var("HIVE_TEST_SMB_FLEET_ROOT")),
        unc: format!(
            "//{}/{}",
            var("HIVE_TEST_SMB_HOST"),
            var("HIVE_TEST_SMB_FLEET_SHARE")
        ),
        port: var("HIVE_TEST_SMB_PORT"),
        auth: format!(
            "{}%{}",
            var("HIVE_TEST_SMB_USER"),
            var("HIVE_TEST_SMB_PASSWORD")
        ),
    }
}

impl FleetShare {
    /// Runs smbclient commands against the share; panics with smbclient's output on failure.
    fn smbclient(&self, commands: &str) -> String {
        let out = Command::new("smbclient")
            .args([
                &self.unc, "-p", &self.port, "-U", &self.auth, "-c", commands,
            ])
            .output()
            .expect("smbclient (installed by integration/test.sh)");
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success() && !all.contains("NT_STATUS_"),
            "smbclient {commands}: {all}"
        );
        all
    }
}

/// Removes the test's host folders however the test ends.
struct Cleanup(Vec<PathBuf>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn pe_version(path: &Path) -> Version {
    winsim::pe::read_version(&std::fs::read(path).unwrap())
        .unwrap()
        .file_version
}

#[tokio::test]
async fn a_dll_read_over_smb_is_the_hosts_file_and_an_installer_put_over_smb_runs() {
    let share = share();
    let name = format!("SMBT-{}", std::process::id());
    let toml = format!(
        r#"
[[host]]
name = "{name}"
address = "127.0.8.1"
version = "5.2.3790"
files = [{{ path = 'C:\Windows\system32\foo.dll', version = "5.0.2195.1620" }}]
reboot = {{ downtime_ms = 50 }}
"#
    );
    let configs = winsim::fleet::parse(&toml, Path::new("smb.toml")).unwrap();
    let fleet = winsim::Fleet::start(&configs, &share.root).unwrap();
    let _cleanup = Cleanup(vec![share.root.join(&name)]);
    let host = fleet.host(&name).unwrap();
    let local = tempfile::tempdir().unwrap();

    // Read the DLL over SMB, with Windows' spelling of the path, and parse it locally.
    let got = local.path().join("foo.dll");
    share.smbclient(&format!(
        r#"get "{name}\WINDOWS\System32\FOO.DLL" "{}""#,
        got.display()
    ));
    assert_eq!(pe_version(&got), "5.0.2195.1620".parse().unwrap());

    // Stage an installer over SMB into ADMIN$\Temp (C:\Windows\Temp) and run it on the host.
    let pkg = local.path().join("Q300001.exe");
    Package::hotfix("Q300001")
        .file(
            r"C:\Windows\system32\foo.dll",
            "5.0.2195.4000".parse().unwrap(),
        )
        .hotfix_key()
        .write_to(&pkg)
        .unwrap();
    share.smbclient(&format!(
        r#"mkdir "{name}\Windows\Temp\hive"; put "{}" "{name}\Windows\Temp\hive\Q300001.exe""#,
        pkg.display()
    ));
    let out = run(host, r"C:\Windows\Temp\hive\Q300001.exe -z -m -q").await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));

    // The hash the host computes is the hash of the bytes that went over the wire.
    let hash = text(
        &run(
            host,
            r"certutil -hashfile C:\Windows\Temp\hive\Q300001.exe SHA256",
        )
        .await
        .stdout,
    );
    let want = winsim_hash(&std::fs::read(&pkg).unwrap());
    // (certutil before Windows 10 prints the hex in spaced pairs.)
    assert!(hash.replace(' ', "").contains(&want), "{hash}");

    // And the replaced DLL, read back over SMB, carries the new version.
    let after = local.path().join("foo-after.dll");
    share.smbclient(&format!(
        r#"get "{name}\Windows\system32\foo.dll" "{}""#,
        after.display()
    ));
    assert_eq!(pe_version(&after), "5.0.2195.4000".parse().unwrap());
}

fn winsim_hash(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
