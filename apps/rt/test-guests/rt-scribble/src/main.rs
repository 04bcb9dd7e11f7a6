//! Hostile: after one message exchange, writes garbage over the rings' shared indices (the
//! core-to-host producer index far ahead, the host-to-core consumer index behind) and rings
//! the doorbell. The host must answer RingCorrupt, restart the core, and not panic.
#![no_std]
#![no_main]

use core::sync::atomic::Ordering;

use ferro_mailbox::{Ring, SharedMemory, ring_layout};
use ferro_rt::{MAX_PAYLOAD, entry, log};

#[entry]
fn main() -> ! {
    let mut rt = ferro_rt::init();
    log!("rt-scribble: waiting for a message");
    let mut buf = [0u8; MAX_PAYLOAD];
    let _ = rt.mailbox.receive(&mut buf);
    log!("rt-scribble: scribbling over the ring headers");
    let region = ferro_rt::mailbox_region();
    region.store_u32(
        Ring::CoreToHost.offset() + ring_layout::HEAD,
        0x7fff_fff0,
        Ordering::Release,
    );
    region.store_u32(
        Ring::HostToCore.offset() + ring_layout::TAIL,
        0xdead_beef,
        Ordering::Release,
    );
    ferro_rt::ring_host_doorbell();
    loop {
        ferro_rt::watchdog::kick();
        ferro_rt::time::delay(core::time::Duration::from_millis(50));
    }
}
