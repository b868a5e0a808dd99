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

async fn logged_on_user(auth: Auth) -> String {
    let ssh = SshSession::connect(&target(auth), &options())
        .await
        .unwrap();
    let out = ssh.exec("id -un", T).await.unwrap();
    ssh.disconnect().await.unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn rsa_key_text_logs_on_with_sha2_signatures() {
    let path = std::path::PathBuf::from(env("HIVE_TEST_SSH_KEY_RSA"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("BEGIN RSA PRIVATE KEY"), "a PEM RSA key");
    let auth = Auth::Key {
        text: Secret::new(text),
        origin: path,
    };
    assert_eq!(logged_on_user(auth).await, env("HIVE_TEST_SSH_USER"));
}

#[tokio::test]
async fn ed25519_key_text_logs_on() {
    let path = std::path::PathBuf::from(env("HIVE_TEST_SSH_KEY"));
    let auth = Auth::Key {
        text: Secret::new(std::fs::read_to_string(&path).unwrap()),
        origin: path,
    };
    assert_eq!(logged_on_user(auth).await, env("HIVE_TEST_SSH_USER"));
}

#[tokio::test]
async fn agent_keys_log_on_ed25519_and_rsa_alone() {
    for var in ["HIVE_TEST_SSH_KEY", "HIVE_TEST_SSH_KEY_RSA"] {
        let key = std::path::PathBuf::from(env(var));
        let agent = common::TestAgent::start(&[&key]);
        let auth = Auth::Agent {
            socket: agent.socket.clone(),
        };
        assert_eq!(
            logged_on_user(auth).await,
            env("HIVE_TEST_SSH_USER"),
            "{var}"
        );
    }
}

#[tokio::test]
async fn agent_tries_each_key_until_the_server_accepts_one() {
    let (_dir, stranger, _) = common::unauthorized_key();
    let key = std::path::PathBuf::from(env("HIVE_TEST_SSH_KEY"));
    let agent = common::TestAgent::start(&[&stranger, &key]);
    let auth = Auth::Agent {
        socket: agent.socket.clone(),
    };
    assert_eq!(logged_on_user(auth).await, env("HIVE_TEST_SSH_USER"));
}

#[tokio::test]
async fn a_key_the_server_refuses_is_named_by_its_fingerprint() {
    let (_dir, stranger, fingerprint) = common::unauthorized_key();
    let err = SshSession::connect(
        &target(Auth::KeyFile {
            path: stranger.clone(),
            passphrase: None,
        }),
        &options(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SshError::AuthRefused { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&fingerprint) && msg.contains("authorized_keys"),
        "says which key to authorize where: {msg}"
    );

    let agent = common::TestAgent::start(&[&stranger]);
    let err = SshSession::connect(
        &target(Auth::Agent {
            socket: agent.socket.clone(),
        }),
        &options(),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&fingerprint) && msg.contains("none of the agent's keys"),
        "{msg}"
    );
}

#[tokio::test]
async fn an_empty_or_missing_agent_says_what_to_do() {
    let agent = common::TestAgent::start(&[]);
    let err = SshSession::connect(
        &target(Auth::Agent {
            socket: agent.socket.clone(),
        }),
        &options(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("ssh-add"), "{err}");
    let err = SshSession::connect(
        &target(Auth::Agent {
            socket: "/nonexistent/agent.sock".into(),
        }),
        &options(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("SSH_AUTH_SOCK"), "{err}");
}
