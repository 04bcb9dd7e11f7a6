//! The database: one [`sqlx::AnyPool`] that is SQLite or PostgreSQL, the same migrations on both,
//! and helpers that keep SQL portable (see `docs/service/storage.md`).

mod lite;
mod lite_write;
mod row;

pub use lite_write::{WriteStmt, Written};
pub use row::{Arg, Column, DbRow};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The migrations, embedded at compile time; identical SQL for both backends.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A pooled connection idle for longer than this is pinged before it is handed out.
const IDLE_PING_AFTER: Duration = Duration::from_secs(1);

/// How long a query waits for a connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A read connection ([`ReadConns`]) idle for longer than this is closed, so a replica gives
/// back to PostgreSQL the connections a burst of reads opened.
const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Which database engine a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file (WAL mode).
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Errors opening or migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names an engine we do not support.
    #[error("unsupported database URL (use sqlite://PATH or postgres://...): {0}")]
    UnsupportedUrl(String),
    /// Connecting or a query failed.
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// Running migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query or a column read on the SQLite read path failed ([`Db::read_optional`],
    /// [`Db::read_all`]).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A read's argument `$N` names no parameter of its statement.
    #[error("query argument ${0} is not a parameter of the statement")]
    UnusedArgument(usize),
    /// A read's statement has a parameter no argument binds (placeholders are `$1`, `$2`, ...,
    /// one argument each).
    #[error("query parameter without an argument")]
    UnboundParameter,
}

impl DbError {
    /// Whether the database is unavailable (closed, overloaded, busy, unreachable) rather than
    /// the query wrong: the client may retry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Sqlx(e) => matches!(
                e,
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            ),
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::CannotOpen
            ),
            _ => false,
        }
    }
}

/// Why [`Db::ready`] says the database is not ready.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// The database does not answer, or holds no migration table.
    #[error("database unreachable or not migrated: {0}")]
    Unreachable(#[source] sqlx::Error),
    /// Fewer migrations are applied than this binary knows.
    #[error("{applied} of {known} migrations applied")]
    Behind {
        /// Migrations applied.
        applied: i64,
        /// Migrations this binary knows.
        known: i64,
    },
}

/// A transaction; every write goes through one.
pub type Tx = Transaction<'static, Any>;

/// The database handle: cheap to clone, shared by all requests.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    /// SQLite: one connection for write transactions (SQLite has one writer at a time anyway;
    /// queueing in the pool is cheaper than spinning on the busy timeout). PostgreSQL: none
    /// (writes use `pool`).
    writer: Option<AnyPool>,
    /// Connections for single-statement reads on the hottest paths ([`Db::read_optional`],
    /// [`Db::read_all`]).
    reads: Reads,
    /// SQLite file: the connection of [`Db::write_atomic`] (PostgreSQL: `pool`).
    fast_writer: Option<Arc<lite_write::LiteWriter>>,
    backend: Backend,
    /// PostgreSQL: where a notification listener connects ([`Db::pg_listener`]).
    listen: Option<ListenOptions>,
}

/// The connect options of a [`Db::pg_listener`] (their `Debug` form names no password).
#[derive(Clone)]
struct ListenOptions(sqlx::postgres::PgConnectOptions);

impl std::fmt::Debug for ListenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenOptions(..)")
    }
}

/// Pool options shared by every pool.
///
/// sqlx pings every connection before handing it out (`test_before_acquire`, on by default) and
/// again when it comes back to the pool. Each ping is a hand-off to SQLite's worker thread or a
/// round trip to PostgreSQL: with both, a one-query read cost three. sqlx always pings on release
/// (not configurable, and off the request's path); before acquiring we ping only a connection
/// that sat idle for over [`IDLE_PING_AFTER`] (where a server restart or a dropped socket would
/// show), so a busy pool pays one hand-off per query plus the release ping.
fn pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_PING_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// The SQLite URL of the database file in a data directory.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("ferrosphere.db").display()
    )
}

