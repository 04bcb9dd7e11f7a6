//! The peripherals of an RT app: drives GPIO 3 high and GPIO 5 low, mirrors input 12 (the
//! virtual board's button A, active low) onto output 8 (its LED1 red, active low: a press
//! lights it), logs each press (`rt-io: press N`), and answers each byte of the app's UART in
//! upper case. Between events it sleeps in WFI: an input edge (the host rings the doorbell), a
//! UART byte or a one-second alarm wakes it.
#![no_std]
#![no_main]

use core::time::Duration;

use ferro_rt::{entry, gpio, log, time, wait_until, watchdog};

const BUTTON: u8 = 12;
const LED: u8 = 8;

#[entry]
fn main() -> ! {
    let mut rt = ferro_rt::init();
    let _ = gpio::set(3, true);
    let _ = gpio::set(5, false);
    let mut presses: u32 = 0;
    let mut was_down = false;
    log!("rt-io ready");
    loop {
        watchdog::kick();
        let seen = gpio::inputs();
        let up = gpio::input(BUTTON).unwrap_or(true);
        let _ = gpio::set(LED, up);
        if !up && !was_down {
            presses = presses.wrapping_add(1);
            log!("rt-io: press {}", presses);
        }
        was_down = !up;
        while let Some(b) = rt.uart.try_read() {
            rt.uart.write(&[b.to_ascii_uppercase()]);
        }
        let deadline = time::now().after(Duration::from_secs(1));
        wait_until(deadline, || gpio::inputs() != seen || rt.uart.available());
    }
}
