//! PostgreSQL over TLS, as libpq's `sslmode` and `sslrootcert` connection parameters say
//! (rustls, ring). The parameters are taken out of the URL here, since the driver knows only
//! `disable`, `prefer` and `require`:
//! - no `sslmode` (and no `sslrootcert`): no TLS, exactly as without this module;
//! - `disable`: no TLS; `prefer`: TLS when the server offers it; `require`: TLS or no
//!   connection. Both encrypt without checking the certificate, unless `sslrootcert` is given,
//!   when its chain is checked as for `verify-ca` (libpq does the same);
//! - `verify-ca`: TLS, the certificate chain checked against `sslrootcert` (a PEM file, or
//!   `system`: the system's authorities; the system's by default), the host name not;
//! - `verify-full`: as `verify-ca`, and the certificate must name the host connected to.

use std::pin::Pin;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig};
use futures_util::Stream;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, Client, Config, Connection, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::PostgresError;

/// What a connection's driver reports: notifications, notices, its end.
pub(crate) type Messages = Pin<Box<dyn Stream<Item = Result<AsyncMessage, tokio_postgres::Error>> + Send>>;

/// A database to connect to: the driver's settings and the TLS they ask for.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) config: Config,
    tls: Option<MakeRustlsConnect>,
}

impl Endpoint {
    /// Parses `url` (a `postgres://` URL or `key=value` text) with its TLS parameters.
    pub(crate) fn parse(url: &str) -> Result<Self, PostgresError> {
        let (rest, mode, root_cert) = take_tls_parameters(url);
        let mut config: Config = rest.parse().map_err(PostgresError::InvalidUrl)?;
        let verify = match (mode.as_deref(), root_cert.is_some()) {
            (None, false) => return Ok(Self { config, tls: None }),
            (Some("disable"), _) => {
                config.ssl_mode(SslMode::Disable);
                return Ok(Self { config, tls: None });
            }
            (None | Some("prefer"), has_root) => {
                config.ssl_mode(SslMode::Prefer);
                if has_root { Verify::Chain } else { Verify::Nothing }
            }
            (Some("require"), has_root) => {
                config.ssl_mode(SslMode::Require);
                if has_root { Verify::Chain } else { Verify::Nothing }
            }
            (Some("verify-ca"), _) => {
                config.ssl_mode(SslMode::Require);
                Verify::Chain
            }
            (Some("verify-full"), _) => {
                config.ssl_mode(SslMode::Require);
                Verify::ChainAndName
            }
            (Some(other), _) => return Err(PostgresError::Tls(format!("unknown sslmode {other:?}: use disable, prefer, require, verify-ca or verify-full"))),
        };
        let client_config = client_config(verify, root_cert.as_deref())?;
        Ok(Self { config, tls: Some(MakeRustlsConnect::new(client_config)) })
    }

    /// Opens one connection; the returned stream drives it.
    pub(crate) async fn connect(&self) -> Result<(Client, Messages), tokio_postgres::Error> {
        match &self.tls {
            None => self.config.connect(NoTls).await.map(|(client, connection)| (client, messages(connection))),
            Some(tls) => self.config.connect(tls.clone()).await.map(|(client, connection)| (client, messages(connection))),
        }
    }

    /// The pool manager for this endpoint.
    pub(crate) fn manager(&self, manager_config: ManagerConfig) -> Manager {
        match &self.tls {
            None => Manager::from_config(self.config.clone(), NoTls, manager_config),
            Some(tls) => Manager::from_config(self.config.clone(), tls.clone(), manager_config),
        }
    }
}

fn messages<S, T>(mut connection: Connection<S, T>) -> Messages
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Box::pin(futures_util::stream::poll_fn(move |cx| connection.poll_message(cx)))
}

/// `url` without its `sslmode` and `sslrootcert` parameters, and their values. A URL that
/// names neither is returned unchanged.
fn take_tls_parameters(url: &str) -> (String, Option<String>, Option<String>) {
    let (mut mode, mut root_cert) = (None, None);
    if !url.contains("sslmode") && !url.contains("sslrootcert") {
        return (url.to_string(), mode, root_cert);
    }
    let mut take = |key: &str, value: String| {
        if key == "sslmode" {
            mode = Some(value);
        } else {
            root_cert = Some(value);
        }
    };
    let is_tls_key = |key: &str| matches!(key, "sslmode" | "sslrootcert");
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match form_urlencoded::parse(pair.as_bytes()).next() {
                Some((key, value)) if is_tls_key(&key) => take(&key, value.into_owned()),
                _ => kept.push(pair),
            }
        }
        if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) }
    } else {
        let mut kept = Vec::new();
        for token in url.split_whitespace() {
            match token.split_once('=') {
                Some((key, value)) if is_tls_key(key) => take(key, value.trim_matches('\'').to_string()),
                _ => kept.push(token),
            }
        }
        kept.join(" ")
    };
    (rest, mode, root_cert)
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy)]
enum Verify {
    Nothing,
    Chain,
    ChainAndName,
}

