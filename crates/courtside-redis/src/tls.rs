//! Where Redis is and how to trust it: [`RedisEndpoint`], a `redis://` or `rediss://` URL and,
//! for `rediss://`, the certificate authorities the server's certificate is checked against
//! (a PEM file given with [`RedisEndpoint::with_ca_file`], or the system's). Both connections a
//! node opens speak TLS for `rediss://`: the `redis` crate's (commands, presence) and the
//! broker's own receiving connection ([`crate::pubsub`]), with the same trust.

use std::path::Path;
use std::sync::Arc;

use redis::{ConnectionAddr, ConnectionInfo, TlsCertificates};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::{RedisError, redacted_url};

/// A Redis server to connect to; see the module docs.
#[derive(Clone)]
pub struct RedisEndpoint {
    url: String,
    ca_pem: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for RedisEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEndpoint").field("url", &redacted_url(&self.url)).field("ca", &self.ca_pem.is_some()).finish()
    }
}

impl RedisEndpoint {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), ca_pem: None }
    }

    /// Trusts the certificate authorities in the PEM file at `path` (instead of the system's).
    pub fn with_ca_file(self, path: &Path) -> Result<Self, RedisError> {
        let pem = std::fs::read(path).map_err(|error| RedisError::CaFile { path: path.display().to_string(), reason: error.to_string() })?;
        self.with_ca_pem(pem).map_err(|reason| RedisError::CaFile { path: path.display().to_string(), reason })
    }

    /// Trusts the certificate authorities in `pem` (instead of the system's).
    pub fn with_ca_pem(self, pem: Vec<u8>) -> Result<Self, String> {
        roots_from_pem(&pem)?;
        Ok(Self { ca_pem: Some(pem.into()), ..self })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `redis` crate's client for this endpoint.
    pub(crate) fn client(&self) -> Result<redis::Client, RedisError> {
        let invalid = |source| RedisError::InvalidUrl { url: redacted_url(&self.url), source };
        let Some(ca_pem) = self.ca_pem.as_ref().filter(|_| self.url.starts_with("rediss://")) else {
            return redis::Client::open(self.url.as_str()).map_err(invalid);
        };
        // The redis crate builds its TLS settings with the process-wide crypto provider; make
        // sure there is one (ring, as everywhere in Courtside) whatever else is linked in.
        let _ = ring_provider().install_default();
        let certificates = TlsCertificates { client_tls: None, root_cert: Some(ca_pem.to_vec()) };
        redis::Client::build_with_tls(self.url.as_str(), certificates).map_err(invalid)
    }

    /// Where the broker's receiving connection goes, and with which TLS settings.
    pub(crate) fn pubsub_target(&self, info: ConnectionInfo) -> Result<PubSubTarget, RedisError> {
        let tls = match info.addr() {
            ConnectionAddr::TcpTls { insecure: true, .. } => {
                return Err(RedisError::PubSub {
                    url: redacted_url(&self.url),
                    reason: "rediss:// without certificate checks (#insecure) is not supported".into(),
                });
            }
            ConnectionAddr::TcpTls { .. } => {
                let roots = match &self.ca_pem {
                    Some(pem) => roots_from_pem(pem),
                    None => system_roots(),
                }
                .map_err(|reason| RedisError::PubSub { url: redacted_url(&self.url), reason })?;
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(ring_provider()))
                    .with_safe_default_protocol_versions()
                    .map_err(|error| RedisError::PubSub { url: redacted_url(&self.url), reason: error.to_string() })?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(TlsConnector::from(Arc::new(config)))
            }
            _ => None,
        };
        Ok(PubSubTarget { info, tls })
    }
}

impl From<&str> for RedisEndpoint {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

impl From<&String> for RedisEndpoint {
    fn from(url: &String) -> Self {
        Self::new(url.as_str())
    }
}

impl From<String> for RedisEndpoint {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

impl From<&RedisEndpoint> for RedisEndpoint {
    fn from(endpoint: &RedisEndpoint) -> Self {
        endpoint.clone()
    }
}

/// The receiving connection's server, and the TLS settings for a `rediss://` one.
#[derive(Clone)]
pub struct PubSubTarget {
    pub(crate) info: ConnectionInfo,
    tls: Option<TlsConnector>,
}

impl PubSubTarget {
    /// The TLS settings, for a `rediss://` server.
    pub(crate) fn tls(&self) -> Option<&TlsConnector> {
        self.tls.as_ref()
    }
}

/// The TLS handshake on `stream` with `host`, whose certificate must name it.
pub(crate) async fn handshake(connector: &TlsConnector, host: &str, stream: TcpStream) -> Result<TlsStream<TcpStream>, String> {
    let name = ServerName::try_from(host.to_string()).map_err(|error| format!("{host:?} is no TLS server name: {error}"))?;
    connector.connect(name, stream).await.map_err(|error| format!("TLS handshake with {host} failed: {error}"))
}

/// The crypto provider: ring, which builds with a C compiler alone (rustls deprecates it only
/// for its lack of post-quantum key exchange).
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let certificate = certificate.map_err(|error| format!("not PEM: {error}"))?;
        roots.add(certificate).map_err(|error| format!("not a usable CA certificate: {error}"))?;
    }
    if roots.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (_added, _unusable) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(format!("no system certificate authorities found ({})", errors.join("; ")));
    }
    Ok(roots)
}
