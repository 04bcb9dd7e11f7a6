//! Resource limits of an instance: linear memory (a `ResourceLimiter` that allows the image's
//! initial memory and a fixed allowance beyond it), and the interrupts that end an instance
//! (stop requests and the CPU slice, both checked at epoch ticks).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;

/// Why the runtime ended an instance. Carried inside the trap so the supervisor can tell a
/// limit from the app's own failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum Interrupt {
    #[error("stopped on request")]
    Stopped,
    #[error("computed for more than {} ms without yielding", slice.as_millis())]
    CpuLimit { slice: Duration },
    #[error("used more than {} ms of CPU in {} ms", budget.as_millis(), window.as_millis())]
    CpuBudget { budget: Duration, window: Duration },
    #[error("linear memory limit exceeded: {wanted} bytes asked, {limit} allowed")]
    MemoryLimit { wanted: u64, limit: u64 },
    #[error("the image's initial memory ({wanted} bytes) exceeds the {limit}-byte limit")]
    ImageTooLarge { wanted: u64, limit: u64 },
    #[error("table limit exceeded: {wanted} elements asked, {limit} allowed")]
    TableLimit { wanted: usize, limit: usize },
}

/// A token bucket: `rate` tokens a second, at most `burst` saved. The one rate limit of the
/// runtime (log lines, signed batches).
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    refilled: Instant,
    rate: f64,
    burst: f64,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: u32, burst: u32) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(burst),
            refilled: Instant::now(),
            rate: f64::from(rate),
            burst: f64::from(burst),
        }
    }

    /// Takes a token at `now` if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// Memory figures of an app, shared with the runtime (`show-memory-stats`).
#[derive(Debug, Default)]
pub(crate) struct MemoryCounters {
    pub(crate) image: AtomicU64,
    pub(crate) current: AtomicU64,
    pub(crate) peak: AtomicU64,
    pub(crate) limit: AtomicU64,
}

/// The store's limiter. While the instance is being created, a memory's first growth (from 0)
/// is its initial size, part of the image (at most `max_image_memory_bytes` in all); every other
/// growth counts against the allowance. After instantiation even a growth from 0 (a memory
/// declared empty) is growth, so an empty initial memory cannot smuggle in an image-sized one.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    extra: u64,
    max_image: u64,
    max_table_elements: usize,
    image: u64,
    current: u64,
    instantiating: bool,
    counters: std::sync::Arc<crate::host::AppShared>,
}

impl MemoryLimiter {
    pub(crate) fn new(app: std::sync::Arc<crate::host::AppShared>) -> Self {
        let limits = &app.limits;
        app.memory.image.store(0, Ordering::Relaxed);
        app.memory.current.store(0, Ordering::Relaxed);
        Self {
            extra: limits.extra_memory_bytes,
            max_image: limits.max_image_memory_bytes,
            max_table_elements: limits.max_table_elements,
            image: 0,
            current: 0,
            instantiating: true,
            counters: app,
        }
    }

    /// Instantiation is over: from now on all growth counts against the allowance.
    pub(crate) fn instantiated(&mut self) {
        self.instantiating = false;
    }

    fn publish(&self) {
        let memory = &self.counters.memory;
        memory.image.store(self.image, Ordering::Relaxed);
        memory.current.store(self.current, Ordering::Relaxed);
        memory.peak.fetch_max(self.current, Ordering::Relaxed);
        memory
            .limit
            .store(self.image.saturating_add(self.extra), Ordering::Relaxed);
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let current = current as u64;
        let desired = desired as u64;
        let growth = desired.saturating_sub(current);
        if current == 0 && self.instantiating {
            let image = self.image.saturating_add(desired);
            if image > self.max_image {
                return Err(wasmtime::Error::new(Interrupt::ImageTooLarge {
                    wanted: image,
                    limit: self.max_image,
                }));
            }
            self.image = image;
            self.current = self.current.saturating_add(desired);
        } else {
            let wanted = self.current.saturating_add(growth);
            let limit = self.image.saturating_add(self.extra);
            if wanted > limit {
                return Err(wasmtime::Error::new(Interrupt::MemoryLimit {
                    wanted,
                    limit,
                }));
            }
            self.current = wanted;
        }
        self.publish();
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            return Err(wasmtime::Error::new(Interrupt::TableLimit {
                wanted: desired,
                limit: self.max_table_elements,
            }));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        // A component instantiates a handful of core modules (the app, WASI glue, shims).
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        8
    }
}

/// Computation time of an instance in fixed windows: time outside blocking host calls.
#[derive(Debug)]
pub(crate) struct CpuWindow {
    start: Instant,
    busy: Duration,
    pub(crate) budget: Duration,
    pub(crate) window: Duration,
}

impl CpuWindow {
    pub(crate) fn new(budget: Duration, window: Duration) -> Self {
        Self {
            start: Instant::now(),
            busy: Duration::ZERO,
            budget,
            window: window.max(Duration::from_millis(1)),
        }
    }

    fn roll(&mut self, now: Instant) {
        if now.saturating_duration_since(self.start) >= self.window {
            self.start = now;
            self.busy = Duration::ZERO;
        }
    }

    /// Adds the computation from `since` to `now` (a blocking call begins).
    pub(crate) fn account(&mut self, now: Instant, since: Instant) {
        self.roll(now);
        self.busy += now.saturating_duration_since(since.max(self.start));
    }

    /// Whether the window's computation, with the one running since `since`, exceeds the budget.
    pub(crate) fn exceeded(&mut self, now: Instant, since: Instant) -> bool {
        self.roll(now);
        self.budget < self.window
            && self.busy + now.saturating_duration_since(since.max(self.start)) > self.budget
    }
}

/// The origin of `timers.monotonic-ms` (the first use in this process).
pub(crate) fn monotonic_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_window_counts_computation_and_rolls_over() {
        let start = Instant::now();
        let mut window = CpuWindow::new(Duration::from_millis(100), Duration::from_secs(1));
        window.start = start;
        let at = |ms: u64| start + Duration::from_millis(ms);
        // 60 ms of computation, then a wait, then 30 ms: 90 ms, under budget.
        window.account(at(60), at(0));
        assert!(!window.exceeded(at(230), at(200)));
        window.account(at(230), at(200));
        // 20 more ms of running computation: 110 ms, over.
        assert!(window.exceeded(at(320), at(300)));
        // A new window forgets the old one; computation before it does not count.
        assert!(!window.exceeded(at(1050), at(990)));
        assert!(window.exceeded(at(1200), at(990)));
    }

    #[test]
    fn a_budget_as_long_as_the_window_is_off() {
        let start = Instant::now();
        let mut window = CpuWindow::new(Duration::from_secs(1), Duration::from_secs(1));
        assert!(!window.exceeded(start + Duration::from_millis(999), start));
    }
}
