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
//! fewer WAL frames written and fewer invalidations of the read connections' page caches, so
//! under concurrent write load it waits [`COMMIT_DELAY`] for more writes before committing.
//!
//! Through sqlx, by contrast, every statement of a transaction is a round trip to the
//! connection's worker thread; here a whole batch costs one hand-off there and one back per
//! write.
//!
//! Sharing the file with sqlx's writer: both take SQLite's write lock with `BEGIN IMMEDIATE`.
//! While sqlx's writer holds it, this thread retries every [`BUSY_RETRY`] for up to
//! [`BUSY_TIMEOUT`] (its own thread: no runtime thread waits).
//!
//! Checkpoints, in two steps. Every [`PASSIVE_FRAMES`] frames this thread asks a checkpointer
//! thread of its own for a passive checkpoint (`wal_checkpoint(PASSIVE)`: copy the frames back
//! and sync both files, while this thread goes on committing). Once the WAL holds
//! [`RESTART_FRAMES`] frames and a passive checkpoint has just finished, this thread restarts
//! the WAL between two batches (`wal_checkpoint(RESTART)`: copy the few frames appended
//! meanwhile, wait up to [`READERS_WAIT`] for readers still on old frames, so that the next
//! commit writes the WAL from its start again). A restart blocks writes while it syncs the two
//! files, a few milliseconds however little it copies: restarting alone every 1,000 frames, as
//! this thread first did, took 5-10 ms each time under the attestation benchmark, ~8% of the
//! run with the cores idle. If the checkpointer does not answer within [`PASSIVE_FRAMES`]
//! frames of the restart being due, this thread restarts the WAL alone.
//!
//! A passive checkpoint alone is not enough: under sustained writes frames are appended while it
//! copies and some reader always holds an old snapshot, so the WAL was never restarted and grew
//! without bound (230 MB in 5 s of the attestation benchmark), every commit allocating new file
//! blocks.

use super::DbError;
use super::row::Arg;
use rusqlite::hooks::Wal;
use rusqlite::{Connection, OpenFlags};
use std::cell::Cell;
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a write waits for SQLite's write lock (held by sqlx's writer), as the pools do.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The pause between two attempts at the write lock.
const BUSY_RETRY: Duration = Duration::from_micros(200);

/// WAL frames (pages) between two passive checkpoints: SQLite's own default for its automatic
/// checkpoints (4 MB with 4 KB pages).
pub(super) const PASSIVE_FRAMES: c_int = 1000;

/// WAL frames after which the writer restarts the WAL (16 MB with 4 KB pages; within the first
/// WAL-index hash table, 4,062 frames, so a reader's page lookup usually searches one table).
pub(super) const RESTART_FRAMES: c_int = 4000;

/// How long a WAL restart waits for readers still on frames it wants to reuse (reads are single
/// statements of microseconds); if they outlast it, the WAL grows and the restart is retried
/// [`PASSIVE_FRAMES`] frames later.
const READERS_WAIT: Duration = Duration::from_millis(50);

thread_local! {
    /// Frames in the WAL after the writer connection's last commit (set by its WAL hook, which
    /// SQLite calls on the committing thread: the writer thread).
    static WAL_FRAMES: Cell<c_int> = const { Cell::new(0) };
}

/// The most writes one transaction commits: bounds how long one commit holds SQLite's lock.
const MAX_BATCH: usize = 256;

/// How long the writer lets writes queue up before committing, under concurrent write load only
/// (see [`run`]): PostgreSQL's `commit_delay` with `commit_siblings`, for the same reason. Each
/// commit writes its dirty pages to the WAL, wakes the thread, and empties every read
/// connection's page cache; one commit of ten writes shares the pages of the audit log's B-trees
/// and costs one of each. Without it, the attestation benchmark committed ~1.5 writes at a time
/// and the writer thread spent twice the CPU.
const COMMIT_DELAY: Duration = Duration::from_millis(2);

/// With this many writes already queued, the writer commits without waiting for more.
const DELAY_BELOW: usize = 32;

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
    NullText,
    NullInt,
}

