//! Hostile: spins forever without kicking the watchdog (and without WFI). The host must
//! restart it with a Watchdog crash.
#![no_std]
#![no_main]

use ferro_rt::{entry, log};

#[entry]
fn main() -> ! {
    let _rt = ferro_rt::init();
    log!("rt-spin: spinning without kicks");
    loop {
        core::hint::spin_loop();
    }
}
