//! The SQLite write path for hot, small, all-or-nothing writes ([`super::Db::write_atomic`]): one
//! connection on one dedicated thread, which commits the writes that are waiting together, a
//! group commit (see `docs/service/storage.md`, "Connections").
//!
//! Why a thread of its own: SQLite has one writer at a time, so writes queue somewhere. Queued
//! behind an async mutex, each write was handed the lock by a wake-up that waited its turn in
//! the runtime's run queue behind hundreds of requests: the attestation benchmark measured the
//! lock held ~95 us per write but waited for ~95 ms, and the cores ~35% idle. Here the writer
//! never waits for the scheduler: it takes every write queued while it was busy (up to
//! [`MAX_BATCH`]) and commits them in one transaction, each inside its own savepoint so that
//! one write's failure or unmet condition rolls back that write alone. Fewer commits also mean
//! fewer WAL frames written and fewer invalidations of the read connections' page caches.
//!
//! Through sqlx, by contrast, every statement of a transaction is a round trip to the
//! connection's worker thread; here a whole batch costs one hand-off there and one back per
//! write.
//!
//! Sharing the file with sqlx's writer: both take SQLite's write lock with `BEGIN IMMEDIATE`.
//! While sqlx's writer holds it, this thread retries every [`BUSY_RETRY`] for up to
//! [`BUSY_TIMEOUT`] (its own thread: no runtime thread waits). It never checkpoints the WAL
//! inside a commit (that would fsync while writes wait); every [`CHECKPOINT_EVERY`] commits a
//! passive checkpoint runs on a short-lived thread of its own, besides those sqlx's connections
//! make.

use super::DbError;
use super::row::Arg;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a write waits for SQLite's write lock (held by sqlx's writer), as the pools do.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The pause between two attempts at the write lock.
const BUSY_RETRY: Duration = Duration::from_micros(200);

/// Commits between two background WAL checkpoints.
const CHECKPOINT_EVERY: u64 = 500;

/// The most writes one transaction commits: bounds how long one commit holds SQLite's lock.
const MAX_BATCH: usize = 256;

/// One statement of [`super::Db::write_atomic`].
#[derive(Clone, Copy, Debug)]
pub struct WriteStmt<'a> {
    /// The SQL, with `$1`, `$2`, ... placeholders: a constant of the code, never text built
    /// from input.
    pub sql: &'static str,
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

/// An argument the writer thread owns.
#[derive(Debug)]
enum OwnedArg {
    Text(Box<str>),
    Int(i64),
    Null,
}

impl OwnedArg {
    fn new(arg: &Arg<'_>) -> OwnedArg {
        match *arg {
            Arg::Text(s) => OwnedArg::Text(s.into()),
            Arg::Int(n) => OwnedArg::Int(n),
            Arg::Null => OwnedArg::Null,
        }
    }

    fn as_arg(&self) -> Arg<'_> {
        match self {
            OwnedArg::Text(s) => Arg::Text(s),
            OwnedArg::Int(n) => Arg::Int(*n),
            OwnedArg::Null => Arg::Null,
        }
    }
}

#[derive(Debug)]
struct OwnedStmt {
    sql: &'static str,
    args: Vec<OwnedArg>,
    must_change_one_row: bool,
}

/// One [`super::Db::write_atomic`] call, queued for the writer thread.
#[derive(Debug)]
struct Job {
    stmts: Vec<OwnedStmt>,
    done: oneshot::Sender<Result<Written, DbError>>,
}

#[derive(Debug)]
enum Msg {
    Write(Job),
    /// Finish what is queued before this, close the connection, answer, stop.
    Close(oneshot::Sender<()>),
}

/// The single SQLite write connection of the fast path, owned by its thread.
#[derive(Debug)]
pub(super) struct LiteWriter {
    queue: mpsc::Sender<Msg>,
    closed: AtomicBool,
}

impl LiteWriter {
    /// Start the writer thread for the database file at `path` (the pools created it and put it
    /// in WAL mode). The thread opens its connection at the first write and stops when
    /// [`LiteWriter::close`] is called or the writer is dropped.
    pub(super) fn new(path: PathBuf) -> Result<LiteWriter, DbError> {
        let (queue, jobs) = mpsc::channel();
        std::thread::Builder::new()
            .name("ferro-db-writer".into())
            .spawn(move || run(&path, &jobs))
            .map_err(|e| DbError::Sqlx(sqlx::Error::Io(e)))?;
        Ok(LiteWriter {
            queue,
            closed: AtomicBool::new(false),
        })
    }

    /// Run `stmts` in one transaction: all of them or none. Committed together with the other
    /// writes waiting at the same moment, each isolated from the others by a savepoint.
    ///
    /// Cancelling the returned future before the writer takes the write leaves nothing written;
    /// after that, the write lands (as any write whose answer is lost).
    pub(super) async fn write_atomic(&self, stmts: &[WriteStmt<'_>]) -> Result<Written, DbError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(DbError::Sqlx(sqlx::Error::PoolClosed));
        }
        let stmts = stmts
            .iter()
            .map(|s| OwnedStmt {
                sql: s.sql,
                args: s.args.iter().map(OwnedArg::new).collect(),
                must_change_one_row: s.must_change_one_row,
            })
            .collect();
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Msg::Write(Job { stmts, done }))
            .map_err(|_| DbError::Sqlx(sqlx::Error::PoolClosed))?;
        // The thread answers every job it receives, or drops it only when it stops.
        answer
            .await
            .unwrap_or(Err(DbError::Sqlx(sqlx::Error::PoolClosed)))
    }

    /// Refuse further writes, let the queued ones finish, and close the connection.
    pub(super) async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (done, stopped) = oneshot::channel();
        if self.queue.send(Msg::Close(done)).is_ok() {
            // An error means the thread is already gone: nothing left to wait for.
            let _ = stopped.await;
        }
    }
}

