//! The database layout, its migrations (tracked by `PRAGMA user_version`) and how connections
//! are opened: one read-write connection for the writer thread, read-only ones for readers.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::SqliteError;

/// How long a connection waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The WAL file is truncated back to this size after a checkpoint empties it.
const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// Prepared statements kept per connection; the writer uses about fifteen.
const STATEMENT_CACHE_CAPACITY: usize = 32;

/// Migration `n` (0-based) takes the database from `user_version = n` to `n + 1`.
///
/// - `channels`: one row per channel ever seen. `top` is the last assigned offset (0 = none),
///   `earliest` the oldest offset still kept (`top + 1` when none is), `history_ttl_secs` the TTL
///   the latest append asked for.
/// - `publications`: the kept history, offsets `earliest..=top` of each channel.
/// - `keyed_state`: the latest live publication per key of keyed channels; never trimmed.
/// - `idempotency`: the publication each idempotency key produced, kept whole so a retry is
///   answered even after the history was trimmed; rows expire after the idempotency window.
const MIGRATIONS: &[&str] = &[r#"
    CREATE TABLE channels (
        name TEXT PRIMARY KEY NOT NULL,
        epoch TEXT NOT NULL,
        top INTEGER NOT NULL,
        earliest INTEGER NOT NULL,
        history_ttl_secs INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE publications (
        channel TEXT NOT NULL,
        offset INTEGER NOT NULL,
        key TEXT,
        removed INTEGER NOT NULL,
        data BLOB NOT NULL,
        time_ms INTEGER NOT NULL,
        PRIMARY KEY (channel, offset)
    ) WITHOUT ROWID;

    CREATE TABLE keyed_state (
        channel TEXT NOT NULL,
        key TEXT NOT NULL,
        offset INTEGER NOT NULL,
        data BLOB NOT NULL,
        time_ms INTEGER NOT NULL,
        PRIMARY KEY (channel, key)
    ) WITHOUT ROWID;

    CREATE TABLE idempotency (
        channel TEXT NOT NULL,
        key TEXT NOT NULL,
        offset INTEGER NOT NULL,
        publication_key TEXT,
        removed INTEGER NOT NULL,
        data BLOB NOT NULL,
        time_ms INTEGER NOT NULL,
        PRIMARY KEY (channel, key)
    ) WITHOUT ROWID;
"#];

/// The schema version this build writes and understands.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens (creating if needed) the database for writing: WAL journal, `synchronous=FULL` so a
/// committed transaction is on disk before the commit returns, and the schema migrated.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, SqliteError> {
    let mut connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    let journal_mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::WalUnavailable(journal_mode));
    }
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
    migrate(&mut connection)?;
    Ok(connection)
}

/// Opens a read-only connection to a database `open_writer` has already prepared.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, SqliteError> {
    let connection =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(connection)
}

fn migrate(connection: &mut Connection) -> Result<(), SqliteError> {
    let found: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(SqliteError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    let first_missing = usize::try_from(found).unwrap_or(0);
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(first_missing) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(migration)?;
        transaction.pragma_update(None, "user_version", index as i64 + 1)?;
        transaction.commit()?;
        tracing::info!(version = index + 1, "sqlite store schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_connection_is_wal_with_full_sync_and_current_schema() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("schema.db");
        let connection = open_writer(&path).expect("open writer");
        let journal_mode: String = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0)).expect("pragma");
        let synchronous: i64 = connection.query_row("PRAGMA synchronous", [], |row| row.get(0)).expect("pragma");
        let user_version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).expect("pragma");
        assert_eq!((journal_mode.as_str(), synchronous, user_version), ("wal", 2, SCHEMA_VERSION));
        drop(connection);
        // Reopening an up-to-date database runs no migration and keeps the version.
        let reopened = open_writer(&path).expect("reopen writer");
        let user_version: i64 = reopened.query_row("PRAGMA user_version", [], |row| row.get(0)).expect("pragma");
        assert_eq!(user_version, SCHEMA_VERSION);
        drop(reopened);
        let newer = Connection::open(&path).expect("open");
        newer.pragma_update(None, "user_version", SCHEMA_VERSION + 1).expect("bump version");
        drop(newer);
        assert!(matches!(open_writer(&path), Err(SqliteError::SchemaTooNew { .. })));
    }

    #[test]
    fn the_deployment_guide_names_this_schema_version() {
        courtside_testkit::assert_docs_say("deployment.md", &format!("SQLite schema version {SCHEMA_VERSION}"));
    }
}
