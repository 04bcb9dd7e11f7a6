//! Update-now signals as long polls wait for them: the newest signal in the database, watched
//! by one task per process.

use crate::db::Db;
use std::time::Duration;
use tokio::sync::watch;

/// The newest update-now signal in the database, polled once a second by one task per process
/// while long polls wait (so idle long polls cost no queries of their own).
#[derive(Debug)]
pub struct SignalWatch {
    tx: watch::Sender<String>,
    started: std::sync::Once,
}

impl Default for SignalWatch {
    fn default() -> Self {
        SignalWatch {
            tx: watch::channel(String::new()).0,
            started: std::sync::Once::new(),
        }
    }
}

impl SignalWatch {
    /// A receiver of the newest signal's ID, starting the polling task on the first call.
    pub fn subscribe(&self, db: &Db) -> watch::Receiver<String> {
        self.started.call_once(|| {
            let db = db.clone();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                loop {
                    if tx.receiver_count() > 0
                        && let Ok(Some(newest)) = sqlx::query_scalar::<_, Option<String>>(
                            "SELECT MAX(id) FROM update_signals",
                        )
                        .fetch_one(db.pool())
                        .await
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
        self.tx.subscribe()
    }
}
