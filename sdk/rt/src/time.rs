//! Time: a 64-bit clock of SYSCLK cycles (SysTick, wrapping every 2^24 cycles, 0.67 s) and a
//! one-shot alarm (APB timer 0) for delays, so a sleeping core wakes only when it must.

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use core::time::Duration;
use cortex_m::interrupt::Mutex;

use cortex_m::peripheral::{SCB, SYST, syst::SystClkSource};

use crate::hw;

/// Cycles of the clock per second.
pub const TICKS_PER_SECOND: u64 = hw::SYSCLK_HZ as u64;
const RELOAD: u32 = 0x00FF_FFFF;

static WRAPS: AtomicU32 = AtomicU32::new(0);
static ALARM_HOOK: crate::Hook = Mutex::new(Cell::new(None));

/// Calls `hook` from the alarm's interrupt each time it fires (an executor's time driver wakes
/// its timers there; see `rt-echo-async`).
pub fn set_alarm_hook(hook: fn()) {
    cortex_m::interrupt::free(|cs| ALARM_HOOK.borrow(cs).set(Some(hook)));
}
static ALARM: AtomicBool = AtomicBool::new(false);

pub(crate) fn start() {
    // The SDK is SysTick's only user (it owns the handler); `init` runs once.
    let mut syst = cortex_m::Peripherals::take().map(|p| p.SYST);
    if let Some(syst) = syst.as_mut() {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
    }
}

pub(crate) fn on_systick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn on_alarm() {
    hw::timer0::disarm();
    ALARM.store(true, Ordering::Release);
    if let Some(hook) = cortex_m::interrupt::free(|cs| ALARM_HOOK.borrow(cs).get()) {
        hook();
    }
}

/// A point in time: SYSCLK cycles since [`crate::init`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(u64);

impl Instant {
    /// The time since boot.
    pub fn since_boot(self) -> Duration {
        Duration::from_nanos(self.0.saturating_mul(1_000_000_000) / TICKS_PER_SECOND)
    }

    /// The time from `earlier` to `self` (zero if `earlier` is later).
    pub fn duration_since(self, earlier: Instant) -> Duration {
        let cycles = self.0.saturating_sub(earlier.0);
        Duration::from_nanos(cycles.saturating_mul(1_000_000_000) / TICKS_PER_SECOND)
    }

    /// The cycle count.
    pub fn ticks(self) -> u64 {
        self.0
    }

    /// The instant `ticks` cycles after [`crate::init`].
    pub fn from_ticks(ticks: u64) -> Instant {
        Instant(ticks)
    }

    /// `self` plus `d`.
    pub fn after(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(ticks_of(d)))
    }
}

fn ticks_of(d: Duration) -> u64 {
    (d.as_nanos().saturating_mul(u128::from(TICKS_PER_SECOND)) / 1_000_000_000)
        .min(u128::from(u64::MAX)) as u64
}

/// Now.
pub fn now() -> Instant {
    cortex_m::interrupt::free(|_| {
        let mut wraps = WRAPS.load(Ordering::Relaxed);
        let mut current = SYST::get_current();
        // A wrap whose interrupt has not run yet (interrupts are masked here).
        if SCB::is_pendst_pending() {
            wraps = wraps.wrapping_add(1);
            current = SYST::get_current();
        }
        Instant(u64::from(wraps) * u64::from(RELOAD + 1) + u64::from(RELOAD - current))
    })
}

/// Arms the alarm for `deadline` (at most 171 s ahead at a time: a later deadline wakes early
/// and arms again).
pub fn set_alarm(deadline: Instant) {
    let ahead = deadline
        .0
        .saturating_sub(now().0)
        .clamp(1, u64::from(u32::MAX)) as u32;
    ALARM.store(false, Ordering::Release);
    hw::timer0::arm(ahead);
}

/// Whether the alarm fired since [`set_alarm`] (the flag stays).
pub fn alarm_pending() -> bool {
    ALARM.load(Ordering::Acquire)
}

/// Whether the alarm fired since [`set_alarm`] (and clears the flag).
pub fn take_alarm() -> bool {
    ALARM.swap(false, Ordering::AcqRel)
}

/// Sleeps (WFI) until `deadline`; interrupts (doorbells) are handled meanwhile.
pub fn delay_until(deadline: Instant) {
    while now() < deadline {
        set_alarm(deadline);
        cortex_m::interrupt::disable();
        if !ALARM.load(Ordering::Acquire) && hw::timer0::armed() {
            cortex_m::asm::wfi();
        }
        // SAFETY: re-enables what this loop disabled.
        unsafe { cortex_m::interrupt::enable() };
    }
}

/// Sleeps (WFI) for `d`.
pub fn delay(d: Duration) {
    delay_until(now().after(d));
}
