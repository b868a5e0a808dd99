//! The checks made from the orchestrator itself: `port` (a TCP connect) and `http` (a GET).
//! They see the host as its users do, through the network, not through an admin session.

use std::time::Duration;

use crate::inventory::Host;

/// `{address}` and `{name}` in an `http` check's URL, from the inventory.
pub fn expand_url(template: &str, host: &Host) -> String {
    template
        .replace("{address}", &host.address)
        .replace("{name}", &host.name)
}

/// A TCP connect to `address:port` within `timeout`.
pub async fn port(address: &str, port: u16, timeout: Duration) -> Result<String, String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((address, port))).await {
        Ok(Ok(_)) => Ok(format!("{address}:{port} accepts connections")),
        Ok(Err(e)) => Err(format!("{address}:{port}: {e}")),
        Err(_) => Err(format!(
            "{address}:{port}: no connection within {}s",
            timeout.as_secs()
        )),
    }
}

/// Body bytes kept for the substring test and the evidence.
const MAX_BODY: usize = 64 * 1024;

/// A GET of `url`: healthy when it answers `status` and, when given, its body contains `body`.
pub async fn http(
    url: &str,
    status: u16,
    body: Option<&str>,
    insecure_tls: bool,
    timeout: Duration,
) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .danger_accept_invalid_certs(insecure_tls)
        .no_proxy()
        .build()
        .map_err(|e| format!("{url}: {e}"))?;
    let resp = client.get(url).send().await.map_err(|e| {
        let why = if e.is_timeout() {
            format!("no answer within {}s", timeout.as_secs())
        } else if e.is_connect() {
            format!("cannot connect ({})", source_chain(&e))
        } else {
            source_chain(&e)
        };
        format!("{url}: {why}")
    })?;
    let got = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BODY)]).into_owned();
    let first = text.lines().next().unwrap_or("").trim().to_string();
    if got != status {
        return Err(format!("{url}: HTTP {got}, expected {status} ({first})"));
    }
    if let Some(want) = body
        && !text.contains(want)
    {
        return Err(format!(
            "{url}: HTTP {got} but the body lacks `{want}` ({first})"
        ));
    }
    Ok(format!("{url}: HTTP {got}"))
}

/// An error with its causes: reqwest's own message alone says "error sending request".
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One HTTP/1.1 answer per connection, whatever was asked.
    async fn server(answer: &'static str) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn a_port_is_open_or_named_closed() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = l.local_addr().unwrap().port();
        assert!(port("127.0.0.1", p, Duration::from_secs(2)).await.is_ok());
        drop(l);
        let err = port("127.0.0.1", p, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(err.starts_with(&format!("127.0.0.1:{p}: ")), "{err}");
    }

    #[tokio::test]
    async fn http_status_and_body_decide() {
        let ok = server("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nhealthy")
            .await;
        let url = format!("http://127.0.0.1:{ok}/health");
        let t = Duration::from_secs(3);
        assert!(http(&url, 200, Some("healthy"), false, t).await.is_ok());
        let err = http(&url, 200, Some("ready"), false, t).await.unwrap_err();
        assert!(err.contains("lacks `ready`"), "{err}");
        let down = server("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 8\r\nConnection: close\r\n\r\nstopping").await;
        let err = http(&format!("http://127.0.0.1:{down}/"), 200, None, false, t)
            .await
            .unwrap_err();
        assert!(err.contains("HTTP 503, expected 200 (stopping)"), "{err}");
    }

    #[tokio::test]
    async fn tls_is_verified_unless_the_check_says_insecure() {
        let (acceptor, _ca) = crate::health::tls_support::localhost_tls("hive health test CA");
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(s).await else {
                        return;
                    };
                    let mut buf = [0u8; 2048];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        let url = format!("https://127.0.0.1:{p}/health");
        let t = Duration::from_secs(3);
        let err = http(&url, 200, None, false, t).await.unwrap_err();
        assert!(err.to_lowercase().contains("certificate"), "{err}");
        assert!(http(&url, 200, Some("OK"), true, t).await.is_ok());
    }

    #[test]
    fn placeholders_come_from_the_inventory() {
        let inv = crate::inventory::Inventory::parse(
            "[[host]]\nname=\"web01\"\naddress=\"10.0.0.5\"\ncredential=\"env:P\"\n",
            std::path::Path::new("inv.toml"),
        )
        .unwrap();
        assert_eq!(
            expand_url("https://{address}/health?h={name}", &inv.hosts[0]),
            "https://10.0.0.5/health?h=web01"
        );
    }
}
