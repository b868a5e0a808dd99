//! Which addresses of a range have a WinRM or SSH listener at all. Most of a /24 is usually empty:
//! those addresses are reported once, up front, and never become failed hosts of a scan or a
//! rollout (a failure budget of "5%" must not be spent on addresses where no server exists).

use std::time::Duration;

use futures::StreamExt;
use tokio::net::TcpStream;

use crate::inventory::Host;

/// How long one address may take to accept a connection before it counts as silent.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Split `hosts` into those that accept a TCP connection on their command port (in order) and
/// those that do not.
pub async fn sweep(hosts: Vec<Host>, timeout: Duration, parallel: usize) -> (Vec<Host>, Vec<Host>) {
    let checked: Vec<(Host, bool)> = futures::stream::iter(hosts)
        .map(|h| async move {
            let target = (h.address.trim_matches(['[', ']']).to_string(), h.port);
            let open = matches!(
                tokio::time::timeout(timeout, TcpStream::connect(target)).await,
                Ok(Ok(_))
            );
            (h, open)
        })
        .buffered(parallel.max(1))
        .collect()
        .await;
    let mut open = Vec::new();
    let mut silent = Vec::new();
    for (h, ok) in checked {
        if ok { open.push(h) } else { silent.push(h) }
    }
    (open, silent)
}

/// The one line that reports silent addresses: `3 addresses have no WinRM/SSH listener: ...`.
pub fn report(silent: &[Host]) -> Option<String> {
    if silent.is_empty() {
        return None;
    }
    let list: Vec<String> = silent
        .iter()
        .map(|h| format!("{}:{}", h.address, h.port))
        .collect();
    Some(format!(
        "{} address(es) of the range have no WinRM/SSH listener, left out: {}",
        silent.len(),
        list.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::InventoryFile;

    #[tokio::test]
    async fn listening_and_silent_addresses_are_told_apart() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open_port = listener.local_addr().unwrap().port();
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let file = InventoryFile::parse(
            "[defaults]\ncredential = \"prompt\"\n[[source]]\nkind = \"range\"\nrange = \"127.0.0.1/32\"\n",
            std::path::Path::new("inv.toml"),
        )
        .unwrap();
        let mut a = file.source_host("a", "127.0.0.1", []).unwrap();
        a.port = open_port;
        let mut b = file.source_host("b", "127.0.0.1", []).unwrap();
        b.port = closed_port;
        let (open, silent) = sweep(vec![b, a], Duration::from_secs(2), 4).await;
        assert_eq!(
            open.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(
            silent.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        let line = report(&silent).unwrap();
        assert!(
            line.starts_with("1 address(es)") && line.contains(&format!("127.0.0.1:{closed_port}")),
            "{line}"
        );
        assert_eq!(report(&[]), None);
    }
}
