//! Configuration: built-in defaults, then a TOML file, then `COURTSIDE_*` environment variables,
//! then command-line flags (flags win). A wrong value fails at start with a message naming its key.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use courtside_core::{NamespaceOptions, Role};

use crate::payload_schema::{PayloadSchemas, SchemaConfig};
use crate::rate_limit::{EndpointClass, RateLimit};
pub use leaderboards::{LeaderboardConfig, RatingConfig, Reset};
pub use namespaces::default_namespaces;
pub use tls::TlsConfig;
pub use crate::event_map::SocketIoConfig;

mod leaderboards;
mod namespaces;
mod tls;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP/WebSocket server listens on.
    pub listen: SocketAddr,
    /// Where the SQLite store and generated keys live.
    pub data_dir: PathBuf,
    /// Where streams are stored: `"sqlite"` (`<data_dir>/courtside.db`, one node) or a
    /// `postgres://` URL (shared by every node of a cluster).
    pub store: String,
    /// How publications reach the other nodes: `"memory"` (this node only), a `redis://` URL, or
    /// `"postgres"` (LISTEN/NOTIFY on the store's database, for clusters without Redis).
    pub broker: String,
    /// PEM file of the certificate authorities a `rediss://` broker's certificate is checked
    /// against (unset: the system's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_ca_file: Option<PathBuf>,
    /// Prefix of every Redis key and channel, so several clusters can share one Redis.
    pub redis_prefix: String,
    /// Seconds a node's presence entries live in Redis without a refresh (a dead node's
    /// clients disappear from presence within this time).
    pub presence_ttl_secs: u64,
    /// Let clients connect without a token (namespaces still decide what `anonymous` may do).
    pub allow_anonymous: bool,
    /// Key for the server API (`Authorization: apikey …`); generated into the data dir if empty.
    pub api_key: String,
    /// Browser origins allowed to use the HTTP API, SSE and WebSocket (`"*"`: any). A WebSocket
    /// handshake from another origin is refused with 403; clients that send no `Origin` (apps,
    /// servers, the CLI) are not affected.
    pub allowed_origins: Vec<String>,
    pub auth: AuthConfig,
    pub client: ClientLimits,
    pub tls: TlsConfig,
    pub sports: SportsConfig,
    /// Seconds to let connections close and the store flush on SIGTERM/SIGINT.
    pub shutdown_timeout_secs: u64,
    /// On SIGTERM/SIGINT, seconds between the maintenance notice every connection gets and the
    /// shutdown (a second signal stops at once).
    pub maintenance_notice_secs: u64,
    /// Channel namespaces by name; the built-in ones can be changed key by key.
    pub namespaces: BTreeMap<String, NamespaceOptions>,
    /// Leaderboards declared at start, by board id (none by default).
    pub leaderboards: BTreeMap<String, LeaderboardConfig>,
    /// How often each board's top-N view in `leaderboard:{board}` is rewritten when it changed
    /// (the most a follower receives, however fast scores arrive).
    pub leaderboard_push_interval_ms: u64,
    /// Socket.IO event maps: the app's own events (none by default).
    pub socketio: SocketIoConfig,
    /// JSON Schemas publication payloads must match, by namespace (none by default).
    pub schemas: BTreeMap<String, SchemaConfig>,
    /// The app's backend deciding connects, reads, publications and RPC calls (`[hooks]`).
    pub hooks: crate::hooks::HooksConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `HS256` (shared secret), `RS256` or `ES256` (public key file).
    pub jwt_algorithm: String,
    /// HS256 secret; if empty, `jwt_secret_file` or `<data_dir>/jwt-secret` (generated) is used.
    pub jwt_secret: String,
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM public key for RS256/ES256.
    pub jwt_public_key_file: Option<PathBuf>,
    /// Lifetime of tokens minted by `courtside token`.
    pub token_ttl_secs: u64,
    /// Lifetime of the access tokens `POST /api/auth/login` and `/refresh` issue.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a sign-in's refresh tokens (counted from the sign-in, not renewed by use).
    pub refresh_token_ttl_secs: u64,
    /// The app's own roles (e.g. `rider`): tokens may carry them and permission lists name them.
    pub roles: Vec<Role>,
}

