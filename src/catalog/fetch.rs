//! Downloading a catalog over HTTPS, through a proxy, verified before it replaces anything.
//!
//! hfnetchk fetched a signed mssecure.cab and could not go through an authenticating proxy; hive
//! must. The steps, in order, each of which can stop the fetch with the cached catalog untouched:
//!
//! 1. GET the document with `If-None-Match` / `If-Modified-Since` from the last successful
//!    fetch; `304 Not Modified` ends here.
//! 2. Read the body (a progress bar on a terminal; a size cap so a wrong URL cannot fill memory).
//! 3. Verify it: against a pinned SHA-256, or an ed25519 detached signature by a pinned public
//!    key (`<url>.sig` by default), or — only when the admin says so — TLS alone.
//! 4. Import it (either format), merge it into the cache (a merge never deletes), and replace
//!    the cache atomically. Only then is the new ETag remembered.
//!
//! Proxy: `--proxy` or the usual `HTTPS_PROXY`/`ALL_PROXY`/`NO_PROXY` variables (reqwest reads
//! them when no proxy is given). Proxy credentials come from the proxy URL in the environment
//! or from [`ProxyConfig::user`]/password, never from the command line, and every message
//! prints the proxy with its credentials removed.

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{ImportError, StoreError};
use super::merge::MergeReport;
use super::mssecure::ImportReport;
use super::store;
pub use super::verify::{Verification, check_signature};

/// The largest document hive accepts (the 2.7 MB CVRF month is the biggest real one).
pub const MAX_DOCUMENT_BYTES: u64 = 256 * 1024 * 1024;

/// An explicit proxy. The password is kept out of `Debug` and every message.
#[derive(Clone, Default)]
pub struct ProxyConfig {
    /// `http://host:port` (credentials in it are accepted but redacted everywhere).
    pub url: String,
    /// Proxy user for BasicAuth.
    pub user: Option<String>,
    /// Proxy password for BasicAuth.
    pub password: Option<String>,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("url", &redact_url(&self.url))
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `http://user:secret@host:3128` → `http://<credentials>@host:3128`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}<credentials>@{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// What `hive catalog fetch` needs.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The document's URL (https).
    pub url: String,
    /// The cached catalog file to merge into and replace.
    pub cache: PathBuf,
    /// How to authenticate the document.
    pub verification: Verification,
    /// An explicit proxy; `None` uses the environment (`HTTPS_PROXY`, `NO_PROXY`).
    pub proxy: Option<ProxyConfig>,
    /// Extra trusted root certificates (PEM), for an internal mirror's CA.
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// Whether to draw a progress bar (only ever drawn on a terminal).
    pub progress: bool,
    /// Connect and overall timeout.
    pub timeout: Duration,
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The server said 304: the cached catalog is current.
    NotModified,
    /// A verified document was imported and merged; the cache was replaced.
    Updated {
        /// Bytes downloaded.
        bytes: u64,
        /// SHA-256 of the document.
        sha256: String,
        /// What the document held.
        import: ImportReport,
        /// What changed in the cache.
        merge: MergeReport,
    },
}

/// A fetch failed; the cached catalog is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Bad options.
    #[error("{0}")]
    Config(String),
    /// The proxy refused the tunnel or the credentials.
    #[error("proxy {proxy} refused the connection to {url}: {detail}")]
    ProxyRefused {
        /// The proxy, credentials removed.
        proxy: String,
        /// The document URL.
        url: String,
        /// What the proxy said.
        detail: String,
    },
    /// Network or TLS trouble.
    #[error("{url}: {detail}")]
    Network {
        /// The URL.
        url: String,
        /// The error chain, flattened.
        detail: String,
    },
    /// The server answered with an error status.
    #[error("{url}: server answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The document is larger than [`MAX_DOCUMENT_BYTES`].
    #[error("{url}: document larger than {limit} bytes, refused")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        limit: u64,
    },
    /// The document failed verification; the old catalog stays in place.
    #[error("{url}: verification failed, the cached catalog was left unchanged: {reason}")]
    Verification {
        /// The URL.
        url: String,
        /// Why (expected vs actual hash, bad signature, missing signature).
        reason: String,
    },
    /// The document did not import.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The cache could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the last successful fetch of each URL returned, for conditional GET.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchState {
    /// By URL.
    pub urls: BTreeMap<String, UrlState>,
}

/// Validators of one URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlState {
    /// The ETag header.
    pub etag: Option<String>,
    /// The Last-Modified header.
    pub last_modified: Option<String>,
    /// SHA-256 of the document accepted.
    pub sha256: String,
}

/// Where the fetch state of a cache lives: next to it.
pub fn state_path(cache: &Path) -> PathBuf {
    let mut name = cache
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "catalog.json".into());
    name.push(".fetch-state.json");
    cache.with_file_name(name)
}