/// The writer thread: wait for a write, take every write queued behind it, commit them
/// together, repeat.
fn run(path: &Path, queue: &mpsc::Receiver<Msg>) {
    let mut conn: Option<Connection> = None;
    let mut commits: u64 = 0;
    let checkpointing = Arc::new(AtomicBool::new(false));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut close = None;
    while close.is_none() {
        match queue.recv() {
            Ok(Msg::Write(job)) => batch.push(job),
            Ok(Msg::Close(done)) => close = Some(done),
            // Every sender is gone: the service dropped its database handle.
            Err(_) => break,
        }
        while batch.len() < MAX_BATCH && close.is_none() {
            match queue.try_recv() {
                Ok(Msg::Write(job)) => batch.push(job),
                Ok(Msg::Close(done)) => close = Some(done),
                Err(_) => break,
            }
        }
        // A caller that stopped waiting (its request was cancelled) gets nothing written.
        batch.retain(|job| !job.done.is_closed());
        if batch.is_empty() {
            continue;
        }
        let connection = match conn.as_mut() {
            Some(c) => Ok(c),
            None => open(path).map(|c| conn.insert(c)),
        };
        let outcome = match connection {
            Ok(c) => commit_batch(c, &batch),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(results) => {
                commits += 1;
                for (job, result) in batch.drain(..).zip(results) {
                    // The caller may have gone meanwhile; its write stands.
                    let _ = job.done.send(result);
                }
                if commits.is_multiple_of(CHECKPOINT_EVERY) {
                    checkpoint(path, &checkpointing);
                }
            }
            Err(e) => {
                // Nothing of the batch was committed. A connection that cannot roll back is
                // dropped (the next batch opens a new one).
                if let Some(c) = conn.as_ref()
                    && !c.is_autocommit()
                    && c.execute_batch("ROLLBACK").is_err()
                {
                    conn = None;
                }
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(replicate(&e)));
                }
            }
        }
    }
    drop(conn);
    if let Some(done) = close {
        // Writes sent after the close request are refused (their callers see `PoolClosed`).
        while let Ok(Msg::Write(job)) = queue.try_recv() {
            let _ = job.done.send(Err(DbError::Sqlx(sqlx::Error::PoolClosed)));
        }
        let _ = done.send(());
    }
}

/// Commit `batch` in one transaction: `BEGIN IMMEDIATE` (retried while another connection holds
/// the write lock), each job in a savepoint of its own, `COMMIT`. A job whose condition fails or
/// whose statement fails is rolled back to its savepoint alone. `Err`: nothing was committed.
fn commit_batch(
    conn: &Connection,
    batch: &[Job],
) -> Result<Vec<Result<Written, DbError>>, DbError> {
    begin_immediate(conn)?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        conn.execute_batch("SAVEPOINT write")?;
        let result = run_job(conn, &job.stmts);
        if !matches!(result, Ok(Written::Committed)) {
            conn.execute_batch("ROLLBACK TO write")?;
        }
        conn.execute_batch("RELEASE write")?;
        results.push(result);
    }
    conn.execute_batch("COMMIT")?;
    Ok(results)
}

/// One job's statements, inside its savepoint.
fn run_job(conn: &Connection, stmts: &[OwnedStmt]) -> Result<Written, DbError> {
    for s in stmts {
        let mut stmt = conn.prepare_cached(s.sql)?;
        super::lite::bind(&mut stmt, s.args.iter().map(OwnedArg::as_arg))?;
        let changed = stmt.raw_execute()?;
        if s.must_change_one_row && changed != 1 {
            return Ok(Written::Unchanged);
        }
    }
    Ok(Written::Committed)
}

/// `BEGIN IMMEDIATE`, waiting (on this thread) while another connection holds the write lock.
fn begin_immediate(conn: &Connection) -> Result<(), DbError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                std::thread::sleep(BUSY_RETRY);
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                return Err(DbError::Sqlite(rusqlite::Error::SqliteFailure(
                    e,
                    Some("the database stayed locked by another writer".into()),
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The same failure for each job of a batch that failed as a whole.
fn replicate(e: &DbError) -> DbError {
    match e {
        DbError::Sqlite(rusqlite::Error::SqliteFailure(code, message)) => {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(*code, message.clone()))
        }
        other => DbError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        )),
    }
}

/// A passive WAL checkpoint on a thread of its own (it may fsync); skipped while one runs.
fn checkpoint(path: &Path, running: &Arc<AtomicBool>) {
    if running.swap(true, Ordering::AcqRel) {
        return;
    }
    let (path, flag) = (path.to_path_buf(), running.clone());
    let spawned = std::thread::Builder::new()
        .name("ferro-db-checkpoint".into())
        .spawn(move || {
            // Passive: copies what no reader needs, never waits for or blocks a writer.
            let result = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)
                .and_then(|c| c.execute_batch("PRAGMA wal_checkpoint(PASSIVE)"));
            if let Err(e) = result {
                tracing::warn!(error = %e, "WAL checkpoint failed (the next one retries)");
            }
            flag.store(false, Ordering::Release);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start a WAL checkpoint (the next one retries)");
        running.store(false, Ordering::Release);
    }
}

/// Open the write connection (the pools created the file and put it in WAL mode).
fn open(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The lock is waited for in `begin_immediate`, with a shorter pause than SQLite's own.
    conn.busy_timeout(Duration::ZERO)?;
    // Statement journals (each savepoint's) and other temporaries in memory: on disk, each
    // UPDATE in a transaction created (and unlinked) a file.
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0; \
         PRAGMA temp_store = MEMORY",
    )?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}