/// The sports domain (tournaments, claims, scores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SportsConfig {
    /// How long a scorekeeper's claim lasts when the claim names no `expiresAt`.
    pub claim_ttl_secs: u32,
    /// The furthest `expiresAt` a claim may ask for, from now.
    pub claim_ttl_max_secs: u32,
    /// Requests per caller (user, or client address without a token) per endpoint class;
    /// seed 001's limits by default.
    pub rate_limits: BTreeMap<String, RateLimit>,
    /// Where the rate limits are counted: `"auto"` (in the cluster's Redis broker, else its
    /// PostgreSQL store, else this node's memory) or `"local"` (this node's memory).
    pub rate_limit_backend: String,
    /// Proxies (load balancers) whose `X-Forwarded-For` is believed: behind them the client's
    /// address is the right-most one they did not add. Empty: the connection's peer counts.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for SportsConfig {
    fn default() -> Self {
        let rate_limits = EndpointClass::ALL.iter().map(|class| (class.name().to_string(), class.default_limit())).collect();
        Self {
            claim_ttl_secs: 15 * 60,
            claim_ttl_max_secs: 12 * 3600,
            rate_limits,
            rate_limit_backend: "auto".into(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl SportsConfig {
    /// The limits by class (names were checked by `Config::validate`).
    pub fn rate_limits_by_class(&self) -> HashMap<EndpointClass, RateLimit> {
        EndpointClass::ALL
            .iter()
            .filter_map(|class| Some((*class, *self.rate_limits.get(class.name())?)))
            .collect()
    }
}

/// Limits per client connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientLimits {
    pub ping_interval_secs: u64,
    /// A connection that sends nothing (not even a pong) for this long is closed.
    pub idle_timeout_secs: u64,
    /// Time allowed between opening the WebSocket and the `connect` command.
    pub connect_timeout_secs: u64,
    /// Queued outgoing items before the connection counts as a slow consumer.
    pub send_queue_len_max: usize,
    /// Queued outgoing bytes (payloads plus 128 per item) before the connection counts as a slow
    /// consumer, whichever bound is reached first.
    pub send_queue_bytes_max: usize,
    /// Largest WebSocket message accepted from a client.
    pub message_bytes_max: usize,
    /// Largest publication payload.
    pub publication_bytes_max: usize,
    /// Deepest nesting of arrays and objects in a publication payload.
    pub payload_depth_max: usize,
    /// Sustained commands per second per connection.
    pub commands_per_sec: u32,
    /// Commands a connection may send in a burst above the sustained rate.
    pub commands_burst: u32,
    /// Channels one connection may follow.
    pub subscriptions_max: usize,
    /// Connections one user (a token's `sub`) may hold open on this node, on every transport
    /// together (0: no limit). Anonymous connections are not counted.
    pub connections_per_user_max: usize,
    /// Channels one user may follow on this node, over all their connections together (0: no
    /// limit). Anonymous connections are not counted.
    pub subscriptions_per_user_max: usize,
    /// Size of the per-connection read buffer.
    pub read_buffer_bytes: usize,
    /// Milliseconds a push may wait so that one socket write carries several (0: write at
    /// once). Trades that much latency for fewer system calls under heavy fan-out.
    pub write_coalesce_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            store: "sqlite".into(),
            broker: "memory".into(),
            redis_ca_file: None,
            redis_prefix: "courtside".into(),
            presence_ttl_secs: 30,
            allow_anonymous: true,
            api_key: String::new(),
            allowed_origins: vec!["*".into()],
            auth: AuthConfig::default(),
            client: ClientLimits::default(),
            tls: TlsConfig::default(),
            sports: SportsConfig::default(),
            shutdown_timeout_secs: 10,
            namespaces: default_namespaces(),
            leaderboards: BTreeMap::new(),
            leaderboard_push_interval_ms: 500,
            maintenance_notice_secs: 0,
            socketio: SocketIoConfig::default(),
            schemas: BTreeMap::new(),
            hooks: crate::hooks::HooksConfig::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_algorithm: "HS256".into(),
            jwt_secret: String::new(),
            jwt_secret_file: None,
            jwt_public_key_file: None,
            token_ttl_secs: 24 * 3600,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            roles: Vec::new(),
        }
    }
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            ping_interval_secs: 25,
            idle_timeout_secs: 60,
            connect_timeout_secs: 10,
            send_queue_len_max: 1024,
            send_queue_bytes_max: 1024 * 1024,
            message_bytes_max: 64 * 1024,
            publication_bytes_max: 32 * 1024,
            payload_depth_max: 64,
            commands_per_sec: 50,
            commands_burst: 200,
            subscriptions_max: 256,
            connections_per_user_max: 100,
            subscriptions_per_user_max: 1000,
            read_buffer_bytes: 1024,
            write_coalesce_ms: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// Flags given on the command line; `None` leaves the lower layers alone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthOverrides>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AuthOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret_file: Option<PathBuf>,
}

