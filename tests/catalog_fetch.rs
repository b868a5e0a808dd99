//! `hive catalog fetch` end to end: a real HTTPS origin on 127.0.0.1 (test CA made here with
//! rcgen), reached through the real tinyproxy instances that `integration/test.sh proxy` starts.

mod tls_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use hive::catalog::fetch::{
    self, FetchError, FetchOptions, FetchOutcome, ProxyConfig, Verification,
};
use hive::catalog::store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the catalog fetch tests through `integration/test.sh proxy`")
    })
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(rel)
}

/// A document the origin serves: body and ETag.
type Routes = Arc<Mutex<HashMap<String, (Vec<u8>, String)>>>;

/// A small HTTPS/1.1 origin: serves `routes`, answers 304 to a matching If-None-Match, records
/// each request's head.
struct Origin {
    port: u16,
    ca_pem: Vec<u8>,
    routes: Routes,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Origin {
    async fn start() -> Origin {
        let (acceptor, ca_pem) = tls_support::localhost_tls("hive catalog test CA");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Routes = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, q) = (routes.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, r, q) = (acceptor.clone(), r.clone(), q.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve(tls, r, q).await;
                    }
                });
            }
        });
        Origin {
            port,
            ca_pem: ca_pem.into_bytes(),
            routes,
            requests,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    fn put(&self, path: &str, body: Vec<u8>, etag: &str) {
        self.routes
            .lock()
            .unwrap()
            .insert(path.to_string(), (body, etag.to_string()));
    }
}

async fn serve(
    mut s: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    routes: Routes,
    log: Arc<Mutex<Vec<String>>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    log.lock().unwrap().push(head.clone());
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let inm = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("if-none-match:")
            .map(|_| l[14..].trim().to_string())
    });
    let route = routes.lock().unwrap().get(&path).cloned();
    let response = match route {
        None => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
        Some((_, etag)) if inm.as_deref() == Some(etag.as_str()) => {
            format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n")
                .into_bytes()
        }
        Some((body, etag)) => {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nETag: {etag}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(&body);
            r
        }
    };
    let _ = s.write_all(&response).await;
    let _ = s.shutdown().await;
}

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

fn ed25519(key: &SigningKey) -> Verification {
    Verification::Ed25519 {
        public_key: key.verifying_key().to_bytes(),
        signature_url: None,
    }
}

fn auth_proxy() -> ProxyConfig {
    ProxyConfig {
        url: env("HIVE_TEST_PROXY_URL"),
        user: Some(env("HIVE_TEST_PROXY_USER")),
        password: Some(env("HIVE_TEST_PROXY_PASSWORD")),
    }
}

fn options(
    origin: &Origin,
    path: &str,
    cache: &Path,
    verification: Verification,
    proxy: ProxyConfig,
) -> FetchOptions {
    FetchOptions {
        url: origin.url(path),
        cache: cache.to_path_buf(),
        verification,
        proxy: Some(proxy),
        extra_roots_pem: vec![origin.ca_pem.clone()],
        progress: false,
        timeout: Duration::from_secs(20),
    }
}

fn read(month: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("catalogs/cvrf/{month}.xml"))).unwrap()
}

/// Serves a signed document at `path` (+ `path.sig`).
fn publish(origin: &Origin, path: &str, body: Vec<u8>, etag: &str) {
    let sig = signing_key().sign(&body).to_bytes().to_vec();
    origin.put(&format!("{path}.sig"), sig, &format!("{etag}-sig"));
    origin.put(path, body, etag);
}

