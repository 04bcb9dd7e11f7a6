//! Update-now signals as long polls wait for them: the newest signal in the database, watched
//! by one task per process, whichever replica the signal was given through.
//!
//! - **PostgreSQL** (replicas): every new signal is announced with `NOTIFY` on [`CHANNEL`] in
//!   the transaction that stores it (`crate::datastore::update_signals::insert`), so PostgreSQL
//!   delivers it at commit to every replica's listener, and a long poll on any replica wakes at
//!   once. A notification sent while a listener's connection is down is lost; so after every
//!   (re)connection the task reads the newest signal again, and it also reads it every
//!   [`SignalWatch::recheck`] (default [`DEFAULT_RECHECK`]) in case a connection died silently:
//!   a lost notification costs at most that long.
//! - **SQLite** (one process owns the file): the task reads the newest signal every
//!   [`POLL_INTERVAL`].
//!
//! Either way the task only queries while long polls of this process wait (an idle process
//! costs nothing), and a waking long poll reads its own device's newest signal itself.

use crate::db::Db;
use std::time::Duration;
use tokio::sync::{Notify, watch};

pub use crate::datastore::update_signals::CHANNEL;

/// SQLite: how often the newest signal is read while long polls wait.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// PostgreSQL: how often the newest signal is read without a notification, the bound on what
/// a lost notification costs.
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(10);

/// Wait before connecting the listener again after it failed.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// See the module documentation.
#[derive(Debug)]
pub struct SignalWatch {
    tx: watch::Sender<String>,
    started: std::sync::Once,
    /// Woken whenever a long poll starts waiting ([`SignalWatch::wait_for_waiters`]).
    subscribed: Notify,
    recheck: Duration,
}

impl Default for SignalWatch {
    fn default() -> Self {
        SignalWatch::with_recheck(DEFAULT_RECHECK)
    }
}

impl SignalWatch {
    /// A watch that, on PostgreSQL, reads the newest signal every `recheck` even without a
    /// notification (tests make it long to show that notifications alone wake long polls).
    pub fn with_recheck(recheck: Duration) -> SignalWatch {
        SignalWatch {
            tx: watch::channel(String::new()).0,
            started: std::sync::Once::new(),
            subscribed: Notify::new(),
            recheck,
        }
    }

    /// PostgreSQL: the longest a signal may go unseen here when its notification was lost.
    pub fn recheck(&self) -> Duration {
        self.recheck
    }

    /// A receiver of the newest signal's ID, starting the watching task on the first call. The
    /// caller counts as a waiter ([`SignalWatch::waiters`]) until it drops the receiver.
    pub fn subscribe(&self, db: &Db) -> watch::Receiver<String> {
        self.started.call_once(|| {
            let db = db.clone();
            let tx = self.tx.clone();
            let recheck = self.recheck;
            tokio::spawn(async move {
                match db.pg_listener().await {
                    Some(first) => listen(db, tx, first, recheck).await,
                    None => poll(db, tx).await,
                }
            });
        });
        let rx = self.tx.subscribe();
        self.subscribed.notify_waiters();
        rx
    }

    /// How many long polls of this process wait for a signal now.
    pub fn waiters(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Returns once at least `n` long polls of this process wait for a signal: tests use it to
    /// know that a poll is waiting before they act, instead of sleeping.
    pub async fn wait_for_waiters(&self, n: usize) {
        loop {
            let subscribed = self.subscribed.notified();
            tokio::pin!(subscribed);
            // Registered before the count is read: a subscription in between still wakes us.
            subscribed.as_mut().enable();
            if self.waiters() >= n {
                return;
            }
            subscribed.await;
        }
    }
}

/// Read the newest signal and publish it if it changed (only while long polls wait).
async fn publish_newest(db: &Db, tx: &watch::Sender<String>) {
    if tx.receiver_count() == 0 {
        return;
    }
    match crate::datastore::update_signals::newest(db).await {
        Ok(Some(newest)) => {
            tx.send_if_modified(|cur| {
                let newer = *cur != newest;
                if newer {
                    *cur = newest;
                }
                newer
            });
        }
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "reading the newest update-now signal"),
    }
}

/// SQLite: read the newest signal every [`POLL_INTERVAL`].
async fn poll(db: Db, tx: watch::Sender<String>) {
    loop {
        publish_newest(&db, &tx).await;
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// PostgreSQL: wake on notifications; read again after every reconnection and every `recheck`.
async fn listen(
    db: Db,
    tx: watch::Sender<String>,
    first: Result<sqlx::postgres::PgListener, sqlx::Error>,
    recheck: Duration,
) {
    let mut next = Some(first);
    loop {
        let connected = match next.take() {
            Some(c) => c,
            None => match db.pg_listener().await {
                Some(c) => c,
                None => return,
            },
        };
        let mut listener = match connected {
            Ok(mut l) => match l.listen(CHANNEL).await {
                Ok(()) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "update-now listener: LISTEN failed; retrying");
                    tokio::time::sleep(RECONNECT_BACKOFF).await;
                    continue;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "update-now listener: cannot connect; retrying");
                publish_newest(&db, &tx).await;
                tokio::time::sleep(RECONNECT_BACKOFF).await;
                continue;
            }
        };
        // Listening from here on: whatever was committed before is read now.
        publish_newest(&db, &tx).await;
        loop {
            match tokio::time::timeout(recheck, listener.try_recv()).await {
                Ok(Ok(Some(_))) => while listener.next_buffered().is_some() {},
                Ok(Ok(None)) => {
                    tracing::info!("update-now listener: connection lost and re-established");
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "update-now listener: connection failed; reconnecting");
                    publish_newest(&db, &tx).await;
                    tokio::time::sleep(RECONNECT_BACKOFF).await;
                    break;
                }
                Err(_) => {}
            }
            publish_newest(&db, &tx).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_are_counted_while_they_hold_a_receiver() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&crate::db::sqlite_url(dir.path()), 1)
            .await
            .unwrap();
        let w = std::sync::Arc::new(SignalWatch::default());
        assert_eq!(w.waiters(), 0);
        let wait = tokio::spawn({
            let w = w.clone();
            async move { w.wait_for_waiters(2).await }
        });
        let first = w.subscribe(&db);
        assert_eq!(w.waiters(), 1);
        // One waiter of two: a single poll of the wait is still pending.
        let early = tokio::time::timeout(Duration::ZERO, w.wait_for_waiters(2)).await;
        assert!(early.is_err(), "returned with one waiter of two");
        let second = w.subscribe(&db);
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("the second subscription wakes the wait")
            .unwrap();
        drop(second);
        assert_eq!(w.waiters(), 1);
        drop(first);
        assert_eq!(w.waiters(), 0);
        // No waiter needed: answers at once.
        w.wait_for_waiters(0).await;
    }
}
