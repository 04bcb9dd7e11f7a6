//! `ferro-backoff`: restart delays with exponential backoff, the one policy both supervisors
//! use: the app runtime's (`ferro-runtime`, a high-level app that exits or traps) and the
//! real-time cores' (`ferro-rtcore`, a core that faults, misses its watchdog or exits).
//!
//! It owns [`Backoff`] and nothing else; it depends on no other crate (no Ferrosphere crate,
//! not even std beyond `core::time`), so that the runtime and the cores' crate share it without
//! depending on each other.
#![no_std]

use core::time::Duration;

/// Restart delays: `initial` before the first restart of a crash loop, doubled for each further
/// one up to `max`; a run that lasted `reset_after` without a crash ends the loop (the next
/// crash waits `initial` again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first restart.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// A run at least this long resets the backoff.
    pub reset_after: Duration,
}

impl Default for Backoff {
    /// 100 ms, doubling up to 60 s; a minute of running resets it.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(60),
            reset_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before restart number `failures` (1-based) of a crash loop: `initial`,
    /// doubled `failures - 1` times, at most `max` (0 is treated as 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(20);
        self.initial.saturating_mul(1u32 << exponent).min(self.max)
    }

    /// Whether a run of `ran` ends a crash loop (the next crash counts as the first).
    pub fn resets(&self, ran: Duration) -> bool {
        ran >= self.reset_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_maximum() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            reset_after: Duration::from_secs(60),
        };
        assert_eq!(b.delay(0), Duration::from_millis(100));
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(4), Duration::from_millis(800));
        assert_eq!(b.delay(5), Duration::from_secs(1));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn a_long_run_resets() {
        let b = Backoff::default();
        assert!(!b.resets(Duration::from_secs(59)));
        assert!(b.resets(Duration::from_secs(60)));
    }

    #[test]
    fn no_overflow_with_huge_delays() {
        let b = Backoff {
            initial: Duration::MAX,
            max: Duration::MAX,
            reset_after: Duration::MAX,
        };
        assert_eq!(b.delay(30), Duration::MAX);
    }
}
