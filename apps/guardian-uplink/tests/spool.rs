//! The spool against a model (a queue of the messages appended and not delivered): after any
//! sequence of appends, deliveries, reopenings and crashes part way through a write, the spool
//! holds exactly the model's messages less the oldest ones it reports as dropped; it drops only
//! when the live messages and the new one do not fit; a torn last record is skipped.

use std::collections::VecDeque;

use guardian_uplink::spool::{DATA_START, MemoryStorage, RECORD_HEADER_LEN, Spool, SpoolError};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Deliver(usize),
    Reopen,
    /// An append that crashes after this many bytes were written.
    CrashAppend(usize, usize),
    /// A delivery whose header write crashes after this many bytes.
    CrashDeliver(usize, usize),
    /// A CONNECT counted, its header write crashing after this many bytes when given.
    Connect(Option<usize>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0usize..300).prop_map(Op::Append),
        2 => (1usize..4).prop_map(Op::Deliver),
        1 => Just(Op::Reopen),
        1 => ((0usize..300), (0usize..400)).prop_map(|(len, at)| Op::CrashAppend(len, at)),
        1 => ((1usize..3), (0usize..48)).prop_map(|(n, at)| Op::CrashDeliver(n, at)),
        1 => proptest::option::of(0usize..48).prop_map(Op::Connect),
    ]
}

fn payload(n: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (n as usize * 31 + i) as u8).collect()
}

/// The spool's contents, oldest first.
fn contents(spool: &mut Spool<MemoryStorage>) -> Vec<(u64, Vec<u8>)> {
    spool
        .peek(usize::MAX)
        .expect("peek")
        .into_iter()
        .map(|m| (m.seq, m.payload))
        .collect()
}

fn reopen(spool: Spool<MemoryStorage>) -> Spool<MemoryStorage> {
    let mut storage = spool.into_storage();
    storage.crash_after = None;
    Spool::open(storage).expect("reopen")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_spool_behaves_as_a_queue_that_drops_its_oldest(
        capacity in 400u64..3000,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let mut spool = Spool::open(MemoryStorage::new(capacity)).expect("open");
        let region = capacity - DATA_START;
        let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        let mut attempts = 0u64;
        let mut largest = 0u64;
        // The connect count: only grows, by one per counted CONNECT, and survives reopening.
        let mut connects = 0u64;
        for op in ops {
            let dropped_before = spool.dropped_total();
            match op {
                Op::Append(len) | Op::CrashAppend(len, _) => {
                    let record = RECORD_HEADER_LEN + len as u64;
                    // Every attempt has its own bytes, so that what a torn write leaves is never
                    // by chance the whole of the next attempt's record.
                    attempts += 1;
                    let data = payload(attempts, len);
                    let crash = if let Op::CrashAppend(_, at) = op { Some(at) } else { None };
                    spool.storage_mut().crash_after = crash;
                    let live_before: u64 = spool.live_bytes();
                    largest = largest.max(record);
                    let seq_expected = spool.next_seq();
                    match spool.append(&data) {
                        Ok((seq, dropped)) => {
                            prop_assert_eq!(seq, spool.next_seq() - 1);
                            // A record that does not fit before the end of the region leaves
                            // less than the largest record unused there.
                            if live_before + record + largest <= region {
                                prop_assert_eq!(dropped, 0, "dropped with room left");
                            }
                            model.push_back((seq, data));
                        }
                        Err(SpoolError::TooLarge { .. }) => prop_assert!(record > region),
                        Err(SpoolError::Storage(_)) => {
                            prop_assert!(crash.is_some());
                            spool = reopen(spool);
                            // A write cut short is either torn (skipped) or, when the bytes it
                            // did not write happened to hold what it would have written, whole.
                            if contents(&mut spool).last() == Some(&(seq_expected, data.clone())) {
                                model.push_back((seq_expected, data));
                            }
                        }
                        Err(other) => prop_assert!(false, "{other}"),
                    }
                }
                Op::Deliver(n) | Op::CrashDeliver(n, _) => {
                    let crash = if let Op::CrashDeliver(_, at) = op { Some(at) } else { None };
                    let Some(last) = model.iter().take(n).next_back().map(|(seq, _)| *seq) else { continue };
                    spool.storage_mut().crash_after = crash;
                    // The model's oldest may already be dropped; deliver what the spool has.
                    match spool.delivered(last) {
                        Ok(()) => {
                            while model.front().is_some_and(|(seq, _)| *seq <= last) {
                                model.pop_front();
                            }
                        }
                        Err(_) => {
                            prop_assert!(crash.is_some());
                            // A torn header write leaves the previous header: nothing delivered
                            // (or all of it, when the bytes not written happened to match).
                            spool = reopen(spool);
                            if spool.first_seq().is_none_or(|first| first > last) {
                                while model.front().is_some_and(|(seq, _)| *seq <= last) {
                                    model.pop_front();
                                }
                            }
                        }
                    }
                }
                Op::Reopen => spool = reopen(spool),
                Op::Connect(crash) => {
                    spool.storage_mut().crash_after = crash;
                    match spool.count_connect() {
                        Ok(n) => {
                            prop_assert_eq!(n, connects);
                            connects += 1;
                        }
                        Err(_) => {
                            prop_assert!(crash.is_some());
                            spool = reopen(spool);
                            // Torn: the previous header (or the new one, when the bytes not
                            // written happened to match).
                            prop_assert!(spool.connects() == connects || spool.connects() == connects + 1);
                            connects = spool.connects();
                        }
                    }
                }
            }
            prop_assert_eq!(spool.connects(), connects);
            spool.storage_mut().crash_after = None;
            let newly_dropped = spool.dropped_total() - dropped_before;
            for _ in 0..newly_dropped {
                model.pop_front();
            }
            // Drops of messages the model had already delivered are impossible.
            let expected: Vec<_> = model.iter().cloned().collect();
            prop_assert_eq!(contents(&mut spool), expected);
            let reopened_contents = {
                let mut copy = Spool::open(spool_storage_copy(&spool)).expect("reopen copy");
                contents(&mut copy)
            };
            prop_assert_eq!(reopened_contents, model.iter().cloned().collect::<Vec<_>>());
            prop_assert_eq!(Spool::open(spool_storage_copy(&spool)).expect("reopen copy").connects(), connects);
        }
    }
}

