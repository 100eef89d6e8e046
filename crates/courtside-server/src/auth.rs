//! Authentication: JWT verification (HS256, RS256, ES256), development token minting, the server
//! API key, and the generated secrets a zero-setup node keeps in its data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use courtside_core::access::Principal;
use courtside_core::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;

use serde::{Deserialize, Serialize};

use crate::config::Config;


#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Roles per tournament id: they count on channels a scoped rule covers and in the sports
    /// API's requests about that tournament.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tournament_roles: BTreeMap<String, Vec<String>>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// The roles a token or a command line names: built-in ones, and the app's own that the
/// configuration declares (`auth.roles`).
pub fn parse_roles(names: &[String], declared: &[Role]) -> Result<Vec<Role>, String> {
    names
        .iter()
        .map(|name| {
            Role::parse(name)
                .or_else(|| Role::named(name).ok().filter(|role| declared.contains(role)))
                .ok_or_else(|| format!("unknown role {name:?}"))
        })
        .collect()
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
}

impl From<TokenError> for crate::protocol::ClientError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Expired => crate::protocol::ClientError::TokenExpired,
            TokenError::Invalid(message) => crate::protocol::ClientError::Unauthorized(message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("key in {path} is not usable for {algorithm}: {message}")]
    BadKey { path: PathBuf, algorithm: String, message: String },
    #[error("this node verifies {0} tokens with a public key and cannot mint them; mint with the private key's owner")]
    CannotMint(String),
    #[error("cannot sign a token: {0}")]
    Sign(String),
    #[error(
        "no signing key in {data_dir} (looked for {path}); the server generates it there at its first start. \
         Point at the server's data directory with --data-dir (or --config, COURTSIDE_DATA_DIR), \
         or give the key with --jwt-secret-file",
        data_dir = data_dir.display(),
        path = path.display()
    )]
    NoSigningKey { data_dir: PathBuf, path: PathBuf },
}

/// Whether missing secrets in the data directory may be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// The server: generate the HS256 secret and the API key on first start.
    GenerateMissing,
    /// A tool (`courtside token`): use what is there, never create a secret; a missing signing
    /// key is [`AuthSetupError::NoSigningKey`], a missing API key leaves none (nothing matches).
    ExistingOnly,
}

/// A secret the server generated into its data directory at this start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedSecret {
    /// What it is, for the log: `"API key"` or `"token signing key"`.
    pub what: &'static str,
    pub path: PathBuf,
}

/// A verified token: who it speaks for and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub principal: Principal,
    pub expires_at_secs: u64,
}

pub struct Authenticator {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    algorithm: Algorithm,
    validation: Validation,
    /// `None` only for a tool that found no API key ([`Secrets::ExistingOnly`]).
    api_key: Option<String>,
    generated: Vec<GeneratedSecret>,
    /// The app's own roles a token may carry (`auth.roles`).
    declared_roles: Vec<Role>,
}

impl Authenticator {
    /// Loads keys as configured, generating the HS256 secret and the API key into the data
    /// directory on first start when none is configured (see [`Authenticator::generated`]).
    pub fn from_config(config: &Config) -> Result<Self, AuthSetupError> {
        Self::load(config, Secrets::GenerateMissing)
    }