impl Db {
    /// Open a pool on `url` (`sqlite://...` or `postgres://...`). Does not migrate.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(DbError::UnsupportedUrl(redact_url(url)));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let sqlite_setup =
            || pool_options().after_connect(|conn, _meta| Box::pin(sqlite_pragmas(conn)));
        let writer = if backend == Backend::Sqlite {
            Some(
                sqlite_setup()
                    .max_connections(1)
                    .connect_with(options.clone())
                    .await?,
            )
        } else {
            None
        };
        let mut pool = pool_options().max_connections(max_connections);
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| Box::pin(sqlite_pragmas(conn)));
        }
        let file = sqlite_file(url);
        let reads = match &file {
            Some(path) => Reads::Sqlite(Arc::new(lite::LiteReads::new(
                path.clone(),
                max_connections,
            ))),
            None => Reads::Sqlx(ReadConns::new(options.clone(), backend, max_connections)),
        };
        let fast_writer = file
            .map(|path| lite_write::LiteWriter::new(path).map(Arc::new))
            .transpose()?;
        let pool = pool.connect_with(options).await?;
        let listen = match backend {
            Backend::Postgres => Some(ListenOptions(sqlx::postgres::PgConnectOptions::from_str(
                url,
            )?)),
            Backend::Sqlite => None,
        };
        Ok(Db {
            pool,
            writer,
            reads,
            fast_writer,
            backend,
            listen,
        })
    }

    /// PostgreSQL: a `LISTEN`/`NOTIFY` listener on its own connection (made lazily, and again
    /// after it is lost: see [`sqlx::postgres::PgListener::try_recv`]). SQLite: `None` (one
    /// process owns the file; there is nobody to notify).
    pub async fn pg_listener(&self) -> Option<Result<sqlx::postgres::PgListener, sqlx::Error>> {
        let options = self.listen.as_ref()?.0.clone();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(options);
        Some(
            sqlx::postgres::PgListener::connect_with(&pool)
                .await
                .map(|mut l| {
                    l.ignore_pool_close_event(true);
                    l
                }),
        )
    }

    /// Apply pending migrations.
    pub async fn migrate(&self) -> Result<(), DbError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// The engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for a single write statement outside a transaction (autocommit: the statement
    /// is atomic on its own): SQLite's writer connection, PostgreSQL's pool.
    pub fn writer(&self) -> &AnyPool {
        self.writer.as_ref().unwrap_or(&self.pool)
    }

    /// Begin a write transaction. On SQLite this takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so a transaction that reads then writes never fails half-way on a lock
    /// upgrade; on PostgreSQL invariants that span rows are protected by [`lock_tenant`].
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        match (self.backend, &self.writer) {
            (Backend::Sqlite, Some(w)) => w.begin_with("BEGIN IMMEDIATE").await,
            (Backend::Sqlite, None) => self.pool.begin_with("BEGIN IMMEDIATE").await,
            (Backend::Postgres, _) => self.pool.begin().await,
        }
    }

    /// Run a single-statement read with `args` bound to `$1`, `$2`, ... and map its first row
    /// with `map`, or `None` without rows. The result is the same as through sqlx's pool:
    ///
    /// - SQLite: on the calling thread, through rusqlite on a few read-only connections
    ///   ([`lite`]; why blocking is right here is explained there). For bounded indexed reads
    ///   only: a point lookup or one page.
    /// - PostgreSQL: on connections kept outside sqlx's pool ([`ReadConns`]), one round trip.
    ///
    /// For reads outside transactions only; `map` sees each row in place through [`DbRow`], so
    /// one mapping serves both engines.
    pub async fn read_optional<T, E>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        map: impl FnOnce(&DbRow<'_>) -> Result<T, E>,
    ) -> Result<Option<T>, E>
    where
        E: From<DbError>,
    {
        match &self.reads {
            Reads::Sqlite(lite) => lite.read_optional(sql, args, map).await,
            Reads::Sqlx(conns) => {
                let mut conn = conns.acquire().await.map_err(DbError::Sqlx)?;
                let result = sqlx_query(sql, args)
                    .fetch_optional(conn.get().map_err(DbError::Sqlx)?)
                    .await;
                match result {
                    Ok(row) => row.as_ref().map(|r| map(&DbRow::Any(r))).transpose(),
                    Err(e) => {
                        conn.discard();
                        Err(DbError::Sqlx(e).into())
                    }
                }
            }
        }
    }

    /// Run a single-statement read and map every row with `map`; see [`Db::read_optional`].
    pub async fn read_all<T, E>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        mut map: impl FnMut(&DbRow<'_>) -> Result<T, E>,
    ) -> Result<Vec<T>, E>
    where
        E: From<DbError>,
    {
        match &self.reads {
            Reads::Sqlite(lite) => lite.read_all(sql, args, map).await,
            Reads::Sqlx(conns) => {
                let mut conn = conns.acquire().await.map_err(DbError::Sqlx)?;
                let result = sqlx_query(sql, args)
                    .fetch_all(conn.get().map_err(DbError::Sqlx)?)
                    .await;
                match result {
                    Ok(rows) => rows.iter().map(|r| map(&DbRow::Any(r))).collect(),
                    Err(e) => {
                        conn.discard();
                        Err(DbError::Sqlx(e).into())
                    }
                }
            }
        }
    }

    /// Run `stmts` (each with its arguments bound to `$1`, `$2`, ...) in one transaction: all of
    /// them or none. A statement marked [`WriteStmt::must_change_one_row`] that changes another
    /// number of rows rolls everything back: [`Written::Unchanged`] (a compare-and-set).
    ///
    /// For small writes on hot paths (an attestation's verdict): on a SQLite file one writer
    /// thread commits the writes waiting at the same moment together, each in a savepoint of
    /// its own ([`lite_write`]), instead of a round trip to sqlx's worker thread per statement;
    /// on PostgreSQL (and in-memory SQLite) it is an ordinary sqlx transaction on the pool.
    ///
    /// Not a second way to write for the service: it is the datastore's own tool for the few
    /// writes that must not queue behind sqlx's writer (a token's last use, an attestation's
    /// verdict, a device's new target set), each a datastore function. Everything else writes
    /// in a transaction from [`Db::begin_write`]. `tests/layering.rs` finds callers outside
    /// `datastore/`.
    pub(crate) async fn write_atomic(&self, stmts: &[WriteStmt<'_>]) -> Result<Written, DbError> {
        if let Some(writer) = &self.fast_writer {
            return writer.write_atomic(stmts).await;
        }
        let mut tx = self.begin_write().await?;
        for stmt in stmts {
            let changed = sqlx_query(stmt.sql, stmt.args)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if stmt.must_change_one_row && changed != 1 {
                tx.rollback().await?;
                return Ok(Written::Unchanged);
            }
        }
        tx.commit().await?;
        Ok(Written::Committed)
    }

    /// Whether the database answers and every migration this binary knows has been applied.
    pub async fn ready(&self) -> Result<(), NotReady> {
        let applied: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await
                .and_then(|row| row.try_get("n"))
                .map_err(NotReady::Unreachable)?;
        let known = MIGRATOR.iter().count() as i64;
        if applied < known {
            return Err(NotReady::Behind { applied, known });
        }
        Ok(())
    }

    /// Close the pool (waits for connections to be returned).
    pub async fn close(&self) {
        match &self.reads {
            Reads::Sqlite(lite) => lite.close(),
            Reads::Sqlx(conns) => conns.close().await,
        }
        if let Some(w) = &self.fast_writer {
            w.close().await;
        }
        if let Some(w) = &self.writer {
            w.close().await;
        }
        self.pool.close().await;
    }
}

/// Where [`Db::read_optional`] and [`Db::read_all`] run.
#[derive(Clone, Debug)]
enum Reads {
    /// SQLite file: rusqlite on the calling thread.
    Sqlite(Arc<lite::LiteReads>),
    /// PostgreSQL (and in-memory SQLite, which a second driver could not share): sqlx.
    Sqlx(ReadConns),
}