/// The spool's storage as it is now (a clone; the spool keeps its own).
fn spool_storage_copy(spool: &Spool<MemoryStorage>) -> MemoryStorage {
    let mut storage = spool.storage().clone();
    storage.crash_after = None;
    storage
}

#[test]
fn a_torn_last_record_is_skipped_and_its_place_reused() {
    let mut spool = Spool::open(MemoryStorage::new(1024)).expect("open");
    spool.append(b"first").expect("append");
    let mut storage = spool.into_storage();
    storage.crash_after = Some(10);
    let mut spool = Spool::open(storage).expect("open");
    assert!(spool.append(b"second, torn").is_err());
    let mut spool = reopen(spool);
    assert_eq!(contents(&mut spool), vec![(0, b"first".to_vec())]);
    spool.append(b"third").expect("append");
    let mut spool = reopen(spool);
    assert_eq!(
        contents(&mut spool),
        vec![(0, b"first".to_vec()), (1, b"third".to_vec())]
    );
}

#[test]
fn a_full_spool_drops_the_oldest_and_counts_them_across_reopenings() {
    // Room for four 100-byte messages.
    let capacity = DATA_START + 4 * (RECORD_HEADER_LEN + 100);
    let mut spool = Spool::open(MemoryStorage::new(capacity)).expect("open");
    for n in 0..4u8 {
        assert_eq!(spool.append(&[n; 100]).expect("append").1, 0);
    }
    assert_eq!(spool.append(&[4; 100]).expect("append").1, 1);
    assert_eq!(spool.append(&[5; 100]).expect("append").1, 1);
    let mut spool = reopen(spool);
    assert_eq!(spool.dropped_total(), 2);
    let seqs: Vec<u64> = contents(&mut spool).iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, vec![2, 3, 4, 5]);
}

#[test]
fn the_connect_count_survives_reopening_and_a_torn_header_write_never_repeats_a_number() {
    let mut spool = Spool::open(MemoryStorage::new(1024)).expect("open");
    assert_eq!(spool.count_connect().expect("count"), 0);
    assert_eq!(spool.count_connect().expect("count"), 1);
    spool.append(b"kept").expect("append");
    let mut spool = reopen(spool);
    assert_eq!(spool.connects(), 2);
    assert_eq!(spool.count_connect().expect("count"), 2);
    // A header write cut short: the number was not given out, and the next one is the same.
    spool.storage_mut().crash_after = Some(10);
    assert!(spool.count_connect().is_err());
    let mut spool = reopen(spool);
    assert_eq!(spool.count_connect().expect("count"), 3);
    assert_eq!(contents(&mut spool), vec![(0, b"kept".to_vec())]);
}

#[test]
fn damaged_headers_and_records_are_refused_not_trusted() {
    let mut spool = Spool::open(MemoryStorage::new(1024)).expect("open");
    spool.append(b"kept").expect("append");
    spool.append(b"flipped").expect("append");
    let mut storage = spool.into_storage();
    // Flip a payload byte of the second record: it and what follows are not live.
    let second = DATA_START as usize + RECORD_HEADER_LEN as usize + 4 + RECORD_HEADER_LEN as usize;
    storage.bytes[second] ^= 0xff;
    let mut spool = Spool::open(storage).expect("open");
    assert_eq!(contents(&mut spool), vec![(0, b"kept".to_vec())]);
    // Both header slots damaged: an empty spool, not garbage.
    let mut storage = spool.into_storage();
    storage.bytes[5] ^= 0xff;
    storage.bytes[48 + 5] ^= 0xff;
    let mut spool = Spool::open(storage).expect("open");
    assert!(contents(&mut spool).is_empty());
    assert!(matches!(
        Spool::open(MemoryStorage::new(DATA_START + 4)),
        Err(SpoolError::NoRoom { .. })
    ));
}
