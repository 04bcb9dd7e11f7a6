//! `ferro-rt`: the SDK of Ferrosphere's real-time apps, bare-metal Rust on a Cortex-M4F core
//! (`thumbv7em-none-eabihf`; mps2-an386 as QEMU models it, `docs/realtime.md`).
//!
//! It owns the core's side of the platform contract: the mailbox to the partner app (the
//! rings of `ferro-mailbox` in the shared PSRAM, with a UART doorbell so neither side spins),
//! the debug log ([`log!`], UART0: the app's log on the device), the watchdog kick, time and
//! delays (SysTick and an APB timer), GPIO (the control block's words: on real chips these are
//! the core's own GPIO registers), the app's UART (UART2), `exit`, and the fault handler that
//! records a HardFault for the host. It must not depend on anything of the host (only
//! `ferro-mailbox`, cortex-m and cortex-m-rt).
//!
//! ```no_run
//! #![no_std]
//! #![no_main]
//! use ferro_rt::{entry, log};
//!
//! #[entry]
//! fn main() -> ! {
//!     let mut rt = ferro_rt::init();
//!     log!("echo ready");
//!     let mut buf = [0u8; ferro_rt::MAX_PAYLOAD];
//!     loop {
//!         // Sleeps in WFI until the host rings the doorbell.
//!         let Ok(message) = rt.mailbox.receive(&mut buf) else { ferro_rt::exit(1) };
//!         let _ = rt.mailbox.send(&buf[..message.len]);
//!         ferro_rt::watchdog::kick();
//!     }
//! }
//! ```
//!
//! The SDK owns the core's exception handlers: `DefaultHandler` (the doorbell, the app UART
//! and the alarm interrupts), `SysTick` (the clock) and `HardFault` (the fault record); an app
//! must not define them. A panic logs its message and exits with code 101.
//!
//! `unsafe` is confined to `src/hw.rs` (volatile MMIO at the board's fixed addresses, the
//! PSRAM mailbox region, NVIC unmasking) and the handlers cortex-m-rt requires to be `unsafe`.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod gpio;
mod hw;
pub mod mailbox;
pub mod time;
pub mod uart;

pub use cortex_m_rt::entry;
pub use ferro_mailbox::{ComponentId, MAX_PAYLOAD, RingCorrupt, SendError};
pub use mailbox::{Mailbox, Message};

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m_rt::{ExceptionFrame, exception};
use ferro_mailbox::{ControlBlock, CoreState, FaultKind, FaultRecord, RawRegion};

/// A handler the app hands the SDK, called from an interrupt.
pub(crate) type Hook = cortex_m::interrupt::Mutex<core::cell::Cell<Option<fn()>>>;

/// The mailbox region (the PSRAM), as the core sees it.
pub(crate) static PSRAM: RawRegion = hw::psram();
/// Its control block.
pub(crate) static CONTROL: ControlBlock<&RawRegion> = ControlBlock::new(&PSRAM);

static TAKEN: AtomicBool = AtomicBool::new(false);

/// What [`init`] hands the app: the parts only one owner may use.
#[derive(Debug)]
pub struct Rt {
    /// The mailbox to the partner app.
    pub mailbox: Mailbox,
    /// The app's UART (UART2).
    pub uart: uart::AppUart,
}

/// Sets up the core (UARTs, the clock, interrupts), checks the mailbox region the host
/// prepared and tells the host the app is ready. Call it once, first: a second call, or a
/// region the host did not prepare, exits the app (code 102 or 103).
pub fn init() -> Rt {
    if TAKEN.swap(true, Ordering::SeqCst) {
        exit(102);
    }
    hw::UART0.init(false);
    hw::UART1.init(true);
    hw::UART2.init(true);
    hw::UART3.init(false);
    hw::UART1.clear_interrupts();
    hw::UART2.clear_interrupts();
    time::start();
    hw::unmask(hw::Irq::Uart1Rx);
    hw::unmask(hw::Irq::Uart2Rx);
    hw::unmask(hw::Irq::Timer0);
    if let Err(e) = CONTROL.check_header() {
        log!("ferro-rt: the mailbox region is not prepared: {}", e);
        exit(103);
    }
    CONTROL.set_state(CoreState::Ready);
    Rt {
        mailbox: Mailbox::new(),
        uart: uart::AppUart::new(),
    }
}

/// Ends the app with `code`: the host sees it, stops the core and restarts it with backoff
/// (unless it was stopped).
pub fn exit(code: i32) -> ! {
    CONTROL.set_state(CoreState::Exited(code));
    mailbox::ring_doorbell();
    halt()
}

/// Rings the host's doorbell by hand (the mailbox rings it when the host asked for it; an
/// app needs this only to wake a host that does not wait).
pub fn ring_host_doorbell() {
    mailbox::ring_doorbell();
}