/// The store a configuration names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    Sqlite,
    Postgres(String),
}

impl std::fmt::Display for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreChoice::Sqlite => f.write_str("sqlite"),
            StoreChoice::Postgres(url) => f.write_str(&redact_url_password(url)),
        }
    }
}

/// The broker a configuration names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerChoice {
    InProcess,
    Redis(String),
    /// LISTEN/NOTIFY on the store's PostgreSQL database.
    Postgres,
}

/// `COURTSIDE_*` variables that are not configuration keys: the client commands' server and
/// token, the config file path, and the log filter.
const NON_CONFIG_ENV: [&str; 4] = ["server", "token", "config", "log"];

/// `scheme://user:password@host/…` → `scheme://user:<redacted>@host/…`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((credentials, host)) = rest.split_once('@') else { return url.to_string() };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:<redacted>@{host}"),
        None => url.to_string(),
    }
}

/// Turns a figment error into one naming the key (lower case, dotted) and where it came from.
fn describe_figment_error(error: figment::Error) -> ConfigError {
    let key = error.path.iter().map(|p| p.to_lowercase()).collect::<Vec<_>>().join(".");
    let source = error.metadata.as_ref().map(|m| format!(" (from {})", m.name)).unwrap_or_default();
    ConfigError::Invalid { key: if key.is_empty() { "(top level)".into() } else { key }, message: format!("{}{source}", error.kind) }
}

impl Config {
    pub fn load(file: Option<&Path>, overrides: &ConfigOverrides) -> Result<Config, ConfigError> {
        Self::load_from(file, Env::prefixed("COURTSIDE_").split("__").ignore(&NON_CONFIG_ENV), overrides)
    }