fn load_state(path: &Path) -> FetchState {
    // A missing or damaged state only costs one unconditional download.
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Builds the HTTP client: rustls, the proxy, extra roots.
pub fn client(opts: &FetchOptions) -> Result<reqwest::Client, FetchError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("hive/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(opts.timeout)
        .timeout(opts.timeout)
        .https_only(true);
    for pem in &opts.extra_roots_pem {
        let cert = reqwest::Certificate::from_pem(pem)
            .map_err(|e| FetchError::Config(format!("extra root certificate: {e}")))?;
        b = b.add_root_certificate(cert);
    }
    if let Some(p) = &opts.proxy {
        let mut proxy = reqwest::Proxy::all(&p.url)
            .map_err(|e| FetchError::Config(format!("proxy {}: {e}", redact_url(&p.url))))?;
        if let Some(user) = &p.user {
            proxy = proxy.basic_auth(user, p.password.as_deref().unwrap_or(""));
        }
        b = b.proxy(proxy);
    }
    b.build()
        .map_err(|e| FetchError::Config(format!("HTTP client: {}", chain(&e))))
}

/// The proxy a request to `url` goes through, for messages (credentials removed).
fn proxy_in_use(opts: &FetchOptions) -> Option<String> {
    if let Some(p) = &opts.proxy {
        return Some(redact_url(&p.url));
    }
    ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .map(|v| redact_url(&v))
}

/// Flattens an error and its sources into one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

fn network_error(opts: &FetchOptions, url: &str, e: reqwest::Error) -> FetchError {
    let detail = redact_url(&chain(&e));
    let refused = detail.contains("tunnel") || detail.contains("proxy authorization");
    match (refused, proxy_in_use(opts)) {
        (true, Some(proxy)) => FetchError::ProxyRefused {
            proxy,
            url: url.to_string(),
            detail: if detail.contains("proxy authorization required") {
                "407 proxy authentication required (check the proxy user and password)".into()
            } else {
                format!("the proxy would not open a tunnel ({detail})")
            },
        },
        _ => FetchError::Network {
            url: url.to_string(),
            detail,
        },
    }
}

/// The proxy to use for a message or a diagnosis: the explicit one or the environment's, with
/// credentials (user, password) split out.
fn proxy_target(opts: &FetchOptions) -> Option<(String, Option<(String, String)>)> {
    let (url, explicit) = match &opts.proxy {
        Some(p) => (
            p.url.clone(),
            p.user
                .clone()
                .map(|u| (u, p.password.clone().unwrap_or_default())),
        ),
        None => (
            ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))?,
            None,
        ),
    };
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let (userinfo, host) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let creds = explicit.or_else(|| {
        userinfo.map(|u| match u.split_once(':') {
            Some((a, b)) => (a.to_string(), b.to_string()),
            None => (u.to_string(), String::new()),
        })
    });
    Some((host.to_string(), creds))
}

/// After a failed tunnel, asks the proxy once more by hand what it answers to CONNECT, so the
/// admin reads "401 Unauthorized" or "403 Forbidden" instead of "tunnel error: unsuccessful"
/// (reqwest keeps only 407; tinyproxy answers a wrong password with 401).
async fn diagnose_tunnel(opts: &FetchOptions, url: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (proxy_host, creds) = proxy_target(opts)?;
    let target = reqwest::Url::parse(url).ok()?;
    let dest = format!("{}:{}", target.host_str()?, target.port_or_known_default()?);
    let mut req = format!("CONNECT {dest} HTTP/1.1\r\nHost: {dest}\r\n");
    if let Some((user, password)) = creds {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(&proxy_host).await.ok()?;
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = vec![0u8; 512];
        let n = s.read(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        text.lines().next().map(|l| l.trim().to_string())
    };
    let status = tokio::time::timeout(Duration::from_secs(5), probe)
        .await
        .ok()??;
    let code = status.split_whitespace().nth(1).unwrap_or("");
    let hint = match code {
        "401" | "407" => " (check the proxy user and password)",
        "403" => " (the proxy's policy forbids this destination or port)",
        _ => "",
    };
    Some(format!(
        "the proxy answered `{status}` to CONNECT {dest}{hint}"
    ))
}

/// Sends a request; a refused tunnel is diagnosed before it is reported.
async fn send(
    opts: &FetchOptions,
    url: &str,
    req: reqwest::RequestBuilder,
) -> Result<reqwest::Response, FetchError> {
    match req.send().await {
        Ok(r) => Ok(r),
        Err(e) => {
            let mut err = network_error(opts, url, e);
            if let FetchError::ProxyRefused { detail, .. } = &mut err
                && let Some(d) = diagnose_tunnel(opts, url).await
            {
                *detail = d;
            }
            Err(err)
        }
    }
}

/// Downloads, verifies, imports and merges; see the module docs for the order of things.
pub async fn fetch(opts: &FetchOptions) -> Result<FetchOutcome, FetchError> {
    let client = client(opts)?;
    let state_file = state_path(&opts.cache);
    let mut state = load_state(&state_file);
    let mut req = client.get(&opts.url);
    if opts.cache.exists()
        && let Some(s) = state.urls.get(&opts.url)
    {
        if let Some(etag) = &s.etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &s.last_modified {
            req = req.header(reqwest::header::IF_MODIFIED_SINCE, lm);
        }
    }
    let resp = send(opts, &opts.url, req).await?;
    if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(FetchOutcome::NotModified);
    }
    if !resp.status().is_success() {
        return Err(FetchError::Status {
            url: opts.url.clone(),
            status: resp.status().as_u16(),
        });
    }
    let header = |name: reqwest::header::HeaderName| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let etag = header(reqwest::header::ETAG);
    let last_modified = header(reqwest::header::LAST_MODIFIED);
    let body = read_body(opts, &opts.url, resp).await?;
    let sha256 = hex::encode(Sha256::digest(&body));
    verify(opts, &client, &body, &sha256).await?;

    let (fetched, import) = store::import_bytes(&opts.url, &body)?;
    // Held until the cache and the fetch state are written; the same progress line as the
    // download tells the admin why a fetch pauses here.
    let _lock = store::lock_cache(&opts.cache, |lock| {
        eprintln!(
            "waiting for another hive that is updating {} (lock {})",
            opts.cache.display(),
            lock.display()
        );
    })?;
    let mut catalog = store::load_or_empty(&opts.cache)?;
    let merge = catalog.merge(fetched);
    store::save(&opts.cache, &catalog)?;

    state.urls.insert(
        opts.url.clone(),
        UrlState {
            etag,
            last_modified,
            sha256: sha256.clone(),
        },
    );
    let json = serde_json::to_vec_pretty(&state).map_err(|e| StoreError::Invalid {
        path: state_file.clone(),
        reason: e.to_string(),
    })?;
    store::write_atomic(&state_file, &json)?;
    Ok(FetchOutcome::Updated {
        bytes: body.len() as u64,
        sha256,
        import,
        merge,
    })
}

