//! The app's UART (UART2): what the core sends reaches the board's peer, what the peer sends
//! waits in a 256-byte buffer (bytes beyond it are dropped and counted: a UART has no
//! backpressure).

use core::cell::RefCell;

use cortex_m::interrupt::Mutex;

use crate::hw;

struct RxBuffer {
    bytes: [u8; 256],
    start: usize,
    len: usize,
    dropped: u32,
}

static RX: Mutex<RefCell<RxBuffer>> = Mutex::new(RefCell::new(RxBuffer {
    bytes: [0; 256],
    start: 0,
    len: 0,
    dropped: 0,
}));

pub(crate) fn on_receive() {
    hw::UART2.clear_interrupts();
    cortex_m::interrupt::free(|cs| {
        let mut rx = RX.borrow(cs).borrow_mut();
        while let Some(b) = hw::UART2.try_read() {
            if rx.len == rx.bytes.len() {
                rx.dropped = rx.dropped.wrapping_add(1);
                continue;
            }
            let at = (rx.start + rx.len) % rx.bytes.len();
            rx.bytes[at] = b;
            rx.len += 1;
        }
    });
}

/// The app's UART (from [`crate::init`]).
#[derive(Debug)]
pub struct AppUart {
    _private: (),
}

impl AppUart {
    pub(crate) fn new() -> AppUart {
        AppUart { _private: () }
    }

    /// Sends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            hw::UART2.write_byte(b);
        }
    }

    /// A received byte, if one waits.
    pub fn try_read(&mut self) -> Option<u8> {
        cortex_m::interrupt::free(|cs| {
            let mut rx = RX.borrow(cs).borrow_mut();
            if rx.len == 0 {
                return None;
            }
            let b = rx.bytes[rx.start];
            rx.start = (rx.start + 1) % rx.bytes.len();
            rx.len -= 1;
            Some(b)
        })
    }

    /// Whether a received byte waits.
    pub fn available(&self) -> bool {
        cortex_m::interrupt::free(|cs| RX.borrow(cs).borrow().len != 0)
    }

    /// The next received byte, sleeping (WFI) until one comes.
    pub fn read(&mut self) -> u8 {
        loop {
            if let Some(b) = self.try_read() {
                return b;
            }
            cortex_m::interrupt::disable();
            let empty = cortex_m::interrupt::free(|cs| RX.borrow(cs).borrow().len == 0);
            if empty {
                cortex_m::asm::wfi();
            }
            // SAFETY: re-enables what this loop disabled.
            unsafe { cortex_m::interrupt::enable() };
        }
    }

    /// Bytes dropped because the buffer was full.
    pub fn dropped(&self) -> u32 {
        cortex_m::interrupt::free(|cs| RX.borrow(cs).borrow().dropped)
    }
}
