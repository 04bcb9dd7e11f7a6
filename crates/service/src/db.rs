//! The database: one [`sqlx::AnyPool`] that is SQLite or PostgreSQL, the same migrations on both,
//! and helpers that keep SQL portable (see `docs/service/storage.md`).

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyRow};
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
    reads: ReadConns,
    backend: Backend,
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
        let reads = ReadConns::new(options.clone(), backend, max_connections);
        let pool = pool.connect_with(options).await?;
        Ok(Db {
            pool,
            writer,
            reads,
            backend,
        })
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

    /// Run a single-statement read, returning at most one row. Same result as
    /// `query.fetch_optional(db.pool())`, one thread hand-off (SQLite) or round trip (PostgreSQL)
    /// cheaper: see [`ReadConns`]. For reads outside transactions only.
    pub async fn read_optional(&self, query: ReadQuery<'_>) -> Result<Option<AnyRow>, sqlx::Error> {
        let mut conn = self.reads.acquire().await?;
        let result = query.fetch_optional(conn.get()?).await;
        if result.is_err() {
            conn.discard();
        }
        result
    }

    /// Run a single-statement read, returning all rows. Same result as
    /// `query.fetch_all(db.pool())`; see [`Db::read_optional`].
    pub async fn read_all(&self, query: ReadQuery<'_>) -> Result<Vec<AnyRow>, sqlx::Error> {
        let mut conn = self.reads.acquire().await?;
        let result = query.fetch_all(conn.get()?).await;
        if result.is_err() {
            conn.discard();
        }
        result
    }

    /// Whether the database answers and every migration this binary knows has been applied.
    pub async fn ready(&self) -> Result<(), String> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| format!("database unreachable or not migrated: {e}"))?;
        let applied: i64 = row.try_get("n").map_err(|e| e.to_string())?;
        let known = MIGRATOR.iter().count() as i64;
        if applied < known {
            return Err(format!("{applied} of {known} migrations applied"));
        }
        Ok(())
    }

    /// Close the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.reads.close().await;
        if let Some(w) = &self.writer {
            w.close().await;
        }
        self.pool.close().await;
    }
}

/// A query as built by `sqlx::query(..).bind(..)`.
pub type ReadQuery<'q> = sqlx::query::Query<'q, Any, AnyArguments>;

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

impl ReadConns {
    fn new(options: AnyConnectOptions, backend: Backend, max: u32) -> ReadConns {
        ReadConns {
            inner: Arc::new(ReadInner {
                options,
                backend,
                permits: Arc::new(Semaphore::new(max.max(1) as usize)),
                idle: Mutex::new(Vec::new()),
            }),
        }
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
    sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, at, actor, action, object_type, object_id, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `ReadConns`: a failed query drops its connection and the next read works; after
    /// `close`, reads fail instead of opening connections. (SQLite here; the same code serves
    /// PostgreSQL, which every integration test exercises.)
    #[tokio::test]
    async fn read_connections_recover_and_close() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&sqlite_url(dir.path()), 2).await.unwrap();
        let one = |db: Db| async move {
            db.read_optional(sqlx::query("SELECT 1 AS n"))
                .await
                .map(|r| r.map(|r| r.try_get::<i64, _>("n").unwrap()))
        };
        assert_eq!(one(db.clone()).await.unwrap(), Some(1));
        assert!(
            db.read_all(sqlx::query("SELECT * FROM no_such_table"))
                .await
                .is_err()
        );
        assert_eq!(one(db.clone()).await.unwrap(), Some(1));
        // More concurrent reads than connections: they queue, none fails.
        let reads = (0..8).map(|_| one(db.clone()));
        for r in futures_util::future::join_all(reads).await {
            assert_eq!(r.unwrap(), Some(1));
        }
        db.close().await;
        assert!(matches!(
            one(db.clone()).await,
            Err(sqlx::Error::PoolClosed)
        ));
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
