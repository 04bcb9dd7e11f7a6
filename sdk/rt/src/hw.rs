//! The board's registers (mps2-an386 as QEMU models it): the only module of `ferro-rt` with
//! `unsafe`, each access a volatile read or write of a fixed MMIO address.

use core::ptr::{read_volatile, write_volatile};

/// The core's clock (SYSCLK), which drives the CPU, SysTick and the APB timers.
pub(crate) const SYSCLK_HZ: u32 = 25_000_000;

/// Interrupt numbers (QEMU's `hw/arm/mps2.c`, AN385/AN386).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum Irq {
    /// UART1 receive: the doorbell.
    Uart1Rx = 2,
    /// UART2 receive: the app's UART.
    Uart2Rx = 4,
    /// APB timer 0: the alarm.
    Timer0 = 8,
}

// SAFETY: the numbers are the board's interrupt lines, all below the NVIC's 32 implemented
// here.
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        self as u16
    }
}

/// Unmasks `irq` in the NVIC.
pub(crate) fn unmask(irq: Irq) {
    // SAFETY: the SDK's handler (`crate::interrupts`) handles every line it unmasks; unmasking
    // outside a critical section is fine as nothing here relies on these being masked.
    unsafe { cortex_m::peripheral::NVIC::unmask(irq) }
}

fn read(address: usize) -> u32 {
    // SAFETY: `address` is one of this module's fixed, aligned MMIO registers of the board.
    unsafe { read_volatile(address as *const u32) }
}

fn write(address: usize, value: u32) {
    // SAFETY: as in `read`.
    unsafe { write_volatile(address as *mut u32, value) }
}

/// A CMSDK APB UART.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Uart {
    base: usize,
}

/// UART0: the debug log.
pub(crate) const UART0: Uart = Uart { base: 0x4000_4000 };
/// UART1: the core's doorbell (the host rings it).
pub(crate) const UART1: Uart = Uart { base: 0x4000_5000 };
/// UART2: the app's UART.
pub(crate) const UART2: Uart = Uart { base: 0x4000_6000 };
/// UART3: the host's doorbell (transmit only).
pub(crate) const UART3: Uart = Uart { base: 0x4000_7000 };

impl Uart {
    const DATA: usize = 0x00;
    const STATE: usize = 0x04;
    const CTRL: usize = 0x08;
    const INT: usize = 0x0C;
    const BAUDDIV: usize = 0x10;
    const STATE_TX_FULL: u32 = 1 << 0;
    const STATE_RX_FULL: u32 = 1 << 1;
    const CTRL_TX_EN: u32 = 1 << 0;
    const CTRL_RX_EN: u32 = 1 << 1;
    const CTRL_RX_INT: u32 = 1 << 3;

    /// Enables transmit and receive (and the receive interrupt when asked).
    pub(crate) fn init(self, rx_interrupt: bool) {
        write(self.base + Self::BAUDDIV, 16); // QEMU moves bytes only with a divider >= 16
        let mut ctrl = Self::CTRL_TX_EN | Self::CTRL_RX_EN;
        if rx_interrupt {
            ctrl |= Self::CTRL_RX_INT;
        }
        write(self.base + Self::CTRL, ctrl);
    }

    /// Sends one byte, waiting while the transmit buffer is full.
    pub(crate) fn write_byte(self, byte: u8) {
        while read(self.base + Self::STATE) & Self::STATE_TX_FULL != 0 {}
        write(self.base + Self::DATA, u32::from(byte));
    }

    /// The received byte, if one waits.
    pub(crate) fn try_read(self) -> Option<u8> {
        if read(self.base + Self::STATE) & Self::STATE_RX_FULL != 0 {
            Some(read(self.base + Self::DATA) as u8)
        } else {
            None
        }
    }

    /// Clears the UART's interrupt flags.
    pub(crate) fn clear_interrupts(self) {
        write(self.base + Self::INT, 0xF);
    }
}

/// CMSDK APB timer 0: the one-shot alarm.
pub(crate) mod timer0 {
    use super::{read, write};

    const BASE: usize = 0x4000_0000;
    const CTRL: usize = BASE;
    const VALUE: usize = BASE + 0x04;
    const RELOAD: usize = BASE + 0x08;
    const INT: usize = BASE + 0x0C;

    /// Interrupts once after `cycles` (>= 1) of SYSCLK.
    pub(crate) fn arm(cycles: u32) {
        write(CTRL, 0);
        write(INT, 1);
        write(RELOAD, cycles.max(1));
        write(VALUE, cycles.max(1));
        write(CTRL, 0b1001); // enable, interrupt enable
    }

    /// Stops the timer and clears its interrupt.
    pub(crate) fn disarm() {
        write(CTRL, 0);
        write(INT, 1);
    }

    /// Whether it is counting.
    pub(crate) fn armed() -> bool {
        read(CTRL) & 1 != 0
    }
}

/// The System Control Block's fault status and address registers.
pub(crate) mod scb {
    use super::read;

    pub(crate) fn cfsr() -> u32 {
        read(0xE000_ED28)
    }
    pub(crate) fn hfsr() -> u32 {
        read(0xE000_ED2C)
    }
    pub(crate) fn mmfar() -> u32 {
        read(0xE000_ED34)
    }
    pub(crate) fn bfar() -> u32 {
        read(0xE000_ED38)
    }
}

/// The mailbox region at the PSRAM.
pub(crate) const fn psram() -> ferro_mailbox::RawRegion {
    // SAFETY: on mps2-an386 the PSRAM is mapped at `PSRAM_BASE`; `crate::init` calls this once
    // (the `TAKEN` flag), and the core touches the mailbox only through the region's atomics.
    unsafe { ferro_mailbox::RawRegion::psram() }
}
