//! A hostile core's writes: arbitrary words over the control block, both rings' headers and
//! their slots' length words, then the host's reads and writes of every kind, repeated with
//! more hostile words between them. Typed errors, never a panic; a poisoned endpoint stays so.
#![no_main]

use std::sync::atomic::Ordering;

use ferro_mailbox::{
    ComponentId, Consumer, ControlBlock, HeapRegion, MAX_PAYLOAD, Producer, Ring, SLOT_COUNT,
    SLOT_SIZE, SharedMemory, ring_layout,
};
use libfuzzer_sys::fuzz_target;

/// The words a core may write that the host reads: offsets into the region.
fn target(selector: u8) -> usize {
    let ring = if selector & 1 == 0 {
        Ring::HostToCore
    } else {
        Ring::CoreToHost
    };
    match (selector >> 1) % 8 {
        0 => ring.offset() + ring_layout::HEAD,
        1 => ring.offset() + ring_layout::TAIL,
        2 => ring.offset() + ring_layout::PRODUCER_WAITING,
        3 => ring.offset() + ring_layout::CONSUMER_WAITING,
        4 => {
            let slot = usize::from(selector >> 4) % SLOT_COUNT as usize;
            ring.offset() + ring_layout::SLOTS + slot * SLOT_SIZE + ring_layout::SLOT_LEN
        }
        n => 4 * (usize::from(selector) * 7 + usize::from(n)) % 64,
    }
}

fuzz_target!(|data: &[u8]| {
    let region = HeapRegion::new();
    let control = ControlBlock::new(&region);
    control.initialise();
    let mut tx = Producer::new(&region, Ring::HostToCore);
    let mut rx = Consumer::new(&region, Ring::CoreToHost);
    let mut buf = [0u8; MAX_PAYLOAD];
    let sender = ComponentId([1; 16]);
    for chunk in data.chunks(6) {
        if chunk.len() < 6 {
            break;
        }
        let value = u32::from_le_bytes([chunk[1], chunk[2], chunk[3], chunk[4]]);
        region.store_u32(target(chunk[0]), value, Ordering::Release);
        let _ = control.state();
        let _ = control.check_header();
        let _ = control.kicks();
        let _ = control.gpio();
        match chunk[5] % 4 {
            0 => {
                let len = usize::from(chunk[5]) * 4 % (MAX_PAYLOAD + 1);
                let _ = tx.try_send(&sender, &buf[..len]);
            }
            1 => {
                if let Ok(Some(r)) = rx.try_receive(&mut buf) {
                    assert!(r.len <= MAX_PAYLOAD);
                }
            }
            2 => {
                let _ = rx.prepare_wait();
                rx.end_wait();
                let _ = tx.prepare_wait();
                tx.end_wait();
            }
            _ => {
                let _ = tx.check();
                let _ = rx.check();
            }
        }
        assert!(tx.in_flight() <= SLOT_COUNT);
    }
});
