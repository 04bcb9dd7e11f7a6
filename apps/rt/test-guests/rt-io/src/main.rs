//! Drives GPIO 3 high and GPIO 5 low, mirrors input 0 onto output 1, and answers each byte of
//! the app's UART in upper case.
#![no_std]
#![no_main]

use core::time::Duration;

use ferro_rt::{entry, gpio, log, time, watchdog};

#[entry]
fn main() -> ! {
    let mut rt = ferro_rt::init();
    let _ = gpio::set(3, true);
    let _ = gpio::set(5, false);
    log!("rt-io ready");
    loop {
        watchdog::kick();
        let _ = gpio::set(1, gpio::input(0).unwrap_or(false));
        while let Some(b) = rt.uart.try_read() {
            rt.uart.write(&[b.to_ascii_uppercase()]);
        }
        time::delay(Duration::from_millis(10));
    }
}
