//! The SMB face of one simulated host: a TCP front on loopback that relays to the harness's real
//! Samba and plays the host's SMB-side faults out on the wire.
//!
//! One smbd serves every simulated host's C$, so Samba cannot know that one host is down or that
//! its network breaks in the middle of a write. A client that reaches a host's C$ through its
//! front meets what it would meet on that host: connections refused while the host is down, open
//! ones closed when it goes down, and the fault plan's SMB items, each carried out once per host:
//! `smb_disconnect_after_bytes` (the connection drops after that many bytes from the client) and
//! `smb_power_off_after_bytes` (at that point the host loses power for good).
//!
//! ```no_run
//! # async fn demo(host: std::sync::Arc<winsim::WinHost>) -> std::io::Result<()> {
//! let samba: std::net::SocketAddr = "127.0.0.1:445".parse().unwrap();
//! let front = winsim::smbfront::SmbFront::start(host, samba).await?;
//! println!("this host's C$ is at {}", front.addr());
//! # Ok(()) }
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::host::SimHost;
use crate::model::WinHost;

/// How often an open connection looks whether its host is still up.
const POWER_POLL: Duration = Duration::from_millis(50);

/// A running front; dropping it closes the listener and every relayed connection.
pub struct SmbFront {
    addr: SocketAddr,
    faults_done: Arc<AtomicU32>,
    task: JoinHandle<()>,
}

/// What the relay shares between a host's connections.
struct Shared {
    host: Arc<WinHost>,
    upstream: SocketAddr,
    /// The SMB fault has been carried out (it happens once per host).
    fired: AtomicBool,
    faults_done: Arc<AtomicU32>,
}

impl SmbFront {
    /// Listen on the host's own address (a free port) and relay each connection to `upstream`.
    pub async fn start(host: Arc<WinHost>, upstream: SocketAddr) -> std::io::Result<SmbFront> {
        let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(host.address()), 0)).await?;
        let addr = listener.local_addr()?;
        let faults_done = Arc::new(AtomicU32::new(0));
        let shared = Arc::new(Shared {
            host,
            upstream,
            fired: AtomicBool::new(false),
            faults_done: Arc::clone(&faults_done),
        });
        let task = tokio::spawn(accept_loop(listener, shared));
        Ok(SmbFront {
            addr,
            faults_done,
            task,
        })
    }

    /// Where clients connect (the host's `smb_port` in an inventory).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many planned SMB faults were carried out (0 or 1): a test proves its fault happened.
    pub fn faults_done(&self) -> u32 {
        self.faults_done.load(Ordering::SeqCst)
    }
}

impl Drop for SmbFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Owned here so that aborting the loop also ends every relay.
    let mut relays = JoinSet::new();
    loop {
        let client = match listener.accept().await {
            Ok((c, _)) => c,
            Err(e) => {
                tracing::warn!(host = shared.host.name(), error = %e, "SMB front: accept failed");
                tokio::time::sleep(POWER_POLL).await;
                continue;
            }
        };
        // Reap finished relays so a long run does not pile them up.
        while relays.try_join_next().is_some() {}
        if !shared.host.accepting() {
            // A host that is down takes no connection: reset at once (RST, as to a closed port).
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        relays.spawn(relay(client, Arc::clone(&shared)));
    }
}

async fn relay(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_r, mut client_w) = client.into_split();
    let (mut server_r, server_w) = server.into_split();
    let downstream = tokio::io::copy(&mut server_r, &mut client_w);
    let host_down = async {
        while shared.host.accepting() {
            tokio::time::sleep(POWER_POLL).await;
        }
    };
    // Whichever ends first ends the connection: dropping the halves closes both sockets.
    let reset = tokio::select! {
        end = upstream(client_r, server_w, &shared) => end == End::Cut,
        _ = downstream => false,
        _ = host_down => true,
    };
    if reset {
        // A cut or a host going down resets the client's connection (RST), as a NIC reset or a
        // dying host's stack does, rather than closing it in good order.
        let _ = client_w.as_ref().set_zero_linger();
    }
}

/// How the client → Samba direction ended.
#[derive(PartialEq, Eq)]
enum End {
    Closed,
    Cut,
}

/// Client → Samba, counting bytes, cutting (or powering the host off) where the plan says.
async fn upstream(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, shared: &Shared) -> End {
    let plan = shared.host.fault_plan();
    let cut = plan
        .smb_disconnect_after_bytes
        .map(|n| (n, false))
        .or(plan.smb_power_off_after_bytes.map(|n| (n, true)));
    let mut sent: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return End::Closed,
            Ok(n) => n,
        };
        if let Some((limit, power_off)) = cut
            && sent + n as u64 >= limit
            && !shared.fired.swap(true, Ordering::SeqCst)
        {
            let keep = (limit.saturating_sub(sent) as usize).min(n);
            let _ = to.write_all(&buf[..keep]).await;
            shared.faults_done.fetch_add(1, Ordering::SeqCst);
            if power_off {
                shared.host.power_cut();
            }
            tracing::info!(
                host = shared.host.name(),
                bytes = limit,
                power_off,
                "SMB front: connection cut mid-write (fault plan)"
            );
            return End::Cut;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return End::Closed;
        }
        sent += n as u64;
    }
}
