//! The test server is not shaped to our client: unmodified pywinrm and pypsrp (NTLM with message
//! encryption) drive the same server, on the same connection types, while hive's client does too.

mod common;

use common::{PASSWORD, Peer, USER, python, workspace_root};
use hive_winrm::{ClientConfig, Credentials, Endpoint, Session};

#[tokio::test]
async fn pywinrm_and_pypsrp_run_commands_through_the_same_server() {
    let peer = Peer::start(&[]);
    let script = workspace_root().join("integration/winrm_peer/check_clients.py");
    let port = peer.port.to_string();
    let child = tokio::process::Command::new(python())
        .arg(&script)
        .args([port.as_str(), USER, PASSWORD])
        .output();

    // Our client runs at the same time on its own connection.
    let ep = Endpoint::parse(&format!("http://127.0.0.1:{}/wsman", peer.port)).unwrap();
    let mut s = Session::new(ClientConfig::new(ep, Credentials::ntlm(USER, PASSWORD))).unwrap();
    let mine = s.run_cmd("echo hive", None).await.unwrap();
    assert_eq!(mine.stdout_text(), "hive\n");

    let out = child.await.unwrap();
    assert!(
        out.status.success(),
        "check_clients.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    let triple = |k: &str| {
        let a = v[k].as_sequence().unwrap();
        (
            a[0].as_i64().unwrap(),
            a[1].as_str().unwrap().to_string(),
            a[2].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        triple("pywinrm"),
        (5, "pywinrm|".into(), "to-stderr\n".into())
    );
    assert_eq!(triple("pypsrp"), (6, "pypsrp\n".into(), "e2\n".into()));
    assert_eq!(
        v["pywinrm_wrong_password"].as_str(),
        Some("InvalidCredentialsError")
    );
    s.close().await.unwrap();
}
