//! User accounts: a users table kept in the store (Argon2id password hashes, roles), login that
//! issues a short-lived access JWT and a refresh token, and refresh-token rotation where reusing
//! an old refresh token revokes its whole family (every token descended from that login).
//!
//! # Storage (internal channels; no client can read them)
//! - `_users:all`, keyed by username: [`UserRecord`].
//! - `_sessions:{username}`, keyed by family id: [`FamilyRecord`] — the SHA-256 of the family's
//!   current token, of the ones it replaced, and whether the family is revoked.
//!
//! Expired families go: a login removes the user's expired families with the record of its new
//! one, and [`Accounts::expire_sign_ins`] removes whole `_sessions:` channels not written for the
//! refresh-token lifetime (each family lives that long from its login, and every login and
//! refresh writes the channel, so all of its families have expired).
//!
//! Every change is an `append_group` expecting the position it was decided on, so two nodes
//! refreshing the same token at once cannot both succeed: the second sees a reused token.
//!
//! # Refresh tokens
//! `{username}.{family}.{secret}`: the secret is 32 random bytes (hex); only its SHA-256 is
//! stored. A token is good while its family is not revoked, not expired, and the token is the
//! family's current one. Presenting one the family already replaced revokes the family.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use bytes::Bytes;
use courtside_core::channel::ChannelName;
use courtside_core::store::{AppendGroup, AppendRequest, ExpectedPosition, StoreError, StreamStore};
use courtside_core::Role;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::{AuthSetupError, Authenticator};

/// Longest username (an email address fits).
pub const USERNAME_LEN_MAX: usize = 64;
pub const PASSWORD_LEN_MIN: usize = 8;
pub const PASSWORD_LEN_MAX: usize = 1024;
/// Replaced tokens remembered per family (to recognise a reuse).
const REPLACED_KEPT_MAX: usize = 64;
/// Attempts to write a change that keeps meeting a concurrent one.
const ATTEMPTS_MAX: usize = 8;

/// The internal namespace of the sign-in records.
const SESSIONS_NAMESPACE: &str = "_sessions";

/// Everything the store keeps is kept forever (users) or until the family is gone.
const KEEP: courtside_core::store::Retention =
    courtside_core::store::Retention { history_size: 1, history_ttl_secs: 0, keyed: true };

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub username: String,
    /// PHC string (Argon2id).
    pub password_hash: String,
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
    pub created_at_ms: u64,
}

/// What the API shows of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub username: String,
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FamilyRecord {
    pub current_hash: String,
    pub replaced_hashes: Vec<String>,
    pub expires_at_ms: u64,
    pub revoked: bool,
}

/// What a login or a refresh hands out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedTokens {
    pub token: String,
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
    pub user: UserView,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("username must be 1 to {USERNAME_LEN_MAX} letters, digits or `_.@+-`")]
    InvalidUsername,
    #[error("password must be {PASSWORD_LEN_MIN} to {PASSWORD_LEN_MAX} bytes")]
    InvalidPassword,
    #[error("a user needs at least one role")]
    NoRole,
    #[error("unknown role {0:?}: a user holds built-in roles and those auth.roles declares")]
    UnknownRole(String),
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("refresh token expired; sign in again")]
    RefreshTokenExpired,
    #[error("this refresh token was already used: every session of that sign-in is revoked; sign in again")]
    RefreshTokenReused,
    #[error("too many concurrent changes; retry")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Token(#[from] AuthSetupError),
    #[error("a stored account record cannot be read: {0}")]
    Corrupt(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Lifetimes of what a login issues.
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    pub access_secs: u64,
    pub refresh_secs: u64,
}

/// Accounts over the store; cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn StreamStore>,
}

fn channel(text: &str) -> ChannelName {
    ChannelName::parse(text).unwrap_or_else(|_| ChannelName::parse("_invalid:name").expect("a literal valid name"))
}

fn users_channel() -> ChannelName {
    channel("_users:all")
}