    /// Loads keys as configured; with [`Secrets::ExistingOnly`] nothing is written.
    pub fn load(config: &Config, secrets: Secrets) -> Result<Self, AuthSetupError> {
        let auth = &config.auth;
        let mut generated = Vec::new();
        let (algorithm, decoding, encoding) = match auth.jwt_algorithm.as_str() {
            "RS256" | "ES256" => {
                let algorithm = if auth.jwt_algorithm == "RS256" { Algorithm::RS256 } else { Algorithm::ES256 };
                let path = auth.jwt_public_key_file.clone().unwrap_or_default();
                let pem = std::fs::read(&path).map_err(|source| AuthSetupError::Read { path: path.clone(), source })?;
                let decoding = if algorithm == Algorithm::RS256 {
                    DecodingKey::from_rsa_pem(&pem)
                } else {
                    DecodingKey::from_ec_pem(&pem)
                }
                .map_err(|e| AuthSetupError::BadKey {
                    path,
                    algorithm: auth.jwt_algorithm.clone(),
                    message: e.to_string(),
                })?;
                (algorithm, decoding, None)
            }
            _ => {
                let secret = if !auth.jwt_secret.is_empty() {
                    auth.jwt_secret.clone().into_bytes()
                } else if let Some(path) = &auth.jwt_secret_file {
                    read_secret(path)?
                } else {
                    let path = config.data_dir.join("jwt-secret");
                    match read_or_generate_secret(&path, secrets, "token signing key", &mut generated)? {
                        Some(secret) => secret,
                        None => return Err(AuthSetupError::NoSigningKey { data_dir: config.data_dir.clone(), path }),
                    }
                };
                (Algorithm::HS256, DecodingKey::from_secret(&secret), Some(EncodingKey::from_secret(&secret)))
            }
        };
        let api_key = if config.api_key.is_empty() {
            read_or_generate_secret(&config.data_dir.join("api-key"), secrets, "API key", &mut generated)?
                .map(|key| String::from_utf8_lossy(&key).into_owned())
        } else {
            Some(config.api_key.clone())
        };
        let mut validation = Validation::new(algorithm);
        // A token is expired at `exp`: the connection is closed at the same instant (3003).
        validation.leeway = 0;
        validation.validate_aud = false;
        let declared_roles = auth.roles.clone();
        Ok(Self { decoding, encoding, algorithm, validation, api_key, generated, declared_roles })
    }

    /// The secrets generated into the data directory when this authenticator was loaded.
    pub fn generated(&self) -> &[GeneratedSecret] {
        &self.generated
    }

    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            }
        })?;
        let claims = data.claims;
        if claims.sub.is_empty() {
            return Err(TokenError::Invalid("`sub` is empty".into()));
        }
        let parse_roles = |names: &[String]| parse_roles(names, &self.declared_roles).map_err(TokenError::Invalid);
        let roles = parse_roles(&claims.roles)?;
        let tournament_roles = claims
            .tournament_roles
            .iter()
            .map(|(tournament, roles)| Ok((tournament.clone(), parse_roles(roles)?)))
            .collect::<Result<BTreeMap<_, _>, TokenError>>()?;
        let principal = Principal::User { id: claims.sub, roles, tournament_roles: Arc::new(tournament_roles) };
        Ok(VerifiedToken { principal, expires_at_secs: claims.exp })
    }

    /// Mints a token for development and for app backends that share the HS256 secret.
    pub fn mint(&self, sub: &str, roles: &[Role], ttl_secs: u64) -> Result<String, AuthSetupError> {
        self.mint_scoped(sub, roles, &BTreeMap::new(), ttl_secs)
    }

    /// Mints a token that also holds roles per tournament.
    pub fn mint_scoped(
        &self,
        sub: &str,
        roles: &[Role],
        tournament_roles: &BTreeMap<String, Vec<Role>>,
        ttl_secs: u64,
    ) -> Result<String, AuthSetupError> {
        let names = |roles: &[Role]| roles.iter().map(|r| r.as_str().to_string()).collect::<Vec<_>>();
        let encoding = self.encoding.as_ref().ok_or_else(|| AuthSetupError::CannotMint(format!("{:?}", self.algorithm)))?;
        let now = now_secs();
        let claims = Claims {
            sub: sub.to_string(),
            roles: names(roles),
            tournament_roles: tournament_roles.iter().map(|(t, roles)| (t.clone(), names(roles))).collect(),
            exp: now + ttl_secs,
            iat: Some(now),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, encoding).map_err(|e| AuthSetupError::Sign(e.to_string()))
    }

    /// Constant-time comparison with the server API key.
    pub fn is_api_key(&self, presented: &str) -> bool {
        let Some(api_key) = &self.api_key else { return false };
        let (a, b) = (presented.as_bytes(), api_key.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The server API key (empty only for a tool that found none).
    pub fn api_key(&self) -> &str {
        self.api_key.as_deref().unwrap_or_default()
    }
}

pub fn now_secs() -> u64 {
    courtside_core::stream::now_ms() / 1000
}

fn read_secret(path: &Path) -> Result<Vec<u8>, AuthSetupError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthSetupError::Read { path: path.to_path_buf(), source })?;
    Ok(text.trim().as_bytes().to_vec())
}

