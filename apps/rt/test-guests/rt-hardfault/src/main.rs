//! Hostile: reads an address nothing is mapped at (a precise BusFault, escalated to HardFault
//! as fault handlers are not enabled). The host must see the fault record and restart it.
#![no_std]
#![no_main]

use ferro_rt::{entry, log};

#[entry]
fn main() -> ! {
    let _rt = ferro_rt::init();
    log!("rt-hardfault: reading 0x5fff0000");
    // SAFETY: none: this guest faults on purpose (nothing is mapped at this address).
    let v = unsafe { core::ptr::read_volatile(0x5fff_0000 as *const u32) };
    log!("rt-hardfault: survived with {}", v);
    ferro_rt::exit(0)
}