/// The database file of a SQLite URL, or `None` for PostgreSQL and in-memory SQLite.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

/// `sql` with `args` bound, for sqlx.
fn sqlx_query<'a>(
    sql: &str,
    args: &[Arg<'a>],
) -> sqlx::query::Query<'a, Any, sqlx::any::AnyArguments> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for arg in args {
        query = match *arg {
            Arg::Text(s) => query.bind(s),
            Arg::Int(n) => query.bind(n),
            Arg::NullText => query.bind(None::<String>),
            Arg::NullInt => query.bind(None::<i64>),
        };
    }
    query
}

/// Connections for the hottest single-statement reads, kept without sqlx's pool.
///
/// Why: sqlx's pool pings every connection it takes back (`ping` on release, not configurable)
/// in a task it spawns per query. On SQLite that ping is a second hand-off to the connection's
/// worker thread, on PostgreSQL a second round trip: as much as the query itself. These
/// connections are handed out and taken back without it. A connection that failed a query is
/// dropped (never reused), one idle for over [`IDLE_PING_AFTER`] is pinged before use, and a
/// request cancelled mid-query leaves nothing behind (PostgreSQL drains the pending answer
/// before the next query; SQLite's worker drops rows nobody waits for). Holds connections only:
/// no data, nothing a second replica would miss.
#[derive(Clone, Debug)]
struct ReadConns {
    inner: Arc<ReadInner>,
}

#[derive(Debug)]
struct ReadInner {
    options: AnyConnectOptions,
    backend: Backend,
    /// One permit per connection that may exist.
    permits: Arc<Semaphore>,
    /// Idle connections and since when (most recently used last).
    idle: Mutex<Vec<(AnyConnection, Instant)>>,
}

/// A connection taken from [`ReadConns`]; goes back on drop unless discarded.
struct ReadConn {
    conn: Option<AnyConnection>,
    inner: Arc<ReadInner>,
    _permit: OwnedSemaphorePermit,
}

impl ReadConn {
    fn get(&mut self) -> Result<&mut AnyConnection, sqlx::Error> {
        self.conn.as_mut().ok_or(sqlx::Error::PoolClosed)
    }

    /// Drop the connection instead of reusing it.
    fn discard(&mut self) {
        self.conn = None;
    }
}

impl Drop for ReadConn {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.inner.permits.is_closed()
            && let Ok(mut idle) = self.inner.idle.lock()
        {
            idle.push((conn, Instant::now()));
        }
    }
}

impl ReadInner {
    /// Take the connections idle for longer than `timeout`. They are at the front of the list:
    /// connections are reused from its end and returned to its end, so it stays ordered by the
    /// time each went idle.
    fn take_expired(&self, timeout: Duration) -> Vec<AnyConnection> {
        let Ok(mut idle) = self.idle.lock() else {
            return Vec::new();
        };
        let expired = idle
            .iter()
            .position(|(_, since)| since.elapsed() <= timeout)
            .unwrap_or(idle.len());
        idle.drain(..expired).map(|(conn, _)| conn).collect()
    }
}

