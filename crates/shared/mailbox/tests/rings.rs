//! The ring protocol on the host: a producer and a consumer thread over a mapped temporary
//! file (the same mapping the host makes of a core's PSRAM), and hostile values in every
//! shared index and length field.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferro_mailbox::{
    ComponentId, Consumer, ControlBlock, CoreState, Corruption, FaultKind, FaultRecord, HeapRegion,
    MAX_PAYLOAD, MappedRegion, Producer, Ring, SLOT_COUNT, SendError, SharedMemory, control,
    ring_layout,
};
use proptest::prelude::*;

const SENDER: ComponentId = ComponentId([7; 16]);

fn mapped() -> (tempfile::TempDir, Arc<MappedRegion>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let region = MappedRegion::create(&dir.path().join("psram")).expect("map");
    ControlBlock::new(&region).initialise();
    (dir, Arc::new(region))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Messages of random sizes (1..=1024) cross from a producer thread to a consumer thread
    /// through a mapping of one file (two mappings, as host and core have): none lost,
    /// duplicated or reordered, and a full ring answers WouldBlock without dropping.
    #[test]
    fn messages_cross_whole_and_in_order(sizes in prop::collection::vec(1usize..=MAX_PAYLOAD, 1..400)) {
        let (dir, producer_side) = mapped();
        let consumer_side = Arc::new(MappedRegion::open(&dir.path().join("psram")).expect("second mapping"));
        let messages: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| (0..len).map(|k| (i * 31 + k * 7) as u8).collect())
            .collect();
        let expected = messages.clone();
        let producer = std::thread::spawn(move || {
            let mut tx = Producer::new(producer_side, Ring::CoreToHost);
            let mut would_block = 0u32;
            for m in &messages {
                loop {
                    match tx.try_send(&SENDER, m) {
                        Ok(_) => break,
                        Err(SendError::WouldBlock) => {
                            would_block += 1;
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            would_block
        });
        let mut rx = Consumer::new(consumer_side, Ring::CoreToHost);
        let mut buf = [0u8; MAX_PAYLOAD];
        for (i, want) in expected.iter().enumerate() {
            let got = loop {
                if let Some(r) = rx.try_receive(&mut buf).expect("valid ring") {
                    break r;
                }
                std::thread::yield_now();
            };
            prop_assert_eq!(got.sender, SENDER);
            prop_assert_eq!(&buf[..got.len], &want[..], "message {}", i);
        }
        producer.join().expect("producer");
        prop_assert_eq!(rx.try_receive(&mut buf).expect("valid"), None);
    }
}

#[test]
fn a_full_ring_is_would_block_and_drops_nothing() {
    let region = HeapRegion::new();
    let mut tx = Producer::new(&region, Ring::HostToCore);
    let mut rx = Consumer::new(&region, Ring::HostToCore);
    for i in 0..SLOT_COUNT {
        let _ = tx.try_send(&SENDER, &i.to_le_bytes()).expect("room");
    }
    assert_eq!(
        tx.try_send(&SENDER, b"one more"),
        Err(SendError::WouldBlock)
    );
    assert_eq!(tx.in_flight(), SLOT_COUNT);
    let mut buf = [0u8; MAX_PAYLOAD];
    let first = rx.try_receive(&mut buf).expect("valid").expect("a message");
    assert_eq!(buf[..first.len], 0u32.to_le_bytes());
    let _ = tx.try_send(&SENDER, b"one more").expect("room again");
    for i in 1..SLOT_COUNT {
        let r = rx.try_receive(&mut buf).expect("valid").expect("a message");
        assert_eq!(buf[..r.len], i.to_le_bytes());
    }
    let r = rx.try_receive(&mut buf).expect("valid").expect("the last");
    assert_eq!(&buf[..r.len], b"one more");
    assert_eq!(
        tx.try_send(&SENDER, &[0; MAX_PAYLOAD + 1]),
        Err(SendError::TooLarge {
            len: MAX_PAYLOAD + 1
        })
    );
}

#[test]
fn the_waiting_flags_ask_for_doorbells() {
    let region = HeapRegion::new();
    let mut tx = Producer::new(&region, Ring::HostToCore);
    let mut rx = Consumer::new(&region, Ring::HostToCore);
    assert!(
        !tx.try_send(&SENDER, b"a").expect("room").doorbell,
        "nobody waits"
    );
    let mut buf = [0u8; MAX_PAYLOAD];
    let _ = rx.try_receive(&mut buf).expect("valid");
    assert!(rx.prepare_wait().expect("valid"), "empty: sleep");
    assert!(
        tx.try_send(&SENDER, b"b").expect("room").doorbell,
        "the consumer sleeps"
    );
    rx.end_wait();
    assert!(
        !rx.prepare_wait().expect("valid"),
        "a message waits: do not sleep"
    );
}

/// Hostile values in each shared field a consumer or producer reads: a typed error, no panic,
/// and the endpoint stays poisoned.
#[test]
fn hostile_indices_and_lengths_are_ring_corrupt() {
    let head = Ring::CoreToHost.offset() + ring_layout::HEAD;
    let tail = Ring::HostToCore.offset() + ring_layout::TAIL;
    let len0 = Ring::CoreToHost.offset() + ring_layout::SLOTS + ring_layout::SLOT_LEN;
    let garbage = [
        SLOT_COUNT + 1,
        u32::MAX,
        0x8000_0000,
        0xdead_beef,
        u32::MAX - SLOT_COUNT,
    ];
    for value in garbage {
        // The core's producer index (of core-to-host) ahead of the window or behind.
        let region = HeapRegion::new();
        let mut rx = Consumer::new(&region, Ring::CoreToHost);
        region.store_u32(head, value, Ordering::Release);
        let mut buf = [0u8; MAX_PAYLOAD];
        let err = rx.try_receive(&mut buf).expect_err("corrupt");
        assert!(
            matches!(err.what, Corruption::Head { found, .. } if found == value),
            "{err}"
        );
        region.store_u32(head, 0, Ordering::Release);
        assert_eq!(rx.try_receive(&mut buf).expect_err("poisoned"), err);

        // The core's consumer index (of host-to-core) past the producer's or behind.
        let region = HeapRegion::new();
        let mut tx = Producer::new(&region, Ring::HostToCore);
        let _ = tx.try_send(&SENDER, b"x").expect("room");
        region.store_u32(tail, value, Ordering::Release);
        let err = tx.try_send(&SENDER, b"y").expect_err("corrupt");
        assert!(
            matches!(err, SendError::RingCorrupt { what: Corruption::Tail { found, .. } } if found == value),
            "{err}"
        );

        // A slot's length.
        let region = HeapRegion::new();
        let mut rx = Consumer::new(&region, Ring::CoreToHost);
        region.store_u32(head, 1, Ordering::Release);
        region.store_u32(len0, value.max(MAX_PAYLOAD as u32 + 1), Ordering::Relaxed);
        let err = rx.try_receive(&mut buf).expect_err("corrupt");
        assert!(matches!(err.what, Corruption::Length { .. }), "{err}");
    }
    // An index that moves backwards after being valid.
    let region = HeapRegion::new();
    let mut rx = Consumer::new(&region, Ring::CoreToHost);
    region.store_u32(head, 3, Ordering::Release);
    rx.check().expect("valid");
    region.store_u32(head, 2, Ordering::Release);
    assert!(matches!(
        rx.check().expect_err("backwards").what,
        Corruption::Head {
            previous: 3,
            found: 2,
            ..
        }
    ));
}

#[test]
fn hostile_control_words_are_typed_errors() {
    let region = HeapRegion::new();
    let control = ControlBlock::new(&region);
    assert!(matches!(
        control.check_header(),
        Err(Corruption::Magic { found: 0 })
    ));
    control.initialise();
    control.check_header().expect("valid");
    region.store_u32(control::VERSION, 9, Ordering::Relaxed);
    assert_eq!(
        control.check_header(),
        Err(Corruption::Version { found: 9 })
    );
    for state in [4, 5, u32::MAX] {
        region.store_u32(control::STATE, state, Ordering::Relaxed);
        assert_eq!(control.state(), Err(Corruption::State { found: state }));
    }
    region.store_u32(control::STATE, 3, Ordering::Relaxed);
    region.store_u32(control::FAULT, 0, Ordering::Relaxed);
    assert_eq!(control.state(), Err(Corruption::FaultKind { found: 0 }));
    let record = FaultRecord {
        kind: FaultKind::UsageFault,
        pc: 1,
        lr: 2,
        xpsr: 3,
        cfsr: 4,
        hfsr: 5,
        mmfar: 6,
        bfar: 7,
    };
    control.set_state(CoreState::Faulted(record));
    assert_eq!(control.state(), Ok(CoreState::Faulted(record)));
    control.set_state(CoreState::Exited(-3));
    assert_eq!(control.state(), Ok(CoreState::Exited(-3)));
}

#[test]
fn the_layout_is_the_documented_one() {
    // docs/realtime.md gives these numbers; a change here is a layout version change.
    assert_eq!(ferro_mailbox::SLOT_SIZE, 1048);
    assert_eq!(ring_layout::SIZE, 67_328);
    assert_eq!(Ring::HostToCore.offset(), 0x100);
    assert_eq!(Ring::CoreToHost.offset(), 0x100 + 67_328);
    assert_eq!(ferro_mailbox::REGION_SIZE, 134_912);
    assert_eq!(ferro_mailbox::MAGIC, 0x424d_5346);
}
