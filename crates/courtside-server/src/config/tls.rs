//! The `[tls]` table: the optional TLS listener's certificate and key files (both or neither)
//! and how often they are checked for a change. The listener itself is `transport/tls.rs`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The optional TLS listener: both files or neither.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Seconds between checks of the files' modification times; a change reloads them (so does
    /// SIGHUP).
    pub reload_check_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self { cert_file: None, key_file: None, reload_check_secs: 10 }
    }
}

impl TlsConfig {
    /// The certificate and key files, when TLS is on.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        Some((self.cert_file.as_deref()?, self.key_file.as_deref()?))
    }
}