/// The mailbox region itself (the PSRAM, as `ferro-mailbox` atomics): for tools and tests
/// that inspect the layout. Writing there by hand breaks the protocol; the host restarts a
/// core that corrupts it.
pub fn mailbox_region() -> &'static RawRegion {
    &PSRAM
}

/// Sleeps (WFI) until `ready()` answers true or `deadline` passes, asking again after each
/// interrupt (a doorbell: a message, or the host changed a GPIO input; a byte on the app's
/// UART; the alarm). Interrupts are masked between the question and the WFI, so an event in
/// between is never slept through. Answers whether `ready()` held.
///
/// ```no_run
/// # use core::time::Duration;
/// # let mut rt = ferro_rt::init();
/// // Wake on a button edge, a UART byte, or after 100 ms.
/// let seen = ferro_rt::gpio::inputs();
/// let deadline = ferro_rt::time::now().after(Duration::from_millis(100));
/// ferro_rt::wait_until(deadline, || ferro_rt::gpio::inputs() != seen || rt.uart.available());
/// ```
pub fn wait_until(deadline: time::Instant, mut ready: impl FnMut() -> bool) -> bool {
    loop {
        if ready() {
            return true;
        }
        if time::now() >= deadline {
            return false;
        }
        time::set_alarm(deadline);
        cortex_m::interrupt::disable();
        if !ready() && !time::alarm_pending() {
            cortex_m::asm::wfi();
        }
        // SAFETY: re-enables what this loop disabled; no critical section spans it.
        unsafe { cortex_m::interrupt::enable() };
    }
}

/// Sleeps in WFI until an interrupt (a doorbell, the alarm, the app's UART) is handled.
pub fn wait_for_interrupt() {
    cortex_m::asm::wfi();
}

/// Ends the app on an error: `result.or_exit("mailbox")` logs `mailbox: <error>` and exits
/// with code 1 (the host restarts the core with backoff).
pub trait OrExit<T> {
    /// The value, or the log line and exit.
    fn or_exit(self, what: &str) -> T;
}

impl<T, E: fmt::Display> OrExit<T> for Result<T, E> {
    fn or_exit(self, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => {
                log!("{}: {}", what, e);
                exit(1)
            }
        }
    }
}

fn halt() -> ! {
    cortex_m::interrupt::disable();
    loop {
        cortex_m::asm::wfi();
    }
}

/// The watchdog: the host restarts a core whose kick counter does not change within the
/// period its manifest or board sets.
pub mod watchdog {
    /// One kick.
    pub fn kick() {
        crate::CONTROL.kick();
    }
}

/// The debug log's writer (UART0); [`log!`] is the way to use it.
#[derive(Debug)]
pub struct DebugLog;

impl Write for DebugLog {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            hw::UART0.write_byte(b);
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _log(args: fmt::Arguments<'_>) {
    cortex_m::interrupt::free(|_| {
        let _ = DebugLog.write_fmt(args);
        let _ = DebugLog.write_str("\n");
    });
}

/// Writes one line to the debug log (the app's log on the device), `format!`-style.
///
/// ```no_run
/// ferro_rt::log!("{} messages answered", 3);
/// ```
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::_log(format_args!($($arg)*)) };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    log!("panic: {}", info);
    exit(101)
}

/// The fault kind: the escalated fault's class when HardFault was forced, else HardFault.
fn fault_kind(cfsr: u32, hfsr: u32) -> FaultKind {
    const FORCED: u32 = 1 << 30;
    if hfsr & FORCED != 0 {
        if cfsr & 0xFF != 0 {
            return FaultKind::MemManage;
        }
        if cfsr & 0xFF00 != 0 {
            return FaultKind::BusFault;
        }
        if cfsr & 0xFFFF_0000 != 0 {
            return FaultKind::UsageFault;
        }
    }
    FaultKind::HardFault
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    let (cfsr, hfsr) = (hw::scb::cfsr(), hw::scb::hfsr());
    CONTROL.set_state(CoreState::Faulted(FaultRecord {
        kind: fault_kind(cfsr, hfsr),
        pc: frame.pc(),
        lr: frame.lr(),
        xpsr: frame.xpsr(),
        cfsr,
        hfsr,
        mmfar: hw::scb::mmfar(),
        bfar: hw::scb::bfar(),
    }));
    mailbox::ring_doorbell();
    halt()
}

#[exception]
unsafe fn DefaultHandler(irq: i16) {
    match irq {
        2 => mailbox::on_doorbell(),
        4 => uart::on_receive(),
        8 => time::on_alarm(),
        _ => {}
    }
}

#[exception]
fn SysTick() {
    time::on_systick();
}