impl ReadConns {
    fn new(options: AnyConnectOptions, backend: Backend, max: u32) -> ReadConns {
        let inner = Arc::new(ReadInner {
            options,
            backend,
            permits: Arc::new(Semaphore::new(max.max(1) as usize)),
            idle: Mutex::new(Vec::new()),
        });
        // Close connections idle for too long, checked a few times per timeout; the task ends
        // with the handle or at `close`.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&inner);
            runtime.spawn(async move {
                let mut every = tokio::time::interval(READ_IDLE_TIMEOUT / 5);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    if inner.permits.is_closed() {
                        break;
                    }
                    for conn in inner.take_expired(READ_IDLE_TIMEOUT) {
                        let _ = conn.close().await;
                    }
                }
            });
        }
        ReadConns { inner }
    }

    async fn acquire(&self) -> Result<ReadConn, sqlx::Error> {
        let permit =
            tokio::time::timeout(ACQUIRE_TIMEOUT, self.inner.permits.clone().acquire_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?
                .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self
            .inner
            .idle
            .lock()
            .map_err(|_| sqlx::Error::PoolClosed)?
            .pop();
        let conn = match idle {
            Some((mut conn, since)) => {
                if since.elapsed() <= IDLE_PING_AFTER || conn.ping().await.is_ok() {
                    conn
                } else {
                    self.connect().await?
                }
            }
            None => self.connect().await?,
        };
        Ok(ReadConn {
            conn: Some(conn),
            inner: self.inner.clone(),
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = tokio::time::timeout(
            ACQUIRE_TIMEOUT,
            AnyConnection::connect_with(&self.inner.options),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
        if self.inner.backend == Backend::Sqlite {
            sqlite_pragmas(&mut conn).await?;
        }
        Ok(conn)
    }

    /// Refuse further acquires and close the idle connections.
    async fn close(&self) {
        self.inner.permits.close();
        let idle = match self.inner.idle.lock() {
            Ok(mut idle) => std::mem::take(&mut *idle),
            Err(_) => Vec::new(),
        };
        for (conn, _) in idle {
            let _ = conn.close().await;
        }
    }
}

/// Per-connection SQLite settings.
async fn sqlite_pragmas(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    // WAL lets readers run while one writer writes; the mode persists in the file.
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    conn.execute("PRAGMA busy_timeout = 5000").await?;
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    // Temporary files (statement journals of UPDATEs in transactions, sorts) in memory rather
    // than created and unlinked on disk for each statement.
    conn.execute("PRAGMA temp_store = MEMORY").await?;
    Ok(())
}

/// Take the tenant's row lock for the rest of the transaction (PostgreSQL), so that checks
/// spanning rows (the last Administrator, a group's devices) cannot race. Returns false when the
/// tenant does not exist.
pub async fn lock_tenant(tx: &mut Tx, tenant_id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE tenants SET version = version + 1 WHERE id = $1")
        .bind(tenant_id)
        .execute(&mut **tx)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix seconds to a timestamp (clamped to the epoch on nonsense).
pub fn ts(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Store a bool portably.
pub fn b2i(b: bool) -> i64 {
    i64::from(b)
}

/// The audit-log row insert: `$1` id (UUIDv7), `$2` tenant, `$3` time (Unix seconds), `$4`
/// actor, `$5` action, `$6` object type, `$7` object ID, `$8` details (JSON, no secrets).
pub const AUDIT_INSERT: &str = "INSERT INTO audit_log \
    (id, tenant_id, at, actor, action, object_type, object_id, details) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Append an audit-log row inside `tx`. `details` must hold no secrets.
pub async fn audit(
    tx: &mut Tx,
    tenant_id: Option<&str>,
    actor: Option<&str>,
    action: &str,
    object_type: &str,
    object_id: &str,
    details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(AUDIT_INSERT)
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(tenant_id)
        .bind(now())
        .bind(actor)
        .bind(action)
        .bind(object_type)
        .bind(object_id)
        .bind(details.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A database URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// `$start, $start+1, ...`: `n` numbered bind parameters for an `IN (...)` list.
pub fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(row: &DbRow<'_>) -> Result<i64, DbError> {
        row.get("n")
    }

    fn stmt<'a>(
        sql: &'static str,
        args: &'a [Arg<'a>],
        must_change_one_row: bool,
    ) -> WriteStmt<'a> {
        WriteStmt {
            sql,
            args,
            must_change_one_row,
        }
    }

    /// A fresh migrated database of each engine this run can reach: SQLite always,
    /// PostgreSQL when `FERRO_TEST_PG_URL` is set (a new database, dropped by the caller's
    /// [`drop_pg`]).
    async fn databases() -> (Vec<(Db, Option<String>)>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&sqlite_url(dir.path()), 2).await.unwrap();
        db.migrate().await.unwrap();
        let mut all = vec![(db, None)];
        if let Ok(base) = std::env::var("FERRO_TEST_PG_URL") {
            sqlx::any::install_default_drivers();
            let name = format!("ferro_dbtest_{}", uuid::Uuid::new_v4().simple());
            let mut admin = AnyConnection::connect(&format!("{base}/postgres"))
                .await
                .unwrap();
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .unwrap();
            let db = Db::connect(&format!("{base}/{name}"), 2).await.unwrap();
            db.migrate().await.unwrap();
            all.push((db, Some(name)));
        }
        (all, dir)
    }

    /// A migrated SQLite database file in a fresh directory, with one more table for the test.
    async fn sqlite_with_table(create_table: &str) -> (Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&sqlite_url(dir.path()), 2).await.unwrap();
        db.migrate().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(create_table.to_string()))
            .execute(db.pool())
            .await
            .unwrap();
        (db, dir)
    }

    async fn drop_pg(name: Option<String>) {
        if let (Some(name), Ok(base)) = (name, std::env::var("FERRO_TEST_PG_URL")) {
            let mut admin = AnyConnection::connect(&format!("{base}/postgres"))
                .await
                .unwrap();
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
        }
    }

    /// The read path: a failed query drops its connection and the next read works; more
    /// concurrent reads than connections queue and none fails; after `close`, reads fail
    /// instead of opening connections. On each engine (SQLite: rusqlite on the calling thread;
    /// PostgreSQL: `ReadConns`).
    #[tokio::test]
    async fn read_connections_recover_and_close() {
        let (dbs, _dir) = databases().await;
        for (db, pg) in dbs {
            let one = |db: Db| async move {
                db.read_optional("SELECT 1 AS n", &[], int)
                    .await
                    .map_err(|e: DbError| e)
            };
            assert_eq!(one(db.clone()).await.unwrap(), Some(1));
            let failed: Result<Vec<i64>, DbError> =
                db.read_all("SELECT n FROM no_such_table", &[], int).await;
            assert!(failed.is_err());
            assert_eq!(one(db.clone()).await.unwrap(), Some(1));
            // More concurrent reads than connections (2): they queue, none fails. Each read
            // runs on its own task, so on SQLite they contend from both runtime threads.
            let reads = (0..32).map(|_| tokio::spawn(one(db.clone())));
            for r in futures_util::future::join_all(reads).await {
                assert_eq!(r.unwrap().unwrap(), Some(1));
            }
            db.close().await;
            let closed = one(db.clone()).await.unwrap_err();
            assert!(
                matches!(closed, DbError::Sqlx(sqlx::Error::PoolClosed)),
                "{closed:?}"
            );
            assert!(closed.is_unavailable());
            drop_pg(pg).await;
        }
    }

    /// Read connections (PostgreSQL) idle for longer than the timeout are taken away, the
    /// longest idle first, and reads open new ones as needed.
    #[tokio::test]
    async fn idle_read_connections_expire() {
        let (dbs, _dir) = databases().await;
        for (db, pg) in dbs {
            let Reads::Sqlx(conns) = &db.reads else {
                continue; // a SQLite file reads through rusqlite
            };
            let (a, b) = (
                conns.acquire().await.unwrap(),
                conns.acquire().await.unwrap(),
            );
            drop(a);
            tokio::time::sleep(Duration::from_millis(60)).await;
            drop(b);
            let idle = |conns: &ReadConns| conns.inner.idle.lock().unwrap().len();
            assert_eq!(idle(conns), 2);
            assert!(conns.inner.take_expired(Duration::from_secs(60)).is_empty());
            // Only the one idle for longer than 30 ms goes.
            assert_eq!(conns.inner.take_expired(Duration::from_millis(30)).len(), 1);
            assert_eq!(idle(conns), 1);
            assert_eq!(conns.inner.take_expired(Duration::ZERO).len(), 1);
            assert_eq!(idle(conns), 0);
            let n = db.read_optional("SELECT 1 AS n", &[], int).await.unwrap();
            assert_eq!(n, Some(1));
            db.close().await;
            drop_pg(pg).await;
        }
    }

    /// Connections are bounded: while every connection is held, a read waits for one instead
    /// of opening another, and gets it as soon as one is returned (SQLite read path). No
    /// timing: a read on this path runs on the calling thread within one poll once it has a
    /// connection, so a first poll that does not finish is a read waiting for one.
    #[tokio::test]
    async fn sqlite_reads_wait_for_a_connection() {
        use futures_util::FutureExt;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&sqlite_url(dir.path()), 1).await.unwrap();
        let Reads::Sqlite(lite) = &db.reads else {
            panic!("a SQLite file reads through rusqlite");
        };
        // With a connection free, the read is done in one poll.
        let free = db.read_optional("SELECT 1 AS n", &[], int).now_or_never();
        assert_eq!(free.expect("done in one poll").unwrap(), Some(1));
        let held = lite.acquire().await.unwrap();
        let mut waiting = std::pin::pin!(db.read_optional("SELECT 2 AS n", &[], int));
        assert!(
            waiting.as_mut().now_or_never().is_none(),
            "the read must wait while the only connection is held"
        );
        drop(held);
        assert_eq!(waiting.await.unwrap(), Some(2));
        db.close().await;
    }

    /// `$N` placeholders bind by name on SQLite exactly as on PostgreSQL: repeated, out of
    /// order, NULLs in and out; an argument without its placeholder or a placeholder without its
    /// argument is an error on both.
    #[tokio::test]
    async fn placeholders_and_nulls() {
        let (dbs, _dir) = databases().await;
        for (db, pg) in dbs {
            let sql = "SELECT $2 AS b, $1 AS a, $2 || $1 AS ba, CAST($3 AS BIGINT) + 1 AS n, \
                       CAST(NULL AS TEXT) AS t, CAST(NULL AS BIGINT) AS i";
            let row = db
                .read_optional(
                    sql,
                    &[Arg::Text("x"), Arg::Text("y"), Arg::Int(41)],
                    |r| -> Result<_, DbError> {
                        Ok((
                            r.get::<String>("b")?,
                            r.get::<String>("a")?,
                            r.get::<String>("ba")?,
                            r.get::<i64>("n")?,
                            r.get::<Option<String>>("t")?,
                            r.get::<Option<i64>>("i")?,
                        ))
                    },
                )
                .await
                .unwrap();
            assert_eq!(
                row,
                Some((
                    "y".to_string(),
                    "x".to_string(),
                    "yx".to_string(),
                    42,
                    None,
                    None
                ))
            );
            // A NULL where a value is required is an error, not a default.
            let null: Result<_, DbError> = db
                .read_optional("SELECT CAST(NULL AS TEXT) AS t", &[], |r| {
                    r.get::<String>("t")
                })
                .await;
            assert!(null.is_err());
            // A NULL argument, and no row.
            let none: Result<Option<i64>, DbError> = db
                .read_optional(
                    "SELECT 1 AS n WHERE CAST($1 AS TEXT) IS NOT NULL",
                    &[Arg::from(None::<&str>)],
                    int,
                )
                .await;
            assert_eq!(none.unwrap(), None);
            // Arguments and placeholders must match. (An argument no placeholder takes is refused
            // on SQLite only: sqlx's PostgreSQL driver sends what the statement asks for.)
            let extra: Result<Option<i64>, DbError> = db
                .read_optional(
                    "SELECT 1 AS n WHERE $1 = 'a'",
                    &[Arg::Text("a"), Arg::Int(1)],
                    int,
                )
                .await;
            if db.backend() == Backend::Sqlite {
                assert!(
                    matches!(extra, Err(DbError::UnusedArgument(2))),
                    "{extra:?}"
                );
            }
            let missing: Result<Option<i64>, DbError> = db
                .read_optional(
                    "SELECT 1 AS n WHERE $1 = 'a' AND $2 = 'b'",
                    &[Arg::Text("a")],
                    int,
                )
                .await;
            assert!(missing.is_err());
            if db.backend() == Backend::Sqlite {
                assert!(
                    matches!(missing, Err(DbError::UnboundParameter)),
                    "{missing:?}"
                );
            }
            // The connection that failed is gone; reads go on.
            let rows: Vec<i64> = db
                .read_all(
                    "SELECT 1 AS n UNION ALL SELECT CAST($1 AS BIGINT) AS n ORDER BY n",
                    &[Arg::Int(2)],
                    |r| r.get::<i64>("n").map_err(|e: DbError| e),
                )
                .await
                .unwrap();
            assert_eq!(rows, vec![1, 2]);
            db.close().await;
            drop_pg(pg).await;
        }
    }

    /// The same rows mapped through the read path (rusqlite on SQLite) and through sqlx
    /// (`AnyRow`, as in transactions) give the same values, on each engine.
    #[tokio::test]
    async fn rows_map_alike_from_both_drivers() {
        let (dbs, _dir) = databases().await;
        for (db, pg) in dbs {
            let mut tx = db.begin_write().await.unwrap();
            sqlx::query(
                "INSERT INTO users (id, login, display_name, password_hash, \
                 password_change_required, platform_operator, created_at) VALUES \
                 ('00000000-0000-7000-8000-000000000001', 'a@x', 'A', 'h', 1, 0, 1700000000)",
            )
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            let sql = "SELECT u.id, u.login, u.display_name, u.password_hash, \
                       u.password_change_required, u.platform_operator, u.created_at, \
                       CAST(NULL AS TEXT) AS no_text, CAST(NULL AS BIGINT) AS no_number \
                       FROM users u WHERE u.login = $1";
            type Mapped = (String, String, bool, bool, i64, Option<String>, Option<i64>);
            let map = |r: &DbRow<'_>| -> Result<Mapped, DbError> {
                Ok((
                    r.get("id")?,
                    r.get("display_name")?,
                    r.get("password_change_required")?,
                    r.get("platform_operator")?,
                    r.get("created_at")?,
                    r.get("no_text")?,
                    r.get("no_number")?,
                ))
            };
            let read = db
                .read_optional(sql, &[Arg::Text("a@x")], map)
                .await
                .unwrap()
                .unwrap();
            let any = sqlx::query(sql)
                .bind("a@x")
                .fetch_one(db.pool())
                .await
                .unwrap();
            assert_eq!(map(&DbRow::from(&any)).unwrap(), read);
            assert_eq!(
                read,
                (
                    "00000000-0000-7000-8000-000000000001".to_string(),
                    "A".to_string(),
                    true,
                    false,
                    1_700_000_000,
                    None,
                    None
                )
            );
            // A column of another type, or no such column, is an error on both.
            let wrong = |r: &DbRow<'_>| r.get::<i64>("login").map_err(|e: DbError| e);
            assert!(map_err(wrong(&DbRow::from(&any))));
            assert!(map_err(
                db.read_optional(sql, &[Arg::Text("a@x")], wrong).await
            ));
            let missing = |r: &DbRow<'_>| r.get::<i64>("no_such").map_err(|e: DbError| e);
            assert!(map_err(missing(&DbRow::from(&any))));
            assert!(map_err(
                db.read_optional(sql, &[Arg::Text("a@x")], missing).await
            ));
            db.close().await;
            drop_pg(pg).await;
        }
    }

    /// A missing integer (`Option<i64>`) binds as a NULL the column's type accepts, on both
    /// engines and through every path (the write path, a read's argument): PostgreSQL refuses a
    /// text-typed NULL in a BIGINT column or comparison.
    #[tokio::test]
    async fn missing_integers_bind_as_null_on_both_engines() {
        let (dbs, _dir) = databases().await;
        for (db, pg) in dbs {
            sqlx::query("CREATE TABLE t_null (id TEXT PRIMARY KEY, n BIGINT, label TEXT)")
                .execute(db.pool())
                .await
                .unwrap();
            let none: Option<i64> = None;
            let no_label: Option<&str> = None;
            let args = [Arg::Text("a"), Arg::from(none), Arg::from(no_label)];
            let insert = stmt(
                "INSERT INTO t_null (id, n, label) VALUES ($1, $2, $3)",
                &args,
                true,
            );
            assert_eq!(
                db.write_atomic(&[insert]).await.unwrap(),
                Written::Committed
            );
            let args = [Arg::Text("a"), Arg::from(none)];
            let set = stmt(
                "UPDATE t_null SET n = COALESCE($2, 7) WHERE id = $1",
                &args,
                true,
            );
            assert_eq!(db.write_atomic(&[set]).await.unwrap(), Written::Committed);
            let args = [Arg::from(none)];
            let n = db
                .read_optional(
                    "SELECT COUNT(*) AS n FROM t_null WHERE $1 IS NULL AND label IS NULL \
                     AND n = 7",
                    &args,
                    int,
                )
                .await
                .unwrap();
            assert_eq!(n, Some(1), "pg: {}", pg.is_some());
            db.close().await;
            drop_pg(pg).await;
        }
    }

    /// `write_atomic` on both engines: all statements or none; a compare-and-set that matches
    /// no row leaves nothing; a failing statement leaves nothing and the next write works.
    #[tokio::test]
    async fn atomic_writes_are_all_or_nothing() {
        let (dbs, _dir) = databases().await;
        for (db, pg) in dbs {
            sqlx::query("CREATE TABLE t_write (id TEXT PRIMARY KEY, n BIGINT NOT NULL)")
                .execute(db.pool())
                .await
                .unwrap();
            let count = |db: Db| async move {
                db.read_optional("SELECT COUNT(*) AS n FROM t_write", &[], int)
                    .await
                    .unwrap()
                    .unwrap()
            };
            let insert = "INSERT INTO t_write (id, n) VALUES ($1, $2)";
            let bump = "UPDATE t_write SET n = $2 WHERE id = $1 AND n < $2";
            let a = [Arg::Text("a"), Arg::Int(1)];
            let b = [Arg::Text("b"), Arg::Int(1)];
            assert_eq!(
                db.write_atomic(&[stmt(insert, &a, true), stmt(insert, &b, false)])
                    .await
                    .unwrap(),
                Written::Committed
            );
            assert_eq!(count(db.clone()).await, 2);
            // Compare-and-set: n is not below 1, so nothing of the write is kept.
            let c = [Arg::Text("c"), Arg::Int(1)];
            assert_eq!(
                db.write_atomic(&[stmt(insert, &c, false), stmt(bump, &a, true)])
                    .await
                    .unwrap(),
                Written::Unchanged
            );
            assert_eq!(count(db.clone()).await, 2);
            // A failing statement (duplicate key) after a good one: an error, nothing kept.
            assert!(
                db.write_atomic(&[stmt(insert, &c, false), stmt(insert, &a, false)])
                    .await
                    .is_err()
            );
            assert_eq!(count(db.clone()).await, 2);
            // An argument the statement does not have is refused before anything is written.
            let extra = [Arg::Text("d"), Arg::Int(1), Arg::Int(9)];
            assert!(
                db.write_atomic(&[stmt(insert, &extra, false)])
                    .await
                    .is_err()
            );
            // ... and the connection is fine afterwards.
            let two = [Arg::Text("a"), Arg::Int(2)];
            assert_eq!(
                db.write_atomic(&[stmt(bump, &two, true)]).await.unwrap(),
                Written::Committed
            );
            let n = db
                .read_optional(
                    "SELECT n FROM t_write WHERE id = $1",
                    &[Arg::Text("a")],
                    int,
                )
                .await
                .unwrap();
            assert_eq!(n, Some(2));
            db.close().await;
            drop_pg(pg).await;
        }
    }

    /// On SQLite the fast writer shares the file with sqlx's writer: while a sqlx transaction
    /// holds the write lock, an atomic write waits (asynchronously) and then succeeds, and
    /// concurrent atomic writes all land. That it waited is the writer thread's own count of
    /// refused `BEGIN IMMEDIATE`s, seen while the lock is still held: no timing.
    #[tokio::test]
    async fn sqlite_atomic_writes_wait_for_the_sqlx_writer() {
        let (db, _dir) =
            sqlite_with_table("CREATE TABLE t_write (id TEXT PRIMARY KEY, n BIGINT NOT NULL)")
                .await;
        let mut tx = db.begin_write().await.unwrap();
        sqlx::query("INSERT INTO t_write (id, n) VALUES ('tx', 0)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let writer = {
            let db = db.clone();
            tokio::spawn(async move {
                let args = [Arg::Text("fast"), Arg::Int(1)];
                db.write_atomic(&[WriteStmt {
                    sql: "INSERT INTO t_write (id, n) VALUES ($1, $2)",
                    args: &args,
                    must_change_one_row: true,
                }])
                .await
            })
        };
        let stats = db.fast_writer.as_ref().expect("a SQLite file").stats();
        tokio::time::timeout(Duration::from_secs(10), async {
            while stats.lock_waits.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the write reaches the writer thread, which finds the lock held");
        // Still held: nothing of the write is visible.
        let fast = db
            .read_optional(
                "SELECT COUNT(*) AS n FROM t_write WHERE id = 'fast'",
                &[],
                int,
            )
            .await
            .unwrap();
        assert_eq!(fast, Some(0));
        tx.commit().await.unwrap();
        assert_eq!(writer.await.unwrap().unwrap(), Written::Committed);
        let many = (0..50).map(|i| {
            let db = db.clone();
            async move {
                let id = format!("k{i}");
                let args = [Arg::Text(&id), Arg::Int(i)];
                db.write_atomic(&[WriteStmt {
                    sql: "INSERT INTO t_write (id, n) VALUES ($1, $2)",
                    args: &args,
                    must_change_one_row: true,
                }])
                .await
            }
        });
        for r in futures_util::future::join_all(many).await {
            assert_eq!(r.unwrap(), Written::Committed);
        }
        let n = db
            .read_optional("SELECT COUNT(*) AS n FROM t_write", &[], int)
            .await
            .unwrap();
        assert_eq!(n, Some(52));
        db.close().await;
    }

    /// Sustained writes while readers are always active (SQLite): passive checkpoints on the
    /// checkpointer thread and the writer's restarts (`lite_write`) keep the WAL under its bound.
    /// Without the restarts, these 6,000 commits of a 3 KB row left a WAL of ~100 MB (passive
    /// checkpoints alone never caught up: the benchmark's WAL grew without bound).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wal_stays_bounded_under_sustained_writes() {
        let (db, dir) =
            sqlite_with_table("CREATE TABLE t_wal (id BIGINT PRIMARY KEY, body TEXT NOT NULL)")
                .await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (db, stop) = (db.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut reads = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        db.read_optional("SELECT COUNT(*) AS n FROM t_wal", &[], int)
                            .await
                            .unwrap();
                        reads += 1;
                        tokio::task::yield_now().await;
                    }
                    reads
                })
            })
            .collect();
        insert_wal_rows(async |w| db.write_atomic(w).await).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            assert!(r.await.unwrap() > 0, "the readers ran meanwhile");
        }
        let n = db
            .read_optional("SELECT COUNT(*) AS n FROM t_wal", &[], int)
            .await
            .unwrap();
        assert_eq!(n, Some(6000));
        let writer = db.fast_writer.as_ref().expect("a SQLite file");
        assert_wal_bounded(dir.path(), writer.stats());
        db.close().await;
    }

    /// 6,000 commits of one 3 KB row each into `t_wal` through `write` (about two pages each:
    /// without restarts the WAL ends near 100 MB).
    async fn insert_wal_rows(write: impl AsyncFn(&[WriteStmt<'_>]) -> Result<Written, DbError>) {
        let body = "x".repeat(3000);
        for i in 0..6000 {
            let args = [Arg::Int(i), Arg::Text(&body)];
            let insert = stmt("INSERT INTO t_wal (id, body) VALUES ($1, $2)", &args, true);
            assert_eq!(write(&[insert]).await.unwrap(), Written::Committed);
        }
    }

    /// The WAL was restarted, and never grew past where the writer's rules restart it: at
    /// `RESTART_FRAMES`, or `PASSIVE_FRAMES` later when no passive checkpoint came, and for each
    /// restart a reader postponed (a reader outlasted `READERS_WAIT`: timing, which a loaded
    /// machine stretches) up to `2 * PASSIVE_FRAMES` later again. The WAL file keeps the size
    /// of its longest run (a frame: a 4 KB page and its 24-byte header). Without working
    /// restarts there are none, or the file grows past the bound (~100 MB).
    fn assert_wal_bounded(dir: &std::path::Path, stats: &lite_write::WriterStats) {
        use std::sync::atomic::Ordering::Relaxed;
        let wal = std::fs::metadata(dir.join("ferrosphere.db-wal"))
            .unwrap()
            .len();
        let (restarts, postponed) = (
            stats.restarts.load(Relaxed),
            stats.restarts_postponed.load(Relaxed),
        );
        assert!(restarts > 0, "the WAL was never restarted");
        let frames = lite_write::RESTART_FRAMES as u64
            + 2 * lite_write::PASSIVE_FRAMES as u64 * (1 + postponed);
        let most = frames * 4120;
        assert!(
            wal < most,
            "a WAL of {wal} bytes (at most {most} expected after {restarts} restarts, \
             {postponed} postponed)"
        );
    }

    /// Without its checkpointer thread (gone, or never answering) the writer restarts the WAL
    /// alone, and it stays bounded all the same.
    #[tokio::test]
    async fn wal_stays_bounded_without_the_checkpointer() {
        let (db, dir) =
            sqlite_with_table("CREATE TABLE t_wal (id BIGINT PRIMARY KEY, body TEXT NOT NULL)")
                .await;
        let writer =
            lite_write::LiteWriter::without_checkpointer(dir.path().join("ferrosphere.db"))
                .unwrap();
        insert_wal_rows(async |w| writer.write_atomic(w).await).await;
        assert_wal_bounded(dir.path(), writer.stats());
        writer.close().await;
        db.close().await;
    }

    /// Writes committed together (on SQLite: queued while the write lock is held elsewhere, then
    /// committed as one batch) stay independent: of 20 compare-and-sets on one row exactly one
    /// lands, of 20 inserts of one key exactly one lands, and a write that lost keeps none of its
    /// other statements, while every independent write lands. On both engines.
    #[tokio::test]
    async fn writes_committed_together_stay_independent() {
        let (dbs, _dir) = databases().await;
        for (db, pg) in dbs {
            for sql in [
                "CREATE TABLE t_batch (id TEXT PRIMARY KEY, n BIGINT NOT NULL)",
                "CREATE TABLE t_hold (id TEXT PRIMARY KEY)",
                "INSERT INTO t_batch (id, n) VALUES ('shared', 0)",
            ] {
                sqlx::query(sql).execute(db.pool()).await.unwrap();
            }
            // Hold the write lock so that the writes below queue up and commit together.
            let mut hold = db.begin_write().await.unwrap();
            sqlx::query("INSERT INTO t_hold (id) VALUES ('x')")
                .execute(&mut *hold)
                .await
                .unwrap();
            let insert = "INSERT INTO t_batch (id, n) VALUES ($1, $2)";
            let bump = "UPDATE t_batch SET n = $2 WHERE id = $1 AND n < $2";
            let write = |kind: usize, i: usize| {
                let db = db.clone();
                async move {
                    let own = format!("{kind}-{i}");
                    let own_args = [Arg::Text(&own), Arg::Int(1)];
                    let bump_args = [Arg::Text("shared"), Arg::Int(1)];
                    let dup_args = [Arg::Text("dup"), Arg::Int(1)];
                    let stmts = match kind {
                        // Compare-and-set on one row: one winner.
                        0 => vec![stmt(insert, &own_args, false), stmt(bump, &bump_args, true)],
                        // One key inserted by all: one winner, the others fail.
                        1 => vec![
                            stmt(insert, &own_args, false),
                            stmt(insert, &dup_args, true),
                        ],
                        // Independent.
                        _ => vec![stmt(insert, &own_args, true)],
                    };
                    (kind, db.write_atomic(&stmts).await)
                }
            };
            let writes: Vec<_> = (0..3)
                .flat_map(|kind| (0..20).map(move |i| (kind, i)))
                .map(|(kind, i)| tokio::spawn(write(kind, i)))
                .collect();
            // On SQLite, let all 60 queue behind the held lock (the writer counts them), so that
            // they commit in batches; PostgreSQL runs them as they come (`hold` blocks none).
            if let Some(writer) = &db.fast_writer {
                let queued = || {
                    writer
                        .stats()
                        .queued
                        .load(std::sync::atomic::Ordering::Relaxed)
                };
                tokio::time::timeout(Duration::from_secs(10), async {
                    while queued() < 60 {
                        tokio::task::yield_now().await;
                    }
                })
                .await
                .expect("the writes queue for the writer thread");
            }
            hold.commit().await.unwrap();
            let mut outcomes = [[0usize; 3]; 3];
            for w in writes {
                let (kind, result) = w.await.unwrap();
                let slot = match result {
                    Ok(Written::Committed) => 0,
                    Ok(Written::Unchanged) => 1,
                    Err(_) => 2,
                };
                outcomes[kind][slot] += 1;
            }
            assert_eq!(outcomes[0], [1, 19, 0], "compare-and-set: one winner");
            assert_eq!(outcomes[1], [1, 0, 19], "duplicate key: one winner");
            assert_eq!(outcomes[2], [20, 0, 0], "independent writes all land");
            let n = db
                .read_optional("SELECT COUNT(*) AS n FROM t_batch", &[], int)
                .await
                .unwrap();
            // shared + dup + one row of each winner + 20 independent rows.
            assert_eq!(n, Some(1 + 1 + 2 + 20));
            let bumped = db
                .read_optional(
                    "SELECT n FROM t_batch WHERE id = $1",
                    &[Arg::Text("shared")],
                    int,
                )
                .await
                .unwrap();
            assert_eq!(bumped, Some(1));
            db.close().await;
            // After close, a write is refused and nothing is written.
            let late = [Arg::Text("late"), Arg::Int(1)];
            assert!(db.write_atomic(&[stmt(insert, &late, true)]).await.is_err());
            drop_pg(pg).await;
        }
    }

    /// `ready` says why not: no migrations at all, or fewer than this binary knows.
    #[tokio::test]
    async fn ready_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&sqlite_url(dir.path()), 2).await.unwrap();
        let fresh = db.ready().await;
        assert!(matches!(fresh, Err(NotReady::Unreachable(_))), "{fresh:?}");
        db.migrate().await.unwrap();
        db.ready().await.unwrap();
        sqlx::query(
            "DELETE FROM _sqlx_migrations \
             WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
        )
        .execute(db.pool())
        .await
        .unwrap();
        let known = MIGRATOR.iter().count() as i64;
        let behind = db.ready().await;
        assert!(
            matches!(behind, Err(NotReady::Behind { applied, known: k }) if applied == known - 1 && k == known),
            "{behind:?}"
        );
        db.close().await;
    }

    fn map_err<T>(r: Result<T, DbError>) -> bool {
        r.is_err()
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:///x.db"), "sqlite:///x.db");
    }
}
