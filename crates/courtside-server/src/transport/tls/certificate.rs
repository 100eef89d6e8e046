//! The listener's certificate: read from the configured PEM files, served through a resolver
//! whose certificate can be swapped while the server runs, and reloaded on SIGHUP or when
//! either file's modification time changes (checked every `tls.reload_check_secs`). A reload
//! that fails keeps the certificate in use and logs why; handshakes after a successful one get
//! the new certificate, connections already open keep theirs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::metrics::TlsReloads;

/// Why the certificate or key could not be used (at start: the server does not start; on a
/// reload: the previous certificate stays).
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read the {what} file {path}: {source}")]
    Unreadable { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the certificate file {path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("the key file {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("the {what} file {path} is not valid PEM: {reason}")]
    NotPem { what: &'static str, path: PathBuf, reason: String },
    #[error("the key in {key} cannot be used with the certificate in {cert}: {reason}")]
    Unusable { cert: PathBuf, key: PathBuf, reason: String },
}

/// Where the listener's certificate chain and private key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertificateFiles {
    /// Reads both files into a certified key for `provider`, checking that they belong together.
    pub fn load(&self, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, CertificateError> {
        let cert_pem = read(&self.cert, "certificate")?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| not_pem(&self.cert, "certificate", &error))?;
        if chain.is_empty() {
            return Err(CertificateError::NoCertificate { path: self.cert.clone() });
        }
        let key_pem = read(&self.key, "key")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| match error {
            pem::Error::NoItemsFound => CertificateError::NoKey { path: self.key.clone() },
            other => not_pem(&self.key, "key", &other),
        })?;
        let certified = CertifiedKey::from_der(chain, key, provider).map_err(|error| CertificateError::Unusable {
            cert: self.cert.clone(),
            key: self.key.clone(),
            reason: error.to_string(),
        })?;
        Ok(Arc::new(certified))
    }

    /// The files' modification times, to notice a replacement (`None` for one that is missing).
    fn modified(&self) -> [Option<SystemTime>; 2] {
        let modified = |path: &Path| std::fs::metadata(path).and_then(|meta| meta.modified()).ok();
        [modified(&self.cert), modified(&self.key)]
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, CertificateError> {
    std::fs::read(path).map_err(|source| CertificateError::Unreadable { what, path: path.to_path_buf(), source })
}

fn not_pem(path: &Path, what: &'static str, error: &pem::Error) -> CertificateError {
    CertificateError::NotPem { what, path: path.to_path_buf(), reason: error.to_string() }
}

/// The resolver every handshake asks: the certificate currently in use, swapped whole by a
/// reload.
pub struct ReloadingCertificate {
    files: CertificateFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    counters: Arc<TlsReloads>,
}

impl fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCertificate").field("files", &self.files).finish_non_exhaustive()
    }
}

impl ReloadingCertificate {
    /// Loads the files once; an error here stops the start.
    pub fn load(files: CertificateFiles, provider: Arc<CryptoProvider>, counters: Arc<TlsReloads>) -> Result<Arc<Self>, CertificateError> {
        let current = files.load(&provider)?;
        Ok(Arc::new(Self { files, provider, current: RwLock::new(current), counters }))
    }

    /// Reads the files again; on success new handshakes get the new certificate, on failure
    /// the current one stays.
    pub fn reload(&self) -> Result<(), CertificateError> {
        match self.files.load(&self.provider) {
            Ok(certified) => {
                *self.current.write() = certified;
                self.counters.succeeded.fetch_add(1, Ordering::Relaxed);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                Ok(())
            }
            Err(error) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "TLS certificate reload failed; the previous certificate stays in use");
                Err(error)
            }
        }
    }

    /// Reloads on SIGHUP, and whenever a file's modification time changes (checked every
    /// `check_every`), until `stop`.
    pub fn spawn_watcher(self: &Arc<Self>, check_every: Duration, stop: CancellationToken) {
        let certificate = self.clone();
        tokio::spawn(async move {
            let mut hangups = hangup_signals();
            let mut seen = certificate.files.modified();
            let mut checks = tokio::time::interval(check_every);
            checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = checks.tick() => {
                        let now = certificate.files.modified();
                        if now == seen {
                            continue;
                        }
                        seen = now;
                    }
                    () = next_hangup(&mut hangups) => tracing::info!("SIGHUP: reloading the TLS certificate"),
                }
                let _ = certificate.reload();
            }
        });
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

#[cfg(unix)]
fn hangup_signals() -> Hangups {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
#[cfg(not(unix))]
fn hangup_signals() -> Hangups {}

/// The next SIGHUP; never, where there are none.
async fn next_hangup(hangups: &mut Hangups) {
    #[cfg(unix)]
    if let Some(signals) = hangups {
        if signals.recv().await.is_some() {
            return;
        }
    }
    let _ = hangups;
    std::future::pending::<()>().await
}