fn client_config(verify: Verify, root_cert: Option<&str>) -> Result<rustls::ClientConfig, PostgresError> {
    let provider = Arc::new(ring_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Nothing => Arc::new(Unverified { algorithms: provider.signature_verification_algorithms }),
        Verify::Chain | Verify::ChainAndName => {
            let roots = Arc::new(roots(root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|error| PostgresError::Tls(error.to_string()))?;
            if matches!(verify, Verify::Chain) { Arc::new(ChainOnly(webpki)) } else { webpki }
        }
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| PostgresError::Tls(error.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The crypto provider: ring, which builds with a C compiler alone (rustls deprecates it only
/// for its lack of post-quantum key exchange).
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The authorities in `sslrootcert` (a PEM file), or the system's (none given, or `system`).
fn roots(root_cert: Option<&str>) -> Result<RootCertStore, PostgresError> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        None | Some("system") => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(PostgresError::Tls("no system certificate authorities found; give sslrootcert".into()));
            }
        }
        Some(path) => {
            let unusable = |reason: String| PostgresError::Tls(format!("sslrootcert {path}: {reason}"));
            let pem = std::fs::read(path).map_err(|error| unusable(error.to_string()))?;
            for certificate in CertificateDer::pem_slice_iter(&pem) {
                let certificate = certificate.map_err(|error| unusable(format!("not PEM: {error}")))?;
                roots.add(certificate).map_err(|error| unusable(error.to_string()))?;
            }
            if roots.is_empty() {
                return Err(unusable("holds no PEM certificate".into()));
            }
        }
    }
    Ok(roots)
}

/// `verify-ca`: the chain must lead to a trusted authority; the names in it are not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require` without `sslrootcert`: encrypted, the certificate taken as it comes (the
/// handshake's signatures are still checked).
#[derive(Debug)]
struct Unverified {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_tls_parameters_is_unchanged() {
        for url in ["postgres://u:p@h:5/db?application_name=x", "host=h user=u"] {
            assert_eq!(take_tls_parameters(url), (url.to_string(), None, None));
        }
    }

    #[test]
    fn tls_parameters_are_taken_out_of_both_forms() {
        let (rest, mode, root) = take_tls_parameters("postgres://u@h/db?sslmode=verify-full&application_name=x&sslrootcert=%2Fca%20dir%2Fca.pem");
        assert_eq!(rest, "postgres://u@h/db?application_name=x");
        assert_eq!((mode.as_deref(), root.as_deref()), (Some("verify-full"), Some("/ca dir/ca.pem")));
        let (rest, mode, root) = take_tls_parameters("postgres://u@h/db?sslmode=require");
        assert_eq!((rest.as_str(), mode.as_deref(), root), ("postgres://u@h/db", Some("require"), None));
        let (rest, mode, root) = take_tls_parameters("host=h sslmode=verify-ca sslrootcert='/ca.pem' user=u");
        assert_eq!((rest.as_str(), mode.as_deref(), root.as_deref()), ("host=h user=u", Some("verify-ca"), Some("/ca.pem")));
    }

    #[test]
    fn modes_choose_tls() {
        assert!(Endpoint::parse("postgres://u@h/db").expect("plain").tls.is_none());
        assert!(Endpoint::parse("postgres://u@h/db?sslmode=disable").expect("disable").tls.is_none());
        let required = Endpoint::parse("postgres://u@h/db?sslmode=require").expect("require");
        assert!(required.tls.is_some());
        assert_eq!(required.config.get_ssl_mode(), SslMode::Require);
        let error = Endpoint::parse("postgres://u@h/db?sslmode=sometimes").err().expect("refused").to_string();
        assert!(error.contains("sometimes"), "{error}");
        let error = Endpoint::parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem").err().expect("refused").to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
