//! Error events: exits, traps and limit hits, in a bounded log that subscribers follow. The
//! device uploads them (daily, and at once for crashes); the runtime only records them.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::AppId;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The app returned from `main` or called `exit`.
    Exited { code: i32 },
    /// The app trapped (panic, unreachable, out-of-bounds access, stack overflow...).
    Trapped { reason: String },
    /// The app computed longer than its CPU slice without yielding.
    CpuLimit { slice: Duration },
    /// The app computed more than its CPU budget within one window.
    CpuBudget { budget: Duration, window: Duration },
    /// The app asked for more linear memory than its limit.
    MemoryLimit { limit_bytes: u64 },
    /// Log lines were dropped by the rate limit.
    LogRateLimited { dropped_lines: u64 },
    /// A storage write or truncate was refused by the quota.
    StorageQuota { quota_bytes: u64 },
    /// A call named a resource the manifest does not grant.
    AccessDenied { resource: String },
    /// The app could not be instantiated.
    StartFailed { reason: String },
    /// The app reported an error itself: a line it logged at level `error` through the `log`
    /// interface (throttled per app like every event an app can provoke at will).
    AppReported { message: String },
}

impl ErrorKind {
    /// A crash (the device uploads these at once rather than daily).
    pub fn is_crash(&self) -> bool {
        matches!(
            self,
            Self::Trapped { .. }
                | Self::CpuLimit { .. }
                | Self::CpuBudget { .. }
                | Self::MemoryLimit { .. }
                | Self::StartFailed { .. }
        )
    }

    /// A short stable name, for reports.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Exited { .. } => "exited",
            Self::Trapped { .. } => "trapped",
            Self::CpuLimit { .. } => "cpu-limit",
            Self::CpuBudget { .. } => "cpu-budget",
            Self::MemoryLimit { .. } => "memory-limit",
            Self::LogRateLimited { .. } => "log-rate-limited",
            Self::StorageQuota { .. } => "storage-quota",
            Self::AccessDenied { .. } => "access-denied",
            Self::StartFailed { .. } => "start-failed",
            Self::AppReported { .. } => "app-reported",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AppReported { message } => write!(f, "reported: {message}"),
            Self::Exited { code } => write!(f, "exited with code {code}"),
            Self::Trapped { reason } => write!(f, "trapped: {reason}"),
            Self::CpuLimit { slice } => {
                write!(
                    f,
                    "computed for more than {} ms without yielding",
                    slice.as_millis()
                )
            }
            Self::CpuBudget { budget, window } => write!(
                f,
                "used more than {} ms of CPU in {} ms",
                budget.as_millis(),
                window.as_millis()
            ),
            Self::MemoryLimit { limit_bytes } => {
                write!(f, "exceeded its linear memory limit of {limit_bytes} bytes")
            }
            Self::LogRateLimited { dropped_lines } => {
                write!(f, "log rate limit: {dropped_lines} lines dropped")
            }
            Self::StorageQuota { quota_bytes } => {
                write!(f, "storage quota of {quota_bytes} bytes reached")
            }
            Self::AccessDenied { resource } => write!(f, "access denied: {resource}"),
            Self::StartFailed { reason } => write!(f, "could not start: {reason}"),
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorEvent {
    /// Position in the runtime's event sequence (starts at 1, never reused).
    pub seq: u64,
    pub app: AppId,
    pub app_name: String,
    pub at: SystemTime,
    pub kind: ErrorKind,
    /// For exits and crashes: the delay before the restart, if one is scheduled.
    pub restart_in: Option<Duration>,
}

#[derive(Debug)]
struct Ring {
    events: VecDeque<ErrorEvent>,
    next_seq: u64,
}

/// The runtime's bounded event log.
#[derive(Debug)]
pub(crate) struct EventLog {
    ring: Mutex<Ring>,
    arrived: Condvar,
    capacity: usize,
}

impl EventLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                next_seq: 1,
            }),
            arrived: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn push(
        &self,
        app: AppId,
        app_name: &str,
        kind: ErrorKind,
        restart_in: Option<Duration>,
    ) {
        tracing::warn!(app = %app, app_name, event = kind.code(), detail = %kind, "app error event");
        let mut ring = self.lock();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        ring.events.push_back(ErrorEvent {
            seq,
            app,
            app_name: app_name.to_owned(),
            at: SystemTime::now(),
            kind,
            restart_in,
        });
        while ring.events.len() > self.capacity {
            ring.events.pop_front();
        }
        self.arrived.notify_all();
    }

    pub(crate) fn snapshot(&self) -> Vec<ErrorEvent> {
        self.lock().events.iter().cloned().collect()
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// The first event with `seq >= from`, waiting at most `timeout`. Returns the events missed
    /// (dropped from the ring before they were read) alongside.
    pub(crate) fn wait_from(&self, from: u64, timeout: Duration) -> Option<(ErrorEvent, u64)> {
        let deadline = Instant::now() + timeout;
        let mut ring = self.lock();
        loop {
            if let Some(event) = ring.events.iter().find(|event| event.seq >= from) {
                return Some((event.clone(), event.seq - from));
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            ring = self
                .arrived
                .wait_timeout(ring, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

/// Follows the event log from the moment it was created.
#[derive(Debug)]
pub struct EventSubscription {
    pub(crate) log: std::sync::Arc<EventLog>,
    pub(crate) next: u64,
    pub(crate) missed: u64,
}

impl EventSubscription {
    /// The next event, waiting at most `timeout`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<ErrorEvent> {
        let (event, missed) = self.log.wait_from(self.next, timeout)?;
        self.missed += missed;
        self.next = event.seq + 1;
        Some(event)
    }

    /// Events that fell out of the bounded log before this subscription read them.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

/// A per-app token bucket for events an app can provoke at will (denials, quota refusals), so
/// a hostile app cannot flood the event log.
#[derive(Debug)]
pub(crate) struct EventThrottle {
    tokens: f64,
    last: Instant,
}

impl EventThrottle {
    const PER_SECOND: f64 = 5.0;
    const BURST: f64 = 20.0;

    pub(crate) fn new() -> Self {
        Self {
            tokens: Self::BURST,
            last: Instant::now(),
        }
    }

    pub(crate) fn allow(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * Self::PER_SECOND).min(Self::BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppId {
        AppId::from(uuid::Uuid::nil())
    }

    #[test]
    fn the_log_is_bounded_and_subscribers_count_what_they_missed() {
        let log = std::sync::Arc::new(EventLog::new(3));
        let mut subscription = EventSubscription {
            log: log.clone(),
            next: log.next_seq(),
            missed: 0,
        };
        for code in 0..5 {
            log.push(app(), "a", ErrorKind::Exited { code }, None);
        }
        assert_eq!(log.snapshot().len(), 3);
        let first = subscription.next_timeout(Duration::ZERO).unwrap();
        assert_eq!(first.kind, ErrorKind::Exited { code: 2 });
        assert_eq!(subscription.missed(), 2);
        assert!(subscription.next_timeout(Duration::ZERO).is_some());
        assert!(subscription.next_timeout(Duration::ZERO).is_some());
        assert!(
            subscription
                .next_timeout(Duration::from_millis(10))
                .is_none()
        );
    }

    #[test]
    fn throttle_allows_a_burst_then_a_trickle() {
        let mut throttle = EventThrottle::new();
        let allowed = (0..100).filter(|_| throttle.allow()).count();
        assert!((20..=21).contains(&allowed), "{allowed}");
    }
}
