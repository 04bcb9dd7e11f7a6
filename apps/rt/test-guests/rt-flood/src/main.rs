//! Hostile: floods the host. Sends 1024-byte messages as fast as the ring takes them, never
//! waiting, and writes doorbell bytes between tries; kicks the watchdog so only the flood is
//! judged. The host must keep its memory bounded (the ring is the only queue), drop nothing,
//! and stay responsive.
#![no_std]
#![no_main]

use ferro_rt::{MAX_PAYLOAD, SendError, entry, log, watchdog};

#[entry]
fn main() -> ! {
    let mut rt = ferro_rt::init();
    log!("rt-flood: flooding");
    let mut payload = [0u8; MAX_PAYLOAD];
    let mut seq: u32 = 0;
    loop {
        watchdog::kick();
        payload[..4].copy_from_slice(&seq.to_le_bytes());
        match rt.mailbox.try_send(&payload) {
            Ok(()) => seq = seq.wrapping_add(1),
            Err(SendError::WouldBlock) => ferro_rt::ring_host_doorbell(),
            Err(e) => {
                log!("rt-flood: {}", e);
                ferro_rt::exit(1)
            }
        }
    }
}