async fn read_body(
    opts: &FetchOptions,
    url: &str,
    mut resp: reqwest::Response,
) -> Result<Vec<u8>, FetchError> {
    let total = resp.content_length();
    if total.is_some_and(|t| t > MAX_DOCUMENT_BYTES) {
        return Err(FetchError::TooLarge {
            url: url.to_string(),
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    let bar = progress_bar(opts.progress, total);
    let mut body = Vec::with_capacity(total.unwrap_or(0).min(MAX_DOCUMENT_BYTES) as usize);
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| network_error(opts, url, e))?
    {
        if body.len() as u64 + chunk.len() as u64 > MAX_DOCUMENT_BYTES {
            bar.abandon();
            return Err(FetchError::TooLarge {
                url: url.to_string(),
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        body.extend_from_slice(&chunk);
        bar.set_position(body.len() as u64);
    }
    bar.finish_and_clear();
    Ok(body)
}

/// A byte progress bar on stderr, hidden when stderr is not a terminal (logs, CI, pipes) or
/// when the document is small enough not to need one.
fn progress_bar(wanted: bool, total: Option<u64>) -> ProgressBar {
    let big = total.is_none_or(|t| t > 1024 * 1024);
    if !(wanted && big && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::no_length(),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}")
    {
        bar.set_style(style);
    }
    bar.set_message("catalog");
    bar
}

async fn verify(
    opts: &FetchOptions,
    client: &reqwest::Client,
    body: &[u8],
    sha256: &str,
) -> Result<(), FetchError> {
    let fail = |reason: String| FetchError::Verification {
        url: opts.url.clone(),
        reason,
    };
    match &opts.verification {
        Verification::TlsOnly => Ok(()),
        Verification::Sha256(expected) => {
            if expected == sha256 {
                Ok(())
            } else {
                Err(fail(format!(
                    "SHA-256 is {sha256}, the pinned value is {expected}"
                )))
            }
        }
        Verification::Ed25519 {
            public_key,
            signature_url,
        } => {
            let sig_url = signature_url
                .clone()
                .unwrap_or_else(|| format!("{}.sig", opts.url));
            let resp = send(opts, &sig_url, client.get(&sig_url)).await?;
            if !resp.status().is_success() {
                return Err(fail(format!(
                    "signature {sig_url} could not be fetched (server answered {})",
                    resp.status().as_u16()
                )));
            }
            let raw = resp
                .bytes()
                .await
                .map_err(|e| network_error(opts, &sig_url, e))?;
            check_signature(public_key, body, &raw).map_err(fail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_survive_redaction() {
        assert_eq!(
            redact_url("http://hive:s3cret@127.0.0.1:3128"),
            "http://<credentials>@127.0.0.1:3128"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:3128/x"),
            "http://127.0.0.1:3128/x"
        );
        let p = ProxyConfig {
            url: "http://u:pw@h:1".into(),
            user: Some("u".into()),
            password: Some("topsecret".into()),
        };
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("topsecret") && !dbg.contains("pw@"), "{dbg}");
    }

    #[test]
    fn state_lives_next_to_the_cache() {
        assert_eq!(
            state_path(Path::new("/var/cache/hive/catalog.json")),
            PathBuf::from("/var/cache/hive/catalog.json.fetch-state.json")
        );
    }
}
