//! The panel's listener admits a bounded number of connections at once: slow or idle
//! clients wait in the kernel's accept queue instead of taking file descriptors the
//! log followers, the database and nft need. One address gets a few of them, so a
//! client holding connections open cannot keep the admin out from another address.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections the panel serves at once; a few admins' browsers need a handful.
pub const MAX_CONNECTIONS: usize = 128;
/// Connections one address may hold; a browser opens about six.
pub const MAX_PER_ADDRESS: usize = 16;

pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl LimitedListener {
    pub fn new(inner: TcpListener, max: usize) -> Self {
        LimitedListener { inner, permits: Arc::new(Semaphore::new(max)), per_address: Arc::default() }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // The semaphore is never closed.
            let permit = self.permits.clone().acquire_owned().await.expect("connection permits");
            let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            let ip = addr.ip();
            let mut held = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            let n = held.entry(ip).or_default();
            if *n >= MAX_PER_ADDRESS {
                // Closed at once: that address holds its share already.
                continue;
            }
            *n += 1;
            let slot = Slot { ip, per_address: self.per_address.clone(), _permit: permit };
            return (LimitedStream { io, _slot: slot }, addr);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection's place, given back when the connection is dropped.
struct Slot {
    ip: IpAddr,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

pub struct LimitedStream {
    io: TcpStream,
    _slot: Slot,
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
