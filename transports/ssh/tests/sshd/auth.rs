use std::time::Duration;

use hive_ssh::{Auth, HostKeyPin, Secret, SshError, SshSession};

use crate::common::{self, env, key_auth, options, password, target};

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn password_auth_runs_a_command_as_the_user() {
    let ssh = SshSession::connect(&target(Auth::Password(password())), &options())
        .await
        .unwrap();
    let out = ssh.exec("id -un", T).await.unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        env("HIVE_TEST_SSH_USER")
    );
    assert!(out.status.success());
    ssh.disconnect().await.unwrap();
}

#[tokio::test]
async fn key_auth_runs_a_command_as_the_user() {
    let ssh = SshSession::connect(&target(key_auth()), &options())
        .await
        .unwrap();
    let out = ssh.exec("id -un", T).await.unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        env("HIVE_TEST_SSH_USER")
    );
    ssh.disconnect().await.unwrap();
}

#[tokio::test]
async fn wrong_password_is_refused_without_showing_it() {
    let wrong = "not-the-password-4711";
    let err = SshSession::connect(&target(Auth::Password(Secret::new(wrong))), &options())
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::AuthRefused { .. }), "{err:?}");
    let shown = format!("{err} / {err:?}");
    assert!(
        shown.contains(&env("HIVE_TEST_SSH_PORT")),
        "names the host: {shown}"
    );
    assert!(
        shown.contains(&env("HIVE_TEST_SSH_USER")),
        "names the user: {shown}"
    );
    assert!(!shown.contains(wrong), "leaks the password: {shown}");
}

#[tokio::test]
async fn wrong_host_key_is_refused_naming_both_fingerprints() {
    // A well-formed pin of some other key.
    let other = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    let mut t = target(Auth::Password(password()));
    t.host_key = HostKeyPin::parse(&t.host, other).unwrap();
    let err = SshSession::connect(&t, &options()).await.unwrap_err();
    match &err {
        SshError::HostKeyMismatch {
            expected,
            presented,
            host,
        } => {
            assert_eq!(expected, other);
            assert_eq!(presented, &env("HIVE_TEST_SSH_HOSTKEY_SHA256"));
            assert_eq!(host, &t.label());
        }
        e => panic!("expected a host key mismatch, got {e:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(other) && msg.contains(&env("HIVE_TEST_SSH_HOSTKEY_SHA256")),
        "{msg}"
    );
}

#[tokio::test]
async fn missing_key_file_is_a_typed_error_naming_the_path() {
    let t = target(Auth::KeyFile {
        path: "/nonexistent/hive/key".into(),
        passphrase: None,
    });
    let err = SshSession::connect(&t, &options()).await.unwrap_err();
    assert!(matches!(err, SshError::KeyFile { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/hive/key"), "{err}");
}

#[tokio::test]
async fn connect_timeout_bounds_a_silent_server() {
    // A listener that accepts and never speaks: the SSH banner never comes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut t = target(key_auth());
    t.port = port;
    let mut opts = options();
    opts.connect_timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let err = SshSession::connect(&t, &opts).await.unwrap_err();
    assert!(matches!(err, SshError::ConnectTimeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(listener);
    let _ = common::nonce();
}
