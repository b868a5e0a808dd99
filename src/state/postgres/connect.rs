//! Reaching the state database: the URL, TLS, and one connection that outlives a database
//! restart.
//!
//! TLS is on and verified unless the URL says `sslmode=disable`: `require`, `verify-ca` and
//! `verify-full` all check the server's certificate against the system's roots (or the PEM file
//! `sslrootcert` names) and its name, since a rollout's state is worth a forged server's while.
//! `prefer`, which falls back to plain text without a word, is refused. A password belongs in
//! `PGPASSWORD` or in `HIVE_STATE`, never on a command line where `ps` shows it.
//!
//! Every statement is sent with its parameter types (`query_typed`): one round trip each, no
//! prepare. A statement that meets a lost connection waits for the database to come back and is
//! sent again; the statements are written so that sending one twice does no harm (see
//! [`super::lease`]).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Row};

use super::StateError;

/// A parsed `postgres://` URL, with the TLS settings hive reads itself.
#[derive(Clone)]
pub struct StateUrl {
    config: Config,
    tls: bool,
    root_cert: Option<std::path::PathBuf>,
}

impl StateUrl {
    /// Parse a URL. `from_env` says it came from `HIVE_STATE`, where a password may be.
    pub fn parse(url: &str, from_env: bool) -> Result<StateUrl, StateError> {
        let bad = |m: String| StateError::Url(m);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad(
                "give a postgres://USER@HOST:PORT/DATABASE URL (the NDJSON journal needs no --state)"
                    .into(),
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut tls = true;
        let mut root_cert = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => {
                    tls = match v {
                        "disable" => false,
                        "require" | "verify-ca" | "verify-full" => true,
                        other => {
                            return Err(bad(format!(
                                "sslmode `{other}`: use verify-full (the default), require or disable; \
                                 `prefer` and `allow` may fall back to plain text unseen"
                            )));
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(std::path::PathBuf::from(v)),
                _ => kept.push(pair),
            }
        }
        let text = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config =
            Config::from_str(&text).map_err(|e| bad(format!("{}: {e}", redact(base))))?;
        if config.get_password().is_some() && !from_env {
            return Err(bad(
                "a password in --state shows in `ps`: put it in PGPASSWORD, or the whole URL in HIVE_STATE"
                    .into(),
            ));
        }
        if config.get_password().is_none()
            && let Ok(pw) = std::env::var("PGPASSWORD")
        {
            config.password(pw);
        }
        if config.get_user().is_none() {
            let user = std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "postgres".into());
            config.user(user);
        }
        config.application_name("hive");
        config.connect_timeout(Duration::from_secs(10));
        Ok(StateUrl {
            config,
            tls,
            root_cert,
        })
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, StateError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject as _;
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| StateError::Tls(format!("sslrootcert {}: {e}", path.display())))?;
                for c in certs {
                    let c = c.map_err(|e| {
                        StateError::Tls(format!("sslrootcert {}: {e}", path.display()))
                    })?;
                    roots.add(c).map_err(|e| {
                        StateError::Tls(format!("sslrootcert {}: {e}", path.display()))
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StateError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

/// `postgres://user@host:port/db`: what the URL names, without its password.
impl fmt::Display for StateUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let host = c
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(s) => s.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_default();
        let port = c.get_ports().first().copied().unwrap_or(5432);
        write!(
            f,
            "postgres://{}@{host}:{port}/{}",
            c.get_user().unwrap_or(""),
            c.get_dbname().unwrap_or("")
        )
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(a)) if a > s => {
            let creds = &url[s + 3..a];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..s + 3], &url[a + 1..])
        }
        _ => url.to_string(),
    }
}

/// How long a process that starts while its database is down waits for it.
pub const START_WAIT: Duration = Duration::from_secs(30);

/// One connection to the state database, shared by every task of the process.
pub struct Db {
    url: StateUrl,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
    round_trips: AtomicU64,
    /// Set while the database is unreachable, so the wait is said once.
    waiting: AtomicBool,
}

