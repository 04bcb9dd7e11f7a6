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

/// Wall-clock time: milliseconds since the Unix epoch, as the device's clock says (for
/// timestamps; use [`monotonic_ms`] for intervals). Use this rather than
/// `std::time::SystemTime::now()`, which makes the app import a clock the device does not link.
pub fn unix_ms() -> u64 {
    let now = wasip2::clocks::wall_clock::now();
    now.seconds
        .saturating_mul(1000)
        .saturating_add(u64::from(now.nanoseconds / 1_000_000))
}
