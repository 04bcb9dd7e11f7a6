//! The SQLite read path: the hottest single-statement reads run on the calling thread through
//! rusqlite, on a few read-only connections kept here (see `docs/service/storage.md`,
//! "Connections").
//!
//! Why block the runtime thread: sqlx runs every SQLite connection on a worker thread of its
//! own, so each query costs two cross-thread wake-ups (there and back), which profiling showed
//! to be the largest single cost of an authenticated device `GET`. The reads sent here are
//! bounded and indexed (a point lookup by primary or unique key, a page of at most a few hundred
//! rows by key order) on a WAL database whose pages sit in the OS page cache and SQLite's own:
//! they take microseconds, less than the two wake-ups would, and a WAL reader never waits for
//! the writer. A read that had to wait (a checkpoint restarting the WAL, at worst) is bounded by
//! `busy_timeout`. Writes and transactions never come here: they stay on sqlx's pools, so a
//! read never runs inside a write transaction (a read of a transaction's own writes goes
//! through the transaction).

use super::row::{Arg, DbRow};
use super::{ACQUIRE_TIMEOUT, DbError};
use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit, TryAcquireError};

/// How long a read waits on a lock held by a WAL checkpoint or recovery (like the pools').
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection (the read path uses fewer than ten SQL texts).
const STATEMENT_CACHE: usize = 32;

/// Parameter names, in argument order: `$1` binds the first argument, and so on.
const PLACEHOLDERS: [&str; 16] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
    "$16",
];

/// Read-only SQLite connections, each used by one read at a time, outside any pool.
///
/// Holds connections only: no data, nothing a second replica would miss. A connection whose
/// statement failed is dropped, never reused. After [`LiteReads::close`], reads fail.
#[derive(Debug)]
pub(super) struct LiteReads {
    path: PathBuf,
    /// One permit per connection that may exist.
    permits: Semaphore,
    /// Idle connections (most recently used last).
    idle: Mutex<Vec<Connection>>,
}

/// Why a read failed: the database (the connection is dropped) or the caller's mapping of a
/// row (the connection is fine).
enum Failure<E> {
    Db(DbError),
    Map(E),
}

