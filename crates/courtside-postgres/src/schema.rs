//! The database layout, its migrations (tracked in `courtside_schema_version`, applied under an
//! advisory lock so several nodes may start at once) and how connections are configured.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_postgres::{Client, Config};

use crate::tls::Endpoint;

use crate::PostgresError;

/// How long opening a TCP connection to PostgreSQL may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long opening a connection may take in all (TCP, startup, authentication).
pub(crate) const CONNECTION_SETUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Server-side limit on one statement of the store (a row-lock wait included).
const STATEMENT_TIMEOUT_MS: u64 = 4_000;

/// A session idle inside a transaction this long is ended by the server, releasing its channel
/// row locks: a node that hangs mid-batch cannot block the other nodes' writers for longer.
const IDLE_IN_TRANSACTION_TIMEOUT_MS: u64 = 10_000;

/// Server-side limit on one migration statement (waiting for another node's migration included).
const MIGRATION_STATEMENT_TIMEOUT_MS: u64 = 60_000;

/// How long a whole migration may take, as seen from the client.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(90);

/// Unacknowledged data older than this drops the connection (a vanished server or network).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// Key of the advisory lock that serialises migrations across nodes ("courtsid" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x636f_7572_7473_6964;

/// Migration `n` (0-based) takes the database from schema version `n` to `n + 1`.
///
/// - `courtside_channels`: one row per channel ever seen; the row is the channel's write lock
///   (writers take it `FOR UPDATE`, in name order). `top` is the last assigned offset (0 = none),
///   `earliest` the oldest offset still kept (`top + 1` when none is), `history_ttl_secs` the TTL
///   the latest append asked for.
/// - `courtside_publications`: the kept history, offsets `earliest..=top` of each channel.
/// - `courtside_keyed_state`: the latest live publication per key of keyed channels; never trimmed.
/// - `courtside_idempotency`: the publication each idempotency key produced, kept whole so a retry
///   is answered even after the history was trimmed; rows expire after the idempotency window.
/// - `courtside_presence` (version 2, used by [`crate::PostgresPresence`]): one row per client
///   present in a channel, until `expires_at` (database clock) unless its node pushes that forward.
///   `UNLOGGED`: presence is rewritten by every node's refresher within a third of its TTL, so
///   after a crash (or on a promoted standby, which has no rows of an unlogged table) it comes back
///   by itself, and the frequent refreshes write no WAL.
/// - Version 3 adds each publication's optional event name (`event`, NULL for none) to the three
///   tables that keep publications; version 4 the presence `info` a client sets.
///
/// - Version 5 adds `courtside_channels.active_ms`: when the channel was last created, appended
///   to, opened or touched (unix milliseconds), which idle-channel expiry compares. Existing rows
///   and rows created without it take the database clock.
/// - `courtside_rate_limits` (version 6, used by [`crate::PostgresLimiter`]): one row per rate
///   limit key, its GCRA time `tat_us` (no row and a past time mean the same: a full bucket).
///   `UNLOGGED`: after a crash every bucket starts full, and the per-request writes make no WAL.
///
/// Text that is ordered (channel names, keys) uses the `"C"` collation: byte order, as in Rust.
/// Migrations are forward-only; each is also idempotent (`IF NOT EXISTS`) from version 2 on.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE courtside_channels (
        name TEXT COLLATE "C" PRIMARY KEY,
        epoch TEXT NOT NULL,
        top BIGINT NOT NULL,
        earliest BIGINT NOT NULL,
        history_ttl_secs BIGINT NOT NULL
    );

    CREATE TABLE courtside_publications (
        channel TEXT COLLATE "C" NOT NULL,
        stream_offset BIGINT NOT NULL,
        key TEXT COLLATE "C",
        removed BOOLEAN NOT NULL,
        data BYTEA NOT NULL,
        time_ms BIGINT NOT NULL,
        PRIMARY KEY (channel, stream_offset)
    );

    CREATE TABLE courtside_keyed_state (
        channel TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        stream_offset BIGINT NOT NULL,
        data BYTEA NOT NULL,
        time_ms BIGINT NOT NULL,
        PRIMARY KEY (channel, key)
    );

    CREATE TABLE courtside_idempotency (
        channel TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        stream_offset BIGINT NOT NULL,
        publication_key TEXT COLLATE "C",
        removed BOOLEAN NOT NULL,
        data BYTEA NOT NULL,
        time_ms BIGINT NOT NULL,
        PRIMARY KEY (channel, key)
    );

    CREATE INDEX courtside_idempotency_time_ms ON courtside_idempotency (time_ms);
"#,
    r#"
    CREATE UNLOGGED TABLE IF NOT EXISTS courtside_presence (
        channel TEXT COLLATE "C" NOT NULL,
        client TEXT COLLATE "C" NOT NULL,
        "user" TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (channel, client)
    );

    CREATE INDEX IF NOT EXISTS courtside_presence_expires_at ON courtside_presence (expires_at);
"#,
    r#"
    ALTER TABLE courtside_publications ADD COLUMN IF NOT EXISTS event TEXT;
    ALTER TABLE courtside_keyed_state ADD COLUMN IF NOT EXISTS event TEXT;
    ALTER TABLE courtside_idempotency ADD COLUMN IF NOT EXISTS event TEXT;
