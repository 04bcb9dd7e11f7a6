//! Logs a line, then exits with code 7.
#![no_std]
#![no_main]

use ferro_rt::{entry, log};

#[entry]
fn main() -> ! {
    let _rt = ferro_rt::init();
    log!("rt-exit: exiting with 7");
    ferro_rt::exit(7)
}