/// The secret in `path`; if there is none, a new one written there (`GenerateMissing`, noted in
/// `generated` as `what`) or `None` (`ExistingOnly`).
fn read_or_generate_secret(
    path: &Path,
    secrets: Secrets,
    what: &'static str,
    generated: &mut Vec<GeneratedSecret>,
) -> Result<Option<Vec<u8>>, AuthSetupError> {
    if path.exists() {
        return read_secret(path).map(Some);
    }
    if secrets == Secrets::ExistingOnly {
        return Ok(None);
    }
    let write_error = |source| AuthSetupError::Write { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(write_error)?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private_file(path, &secret).map_err(write_error)?;
    generated.push(GeneratedSecret { what, path: path.to_path_buf() });
    Ok(Some(secret.into_bytes()))
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator(dir: &str) -> Authenticator {
        let data_dir = std::env::temp_dir().join(format!("courtside-auth-{dir}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        Authenticator::from_config(&Config { data_dir, ..Config::default() }).expect("keys")
    }

    #[test]
    fn minted_tokens_verify_and_carry_roles() {
        let auth = authenticator("mint");
        let token = auth.mint("alice", &[Role::Scorekeeper], 60).expect("mint");
        let verified = auth.verify(&token).expect("valid");
        assert_eq!(verified.principal, Principal::user("alice", vec![Role::Scorekeeper]));
    }

    #[test]
    fn expired_forged_and_unsigned_tokens_are_refused() {
        let auth = authenticator("refuse");
        let other = authenticator("other");
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims { sub: "a".into(), roles: vec![], tournament_roles: BTreeMap::new(), exp: now_secs() - 120, iat: None },
            auth.encoding.as_ref().unwrap(),
        )
        .unwrap();
        assert_eq!(auth.verify(&expired), Err(TokenError::Expired));
        let forged = other.mint("alice", &[Role::Director], 60).unwrap();
        assert!(matches!(auth.verify(&forged), Err(TokenError::Invalid(_))));
        // {"alg":"none"} header, a payload and an empty signature.
        let unsigned = format!(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
            "eyJzdWIiOiJhbGljZSIsInJvbGVzIjpbImRpcmVjdG9yIl0sImV4cCI6OTk5OTk5OTk5OX0"
        );
        assert!(matches!(auth.verify(&unsigned), Err(TokenError::Invalid(_))));
        assert!(matches!(auth.verify("not a token"), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn generated_secrets_persist_across_restarts() {
        let data_dir = std::env::temp_dir().join(format!("courtside-auth-persist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let config = Config { data_dir, ..Config::default() };
        let first = Authenticator::from_config(&config).unwrap();
        let token = first.mint("bob", &[], 60).unwrap();
        let second = Authenticator::from_config(&config).unwrap();
        assert!(second.verify(&token).is_ok());
        assert!(second.is_api_key(first.api_key()));
        assert!(!second.is_api_key("guess"));
        let names = |auth: &Authenticator| auth.generated().iter().map(|g| g.what).collect::<Vec<_>>();
        assert_eq!(names(&first), ["token signing key", "API key"], "the first start says what it generated");
        assert!(second.generated().is_empty(), "a restart generates nothing");
    }

    #[test]
    fn a_tool_never_creates_a_secret() {
        let data_dir = std::env::temp_dir().join(format!("courtside-auth-existing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let config = Config { data_dir: data_dir.clone(), ..Config::default() };
        let refused = Authenticator::load(&config, Secrets::ExistingOnly).err().expect("no signing key");
        assert!(matches!(&refused, AuthSetupError::NoSigningKey { data_dir: named, .. } if *named == data_dir), "{refused}");
        assert!(refused.to_string().contains("--data-dir"), "{refused}");
        assert!(!data_dir.exists(), "nothing was written");
        let server = Authenticator::from_config(&config).unwrap();
        std::fs::remove_file(data_dir.join("api-key")).unwrap();
        let tool = Authenticator::load(&config, Secrets::ExistingOnly).unwrap();
        assert!(server.verify(&tool.mint("kim", &[], 60).unwrap()).is_ok(), "the tool signs with the server's key");
        assert!(!tool.is_api_key("") && !data_dir.join("api-key").exists(), "no API key, none created");
    }
}