impl LiteReads {
    pub(super) fn new(path: PathBuf, max: u32) -> LiteReads {
        LiteReads {
            path,
            permits: Semaphore::new(max.max(1) as usize),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The first row of `sql` mapped by `map`, or `None`.
    pub(super) async fn read_optional<T, E>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        map: impl FnOnce(&DbRow<'_>) -> Result<T, E>,
    ) -> Result<Option<T>, E>
    where
        E: From<DbError>,
    {
        let mut conn = self.acquire().await?;
        conn.run(|c| {
            let mut stmt = prepare(c, sql, args)?;
            let mut rows = stmt.raw_query();
            match rows.next().map_err(|e| Failure::Db(e.into()))? {
                Some(row) => map(&DbRow::Sqlite(row)).map(Some).map_err(Failure::Map),
                None => Ok(None),
            }
        })
    }

    /// Every row of `sql`, each mapped by `map`.
    pub(super) async fn read_all<T, E>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        mut map: impl FnMut(&DbRow<'_>) -> Result<T, E>,
    ) -> Result<Vec<T>, E>
    where
        E: From<DbError>,
    {
        let mut conn = self.acquire().await?;
        conn.run(|c| {
            let mut stmt = prepare(c, sql, args)?;
            let mut rows = stmt.raw_query();
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(|e| Failure::Db(e.into()))? {
                out.push(map(&DbRow::Sqlite(row)).map_err(Failure::Map)?);
            }
            Ok(out)
        })
    }

    /// A connection, waiting (up to [`ACQUIRE_TIMEOUT`]) while all are in use.
    pub(super) async fn acquire(&self) -> Result<LiteConn<'_>, DbError> {
        let permit = match self.permits.try_acquire() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return Err(DbError::Sqlx(sqlx::Error::PoolClosed)),
            Err(TryAcquireError::NoPermits) => {
                tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.acquire())
                    .await
                    .map_err(|_| DbError::Sqlx(sqlx::Error::PoolTimedOut))?
                    .map_err(|_| DbError::Sqlx(sqlx::Error::PoolClosed))?
            }
        };
        let idle = self
            .idle
            .lock()
            .map_err(|_| DbError::Sqlx(sqlx::Error::PoolClosed))?
            .pop();
        let conn = match idle {
            Some(c) => c,
            // Opening is a few file-system calls; it happens once per connection.
            None => open(&self.path)?,
        };
        Ok(LiteConn {
            conn: Some(conn),
            reads: self,
            _permit: permit,
        })
    }

    /// Refuse further reads and close the idle connections.
    pub(super) fn close(&self) {
        self.permits.close();
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

/// Open a read-only connection on the database file (which the pools created and put in WAL
/// mode, a setting that persists in the file).
fn open(path: &std::path::Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(
        path,
        // Read-write at the file level (a WAL reader writes the shared-memory index), read-only
        // by `query_only`; no mutex: a connection is used by one thread at a time.
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA query_only = ON")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// The cached statement for `sql` with `args` bound to `$1`, `$2`, ... by name, so one SQL text
/// serves both engines (a placeholder may repeat or appear out of order). Every argument must
/// name a parameter of the statement and every parameter must have an argument.
fn prepare<'c, E>(
    conn: &'c Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<rusqlite::CachedStatement<'c>, Failure<E>> {
    let mut stmt = conn
        .prepare_cached(sql)
        .map_err(|e| Failure::Db(e.into()))?;
    bind(&mut stmt, args.iter().copied()).map_err(Failure::Db)?;
    Ok(stmt)
}

/// Bind `args` to `$1`, `$2`, ... of `stmt` by name (also for [`super::lite_write`]). Every
/// argument must name a parameter of the statement and every parameter must have an argument.
pub(super) fn bind<'a>(
    stmt: &mut rusqlite::Statement<'_>,
    args: impl ExactSizeIterator<Item = Arg<'a>>,
) -> Result<(), DbError> {
    let count = args.len();
    if count > PLACEHOLDERS.len() {
        return Err(DbError::UnusedArgument(PLACEHOLDERS.len() + 1));
    }
    for (i, (arg, name)) in args.zip(PLACEHOLDERS).enumerate() {
        let index = stmt
            .parameter_index(name)?
            .ok_or(DbError::UnusedArgument(i + 1))?;
        match arg {
            Arg::Text(s) => stmt.raw_bind_parameter(index, s),
            Arg::Int(n) => stmt.raw_bind_parameter(index, n),
            Arg::NullText | Arg::NullInt => stmt.raw_bind_parameter(index, rusqlite::types::Null),
        }?;
    }
    // Each `$N` is one parameter however often it appears: the arguments bound (each to a
    // distinct name) must be all of them.
    if stmt.parameter_count() != count {
        return Err(DbError::UnboundParameter);
    }
    Ok(())
}

/// A connection taken from [`LiteReads`]; goes back on drop unless a statement failed on it.
pub(super) struct LiteConn<'a> {
    conn: Option<Connection>,
    reads: &'a LiteReads,
    _permit: SemaphorePermit<'a>,
}

impl LiteConn<'_> {
    /// Run `f` on the connection (synchronously); a database failure drops the connection.
    fn run<T, E: From<DbError>>(
        &mut self,
        f: impl FnOnce(&Connection) -> Result<T, Failure<E>>,
    ) -> Result<T, E> {
        let Some(conn) = self.conn.as_ref() else {
            return Err(DbError::Sqlx(sqlx::Error::PoolClosed).into());
        };
        match f(conn) {
            Ok(v) => Ok(v),
            Err(Failure::Map(e)) => Err(e),
            Err(Failure::Db(e)) => {
                self.conn = None;
                Err(e.into())
            }
        }
    }
}

impl Drop for LiteConn<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.reads.permits.is_closed()
            && let Ok(mut idle) = self.reads.idle.lock()
        {
            idle.push(conn);
        }
    }
}
