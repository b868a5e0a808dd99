//! The harness's MIT KDC (integration/services/kdc.sh) as the Kerberos tests see it.

use std::io::Write;
use std::process::{Command, Stdio};

/// A variable the `kdc` service exports.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this test through integration/test.sh (it starts the kdc service)")
    })
}

/// A credential cache holding the harness admin's TGT, as `kinit` leaves it.
pub fn kinit(dir: &std::path::Path) -> String {
    let ccache = format!("FILE:{}", dir.join("ccache").display());
    let principal = format!(
        "{}@{}",
        env("HIVE_TEST_KDC_USER"),
        env("HIVE_TEST_KDC_REALM")
    );
    let mut child = Command::new("kinit")
        .args(["-c", &ccache, &principal])
        .env("KRB5_CONFIG", env("HIVE_TEST_KDC_CONFIG"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kinit");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{}", env("HIVE_TEST_KDC_PASSWORD")).expect("password to kinit");
    drop(stdin);
    let out = child.wait_with_output().expect("kinit ends");
    assert!(
        out.status.success(),
        "kinit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ccache
}
