//! A certificate authority made at test time (rcgen), so TLS tests never commit a key: it
//! issues server certificates for `localhost` and `127.0.0.1`, written as PEM files where a
//! server expects them.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A test certificate authority.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Where [`Issued::write`] put the files.
#[derive(Debug, Clone)]
pub struct IssuedFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// A new authority named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        Self { issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate") }
    }

    /// The authority's certificate, to trust.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the authority's certificate to `path`.
    pub fn write_cert(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.cert_pem()).expect("write CA certificate");
        path.to_path_buf()
    }

    /// A server certificate for `localhost` and `127.0.0.1` (and `names`), its common name
    /// `label`, signed by this authority.
    pub fn issue(&self, label: &str, names: &[&str]) -> Issued {
        let mut all = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        all.extend(names.iter().map(|name| name.to_string()));
        let mut params = CertificateParams::new(all).expect("server parameters");
        params.distinguished_name.push(DnType::CommonName, label);
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("server certificate");
        Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }
}

impl Issued {
    /// Writes `<stem>.crt` and `<stem>.key` into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> IssuedFiles {
        std::fs::create_dir_all(dir).expect("certificate dir");
        let files = IssuedFiles { cert: dir.join(format!("{stem}.crt")), key: dir.join(format!("{stem}.key")) };
        std::fs::write(&files.cert, &self.cert_pem).expect("write certificate");
        std::fs::write(&files.key, &self.key_pem).expect("write key");
        files
    }
}
