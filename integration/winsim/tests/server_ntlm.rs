//! The NTLM CHALLENGE each simulated host sends, read off the wire as a client reads it: one
//! character set, the host's names, and the version of the Windows the host simulates.

mod server_common;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use server_common::RawClient;
use winsim::server::{FleetOptions, WinrmFleet};

fn negotiate(flags: u32) -> Vec<u8> {
    let mut m = b"NTLMSSP\0".to_vec();
    m.extend(1u32.to_le_bytes());
    m.extend(flags.to_le_bytes());
    m.extend([0u8; 16]);
    m
}

fn u32_at(m: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(m[at..at + 4].try_into().unwrap())
}

fn field(m: &[u8], at: usize) -> &[u8] {
    let len = u16::from_le_bytes([m[at], m[at + 1]]) as usize;
    let off = u32_at(m, at + 4) as usize;
    &m[off..off + len]
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// The CHALLENGE a host answers `flags` with, under `scheme`.
async fn challenge(url: &str, scheme: &str, flags: u32) -> Vec<u8> {
    let mut c = RawClient::connect(url).await.unwrap();
    let reply = c
        .post(
            &[(
                "Authorization",
                format!("{scheme} {}", B64.encode(negotiate(flags))),
            )],
            b"",
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    let header = reply.header("WWW-Authenticate").unwrap();
    let token = header
        .strip_prefix(&format!("{scheme} "))
        .unwrap_or_else(|| panic!("challenge not under {scheme}: {header}"));
    B64.decode(token).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_host_names_itself_and_its_windows_version() {
    let pid = std::process::id();
    let base = format!("127.{}.{}", 150 + (pid % 40), (pid / 40) % 250);
    let toml = format!(
        r#"
[defaults]
user = "Administrator"
password = "Ntlm-Passw0rd!"

[[host]]
name = "W2K3-SP2"
address = "{base}.1"
product = "Microsoft Windows Server 2003"
csd_version = "Service Pack 2"
version = "5.2.3790"

[[host]]
name = "srv2012r2-07"
address = "{base}.2"
product = "Windows Server 2012 R2 Standard"
version = "6.3.9600"

[[host]]
name = "SRV2022"
address = "{base}.3"
product = "Windows Server 2022 Datacenter"
version = "10.0.20348"
ubr = 2655
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let configs = winsim::fleet::parse(&toml, Path::new("ntlm.toml")).unwrap();
    let model = winsim::Fleet::start(&configs, dir.path()).unwrap();
    let fleet = WinrmFleet::start(model.sim_hosts(), FleetOptions::default())
        .await
        .unwrap();
    let expected: [(&str, [u8; 4]); 3] = [
        ("W2K3-SP2", [5, 2, 0xce, 0x0e]),
        ("SRV2012R2-07", [6, 3, 0x80, 0x25]),
        ("SRV2022", [10, 0, 0x7c, 0x4f]),
    ];
    for (endpoint, (netbios, version)) in fleet.endpoints().iter().zip(expected) {
        // pyspnego, rubyntlm, gss-ntlmssp and hive offer both character sets.
        let c = challenge(&endpoint.http_url, "Negotiate", 0xe208_8237).await;
        let flags = u32_at(&c, 20);
        assert_eq!(flags & 3, 1, "{netbios}: UNICODE only, flags {flags:#010x}");
        assert_ne!(flags & 0x0002_0000, 0, "{netbios}: TARGET_TYPE_SERVER");
        assert_eq!(field(&c, 12), utf16(netbios), "{netbios}: TargetName");
        let info = field(&c, 40);
        assert!(
            info.windows(utf16(netbios).len())
                .any(|w| w == utf16(netbios)),
            "{netbios}: NetBIOS names in the target info"
        );
        assert!(
            info.windows(utf16(&endpoint.name).len())
                .any(|w| w == utf16(&endpoint.name)),
            "{netbios}: DNS names in the target info"
        );
        assert_eq!(&c[48..52], &version, "{netbios}: Windows version");
        assert_eq!(c[55], 15, "{netbios}: NTLMSSP revision");

        // go-ntlmssp's NEGOTIATE (no REQUEST_TARGET) and curl's (OEM only, NTLM scheme).
        let go = challenge(&endpoint.http_url, "Negotiate", 0xa088_0001).await;
        assert_eq!(u32_at(&go, 20) & 3, 1);
        let curl = challenge(&endpoint.http_url, "NTLM", 0x0008_8206).await;
        assert_eq!(u32_at(&curl, 20) & 3, 2, "OEM for an OEM-only client");
        assert_eq!(field(&curl, 12), netbios.as_bytes());
    }
    fleet.shutdown().await;
}