#[tokio::test]
async fn signed_fetch_through_an_authenticating_proxy_then_304() {
    let origin = Origin::start().await;
    publish(&origin, "/cvrf/2017-Feb.xml", read("2017-Feb"), "\"feb-1\"");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("catalog.json");
    let opts = options(
        &origin,
        "/cvrf/2017-Feb.xml",
        &cache,
        ed25519(&signing_key()),
        auth_proxy(),
    );

    let out = fetch::fetch(&opts).await.unwrap();
    let FetchOutcome::Updated { import, merge, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(import.bulletins, 5);
    assert_eq!(merge.new_bulletins, 5);
    let catalog = store::load(&cache).unwrap();
    assert!(catalog.patch("KB4010250").is_some());

    // The tunnel really went through tinyproxy.
    let log = std::fs::read_to_string(env("HIVE_TEST_PROXY_LOG")).unwrap();
    assert!(
        log.contains(&format!("CONNECT 127.0.0.1:{}", origin.port)),
        "proxy log:\n{log}"
    );

    // Second fetch: conditional GET, 304, nothing rewritten.
    let before = std::fs::read(&cache).unwrap();
    let again = fetch::fetch(&opts).await.unwrap();
    assert_eq!(again, FetchOutcome::NotModified);
    assert_eq!(std::fs::read(&cache).unwrap(), before);
    let last = origin.requests.lock().unwrap().last().cloned().unwrap();
    assert!(
        last.to_ascii_lowercase()
            .contains("if-none-match: \"feb-1\""),
        "{last}"
    );
}

#[tokio::test]
async fn a_bad_signature_leaves_the_old_catalog_in_place() {
    let origin = Origin::start().await;
    publish(&origin, "/c.xml", read("2017-Feb"), "\"v1\"");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("catalog.json");
    let opts = options(
        &origin,
        "/c.xml",
        &cache,
        ed25519(&signing_key()),
        auth_proxy(),
    );
    fetch::fetch(&opts).await.unwrap();
    let before = std::fs::read(&cache).unwrap();

    // The document changes but the signature is the old one (a tampered mirror).
    origin.put("/c.xml", read("2024-Mar"), "\"v2\"");
    let err = fetch::fetch(&opts).await.unwrap_err();
    assert!(matches!(err, FetchError::Verification { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("signature does not match"), "{msg}");
    assert!(msg.contains("left unchanged"), "{msg}");
    assert_eq!(
        std::fs::read(&cache).unwrap(),
        before,
        "the cache must not change"
    );

    // A key the publisher never used is refused as well.
    let stranger = SigningKey::from_bytes(&[7u8; 32]);
    publish(&origin, "/c.xml", read("2024-Mar"), "\"v3\"");
    let opts2 = options(&origin, "/c.xml", &cache, ed25519(&stranger), auth_proxy());
    assert!(matches!(
        fetch::fetch(&opts2).await.unwrap_err(),
        FetchError::Verification { .. }
    ));
    assert_eq!(std::fs::read(&cache).unwrap(), before);
    let mut leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    leftovers.sort();
    let name = cache.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        leftovers,
        [
            name.clone(),
            format!("{name}.fetch-state.json"),
            format!("{name}.lock")
        ],
        "catalog, fetch state and the cache's lock file, no temp files"
    );
}

#[tokio::test]
async fn a_pinned_hash_mismatch_says_both_hashes() {
    let origin = Origin::start().await;
    let body = read("2017-Feb");
    origin.put("/m.xml", body, "\"m\"");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("catalog.json");
    let (old, _) = store::import_file(&fixture("catalogs/mssecure-2001-10-04.xml")).unwrap();
    store::save(&cache, &old).unwrap();
    let before = std::fs::read(&cache).unwrap();
    let wrong = "0".repeat(64);
    let opts = options(
        &origin,
        "/m.xml",
        &cache,
        Verification::Sha256(wrong.clone()),
        auth_proxy(),
    );
    let msg = fetch::fetch(&opts).await.unwrap_err().to_string();
    assert!(
        msg.contains(&format!("the pinned value is {wrong}")),
        "{msg}"
    );
    assert!(msg.contains("SHA-256 is "), "{msg}");
    assert_eq!(std::fs::read(&cache).unwrap(), before);

    // The right pin is accepted and merges on top of the 2001 catalog.
    use sha2::Digest;
    let right = hex::encode(sha2::Sha256::digest(read("2017-Feb")));
    let opts = options(
        &origin,
        "/m.xml",
        &cache,
        Verification::Sha256(right),
        auth_proxy(),
    );
    fetch::fetch(&opts).await.unwrap();
    let c = store::load(&cache).unwrap();
    assert!(c.bulletin("MS01-033").is_some() && c.patch("KB4010250").is_some());
}

#[tokio::test]
async fn a_refusing_proxy_gives_a_clear_error() {
    let origin = Origin::start().await;
    publish(&origin, "/c.xml", read("2017-Feb"), "\"v1\"");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("catalog.json");
    let refusing = ProxyConfig {
        url: env("HIVE_TEST_PROXY_REFUSING_URL"),
        user: None,
        password: None,
    };
    let err = fetch::fetch(&options(
        &origin,
        "/c.xml",
        &cache,
        ed25519(&signing_key()),
        refusing,
    ))
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::ProxyRefused { .. }), "{err:?}");
    assert!(msg.contains(&env("HIVE_TEST_PROXY_REFUSING_URL")), "{msg}");
    assert!(msg.contains("403") && msg.contains("forbids"), "{msg}");
    assert!(!cache.exists());
}

#[tokio::test]
async fn a_wrong_proxy_password_is_named_and_never_printed() {
    let origin = Origin::start().await;
    publish(&origin, "/c.xml", read("2017-Feb"), "\"v1\"");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("catalog.json");
    let mut proxy = auth_proxy();
    proxy.password = Some("not-the-password-xyz".into());
    let err = fetch::fetch(&options(
        &origin,
        "/c.xml",
        &cache,
        ed25519(&signing_key()),
        proxy,
    ))
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("401") || msg.contains("407"), "{msg}");
    assert!(msg.contains("check the proxy user and password"), "{msg}");
    assert!(
        !msg.contains("not-the-password-xyz")
            && !format!("{err:?}").contains("not-the-password-xyz")
    );
}

#[tokio::test]
async fn the_cli_uses_https_proxy_from_the_environment() {
    let origin = Origin::start().await;
    publish(&origin, "/cvrf/2024-Mar.xml", read("2024-Mar"), "\"mar\"");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("catalog.json");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &origin.ca_pem).unwrap();
    let password = env("HIVE_TEST_PROXY_PASSWORD");
    let proxy = env("HIVE_TEST_PROXY_URL").replacen(
        "http://",
        &format!("http://{}:{}@", env("HIVE_TEST_PROXY_USER"), password),
        1,
    );
    use base64::Engine;
    let key =
        base64::engine::general_purpose::STANDARD.encode(signing_key().verifying_key().to_bytes());
    let url = origin.url("/cvrf/2024-Mar.xml");
    let cache_s = cache.display().to_string();
    let ca_s = ca.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hive"))
            .args([
                "catalog",
                "fetch",
                "--url",
                &url,
                "--cache",
                &cache_s,
                "--ca-cert",
                &ca_s,
                "--public-key",
                &key,
            ])
            .env("HTTPS_PROXY", proxy)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("179 bulletins"), "{stdout}");
    assert!(!stdout.contains(&password) && !stderr.contains(&password));
    assert_eq!(store::load(&cache).unwrap().patches.len(), 43);
}