fn sessions_channel(username: &str) -> ChannelName {
    channel(&format!("{SESSIONS_NAMESPACE}:{}", hex(&Sha256::digest(username.as_bytes()))))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn token_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

fn record_request(channel: ChannelName, key: &str, value: &impl Serialize) -> AppendRequest {
    AppendRequest {
        channel,
        data: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        key: Some(key.to_string()),
        remove_key: false,
        event: None,
        idempotency_key: None,
        retention: KEEP,
    }
}

fn decode<T: for<'de> Deserialize<'de>>(data: &[u8]) -> Result<T, AccountError> {
    serde_json::from_slice(data).map_err(|error| AccountError::Corrupt(error.to_string()))
}

pub fn check_username(username: &str) -> Result<(), AccountError> {
    let valid = (1..=USERNAME_LEN_MAX).contains(&username.len())
        && username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '+' | '-'));
    if valid { Ok(()) } else { Err(AccountError::InvalidUsername) }
}

/// Hashes in progress at once: each takes about 19 MiB and a core, so many sign-ins at once
/// queue here instead of exhausting memory.
fn hashing_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from)))
}

/// Hashes with Argon2id (the crate's defaults: 19 MiB, 2 passes); CPU-heavy, so off the runtime.
async fn hash_password(password: String) -> Result<String, AccountError> {
    let _permit = hashing_permits().acquire().await.map_err(|error| AccountError::Hashing(error.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|hash| hash.to_string())
    })
    .await
    .map_err(|error| AccountError::Hashing(error.to_string()))?
    .map_err(|error| AccountError::Hashing(error.to_string()))
}

