//! Time (always available). Sleeping yields the CPU: the device treats computing without a
//! sleep (or another blocking call) for longer than its CPU slice as a hung app.
//!
//! ```no_run
//! let start = applibs::time::monotonic_ms();
//! applibs::time::sleep(std::time::Duration::from_millis(10));
//! assert!(applibs::time::monotonic_ms() >= start);
//! ```

use std::time::Duration;

use crate::bindings::ferrosphere::device::timers as raw;

/// Milliseconds on a monotonic clock.
pub fn monotonic_ms() -> u64 {
    raw::monotonic_ms()
}

/// Sleeps for `duration` (to the millisecond; longer sleeps are split).
pub fn sleep(duration: Duration) {
    let mut remaining = duration.as_millis();
    while remaining > 0 {
        let step = u32::try_from(remaining).unwrap_or(u32::MAX);
        raw::sleep_ms(step);
        remaining -= u128::from(step);
    }
}