impl Db {
    /// Connect (a wrong URL, password or certificate fails here, at once; a database that is down
    /// or restarting is waited for up to [`START_WAIT`]) and bring the schema up to date.
    pub async fn open(url: StateUrl) -> Result<Arc<Db>, StateError> {
        let db = Arc::new(Db {
            url,
            client: tokio::sync::Mutex::new(None),
            round_trips: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
        });
        let client = db.connect_at_start().await?;
        *db.client.lock().await = Some(client);
        super::migrate::migrate(&db).await?;
        Ok(db)
    }

    pub fn url(&self) -> &StateUrl {
        &self.url
    }

    /// Statements sent so far (each is one round trip).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// The first connection of the process. A coordinator or worker started while the database
    /// restarts (or before it is up) waits for it, saying so once, as a running one does; what
    /// waiting cannot fix (authentication, an unknown database, a refused certificate) fails at
    /// once, and so does a database still unreachable after [`START_WAIT`].
    async fn connect_at_start(&self) -> Result<Arc<Client>, StateError> {
        self.connect_waiting(Some(std::time::Instant::now() + START_WAIT))
            .await
    }

    /// Connects, retrying with a growing pause (0.1 s to 2 s) and saying once that it waits. With
    /// a deadline (the start of a process), only a failure that waiting may fix is retried, and
    /// only until then; without one (a running process that lost its connection), every failure
    /// is retried for as long as it takes: a database restart pauses the work, it does not fail
    /// it, and a restart may briefly refuse logons too.
    async fn connect_waiting(
        &self,
        deadline: Option<std::time::Instant>,
    ) -> Result<Arc<Client>, StateError> {
        let mut pause = Duration::from_millis(100);
        loop {
            let e = match self.try_connect().await {
                Ok(c) => {
                    if self.waiting.swap(false, Ordering::Relaxed) {
                        let state = if deadline.is_some() { "up" } else { "back" };
                        eprintln!("state database {} is {state}; going on", self.url);
                    }
                    return Ok(c);
                }
                Err((e, transient)) => match deadline {
                    Some(until) if !transient || std::time::Instant::now() >= until => {
                        return Err(e);
                    }
                    _ => e,
                },
            };
            if !self.waiting.swap(true, Ordering::Relaxed) {
                match deadline {
                    Some(_) => eprintln!(
                        "{e}; waiting up to {} s for it to come up",
                        START_WAIT.as_secs()
                    ),
                    None => eprintln!("{e}; waiting for it to come back"),
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// One connection attempt; the flag says whether waiting may help (the server was not
    /// reached, or said it is starting up or shutting down).
    async fn try_connect(&self) -> Result<Arc<Client>, (StateError, bool)> {
        let tls = if self.url.tls {
            Some(tokio_postgres_rustls::MakeRustlsConnect::new(
                self.url.tls_config().map_err(|e| (e, false))?,
            ))
        } else {
            None
        };
        let connected = match tls {
            Some(tls) => self.url.config.connect(tls).await.map(|(client, conn)| {
                tokio::spawn(conn);
                client
            }),
            None => self.url.config.connect(NoTls).await.map(|(client, conn)| {
                tokio::spawn(conn);
                client
            }),
        };
        connected.map(Arc::new).map_err(|e| {
            let transient = tls_refusal(&e).is_none()
                && match e.as_db_error() {
                    // 57P03 cannot_connect_now (starting up, shutting down), 57P01 admin shutdown.
                    Some(d) => matches!(d.code().code(), "57P03" | "57P01"),
                    None => true,
                };
            (self.error(e), transient)
        })
    }

    /// The connection, reconnecting (and waiting as long as it takes) when it was lost: a
    /// database restart pauses the work, it does not fail it.
    async fn client(&self) -> Result<Arc<Client>, StateError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let c = self.connect_waiting(None).await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    fn error(&self, e: tokio_postgres::Error) -> StateError {
        if let Some(refusal) = tls_refusal(&e) {
            return StateError::Tls(format!("{}: {refusal}", self.url));
        }
        let message = match e.as_db_error() {
            Some(d) => format!("{} ({})", d.message(), d.code().code()),
            None => e.to_string(),
        };
        StateError::Database {
            url: self.url.to_string(),
            message,
        }
    }

    /// Send one statement; after a lost connection, wait for the database and send it again.
    pub async fn query(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, StateError> {
        loop {
            let c = self.client().await?;
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            match c.query_typed(sql, params).await {
                Ok(rows) => return Ok(rows),
                Err(e) if connection_lost(&e, &c) => {
                    if !self.waiting.swap(true, Ordering::Relaxed) {
                        eprintln!(
                            "state database {}: connection lost ({e}); waiting for it to come back",
                            self.url
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(self.error(e)),
            }
        }
    }

    /// Several statements in one transaction (migrations), sent as one batch.
    pub async fn batch(&self, sql: &str) -> Result<(), StateError> {
        let c = self.client().await?;
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        c.batch_execute(sql).await.map_err(|e| self.error(e))
    }
}

/// Why the server's certificate was refused, with what to change, when that is what failed: the
/// bare rustls reason (`UnknownIssuer`) does not tell an operator which URL setting fixes it.
fn tls_refusal(e: &tokio_postgres::Error) -> Option<String> {
    use rustls::CertificateError as C;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut found = None;
    while let Some(err) = cur {
        found = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if found.is_some() {
            break;
        }
        cur = err.source();
    }
    let rustls::Error::InvalidCertificate(why) = found? else {
        return found.map(|r| format!("TLS handshake refused: {r}"));
    };
    Some(match why {
        C::UnknownIssuer | C::BadSignature => format!(
            "the server's certificate is not signed by a CA hive trusts ({why:?}): give the PEM of \
             the CA that issued it in the URL, `sslrootcert=PATH`"
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => format!(
            "the server's certificate is not issued for the host name in the URL ({why:?}): use a \
             name the certificate names as the URL's host (`hostaddr=ADDRESS` keeps the address \
             connected to)"
        ),
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            format!(
                "the server's certificate is outside its validity ({why:?}): renew it, or check \
                 this machine's clock"
            )
        }
        other => format!("the server's certificate was refused: {other:?}"),
    })
}

/// The connection broke (the database restarted, the network dropped) rather than the statement
/// being refused: worth waiting and sending again.
fn connection_lost(e: &tokio_postgres::Error, c: &Client) -> bool {
    if c.is_closed() || e.is_closed() {
        return true;
    }
    match e.code() {
        // Class 08 (connection exception) and 57P01..57P03 (admin shutdown, crash shutdown,
        // cannot connect now).
        Some(code) => code.code().starts_with("08") || code.code().starts_with("57P"),
        None => e.as_db_error().is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_on_unless_disabled() {
        let u = StateUrl::parse("postgres://hive@db.example:5433/hive", false).unwrap();
        assert!(u.tls);
        let u = StateUrl::parse("postgres://hive@127.0.0.1/hive?sslmode=disable", false).unwrap();
        assert!(!u.tls);
        let u = StateUrl::parse(
            "postgres://hive@h/hive?sslmode=verify-full&sslrootcert=/ca.pem",
            false,
        )
        .unwrap();
        assert!(u.tls);
        assert_eq!(
            u.root_cert.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
    }

    #[test]
    fn prefer_is_refused() {
        let e = StateUrl::parse("postgres://hive@h/hive?sslmode=prefer", false)
            .err()
            .unwrap();
        assert!(e.to_string().contains("prefer"), "{e}");
    }

    #[test]
    fn a_password_on_the_command_line_is_refused_and_never_shown() {
        let e = StateUrl::parse("postgres://hive:s3cret@h/hive", false)
            .err()
            .unwrap();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let u = StateUrl::parse("postgres://hive:s3cret@h:5433/hive", true).unwrap();
        assert_eq!(u.to_string(), "postgres://hive@h:5433/hive");
        assert_eq!(redact("postgres://hive:s3cret@h/x"), "postgres://hive@h/x");
    }

    #[test]
    fn not_a_postgres_url() {
        assert!(StateUrl::parse("mysql://h/x", true).is_err());
    }
}
