//! The fleet's HTTP health endpoint: `GET /<host name>/health` answers from that host's model,
//! as an application's health page would on the real machine.
//!
//! One listener serves every host (the test fleets share 127.0.0.1, one port per host would not
//! fit the inventory's single `http` template): an inventory reaches host `web01` with
//! `http = "http://127.0.0.1:<port>/{name}/health"`. The answer:
//! - `200 OK`, body `OK`: the host is up and every automatic service runs;
//! - `503`, body naming why: the host is down (rebooting), a service is stopped (a package broke
//!   it, see `services.rs`), or the fault `health_endpoint_fails_after` says the endpoint
//!   fails from this request on;
//! - `404`: no such host.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::model::{Power, WinHost};

/// A running health endpoint; stops when dropped.
pub struct HealthServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HealthServer {
    /// Serves `hosts` on `ip`, on a port the kernel picks.
    pub async fn start(hosts: Vec<Arc<WinHost>>, ip: IpAddr) -> std::io::Result<HealthServer> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
        let addr = listener.local_addr()?;
        let hosts = Arc::new(hosts);
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let hosts = hosts.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = 0;
                    // The request line is all that matters; read until the headers end.
                    while got < buf.len() {
                        match stream.read(&mut buf[got..]).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got += n,
                        }
                        if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    let request = String::from_utf8_lossy(&buf[..got]);
                    let path = request
                        .lines()
                        .next()
                        .and_then(|l| l.split_whitespace().nth(1))
                        .unwrap_or("/");
                    let (status, body) = answer(&hosts, path);
                    let reason = match status {
                        200 => "OK",
                        404 => "Not Found",
                        _ => "Service Unavailable",
                    };
                    let response = format!(
                        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Ok(HealthServer { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The inventory `http` check that reaches each host's endpoint.
    pub fn url_template(&self) -> String {
        format!("http://{}/{{name}}/health", self.addr)
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The status and body for `GET path`.
fn answer(hosts: &[Arc<WinHost>], path: &str) -> (u16, String) {
    let mut parts = path.trim_matches('/').split('/');
    let (Some(name), Some("health"), None) = (parts.next(), parts.next(), parts.next()) else {
        return (404, "no such page\n".into());
    };
    let Some(host) = hosts.iter().find(|h| h.name.eq_ignore_ascii_case(name)) else {
        return (404, format!("no host {name}\n"));
    };
    let mut st = host.settled();
    if !matches!(st.power, Power::Up) {
        return (503, "host is down\n".into());
    }
    let n = st.health_requests;
    st.health_requests += 1;
    if host
        .faults
        .health_endpoint_fails_after
        .is_some_and(|after| n >= after)
    {
        return (503, "application error (fault plan)\n".into());
    }
    match st.services.all_automatic_running() {
        Ok(()) => (200, "OK\n".into()),
        Err(why) => (503, format!("{why}\n")),
    }
}