"#,
    r#"
    ALTER TABLE courtside_presence ADD COLUMN IF NOT EXISTS info TEXT;
"#,
    r#"
    ALTER TABLE courtside_channels ADD COLUMN IF NOT EXISTS active_ms BIGINT NOT NULL
        DEFAULT (floor(extract(epoch FROM now()) * 1000))::bigint;
"#,
    r#"
    CREATE UNLOGGED TABLE IF NOT EXISTS courtside_rate_limits (
        key TEXT COLLATE "C" PRIMARY KEY,
        tat_us BIGINT NOT NULL,
        allowed BOOLEAN NOT NULL
    );
"#,
];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The connection settings the store uses: `url` plus bounded connect and statement timeouts,
/// so an unreachable or stuck database fails requests within seconds instead of hanging them.
pub(crate) fn store_config(url: &str) -> Result<Endpoint, PostgresError> {
    let mut endpoint = base_config(url)?;
    add_server_options(
        &mut endpoint.config,
        &[
            ("statement_timeout", STATEMENT_TIMEOUT_MS),
            ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_TIMEOUT_MS),
        ],
    );
    Ok(endpoint)
}

/// Parses `url` (a `postgres://` URL or `key=value` text, with its TLS parameters) and sets the
/// client-side timeouts.
fn base_config(url: &str) -> Result<Endpoint, PostgresError> {
    let mut endpoint = Endpoint::parse(url)?;
    let config = &mut endpoint.config;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("courtside");
    }
    Ok(endpoint)
}

/// Appends `-c name=value` server settings to whatever `options` the URL already carries.
fn add_server_options(config: &mut Config, settings: &[(&str, u64)]) {
    let mut options = config.get_options().unwrap_or_default().to_string();
    for (name, value) in settings {
        if !options.is_empty() {
            options.push(' ');
        }
        options.push_str(&format!("-c {name}={value}"));
    }
    config.options(options);
}

/// Opens one connection outside any pool; its driver task runs until the client is dropped.
async fn connect_once(endpoint: &Endpoint) -> Result<Client, PostgresError> {
    let (client, mut messages) = tokio::time::timeout(CONNECTION_SETUP_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| PostgresError::ConnectTimedOut(CONNECTION_SETUP_TIMEOUT))?
        .map_err(PostgresError::Connect)?;
    tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            if let Err(error) = message {
                tracing::debug!(%error, "postgres migration connection ended");
                return;
            }
        }
    });
    Ok(client)
}

/// Brings the database at `url` to [`SCHEMA_VERSION`] on a connection of its own.
pub(crate) async fn migrate_url(url: &str) -> Result<(), PostgresError> {
    let mut endpoint = base_config(url)?;
    add_server_options(&mut endpoint.config, &[("statement_timeout", MIGRATION_STATEMENT_TIMEOUT_MS)]);
    let mut client = connect_once(&endpoint).await?;
    tokio::time::timeout(MIGRATION_TIMEOUT, migrate(&mut client))
        .await
        .map_err(|_| PostgresError::MigrationTimedOut(MIGRATION_TIMEOUT))?
}

/// Applies the missing migrations in one transaction that holds the migration advisory lock, so
/// nodes starting together migrate once and the others find the schema current. Idempotent.
async fn migrate(client: &mut Client) -> Result<(), PostgresError> {
    let transaction = client.transaction().await.map_err(PostgresError::Migrate)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(PostgresError::Migrate)?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS courtside_schema_version (
                version BIGINT PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(PostgresError::Migrate)?;
    let found: i64 = transaction
        .query_one("SELECT COALESCE(max(version), 0) FROM courtside_schema_version", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(PostgresError::Migrate)?;
    if found > SCHEMA_VERSION {
        return Err(PostgresError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    let first_missing = usize::try_from(found).unwrap_or(0);
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(first_missing) {
        let version = index as i64 + 1;
        transaction.batch_execute(migration).await.map_err(PostgresError::Migrate)?;
        transaction
            .execute("INSERT INTO courtside_schema_version (version) VALUES ($1)", &[&version])
            .await
            .map_err(PostgresError::Migrate)?;
        tracing::info!(version, "postgres store schema migrated");
    }
    transaction.commit().await.map_err(PostgresError::Migrate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_config_adds_timeouts_and_keeps_the_url_options() {
        let config = store_config("postgres://courtside@db.example:5433/live?options=-c%20search_path%3Dsports")
            .expect("valid url")
            .config;
        assert_eq!(config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(config.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert_eq!(config.get_application_name(), Some("courtside"));
        assert_eq!(
            config.get_options(),
            Some("-c search_path=sports -c statement_timeout=4000 -c idle_in_transaction_session_timeout=10000")
        );
        let explicit = store_config("host=127.0.0.1 connect_timeout=1 application_name=node-a").expect("valid").config;
        assert_eq!(explicit.get_connect_timeout(), Some(&Duration::from_secs(1)));
        assert_eq!(explicit.get_application_name(), Some("node-a"));
    }

    #[test]
    fn a_malformed_url_is_refused() {
        assert!(matches!(store_config("postgres://[not a host"), Err(PostgresError::InvalidUrl(_))));
    }

    #[test]
    fn the_deployment_guide_names_this_schema_version() {
        courtside_testkit::assert_docs_say("deployment.md", &format!("PostgreSQL schema version {SCHEMA_VERSION}"));
    }
}