impl OwnedArg {
    fn new(arg: &Arg<'_>) -> OwnedArg {
        match *arg {
            Arg::Text(s) => OwnedArg::Text(s.into()),
            Arg::Int(n) => OwnedArg::Int(n),
            Arg::NullText => OwnedArg::NullText,
            Arg::NullInt => OwnedArg::NullInt,
        }
    }

    fn as_arg(&self) -> Arg<'_> {
        match self {
            OwnedArg::Text(s) => Arg::Text(s),
            OwnedArg::Int(n) => Arg::Int(*n),
            OwnedArg::NullText => Arg::NullText,
            OwnedArg::NullInt => Arg::NullInt,
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

/// What the writer thread did, counted since it started (counts only go up). The tests read
/// them to tell what happened from what timing allowed: a write that waited for the lock, a
/// WAL restart a reader postponed.
#[derive(Debug, Default)]
pub(super) struct WriterStats {
    /// Writes handed to the thread (counted by the callers, as they queue them; tests only).
    #[cfg(test)]
    pub(super) queued: AtomicU64,
    /// `BEGIN IMMEDIATE` attempts refused because another connection held the write lock.
    pub(super) lock_waits: AtomicU64,
    /// WAL restarts done (the next commit wrote the WAL from its start).
    pub(super) restarts: AtomicU64,
    /// WAL restarts not done: a reader or a checkpoint outlasted [`READERS_WAIT`] (or the
    /// checkpoint failed). Each lets the WAL grow by up to `2 * PASSIVE_FRAMES` more frames
    /// before the next attempt.
    pub(super) restarts_postponed: AtomicU64,
}

/// The single SQLite write connection of the fast path, owned by its thread.
#[derive(Debug)]
pub(super) struct LiteWriter {
    queue: mpsc::Sender<Msg>,
    closed: AtomicBool,
    /// The thread's counts (it holds them too).
    #[cfg(test)]
    stats: Arc<WriterStats>,
}

impl LiteWriter {
    /// Start the writer thread for the database file at `path` (the pools created it and put it
    /// in WAL mode). The thread opens its connection at the first write and stops when
    /// [`LiteWriter::close`] is called or the writer is dropped.
    pub(super) fn new(path: PathBuf) -> Result<LiteWriter, DbError> {
        let checkpointer = Checkpointer::start(path.clone())?;
        Self::with_checkpointer(path, checkpointer)
    }

    /// A writer whose checkpointer thread is gone from the start: it restarts the WAL alone
    /// (the fallback, tested on its own).
    #[cfg(test)]
    pub(super) fn without_checkpointer(path: PathBuf) -> Result<LiteWriter, DbError> {
        let gone = Checkpointer {
            requests: None,
            done: Arc::default(),
            thread: None,
            pending: false,
        };
        Self::with_checkpointer(path, gone)
    }

    fn with_checkpointer(path: PathBuf, checkpointer: Checkpointer) -> Result<LiteWriter, DbError> {
        let (queue, jobs) = mpsc::channel();
        let stats = Arc::new(WriterStats::default());
        let counted = stats.clone();
        std::thread::Builder::new()
            .name("ferro-db-writer".into())
            .spawn(move || run(&path, &jobs, checkpointer, &counted))
            .map_err(|e| DbError::Sqlx(sqlx::Error::Io(e)))?;
        Ok(LiteWriter {
            queue,
            closed: AtomicBool::new(false),
            #[cfg(test)]
            stats,
        })
    }

    /// What the writer thread did so far.
    #[cfg(test)]
    pub(super) fn stats(&self) -> &WriterStats {
        &self.stats
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
        #[cfg(test)]
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
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

/// The checkpointer thread's side of the writer: asks it for passive checkpoints and learns
/// when one is done.
struct Checkpointer {
    /// One request at a time (capacity 1); dropping it stops the thread.
    requests: Option<mpsc::SyncSender<()>>,
    /// Set by the checkpointer when a requested passive checkpoint finished.
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// A request is outstanding.
    pending: bool,
}

impl Checkpointer {
    fn start(path: PathBuf) -> Result<Checkpointer, DbError> {
        let (requests, wanted) = mpsc::sync_channel(1);
        let done = Arc::new(AtomicBool::new(false));
        let finished = done.clone();
        let thread = std::thread::Builder::new()
            .name("ferro-db-ckpt".into())
            .spawn(move || checkpoint_passively(&path, &wanted, &finished))
            .map_err(|e| DbError::Sqlx(sqlx::Error::Io(e)))?;
        Ok(Checkpointer {
            requests: Some(requests),
            done,
            thread: Some(thread),
            pending: false,
        })
    }

    /// Ask for a passive checkpoint (nothing is pending if the thread is gone).
    fn request(&mut self) {
        self.pending = self
            .requests
            .as_ref()
            .is_some_and(|r| !matches!(r.try_send(()), Err(mpsc::TrySendError::Disconnected(_))));
    }

    /// Whether the outstanding request was done (consumes the answer).
    fn finished(&mut self) -> bool {
        if self.pending && self.done.swap(false, Ordering::AcqRel) {
            self.pending = false;
            return true;
        }
        false
    }

    /// Stop the thread and wait for it (its connection is closed when this returns).
    fn stop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The checkpointer thread: a passive checkpoint per request, on a connection of its own.
fn checkpoint_passively(path: &Path, wanted: &mpsc::Receiver<()>, done: &AtomicBool) {
    let mut conn: Option<Connection> = None;
    while wanted.recv().is_ok() {
        let connection = match conn.as_mut() {
            Some(c) => Ok(c),
            None => open(path).map(|c| conn.insert(c)),
        };
        let started = Instant::now();
        let outcome = connection.and_then(|c| {
            c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(DbError::from)
        });
        match outcome {
            Ok((frames, copied)) => tracing::debug!(
                frames,
                copied,
                elapsed_us = started.elapsed().as_micros() as u64,
                "WAL checkpointed"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "passive WAL checkpoint failed (the writer restarts the WAL alone)");
                conn = None;
            }
        }
        // Answered either way: the writer's restart does what is left.
        done.store(true, Ordering::Release);
    }
}

/// The writer thread: wait for a write, take every write queued behind it, commit them
/// together, repeat.
fn run(
    path: &Path,
    queue: &mpsc::Receiver<Msg>,
    mut checkpointer: Checkpointer,
    stats: &WriterStats,
) {
    let mut conn: Option<Connection> = None;
    let mut restart_at = RESTART_FRAMES;
    let mut next_passive_at = PASSIVE_FRAMES;
    let mut last_commit = Instant::now();
    let mut last_batch_len = 0;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut close = None;
    while close.is_none() {
        match queue.recv() {
            Ok(Msg::Write(job)) => batch.push(job),
            Ok(Msg::Close(done)) => close = Some(done),
            // Every sender is gone: the service dropped its database handle.
            Err(_) => break,
        }
        drain(queue, &mut batch, &mut close);
        // Under concurrent write load (the last commit was of several writes and ended less
        // than `COMMIT_DELAY` ago) and with few writes queued, let the next ones queue up for
        // that long and commit them together. One caller writing in sequence is never delayed
        // (its batches are of one write), at most once after a burst.
        if close.is_none()
            && batch.len() < DELAY_BELOW
            && last_batch_len > 1
            && last_commit.elapsed() < COMMIT_DELAY
        {
            std::thread::sleep(COMMIT_DELAY);
            drain(queue, &mut batch, &mut close);
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
            Ok(c) => commit_batch(c, &batch, stats),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(results) => {
                last_commit = Instant::now();
                last_batch_len = batch.len();
                for (job, result) in batch.drain(..).zip(results) {
                    // The caller may have gone meanwhile; its write stands.
                    let _ = job.done.send(result);
                }
                let frames = WAL_FRAMES.get();
                // Passive checkpoints on the other thread; the restart here right after one,
                // or alone when none comes (see the module docs).
                let passive_done = checkpointer.finished();
                let restart_now = frames >= restart_at
                    && (passive_done || frames >= restart_at.saturating_add(PASSIVE_FRAMES));
                if restart_now && let Some(c) = conn.as_ref() {
                    if restart_wal(c) {
                        stats.restarts.fetch_add(1, Ordering::Relaxed);
                        restart_at = RESTART_FRAMES;
                        next_passive_at = PASSIVE_FRAMES;
                    } else {
                        stats.restarts_postponed.fetch_add(1, Ordering::Relaxed);
                        restart_at = frames.saturating_add(PASSIVE_FRAMES);
                    }
                } else if frames >= next_passive_at && !checkpointer.pending {
                    // If the checkpointer is gone, the restart above happens alone.
                    checkpointer.request();
                    next_passive_at = frames.saturating_add(PASSIVE_FRAMES);
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
    checkpointer.stop();
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
    stats: &WriterStats,
) -> Result<Vec<Result<Written, DbError>>, DbError> {
    begin_immediate(conn, stats)?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        control(conn, "SAVEPOINT write")?;
        let result = run_job(conn, &job.stmts);
        if !matches!(result, Ok(Written::Committed)) {
            control(conn, "ROLLBACK TO write")?;
        }
        control(conn, "RELEASE write")?;
        results.push(result);
    }
    control(conn, "COMMIT")?;
    Ok(results)
}

/// A transaction-control statement, prepared once (`execute_batch` would parse it each time:
/// four statements per write).
fn control(conn: &Connection, sql: &'static str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.raw_execute().map(|_| ())
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

/// Take every write already queued (up to [`MAX_BATCH`] in `batch`), and a close request.
fn drain(
    queue: &mpsc::Receiver<Msg>,
    batch: &mut Vec<Job>,
    close: &mut Option<oneshot::Sender<()>>,
) {
    while batch.len() < MAX_BATCH && close.is_none() {
        match queue.try_recv() {
            Ok(Msg::Write(job)) => batch.push(job),
            Ok(Msg::Close(done)) => *close = Some(done),
            Err(_) => break,
        }
    }
}

/// `BEGIN IMMEDIATE`, waiting (on this thread) while another connection holds the write lock.
fn begin_immediate(conn: &Connection, stats: &WriterStats) -> Result<(), DbError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match control(conn, "BEGIN IMMEDIATE") {
            Ok(()) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                stats.lock_waits.fetch_add(1, Ordering::Relaxed);
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

/// `wal_checkpoint(RESTART)` on the writer connection, between two batches: `true` when the WAL
/// was copied back and its readers left it (the next commit starts it over). It syncs the
/// database file, so writes queue meanwhile (and commit together after it).
fn restart_wal(conn: &Connection) -> bool {
    let started = Instant::now();
    let outcome = conn.busy_timeout(READERS_WAIT).and_then(|()| {
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })
    });
    // Back to no busy wait: `begin_immediate` waits for the lock itself.
    let reset = conn.busy_timeout(Duration::ZERO);
    match (outcome, reset) {
        (Ok((0, frames)), Ok(())) => {
            // Until the next commit's hook says otherwise, the WAL is empty.
            WAL_FRAMES.set(0);
            tracing::debug!(
                frames,
                elapsed_us = started.elapsed().as_micros() as u64,
                "WAL restarted"
            );
            true
        }
        (Ok((_, frames)), Ok(())) => {
            tracing::debug!(
                frames,
                "WAL restart postponed: a reader or writer outlasted the wait"
            );
            false
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "WAL checkpoint failed (retried later)");
            false
        }
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
    // After `wal_autocheckpoint`, which installs a hook of its own.
    conn.wal_hook(Some(note_wal_frames));
    Ok(conn)
}

/// The writer connection's WAL hook: remember the WAL's size for the checkpoint decision.
fn note_wal_frames(_: &Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(frames);
    Ok(())
}
