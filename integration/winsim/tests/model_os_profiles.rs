//! Each simulated Windows release answers as that release does: `ver`, `ipconfig`, the tools that
//! ship with it, and what its WinRM service says in an Identify answer.

mod model_support;
mod server_common;

use std::sync::Arc;

use model_support::{fleet, run, text};
use server_common::{PASSWORD, RawClient};
use winsim::host::SimHost;
use winsim::server::WinrmFleet;

const RELEASES: &str = r#"
[[host]]
name = "W2K01"
address = "127.0.9.1"
product = "Microsoft Windows 2000"
csd_version = "Service Pack 4"
version = "5.0.2195"

[[host]]
name = "XP01"
address = "127.0.9.2"
product = "Microsoft Windows XP"
csd_version = "Service Pack 3"
version = "5.1.2600"

[[host]]
name = "W2K301"
address = "127.0.9.3"
product = "Microsoft Windows Server 2003"
csd_version = "Service Pack 2"
version = "5.2.3790"

[[host]]
name = "WS2019"
address = "127.0.9.4"
product = "Windows Server 2019 Datacenter"
version = "10.0.17763"
ubr = 5458
"#;

#[tokio::test]
async fn windows_2000_is_windows_2000() {
    let f = fleet(RELEASES);
    let w2k = f.host("W2K01");
    let ver = run(&w2k, "ver").await;
    assert_eq!(
        text(&ver.stdout),
        "\r\nMicrosoft Windows 2000 [Version 5.00.2195]\r\n"
    );
    let who = run(&w2k, "whoami").await;
    assert_eq!(who.exit_code, 9009, "no whoami.exe on a stock Windows 2000");
    assert!(text(&who.stderr).starts_with("'whoami' is not recognized"));
    let ip = text(&run(&w2k, "ipconfig").await.stdout);
    assert!(
        ip.starts_with("\r\nWindows 2000 IP Configuration\r\n"),
        "{ip}"
    );
    assert!(ip.contains("\r\nEthernet adapter Local Area Connection:\r\n"));
    assert!(
        ip.contains("        IP Address. . . . . . . . . . . . : 127.0.9.1\r\n"),
        "{ip}"
    );
    assert!(!ip.contains("IPv4"));
    for missing in ["wmic os get lastbootuptime", "tasklist"] {
        assert_eq!(run(&w2k, missing).await.exit_code, 9009, "{missing}");
    }
}

#[tokio::test]
async fn xp_and_2003_have_their_own_banners_and_tools() {
    let f = fleet(RELEASES);
    let xp = f.host("XP01");
    assert_eq!(
        text(&run(&xp, "ver").await.stdout),
        "\r\nMicrosoft Windows XP [Version 5.1.2600]\r\n"
    );
    assert_eq!(
        run(&xp, "whoami").await.exit_code,
        9009,
        "XP had whoami only in the Support Tools"
    );
    let w2k3 = f.host("W2K301");
    assert_eq!(
        text(&run(&w2k3, "ver").await.stdout),
        "\r\nMicrosoft Windows [Version 5.2.3790]\r\n"
    );
    let who = run(&w2k3, "whoami").await;
    assert_eq!(who.exit_code, 0);
    assert_eq!(text(&who.stdout), "w2k301\\administrator\r\n");
    let ip = text(&run(&w2k3, "ipconfig").await.stdout);
    assert!(ip.starts_with("\r\nWindows IP Configuration\r\n"), "{ip}");
    assert!(ip.contains("        IP Address. . . . . . . . . . . . : 127.0.9.3\r\n"));
    let ws = f.host("WS2019");
    assert_eq!(
        text(&run(&ws, "ver").await.stdout),
        "\r\nMicrosoft Windows [Version 10.0.17763.5458]\r\n"
    );
}

const XP_SP3: &str = r#"
[[host]]
name = "XP02"
address = "127.0.9.5"
product = "Microsoft Windows XP"
csd_version = "Service Pack 3"
version = "5.1.2600"
files = [{ path = 'C:\Windows\system32\netapi32.dll', version = "5.1.2600.5512" }]
registry = [
  { key = 'HKLM\SYSTEM\CurrentControlSet\Control\ProductOptions', name = "ProductType", type = "REG_SZ", value = "WinNT" },
]
"#;