async fn password_matches(password: String, hash: String) -> bool {
    let Ok(_permit) = hashing_permits().acquire().await else { return false };
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password: verifying against it costs what a real check costs, so an
/// unknown username takes as long to refuse as a wrong password.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$oGq1b4QbqVjQ0nJ8cY9oRk6oJvL6oTq8b6fJ4Xk8n2I";

impl Accounts {
    pub fn new(store: Arc<dyn StreamStore>) -> Self {
        Self { store }
    }

    async fn user(&self, username: &str) -> Result<Option<(UserRecord, courtside_core::stream::StreamPosition)>, AccountError> {
        let snapshot = self.store.snapshot(&users_channel()).await?;
        let record = snapshot.entries.iter().find(|entry| entry.key.as_deref() == Some(username));
        Ok(match record {
            Some(entry) => Some((decode(&entry.data)?, snapshot.position)),
            None => None,
        })
    }

    /// Adds a user; refuses a taken username.
    pub async fn add_user(&self, username: &str, password: &str, roles: &[Role]) -> Result<UserView, AccountError> {
        check_username(username)?;
        if !(PASSWORD_LEN_MIN..=PASSWORD_LEN_MAX).contains(&password.len()) {
            return Err(AccountError::InvalidPassword);
        }
        if roles.is_empty() {
            return Err(AccountError::NoRole);
        }
        let password_hash = hash_password(password.to_string()).await?;
        let record = UserRecord {
            username: username.to_string(),
            password_hash,
            roles: roles.to_vec(),
            created_at_ms: courtside_core::stream::now_ms(),
        };
        for _ in 0..ATTEMPTS_MAX {
            let snapshot = self.store.snapshot(&users_channel()).await?;
            if snapshot.entries.iter().any(|entry| entry.key.as_deref() == Some(username)) {
                return Err(AccountError::UserExists(username.to_string()));
            }
            let group = AppendGroup {
                requests: vec![record_request(users_channel(), username, &record)],
                expected: vec![ExpectedPosition { channel: users_channel(), position: snapshot.position }],
            };
            match self.store.append_group(group).await {
                Ok(_) => return Ok(UserView { username: record.username, roles: record.roles }),
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(AccountError::Contended)
    }

    pub async fn users(&self) -> Result<Vec<UserView>, AccountError> {
        let snapshot = self.store.snapshot(&users_channel()).await?;
        snapshot
            .entries
            .iter()
            .map(|entry| decode::<UserRecord>(&entry.data).map(|user| UserView { username: user.username, roles: user.roles }))
            .collect()
    }

    /// Checks the password and starts a new token family.
    pub async fn login(
        &self,
        auth: &Authenticator,
        username: &str,
        password: &str,
        lifetimes: TokenLifetimes,
    ) -> Result<IssuedTokens, AccountError> {
        let user = if check_username(username).is_ok() { self.user(username).await? } else { None };
        let hash = user.as_ref().map_or_else(|| DECOY_HASH.to_string(), |(user, _)| user.password_hash.clone());
        let matches = password_matches(password.to_string(), hash).await;
        let Some((user, _)) = user.filter(|_| matches) else { return Err(AccountError::InvalidCredentials) };
        let family = random_hex(12);
        let secret = random_hex(32);
        let record = FamilyRecord {
            current_hash: token_hash(&secret),
            replaced_hashes: Vec::new(),
            expires_at_ms: courtside_core::stream::now_ms() + lifetimes.refresh_secs * 1000,
            revoked: false,
        };
        let channel = sessions_channel(&user.username);
        let mut requests = self.expired_families(&channel).await?;
        requests.push(record_request(channel, &family, &record));
        self.store.append_group(AppendGroup { requests, expected: Vec::new() }).await?;
        self.issue(auth, &user, &family, &secret, lifetimes)
    }

    /// Removals of the families of `channel` that have expired (unreadable ones stay).
    async fn expired_families(&self, channel: &ChannelName) -> Result<Vec<AppendRequest>, AccountError> {
        let now = courtside_core::stream::now_ms();
        let snapshot = self.store.snapshot(channel).await?;
        Ok(snapshot
            .entries
            .iter()
            .filter(|entry| decode::<FamilyRecord>(&entry.data).is_ok_and(|family| family.expires_at_ms <= now))
            .filter_map(|entry| entry.key.as_deref())
            .map(|family| AppendRequest { remove_key: true, ..record_request(channel.clone(), family, &()) })
            .collect())
    }

    /// Removes the sign-in records of users with no login or refresh for `refresh_secs`, as of
    /// `now_ms`: every family in them has expired. Returns how many users' records went.
    pub async fn expire_sign_ins(&self, refresh_secs: u64, now_ms: u64) -> Result<usize, StoreError> {
        Ok(self.store.expire_idle(SESSIONS_NAMESPACE, refresh_secs, now_ms).await?.len())
    }

    fn issue(
        &self,
        auth: &Authenticator,
        user: &UserRecord,
        family: &str,
        secret: &str,
        lifetimes: TokenLifetimes,
    ) -> Result<IssuedTokens, AccountError> {
        Ok(IssuedTokens {
            token: auth.mint(&user.username, &user.roles, lifetimes.access_secs)?,
            refresh_token: format!("{}.{family}.{secret}", user.username),
            expires_in: lifetimes.access_secs,
            user: UserView { username: user.username.clone(), roles: user.roles.clone() },
        })
    }

    /// Exchanges a refresh token for new tokens; the old one is then spent. A spent token
    /// presented again revokes its family.
    pub async fn refresh(&self, auth: &Authenticator, refresh_token: &str, lifetimes: TokenLifetimes) -> Result<IssuedTokens, AccountError> {
        let mut parts = refresh_token.rsplitn(3, '.');
        let (Some(secret), Some(family), Some(username)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AccountError::InvalidRefreshToken);
        };
        if check_username(username).is_err() || family.len() != 24 || secret.len() != 64 {
            return Err(AccountError::InvalidRefreshToken);
        }
        let channel = sessions_channel(username);
        let presented = token_hash(secret);
        for _ in 0..ATTEMPTS_MAX {
            let snapshot = self.store.snapshot(&channel).await?;
            let Some(entry) = snapshot.entries.iter().find(|entry| entry.key.as_deref() == Some(family)) else {
                return Err(AccountError::InvalidRefreshToken);
            };
            let mut record: FamilyRecord = decode(&entry.data)?;
            let expected = vec![ExpectedPosition { channel: channel.clone(), position: snapshot.position.clone() }];
            if record.revoked {
                return Err(AccountError::RefreshTokenReused);
            }
            if courtside_core::stream::now_ms() >= record.expires_at_ms {
                return Err(AccountError::RefreshTokenExpired);
            }
            if record.current_hash != presented {
                if !record.replaced_hashes.contains(&presented) {
                    return Err(AccountError::InvalidRefreshToken);
                }
                record.revoked = true;
                let group = AppendGroup { requests: vec![record_request(channel.clone(), family, &record)], expected };
                match self.store.append_group(group).await {
                    Ok(_) => {
                        tracing::warn!(username, "a spent refresh token was presented again: its sessions are revoked");
                        return Err(AccountError::RefreshTokenReused);
                    }
                    Err(StoreError::Conflict(_)) => continue,
                    Err(error) => return Err(error.into()),
                }
            }
            let Some((user, _)) = self.user(username).await? else { return Err(AccountError::InvalidRefreshToken) };
            let secret = random_hex(32);
            let replaced = std::mem::replace(&mut record.current_hash, token_hash(&secret));
            record.replaced_hashes.push(replaced);
            if record.replaced_hashes.len() > REPLACED_KEPT_MAX {
                record.replaced_hashes.remove(0);
            }
            let group = AppendGroup { requests: vec![record_request(channel.clone(), family, &record)], expected };
            match self.store.append_group(group).await {
                Ok(_) => return self.issue(auth, &user, family, &secret, lifetimes),
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(AccountError::Contended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decoy_hash_is_a_real_argon2id_hash() {
        let parsed = PasswordHash::new(DECOY_HASH).expect("valid PHC string");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(Argon2::default().verify_password(b"anything", &parsed).is_err());
    }

    #[tokio::test]
    async fn a_sign_in_removes_the_users_expired_families() {
        use courtside_core::store::memory::MemoryStore;
        let store: Arc<dyn StreamStore> = Arc::new(MemoryStore::new(Arc::new(courtside_core::store::NoSink)));
        let accounts = Accounts::new(store.clone());
        let mut config = crate::Config { api_key: "test-key".into(), ..crate::Config::default() };
        config.auth.jwt_secret = "a test secret of enough length, 32+".into();
        let auth = Authenticator::load(&config, crate::auth::Secrets::ExistingOnly).expect("authenticator");
        accounts.add_user("kim", "correct horse", &[Role::Scorekeeper]).await.expect("user");
        let families = async || store.snapshot(&sessions_channel("kim")).await.expect("snapshot").entries.len();
        let expired_at_once = TokenLifetimes { access_secs: 60, refresh_secs: 0 };
        accounts.login(&auth, "kim", "correct horse", expired_at_once).await.expect("login");
        accounts.login(&auth, "kim", "correct horse", expired_at_once).await.expect("login");
        assert_eq!(families().await, 1, "the second sign-in removed the first, expired family");
        let lasting = TokenLifetimes { access_secs: 60, refresh_secs: 3600 };
        let first = accounts.login(&auth, "kim", "correct horse", lasting).await.expect("login");
        accounts.login(&auth, "kim", "correct horse", lasting).await.expect("login");
        assert_eq!(families().await, 2, "live families stay; expired ones go");
        accounts.refresh(&auth, &first.refresh_token, lasting).await.expect("a live family still refreshes");
    }

    #[test]
    fn usernames_are_checked() {
        for good in ["kim", "kim@club.example", "a.b+c-d_e"] {
            assert!(check_username(good).is_ok(), "{good}");
        }
        for bad in ["", "kim lee", "kim:lee", &"k".repeat(USERNAME_LEN_MAX + 1)] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }
}
