//! The service's clock for update decisions: target set times and rollout waves
//! (`crate::targets`, `crate::rollouts`), and for device transfer offers' expiry
//! (`routes::ownership`). It is the system clock; tests move it forward
//! ([`Clock::advance`]) to pass a rollout's waits without sleeping. Nothing in the service
//! advances it, and it is per process: replicas use their own system clocks, as for every other
//! timestamp.

use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

/// The system clock plus an offset that only tests set.
#[derive(Debug, Default)]
pub struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    /// Now.
    pub fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        match self.offset_secs.load(Ordering::Relaxed) {
            0 => now,
            offset => now.saturating_add(Duration::seconds(offset)),
        }
    }

    /// Now, in Unix seconds.
    pub fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// Tests only: move this process's clock forward by `by` (whole seconds).
    pub fn advance(&self, by: std::time::Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}
