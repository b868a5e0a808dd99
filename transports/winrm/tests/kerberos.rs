//! Kerberos against the harness's real MIT KDC (integration/services/kdc.sh).

mod kdc;

use kdc::Kdc;

/// The harness KDC issues the admin a TGT and a service ticket for a simulated host's HTTP/ SPN
/// whose key version matches the keytab the acceptors use.
#[test]
fn kinit_and_service_ticket_against_the_harness_kdc() {
    let kdc = Kdc::from_env();
    let dir = tempfile::tempdir().unwrap();
    let ccache = kdc.kinit(dir.path());
    let name = format!("FILE:{}", ccache.display());

    let list = kdc.tool("klist", &["-c", &name], "");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "klist: {}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(
        text.contains(&format!("Default principal: {}", kdc.principal())),
        "{text}"
    );
    assert!(
        text.contains(&format!("krbtgt/{0}@{0}", kdc.realm)),
        "{text}"
    );

    let spn = format!("HTTP/winsim.hive.test@{}", kdc.realm);
    let kvno = kdc.tool("kvno", &["-c", &name, &spn], "");
    let got = String::from_utf8_lossy(&kvno.stdout);
    assert!(
        kvno.status.success(),
        "kvno: {}",
        String::from_utf8_lossy(&kvno.stderr)
    );
    let keytab = kdc.tool("klist", &["-k", &kdc.keytab.display().to_string()], "");
    let table = String::from_utf8_lossy(&keytab.stdout);
    let version = got.rsplit("kvno = ").next().unwrap().trim();
    assert!(
        table
            .lines()
            .any(|l| l.contains(&spn) && l.split_whitespace().next() == Some(version)),
        "ticket kvno {version} not in keytab:\n{table}"
    );

    // A wrong password is the KDC's refusal, not a hang or a silent success.
    let bad = kdc.tool(
        "kinit",
        &["-c", &name, &kdc.principal()],
        "not-the-password\n",
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Password incorrect"));
}
