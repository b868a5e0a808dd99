//! TLS to the state database, against the harness's PostgreSQL (the `postgres` service turns
//! `ssl` on with a certificate of its own CA, issued for `localhost` and not for 127.0.0.1).
//!
//! A URL without `sslmode` verifies the server's certificate and its name: with the CA given it
//! connects and the server sees a TLS session; with the system's roots, for a name the certificate
//! does not hold, or under `sslmode=require`, it is refused with a message that names the URL
//! setting that fixes it, and the CLI says the same.

use std::process::{Command, Stdio};

use hive::state::postgres::{Db, StateUrl};

const HIVE: &str = env!("CARGO_BIN_EXE_hive");

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this test through integration/test.sh (it starts the postgres service)")
    })
}

/// The server by the name its certificate holds, connected at its loopback address.
fn by_name(query: &str) -> String {
    format!(
        "postgres://hive@localhost:{}/hive?hostaddr=127.0.0.1{query}",
        env("HIVE_TEST_PG_PORT")
    )
}

async fn refusal(url: &str) -> String {
    let parsed = StateUrl::parse(url, false).expect("the URL parses");
    match Db::open(parsed).await {
        Ok(_) => panic!("{url}: connected, but the certificate should have been refused"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn the_default_verifies_the_certificate_and_the_server_sees_tls() {
    let url = by_name(&format!("&sslrootcert={}", env("HIVE_TEST_PG_CA")));
    let db = Db::open(StateUrl::parse(&url, false).expect("URL"))
        .await
        .expect("a verified TLS connection");
    let rows = db
        .query(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    let row = rows.first().expect("the session's row in pg_stat_ssl");
    assert!(row.get::<_, bool>(0), "the server sees a plain session");
    let version: Option<String> = row.get(1);
    assert!(
        matches!(version.as_deref(), Some("TLSv1.2" | "TLSv1.3")),
        "{version:?}"
    );
}

#[tokio::test]
async fn a_ca_hive_does_not_trust_is_refused_with_sslrootcert_named() {
    let e = refusal(&by_name("")).await;
    assert!(e.contains("not signed by a CA hive trusts"), "{e}");
    assert!(e.contains("sslrootcert=PATH"), "{e}");
    assert!(e.contains("localhost"), "the message names the server: {e}");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let url = format!(
        "postgres://hive@127.0.0.1:{}/hive?sslrootcert={}",
        env("HIVE_TEST_PG_PORT"),
        env("HIVE_TEST_PG_CA")
    );
    let e = refusal(&url).await;
    assert!(e.contains("not issued for the host name"), "{e}");
    assert!(e.contains("127.0.0.1"), "{e}");
}

#[tokio::test]
async fn sslmode_require_verifies_too() {
    let e = refusal(&by_name("&sslmode=require")).await;
    assert!(e.contains("not signed by a CA hive trusts"), "{e}");
}

#[test]
fn the_cli_refuses_an_unverified_server_and_says_what_to_fix() {
    let repo = tempfile::tempdir().expect("repo");
    let out = Command::new(HIVE)
        .args(["report", "some-run", "--state", &by_name("")])
        .arg("--repo")
        .arg(repo.path())
        .stdin(Stdio::null())
        .output()
        .expect("run hive");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("TLS to the state database") && stderr.contains("sslrootcert=PATH"),
        "{stderr}"
    );
}