/// A Windows XP SP3 workstation, as the legacy story's hosts are: `ipconfig` and `systeminfo` in
/// XP's layout, and an Update.exe package registered where XP SP3's go (`Updates\Windows
/// XP\SP4\KBnnnnnn`, what MS08-067's article tells an admin to verify).
#[tokio::test]
async fn xp_sp3_answers_as_xp_sp3() {
    use winsim::os::{Release, updates_sp_folder};
    let f = fleet(&format!("{RELEASES}{XP_SP3}"));
    let xp = f.host("XP02");
    assert_eq!(xp.release(), Release::WindowsXp);
    let ip = text(&run(&xp, "ipconfig").await.stdout);
    assert!(ip.starts_with("\r\nWindows IP Configuration\r\n"), "{ip}");
    assert!(
        ip.contains("\r\nEthernet adapter Local Area Connection:\r\n"),
        "{ip}"
    );
    assert!(
        ip.contains("        IP Address. . . . . . . . . . . . : 127.0.9.5\r\n"),
        "{ip}"
    );
    assert!(!ip.contains("IPv4"), "{ip}");

    let product = Release::WindowsXp.updates_product().unwrap();
    let package = winsim::installer::Package::hotfix("KB958644")
        .file_in_use(
            r"C:\Windows\system32\netapi32.dll",
            "5.1.2600.5694".parse().unwrap(),
        )
        .updates_key(product, &updates_sp_folder(3))
        .chains_itself();
    let staged = r"C:\Windows\Temp\WindowsXP-KB958644-x86-ENU.exe";
    package.write_to(&xp.host_path(staged)).unwrap();
    let out = run(&xp, &format!("{staged} /quiet /norestart")).await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    let reg = run(
        &xp,
        r#"reg query "HKLM\SOFTWARE\Microsoft\Updates\Windows XP\SP4\KB958644" /v Type"#,
    )
    .await;
    assert_eq!(reg.exit_code, 0, "{}", text(&reg.stderr));
    assert!(
        text(&reg.stdout).contains("Update"),
        "{}",
        text(&reg.stdout)
    );

    let info = run(&xp, "systeminfo").await;
    assert_eq!(info.exit_code, 0, "{}", text(&info.stderr));
    let info = text(&info.stdout);
    for line in [
        "\r\nHost Name:                 XP02\r\n",
        "\r\nOS Name:                   Microsoft Windows XP Professional\r\n",
        "\r\nOS Version:                5.1.2600 Service Pack 3 Build 2600\r\n",
        "\r\nOS Configuration:          Standalone Workstation\r\n",
        "\r\nSystem type:               X86-based PC\r\n",
        "\r\nHotfix(s):                 1 Hotfix(s) Installed.\r\n",
        "\r\n                           [01]: KB958644\r\n",
    ] {
        assert!(info.contains(line), "{line:?} in:\n{info}");
    }
    let up = info
        .lines()
        .find_map(|l| l.strip_prefix("System Up Time:            "))
        .unwrap_or_else(|| panic!("no System Up Time line: {info}"));
    assert!(up.contains(" Days, ") && up.ends_with(" Seconds"), "{up:?}");
    assert!(
        !info.contains("System Boot Time"),
        "XP counts uptime: {info}"
    );

    // Windows 2000 had systeminfo only in the Resource Kit; Server 2019 gives its boot time.
    assert_eq!(run(&f.host("W2K01"), "systeminfo").await.exit_code, 9009);
    let ws = text(&run(&f.host("WS2019"), "systeminfo").await.stdout);
    assert!(ws.contains("\r\nSystem Boot Time:          "), "{ws}");
    assert!(
        ws.contains("\r\nOS Version:                10.0.17763 N/A Build 17763\r\n"),
        "{ws}"
    );
}

const IDENTIFY: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"><s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"#;

/// An anonymous Identify, as `winrm id -r:HOST -a:none` sends it, over plain HTTP.
async fn anonymous_identify(url: &str) -> (u16, String) {
    let mut c = RawClient::connect(url).await.unwrap();
    let reply = c
        .post(
            &[(
                "Content-Type",
                "application/soap+xml;charset=UTF-8".to_string(),
            )],
            IDENTIFY.as_bytes(),
        )
        .await
        .unwrap();
    (
        reply.status,
        String::from_utf8_lossy(&reply.body).into_owned(),
    )
}

/// The same Identify, sealed on an NTLM-authenticated connection (`winrm id -r:HOST`).
async fn authenticated_identify(url: &str) -> (u16, String) {
    let mut c = RawClient::connect(url).await.unwrap();
    let logon = c.authenticate("Administrator", PASSWORD).await.unwrap();
    assert_eq!(logon.status, 200);
    c.sealed(IDENTIFY).await.unwrap()
}

#[tokio::test]
async fn server_2003_answers_identify_as_ws_management_1_1() {
    let f = fleet(&format!(
        "[defaults]\npassword = \"{PASSWORD}\"\n{RELEASES}"
    ));
    let hosts: Vec<Arc<dyn SimHost>> = ["W2K301", "WS2019", "XP01"]
        .iter()
        .map(|n| f.host(n) as Arc<dyn SimHost>)
        .collect();
    let servers = WinrmFleet::start(hosts, Default::default()).await.unwrap();
    let urls: Vec<String> = servers
        .endpoints()
        .iter()
        .map(|e| e.http_url.clone())
        .collect();
    let (status, w2k3) = anonymous_identify(&urls[0]).await;
    assert_eq!(status, 200, "{w2k3}");
    assert!(
        w2k3.contains("<wsmid:ProtocolVersion>http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd</wsmid:ProtocolVersion>"),
        "{w2k3}"
    );
    assert!(w2k3.contains("<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>"));
    assert!(
        w2k3.contains("<wsmid:ProductVersion>OS: 0.0.0 SP: 0.0 Stack: 1.1</wsmid:ProductVersion>"),
        "an anonymous Identify hides the OS; WinRM 1.1 is stack 1.1: {w2k3}"
    );
    let (status, sealed) = authenticated_identify(&urls[0]).await;
    assert_eq!(status, 200, "{sealed}");
    assert!(
        sealed.contains(
            "<wsmid:ProductVersion>OS: 5.2.3790 SP: 2.0 Stack: 1.1</wsmid:ProductVersion>"
        ),
        "{sealed}"
    );
    let (_, ws) = anonymous_identify(&urls[1]).await;
    assert!(ws.contains("Stack: 3.0</wsmid:ProductVersion>"), "{ws}");
    let (_, ws) = authenticated_identify(&urls[1]).await;
    assert!(ws.contains("OS: 10.0.17763 SP: 0.0 Stack: 3.0"), "{ws}");
    // WinRM 1.1 was an XP SP3 download too (KB936059).
    let (_, xp) = authenticated_identify(&urls[2]).await;
    assert!(xp.contains("OS: 5.1.2600 SP: 3.0 Stack: 1.1"), "{xp}");
    servers.shutdown().await;
}
