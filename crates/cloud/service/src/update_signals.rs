//! Update-now signals as long polls wait for them: the newest signal in the database, watched
//! by one task per process.

use crate::db::Db;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The newest update-now signal in the database, polled once a second by one task per process
/// while long polls wait (so idle long polls cost no queries of their own).
#[derive(Debug)]
pub struct SignalWatch {
    tx: watch::Sender<String>,
    started: std::sync::Once,
    /// Woken whenever a long poll starts waiting ([`SignalWatch::wait_for_waiters`]).
    subscribed: Notify,
}

impl Default for SignalWatch {
    fn default() -> Self {
        SignalWatch {
            tx: watch::channel(String::new()).0,
            started: std::sync::Once::new(),
            subscribed: Notify::new(),
        }
    }
}

impl SignalWatch {
    /// A receiver of the newest signal's ID, starting the polling task on the first call. The
    /// caller counts as a waiter ([`SignalWatch::waiters`]) until it drops the receiver.
    pub fn subscribe(&self, db: &Db) -> watch::Receiver<String> {
        self.started.call_once(|| {
            let db = db.clone();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                loop {
                    if tx.receiver_count() > 0
                        && let Ok(Some(newest)) =
                            crate::datastore::update_signals::newest(&db).await
                    {
                        tx.send_if_modified(|cur| {
                            let newer = *cur != newest;
                            if newer {
                                *cur = newest;
                            }
                            newer
                        });
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
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
