//! The `kinit` ticket: hive's Kerberos logon reads the credential cache KRB5CCNAME names. One
//! test in its own binary, because the cache is chosen through the process environment.

mod kdc;

use hive_winrm::kerberos::{self, KerberosCredentials, TicketSource};
use kdc::Kdc;
use libgssapi::context::{SecurityContext, ServerCtx};

#[test]
fn the_ccache_kinit_filled_logs_on_and_an_empty_or_expired_one_says_run_kinit() {
    let kdc = Kdc::from_env();
    let dir = tempfile::tempdir().unwrap();
    let ccache = dir.path().join("ccache");
    // SAFETY: the only test in this binary; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("KRB5CCNAME", format!("FILE:{}", ccache.display())) };
    let creds = KerberosCredentials {
        source: TicketSource::Ccache,
        spn: Some("HTTP/winsim.hive.test".into()),
    };

    // No kinit yet: the cache does not exist.
    let text = kerberos::initiate(&creds, "HTTP/winsim.hive.test", None)
        .expect_err("no ticket yet")
        .to_string();
    assert!(text.contains("run kinit"), "{text}");

    // After kinit, the AP-REQ from the cached TGT completes MIT's acceptor.
    assert_eq!(kdc.kinit(dir.path()), ccache);
    let (_ctx, token) =
        kerberos::initiate(&creds, "HTTP/winsim.hive.test", None).expect("ticket from the cache");
    let mut server = ServerCtx::new(None);
    server.step(&token, None).expect("acceptor takes it");
    assert!(server.is_complete());
    assert_eq!(server.source_name().unwrap().to_string(), kdc.principal());

    // A ticket that has run out: the error says to run kinit again.
    let name = format!("FILE:{}", ccache.display());
    let out = kdc.tool(
        "kinit",
        &["-l", "2s", "-c", &name, &kdc.principal()],
        &format!("{}\n", kdc.password),
    );
    assert!(
        out.status.success(),
        "kinit -l 2s: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    let text = kerberos::initiate(&creds, "HTTP/winsim.hive.test", None)
        .expect_err("the ticket has expired")
        .to_string();
    assert!(
        text.contains("expired") && text.contains("kinit again"),
        "{text}"
    );
}
