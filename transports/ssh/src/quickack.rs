//! The TCP stream under the SSH connection, answering every segment with an immediate ACK.
//!
//! OpenSSH's sshd leaves Nagle's algorithm on for non-interactive sessions. After authentication
//! it sends a few packets back to back (host key announcement, then the channel-open
//! confirmation); Nagle holds the later one until the earlier is acknowledged, and a Linux client
//! delays that ACK by ~40 ms because it has nothing to send. Measured: channel open took ~50 ms of
//! a ~100 ms connect+exec. Re-arming `TCP_QUICKACK` after each read (the kernel drops it by
//! itself) makes the client ACK at once, so the server never waits.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A `TcpStream` that keeps Linux's quick-ACK mode on; elsewhere it is the plain stream.
pub(crate) struct QuickAck {
    inner: TcpStream,
}

impl QuickAck {
    pub(crate) fn new(inner: TcpStream) -> Self {
        let stream = QuickAck { inner };
        stream.rearm();
        stream
    }

    fn rearm(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // Best effort: failing only costs latency.
            let _ = socket2::SockRef::from(&self.inner).set_tcp_quickack(true);
        }
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.rearm();
        }
        poll
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
