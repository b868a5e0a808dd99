//! A loopback TCP proxy in front of the real Samba that can cut every connection (a broken
//! network), stop forwarding (a server that no longer answers) or carry only so many bytes a
//! second each way (a thin link), on demand.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    /// Bytes forwarded from clients to the server so far.
    pub bytes_up: Arc<AtomicU64>,
    stall: Arc<AtomicBool>,
    /// Bytes a second each way; 0: as fast as loopback goes.
    rate: Arc<AtomicU64>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(target_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let bytes_up = Arc::new(AtomicU64::new(0));
        let stall = Arc::new(AtomicBool::new(false));
        let rate = Arc::new(AtomicU64::new(0));
        let (cut, cut_rx) = watch::channel(0u64);
        let (up, st, rt) = (bytes_up.clone(), stall.clone(), rate.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let link = Link {
                    up: up.clone(),
                    stall: st.clone(),
                    rate: rt.clone(),
                };
                tokio::spawn(pump(client, server, link, cut_rx.clone()));
            }
        });
        Proxy {
            port,
            bytes_up,
            stall,
            rate,
            cut,
        }
    }

    /// Carries at most `bytes_per_sec` each way from now on (0: no limit).
    pub fn limit(&self, bytes_per_sec: u64) {
        self.rate.store(bytes_per_sec, Ordering::SeqCst);
    }

    /// Drops every open connection through the proxy (new ones still work).
    pub fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// Stops forwarding in both directions; connections stay open and silent.
    pub fn stall(&self, on: bool) {
        self.stall.store(on, Ordering::SeqCst);
    }
}

/// What the pumps share with the proxy's switches.
struct Link {
    up: Arc<AtomicU64>,
    stall: Arc<AtomicBool>,
    rate: Arc<AtomicU64>,
}

/// Holds a direction back as long as `n` bytes take at the proxy's rate, if it has one.
async fn pace(rate: &AtomicU64, n: usize) {
    let rate = rate.load(Ordering::SeqCst);
    if rate > 0 {
        tokio::time::sleep(std::time::Duration::from_secs_f64(n as f64 / rate as f64)).await;
    }
}

async fn pump(client: TcpStream, server: TcpStream, link: Link, mut cut: watch::Receiver<u64>) {
    cut.mark_unchanged();
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let Link { up, stall, rate } = link;
    let (stall2, rate2) = (stall.clone(), rate.clone());
    let upstream = async move {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            while stall.load(Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            up.fetch_add(n as u64, Ordering::SeqCst);
            if sw.write_all(&buf[..n]).await.is_err() {
                return;
            }
            pace(&rate, n).await;
        }
    };
    let downstream = async move {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            while stall2.load(Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
            pace(&rate2, n).await;
        }
    };
    tokio::select! {
        _ = async { tokio::join!(upstream, downstream) } => {}
        _ = cut.changed() => {}
    }
}
