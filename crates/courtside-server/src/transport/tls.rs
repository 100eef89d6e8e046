//! The optional TLS listener (`tls.cert_file` and `tls.key_file`): rustls over the lingering
//! TCP listener, so every route and transport — HTTP API, WebSocket, SSE, Socket.IO — is served
//! over it unchanged. Handshakes run on tasks of their own, bounded in time, so a slow or silent
//! client never holds up the accept loop; only finished handshakes reach the server. The
//! certificate comes from [`certificate::ReloadingCertificate`], reloaded without a restart.

pub mod certificate;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use rustls::ServerConfig;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::transport::linger::{LingeringListener, LingeringStream};
use certificate::ReloadingCertificate;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const READY_QUEUE: usize = 64;

/// The crypto provider: ring, which builds with a C compiler alone (rustls deprecates it only
/// for its lack of post-quantum key exchange).
#[allow(deprecated)]
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side of TLS: HTTP/1.1 only (what every transport here speaks), the certificate
/// from `certificate`.
pub fn server_config(certificate: Arc<ReloadingCertificate>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener yielding connections whose TLS handshake has finished.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<LingeringStream>, SocketAddr)>,
    local_addr: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    /// Accepts on `listener` at once (no Nagle delay on accepted sockets, as without TLS) and
    /// hands each connection to a handshake task.
    pub fn new(listener: LingeringListener, local_addr: SocketAddr, config: Arc<ServerConfig>) -> Self {
        let (done, ready) = mpsc::channel(READY_QUEUE);
        let acceptor = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), done));
        Self { ready, local_addr, acceptor }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(
    mut listener: LingeringListener,
    acceptor: TlsAcceptor,
    done: mpsc::Sender<(TlsStream<LingeringStream>, SocketAddr)>,
) {
    loop {
        let (stream, addr) = tokio::select! {
            accepted = Listener::accept(&mut listener) => accepted,
            () = done.closed() => return,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let done = done.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = done.send((tls, addr)).await;
                }
                Ok(Err(error)) => tracing::debug!(%addr, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
            }
        });
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<LingeringStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