    fn load_from(file: Option<&Path>, env: Env, overrides: &ConfigOverrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid {
                    key: "--config".into(),
                    message: format!("file {} does not exist", file.display()),
                });
            }
            figment = figment.merge(Toml::file(file));
        }
        let config: Config = figment
            .merge(env)
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(describe_figment_error)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| {
            Err(ConfigError::Invalid { key: key.to_string(), message: message.to_string() })
        };
        let c = &self.client;
        if c.ping_interval_secs == 0 {
            return invalid("client.ping_interval_secs", "must be at least 1");
        }
        if c.idle_timeout_secs <= c.ping_interval_secs {
            return invalid("client.idle_timeout_secs", "must be longer than client.ping_interval_secs");
        }
        if c.send_queue_len_max == 0 {
            return invalid("client.send_queue_len_max", "must be at least 1");
        }
        if c.send_queue_bytes_max < c.publication_bytes_max {
            return invalid("client.send_queue_bytes_max", "must be at least client.publication_bytes_max");
        }
        if c.message_bytes_max < 1024 {
            return invalid("client.message_bytes_max", "must be at least 1024");
        }
        if c.commands_per_sec == 0 {
            return invalid("client.commands_per_sec", "must be at least 1");
        }
        if c.commands_burst == 0 {
            return invalid("client.commands_burst", "must be at least 1");
        }
        if c.connect_timeout_secs == 0 {
            return invalid("client.connect_timeout_secs", "must be at least 1");
        }
        if c.subscriptions_max == 0 {
            return invalid("client.subscriptions_max", "must be at least 1");
        }
        if c.publication_bytes_max == 0 || c.publication_bytes_max > c.message_bytes_max {
            return invalid("client.publication_bytes_max", "must be between 1 and client.message_bytes_max");
        }
        // serde_json, behind event maps and the CLI, reads at most 128 levels.
        if !(1..=128).contains(&c.payload_depth_max) {
            return invalid("client.payload_depth_max", "must be between 1 and 128");
        }
        if c.write_coalesce_ms > 1000 {
            return invalid("client.write_coalesce_ms", "must be at most 1000");
        }
        if !(256..=1 << 20).contains(&c.read_buffer_bytes) {
            return invalid("client.read_buffer_bytes", "must be between 256 and 1048576");
        }
        for origin in &self.allowed_origins {
            let well_formed = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.trim_end_matches('/').contains(|c: char| c.is_whitespace())
                    && axum::http::HeaderValue::from_str(origin).is_ok());
            if !well_formed {
                return invalid("allowed_origins", &format!("{origin:?} is not an origin like \"https://scores.example\" or \"*\""));
            }
        }
        if let Err(message) = self.store_choice() {
            return invalid("store", &message);
        }
        if let Err(message) = self.broker_choice() {
            return invalid("broker", &message);
        }
        if self.broker_choice() != Ok(BrokerChoice::InProcess) && self.store_choice() == Ok(StoreChoice::Sqlite) {
            return invalid("store", "nodes joined by a broker must share one store: use a postgres:// URL");
        }
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(_), None) => return invalid("tls.key_file", "is required with tls.cert_file"),
            (None, Some(_)) => return invalid("tls.cert_file", "is required with tls.key_file"),
            _ => {}
        }
        if self.tls.reload_check_secs == 0 {
            return invalid("tls.reload_check_secs", "must be at least 1");
        }
        if self.redis_ca_file.is_some() && !self.broker.starts_with("rediss://") {
            return invalid("redis_ca_file", "is only used with a rediss:// broker");
        }
        if self.presence_ttl_secs < 3 {
            return invalid("presence_ttl_secs", "must be at least 3");
        }
        for (name, limit) in &self.sports.rate_limits {
            let key = format!("sports.rate_limits.{name}");
            if !EndpointClass::ALL.iter().any(|class| class.name() == name) {
                let names: Vec<&str> = EndpointClass::ALL.iter().map(|class| class.name()).collect();
                return invalid(&key, &format!("unknown endpoint class; use one of {}", names.join(", ")));
            }
            if limit.requests == 0 || limit.per_secs == 0 {
                return invalid(&key, "requests and per_secs must be at least 1");
            }
        }
        if !["auto", "local"].contains(&self.sports.rate_limit_backend.as_str()) {
            return invalid("sports.rate_limit_backend", "must be \"auto\" or \"local\"");
        }
        if self.auth.access_token_ttl_secs == 0 || self.auth.refresh_token_ttl_secs == 0 {
            return invalid("auth.access_token_ttl_secs", "access and refresh token lifetimes must be at least 1 second");
        }
        if self.sports.claim_ttl_secs == 0 {
            return invalid("sports.claim_ttl_secs", "must be at least 1");
        }
        if self.sports.claim_ttl_max_secs < self.sports.claim_ttl_secs {
            return invalid("sports.claim_ttl_max_secs", "must be at least sports.claim_ttl_secs");
        }
        if u64::from(self.sports.claim_ttl_max_secs) * 1000 > u64::from(u32::MAX) {
            return invalid("sports.claim_ttl_max_secs", "must be at most 4294967 (about 49 days)");
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(char::is_whitespace) {
            return invalid("redis_prefix", "must be non-empty, without spaces");
        }
        match self.auth.jwt_algorithm.as_str() {
            "HS256" => {}
            "RS256" | "ES256" if self.auth.jwt_public_key_file.is_some() => {}
            "RS256" | "ES256" => return invalid("auth.jwt_public_key_file", "is required for RS256 and ES256"),
            _ => return invalid("auth.jwt_algorithm", "must be HS256, RS256 or ES256"),
        }
        for role in &self.auth.roles {
            if !role.is_custom() {
                return invalid("auth.roles", &format!("`{role}` is built in: list only the app's own roles"));
            }
        }
        namespaces::validate(&self.namespaces, &self.auth.roles)?;
        for (id, board) in &self.leaderboards {
            board.validate(id)?;
        }
        if self.maintenance_notice_secs > crate::admin_api::NOTICE_SECS_MAX {
            return invalid("maintenance_notice_secs", "must be at most 3600");
        }
        if self.leaderboard_push_interval_ms == 0 {
            return invalid("leaderboard_push_interval_ms", "must be at least 1");
        }
        self.socketio.compile().map_err(|error| ConfigError::Invalid { key: error.key, message: error.reason })?;
        self.payload_schemas().map_err(|error| ConfigError::Invalid { key: error.key, message: error.reason })?;
        let namespaces: Vec<&str> = self.namespaces.keys().map(String::as_str).collect();
        self.hooks.validate(&namespaces).map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        Ok(())
    }

    /// The configured payload schemas, read and compiled.
    pub fn payload_schemas(&self) -> Result<PayloadSchemas, crate::payload_schema::SchemaError> {
        let namespaces: Vec<&str> = self.namespaces.keys().map(String::as_str).collect();
        PayloadSchemas::compile(&self.schemas, &namespaces)
    }

    pub fn store_choice(&self) -> Result<StoreChoice, String> {
        match self.store.as_str() {
            "sqlite" => Ok(StoreChoice::Sqlite),
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => Ok(StoreChoice::Postgres(url.into())),
            other => Err(format!("{other:?} is neither \"sqlite\" nor a postgres:// URL")),
        }
    }

    pub fn broker_choice(&self) -> Result<BrokerChoice, String> {
        match self.broker.as_str() {
            "memory" => Ok(BrokerChoice::InProcess),
            "postgres" => Ok(BrokerChoice::Postgres),
            url if url.starts_with("redis://") || url.starts_with("rediss://") => Ok(BrokerChoice::Redis(url.into())),
            other => Err(format!("{other:?} is not \"memory\", \"postgres\" or a redis:// URL")),
        }
    }

    /// Is a browser page from `origin` allowed?
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|allowed| allowed == "*" || allowed == origin)
    }

    pub fn namespace_map(&self) -> HashMap<String, NamespaceOptions> {
        self.namespaces.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The effective configuration as TOML, for `courtside config`; secrets are redacted.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        for url in [&mut shown.store, &mut shown.broker] {
            *url = redact_url_password(url);
        }
        for secret in [&mut shown.api_key, &mut shown.auth.jwt_secret, &mut shown.hooks.secret] {
            if !secret.is_empty() {
                *secret = "<redacted>".into();
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod docs_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_config_redacts_secrets() {
        let config = Config { api_key: "k3y".into(), ..Config::default() };
        let printed = config.to_toml();
        assert!(!printed.contains("k3y") && printed.contains("<redacted>"));
    }

    #[test]
    fn defaults_are_valid_and_declare_the_seed_namespaces() {
        let config = Config::default();
        config.validate().expect("valid defaults");
        for ns in ["tournament", "match", "division", "team", "leaderboard", "player", "user"] {
            assert!(config.namespaces[ns].has_history(), "{ns} keeps history");
        }
        assert!(config.namespaces["user"].personal);
    }

    #[test]
    fn layers_merge_file_then_env_then_flags() {
        let dir = std::env::temp_dir().join(format!("courtside-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\n[client]\nping_interval_secs = 5\n[namespaces.match]\nhistory_size = 50\n").unwrap();
        let overrides = ConfigOverrides { data_dir: Some("/tmp/x".into()), ..Default::default() };
        let config = Config::load_from(Some(&file), Env::prefixed("COURTSIDE_TEST_UNUSED_"), &overrides).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.client.ping_interval_secs, 5);
        assert_eq!(config.namespaces["match"].history_size, 50);
        assert!(config.namespaces["match"].keyed, "unset keys keep their defaults");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn a_wrong_value_names_its_key() {
        let dir = std::env::temp_dir().join(format!("courtside-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[client]\nping_interval_secs = \"soon\"\n").unwrap();
        let error = Config::load_from(Some(&file), Env::prefixed("COURTSIDE_TEST_UNUSED_"), &Default::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("ping_interval_secs"), "{error}");
        std::fs::write(&file, "[client]\nidle_timeout_secs = 1\n").unwrap();
        let error = Config::load_from(Some(&file), Env::prefixed("COURTSIDE_TEST_UNUSED_"), &Default::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("client.idle_timeout_secs"), "{error}");
        for (toml, key) in [
            ("[client]\nsubscriptions_max = 0\n", "client.subscriptions_max"),
            ("[client]\npublication_bytes_max = 100000\n", "client.publication_bytes_max"),
            ("[client]\nsend_queue_bytes_max = 1000\n", "client.send_queue_bytes_max"),
            ("[client]\ncommands_burst = 0\n", "client.commands_burst"),
            ("allowed_origins = [\"not an origin\"]\n", "allowed_origins"),
            ("[tls]\ncert_file = \"server.crt\"\n", "tls.key_file"),
            ("[tls]\nkey_file = \"server.key\"\n", "tls.cert_file"),
            ("redis_ca_file = \"ca.pem\"\n", "redis_ca_file"),
        ] {
            std::fs::write(&file, toml).unwrap();
            let error = Config::load_from(Some(&file), Env::prefixed("COURTSIDE_TEST_UNUSED_"), &Default::default())
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{error}");
        }
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let error = Config::load_from(Some(&file), Env::prefixed("COURTSIDE_TEST_UNUSED_"), &Default::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("lisen"), "{error}");
    }
}
