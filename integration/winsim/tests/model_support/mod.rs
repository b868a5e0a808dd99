//! Shared helpers for the host-model tests: a fleet in a temporary folder and a `run` shortcut.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use winsim::host::{CommandOutcome, CommandRequest, SimHost};
use winsim::{Fleet, WinHost};

/// A started fleet and the temporary folder holding its C: drives.
pub struct TestFleet {
    pub fleet: Fleet,
    pub dir: tempfile::TempDir,
}

impl TestFleet {
    pub fn host(&self, name: &str) -> Arc<WinHost> {
        Arc::clone(self.fleet.host(name).expect("host in fleet"))
    }
}

pub fn fleet(toml: &str) -> TestFleet {
    let dir = tempfile::tempdir().unwrap();
    let configs = winsim::fleet::parse(toml, Path::new("test.toml")).unwrap();
    let fleet = Fleet::start(&configs, dir.path()).unwrap();
    TestFleet { fleet, dir }
}

/// One Windows Server 2019 host and one Windows 2000 SP1 host.
pub const BASIC: &str = r#"
[template.ws2019]
product = "Windows Server 2019 Datacenter"
edition = "ServerDatacenter"
version = "10.0.17763"
ubr = 5576
kbs = ["KB5035849"]
files = [{ path = 'C:\Windows\System32\ntoskrnl.exe', version = "10.0.17763.5576" }]

[template.w2k-sp1]
product = "Microsoft Windows 2000"
csd_version = "Service Pack 1"
version = "5.0.2195"
kbs = ["Q299956"]
files = [{ path = 'C:\Windows\system32\foo.dll', version = "5.0.2195.1620" }]

[[host]]
name = "WS01"
address = "127.0.1.1"
template = "ws2019"

[[host]]
name = "W2K01"
address = "127.0.1.2"
template = "w2k-sp1"
registry = [{ key = 'HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\Q300972', name = "Installed", type = "REG_DWORD", value = 1 }]
"#;

/// Runs a command line the way WinRS delivers it through cmd.exe.
pub async fn run(host: &WinHost, line: &str) -> CommandOutcome {
    host.run(CommandRequest {
        command: line.to_string(),
        ..Default::default()
    })
    .await
}

pub async fn run_stdin(host: &WinHost, line: &str, stdin: &str) -> CommandOutcome {
    host.run(CommandRequest {
        command: line.to_string(),
        stdin: stdin.as_bytes().to_vec(),
        ..Default::default()
    })
    .await
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
