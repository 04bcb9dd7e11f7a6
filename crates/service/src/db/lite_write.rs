//! The SQLite write path for hot, small, all-or-nothing writes ([`super::Db::write_atomic`]): one
//! connection, used by one write at a time in arrival order, running the whole transaction on
//! the calling thread (see `docs/service/storage.md`, "Connections").
//!
//! Why: through sqlx, every statement of a transaction is a round trip to the connection's
//! worker thread (`BEGIN`, each statement, `COMMIT`, and a ping when the pool takes the
//! connection back), and SQLite's single writer is held across all of those wake-ups. The
//! attestation benchmark spent most of its time waiting on exactly that. Here the transaction
//! is a few microseconds of SQLite work on the caller's thread, and the write lock is held for
//! no longer.
//!
//! Sharing the file with sqlx's writer: both take SQLite's write lock with `BEGIN IMMEDIATE`.
//! This connection never waits inside SQLite (`busy_timeout` 0, so a runtime thread is never put
//! to sleep): when sqlx's writer holds the lock, the write yields and retries after a short
//! async sleep, for up to [`BUSY_TIMEOUT`]. The connection does not checkpoint the WAL inside a
//! commit (that would fsync on a runtime thread); every [`CHECKPOINT_EVERY`] commits a passive
//! checkpoint runs on the blocking pool instead, besides those sqlx's connections make.

use super::DbError;
use super::row::Arg;
use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a write waits for SQLite's write lock (held by sqlx's writer), as the pools do.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The pause between two attempts at the write lock.
const BUSY_RETRY: Duration = Duration::from_micros(500);

/// Commits between two background WAL checkpoints.
const CHECKPOINT_EVERY: u64 = 500;

/// One statement of [`super::Db::write_atomic`].
#[derive(Clone, Copy, Debug)]
pub struct WriteStmt<'a> {
    /// The SQL, with `$1`, `$2`, ... placeholders.
    pub sql: &'a str,
    /// The arguments of `$1`, `$2`, ...
    pub args: &'a [Arg<'a>],
    /// The write is a compare-and-set: unless this statement changes exactly one row, nothing
    /// of the whole write is kept and the result is [`Written::Unchanged`].
    pub must_change_one_row: bool,
}

/// The outcome of [`super::Db::write_atomic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Every statement ran and the transaction committed.
    Committed,
    /// A statement with `must_change_one_row` changed no row (or several): rolled back,
    /// nothing written.
    Unchanged,
}

/// The single SQLite write connection of the fast path.
#[derive(Debug)]
pub(super) struct LiteWriter {
    path: PathBuf,
    conn: tokio::sync::Mutex<Option<Connection>>,
    commits: AtomicU64,
    checkpointing: Arc<AtomicBool>,
}

enum Attempt {
    Done(Written),
    Busy,
}

impl LiteWriter {
    pub(super) fn new(path: PathBuf) -> LiteWriter {
        LiteWriter {
            path,
            conn: tokio::sync::Mutex::new(None),
            commits: AtomicU64::new(0),
            checkpointing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Run `stmts` in one transaction: all of them or none.
    pub(super) async fn write_atomic(&self, stmts: &[WriteStmt<'_>]) -> Result<Written, DbError> {
        // Fair (FIFO) among this process's fast writes; the only await points are here and in
        // the busy retry, so a cancelled request never leaves a transaction open.
        let mut guard = self.conn.lock().await;
        let deadline = Instant::now() + BUSY_TIMEOUT;
        loop {
            let conn = match guard.as_mut() {
                Some(conn) => conn,
                None => guard.insert(open(&self.path)?),
            };
            match attempt(conn, stmts) {
                Ok(Attempt::Done(written)) => {
                    if written == Written::Committed {
                        self.committed();
                    }
                    return Ok(written);
                }
                Ok(Attempt::Busy) if Instant::now() < deadline => {
                    tokio::time::sleep(BUSY_RETRY).await;
                }
                Ok(Attempt::Busy) => {
                    return Err(DbError::Sqlite(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("the database stayed locked by another writer".into()),
                    )));
                }
                Err(e) => {
                    // Leave no transaction open; a connection that cannot roll back is dropped.
                    if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
                        *guard = None;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Count a commit; every [`CHECKPOINT_EVERY`], checkpoint the WAL off the runtime threads.
    fn committed(&self) {
        let n = self.commits.fetch_add(1, Ordering::Relaxed) + 1;
        if !n.is_multiple_of(CHECKPOINT_EVERY) || self.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (path, flag) = (self.path.clone(), self.checkpointing.clone());
        tokio::task::spawn_blocking(move || {
            // Passive: copies what no reader needs, never waits for or blocks a writer.
            let result = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)
                .and_then(|c| c.execute_batch("PRAGMA wal_checkpoint(PASSIVE)"));
            if let Err(e) = result {
                tracing::warn!(error = %e, "WAL checkpoint failed (the next one retries)");
            }
            flag.store(false, Ordering::Release);
        });
    }
}

/// One try: `BEGIN IMMEDIATE` (or `Busy` when another connection holds the write lock), the
/// statements, `COMMIT`. On an error the caller rolls back.
fn attempt(conn: &Connection, stmts: &[WriteStmt<'_>]) -> Result<Attempt, DbError> {
    match conn.execute_batch("BEGIN IMMEDIATE") {
        Ok(()) => {}
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            return Ok(Attempt::Busy);
        }
        Err(e) => return Err(e.into()),
    }
    for s in stmts {
        let mut stmt = conn.prepare_cached(s.sql).map_err(DbError::from)?;
        super::lite::bind(&mut stmt, s.args)?;
        let changed = stmt.raw_execute().map_err(DbError::from)?;
        if s.must_change_one_row && changed != 1 {
            conn.execute_batch("ROLLBACK")?;
            return Ok(Attempt::Done(Written::Unchanged));
        }
    }
    conn.execute_batch("COMMIT")?;
    Ok(Attempt::Done(Written::Committed))
}

/// Open the write connection (the pools created the file and put it in WAL mode).
fn open(path: &std::path::Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Never sleep inside SQLite on a runtime thread: a busy lock is retried asynchronously.
    conn.busy_timeout(Duration::ZERO)?;
    // Statement journals and other temporaries in memory: on disk, each UPDATE in a
    // transaction created (and unlinked) a file, an inode allocation on the runtime thread.
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0; \
         PRAGMA temp_store = MEMORY",
    )?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}
