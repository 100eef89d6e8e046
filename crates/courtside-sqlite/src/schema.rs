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
///
/// Migration 1 adds each publication's optional event name (`event`, NULL for none) to the three
/// tables that keep publications.
///
/// Migration 2 adds `channels.active_ms`: when the channel was last created, appended to, opened
/// or touched (unix milliseconds), which idle-channel expiry compares; existing channels count as
/// active at the time of the migration.
const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    r#"
    ALTER TABLE publications ADD COLUMN event TEXT;
    ALTER TABLE keyed_state ADD COLUMN event TEXT;
    ALTER TABLE idempotency ADD COLUMN event TEXT;
"#,
    r#"
    ALTER TABLE channels ADD COLUMN active_ms INTEGER NOT NULL DEFAULT 0;
    UPDATE channels SET active_ms = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER);
"#,
];

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
    fn a_version_1_database_migrates_and_keeps_its_rows_without_event_names() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("version-1.db");
        let old = Connection::open(&path).expect("open");
        old.execute_batch(MIGRATIONS[0]).expect("the first migration");
        old.pragma_update(None, "user_version", 1).expect("version 1");
        old.execute_batch(
            "INSERT INTO channels VALUES ('match:1', 'e1', 1, 1, 0);
             INSERT INTO publications VALUES ('match:1', 1, 'score', 0, X'7B7D', 5);
             INSERT INTO keyed_state VALUES ('match:1', 'score', 1, X'7B7D', 5);
             INSERT INTO idempotency VALUES ('match:1', 'op-1', 1, 'score', 0, X'7B7D', 5);",
        )
        .expect("rows of the previous release");
        drop(old);
        let migrated = open_writer(&path).expect("migrate");
        let user_version: i64 = migrated.query_row("PRAGMA user_version", [], |row| row.get(0)).expect("pragma");
        assert_eq!(user_version, SCHEMA_VERSION);
        for table in ["publications", "keyed_state", "idempotency"] {
            let (rows, data, event): (i64, Vec<u8>, Option<String>) = migrated
                .query_row(&format!("SELECT count(*), data, event FROM {table}"), [], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .expect("row");
            assert_eq!((rows, data.as_slice(), event), (1, &b"{}"[..], None), "{table} keeps its row, event NULL");
        }
    }

    #[test]
    fn a_version_2_database_migrates_its_channels_as_active_now() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("version-2.db");
        let old = Connection::open(&path).expect("open");
        old.execute_batch(MIGRATIONS[0]).expect("the first migration");
        old.execute_batch(MIGRATIONS[1]).expect("the second migration");
        old.pragma_update(None, "user_version", 2).expect("version 2");
        old.execute_batch("INSERT INTO channels VALUES ('match:1', 'e1', 1, 1, 0);").expect("a channel");
        drop(old);
        let before = courtside_core::stream::now_ms();
        let migrated = open_writer(&path).expect("migrate");
        let active_ms: u64 = migrated.query_row("SELECT active_ms FROM channels", [], |row| row.get(0)).expect("row");
        let after = courtside_core::stream::now_ms();
        assert!((before.saturating_sub(1000)..=after + 1000).contains(&active_ms), "{active_ms} is the migration's time");
    }

    #[test]
    fn the_deployment_guide_names_this_schema_version() {
        courtside_testkit::assert_docs_say("deployment.md", &format!("SQLite schema version {SCHEMA_VERSION}"));
    }
}
