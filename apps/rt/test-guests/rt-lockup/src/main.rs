//! Hostile: sets FAULTMASK (execution priority -1), then faults: the fault cannot escalate to
//! HardFault and the core locks up (QEMU aborts with "Lockup"). The host must report Lockup and
//! restart it.
#![no_std]
#![no_main]

use ferro_rt::{entry, log};

#[entry]
fn main() -> ! {
    let _rt = ferro_rt::init();
    log!("rt-lockup: faulting with FAULTMASK set");
    // SAFETY: none needed beyond the guest's own ruin: FAULTMASK masks everything, then the
    // read of an unmapped address faults where no handler can run.
    unsafe {
        core::arch::asm!("cpsid f");
        let _ = core::ptr::read_volatile(0x5fff_0000 as *const u32);
    }
    ferro_rt::exit(0)
}
