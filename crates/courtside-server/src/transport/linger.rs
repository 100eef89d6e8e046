//! A lingering close for every accepted connection. When a connection ends, the server first
//! half-closes it (its FIN follows everything it wrote), then reads and discards what the client
//! still sends until the client closes too, for a short bounded time. Closing a socket with
//! unread input instead makes the kernel answer with a reset, and a client that is still sending
//! (the rest of an oversize message, of a refused body) loses the close frame or the response
//! written just before it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How long the input of a closed connection is read and discarded, at most.
const LINGER: Duration = Duration::from_secs(2);
/// How many bytes of it, at most; past that the connection is dropped (and reset) at once.
const LINGER_BYTES_MAX: usize = 64 << 20;

/// A TCP listener whose connections close lingering.
#[derive(Debug)]
pub struct LingeringListener(pub TcpListener);

impl Listener for LingeringListener {
    type Io = LingeringStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        (LingeringStream(Some(stream)), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Listener::local_addr(&self.0)
    }
}

/// An accepted connection; dropped, it closes lingering (on a task of its own).
#[derive(Debug)]
pub struct LingeringStream(Option<TcpStream>);

impl LingeringStream {
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.0.as_ref().map_or(Ok(()), |stream| stream.set_nodelay(nodelay))
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.0.as_mut().map(Pin::new).ok_or_else(|| io::ErrorKind::NotConnected.into())
    }
}

impl Drop for LingeringStream {
    fn drop(&mut self) {
        let Some(stream) = self.0.take() else { return };
        // Outside a runtime (it is shutting down) there is no one left to linger for.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream));
        }
    }
}

async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(LINGER, async {
        let mut discarded = 0;
        while discarded <= LINGER_BYTES_MAX && stream.readable().await.is_ok() {
            // On the stack between waits, so a lingering connection costs no buffer while idle.
            let mut discard = [0u8; 8 * 1024];
            match stream.try_read(&mut discard) {
                Ok(0) => break,
                Ok(read) => discarded += read,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
    })
    .await;
}

impl AsyncRead for LingeringStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

impl AsyncWrite for LingeringStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write_vectored(cx, bufs),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.0.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_flush(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}
