//! The polling state machine: batching, scheduling, deadband, quality and staleness.

use ferro_registermap::{Poller, Quality, RegisterMap, Value};

fn map(points: &str) -> RegisterMap {
    let text = format!(
        r#"{{"schemaVersion": 1, "transport": {{"type": "tcp", "host": "10.0.0.2"}}, "unitId": 1,
            "points": [{points}]}}"#
    );
    RegisterMap::parse(text.as_bytes(), None).unwrap()
}

#[test]
fn consecutive_points_of_one_table_share_a_read_and_gaps_split() {
    let mut poller = Poller::new(
        map(
            r#"{"name": "a", "object": "holding_register", "address": 10, "type": "u16"},
               {"name": "b", "object": "holding_register", "address": 11, "type": "f32"},
               {"name": "c", "object": "holding_register", "address": 14, "type": "u16"},
               {"name": "d", "object": "input_register", "address": 13, "type": "u16"},
               {"name": "e", "object": "coil", "address": 0},
               {"name": "f", "object": "coil", "address": 1}"#,
        ),
        0,
    );
    let reads = poller.due(0);
    let summary: Vec<_> = reads
        .iter()
        .map(|read| {
            (
                read.object.as_str(),
                read.address,
                read.count,
                read.points.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("coil", 0, 2, vec![4, 5]),
            ("holding_register", 10, 3, vec![0, 1]),
            ("holding_register", 14, 1, vec![2]),
            ("input_register", 13, 1, vec![3]),
        ]
    );
    assert!(poller.due(999).is_empty());
    assert_eq!(poller.next_due(), 1000);
}

#[test]
fn reads_are_limited_to_125_registers() {
    let points: Vec<String> = (0..130)
        .map(|i| {
            format!(
                r#"{{"name": "p{i}", "object": "input_register", "address": {i}, "type": "u16"}}"#
            )
        })
        .collect();
    let mut poller = Poller::new(map(&points.join(",")), 0);
    let counts: Vec<u16> = poller.due(0).iter().map(|read| read.count).collect();
    assert_eq!(counts, [125, 5]);
}

#[test]
fn periods_and_falling_behind() {
    let mut poller = Poller::new(
        map(
            r#"{"name": "fast", "object": "coil", "address": 0, "pollMs": 100},
               {"name": "slow", "object": "coil", "address": 5, "pollMs": 1000}"#,
        ),
        0,
    );
    assert_eq!(poller.due(0).len(), 2);
    assert_eq!(poller.due(100).len(), 1);
    // Late by more than a period: the next poll is one period from now, not a burst.
    assert_eq!(poller.due(750).len(), 1);
    assert_eq!(poller.next_due(), 850);
}

#[test]
fn deadband_quality_and_recovery() {
    let mut poller = Poller::new(
        map(
            r#"{"name": "t", "object": "input_register", "address": 0, "type": "i16",
                "scale": 0.1, "deadband": 0.5, "pollMs": 100}"#,
        ),
        0,
    );
    let read = poller.due(0).remove(0);
    let first = poller.registers_read(&read, &[200], 0, 1_000);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].value, Some(Value::Float(20.0)));
    assert_eq!(
        (first[0].quality, first[0].timestamp_ms),
        (Quality::Good, 1_000)
    );
    // Within the deadband: nothing handed on.
    assert!(poller.registers_read(&read, &[204], 100, 1_100).is_empty());
    // Past it: handed on.
    assert_eq!(
        poller.registers_read(&read, &[206], 200, 1_200)[0].value,
        Some(Value::Float(20.6))
    );
    // A timeout: CommError once, with the last good value; not again while it lasts.
    let failed = poller.read_failed(&read, Quality::CommError, 1_300);
    assert_eq!(failed[0].quality, Quality::CommError);
    assert_eq!(failed[0].value, Some(Value::Float(20.6)));
    assert!(
        poller
            .read_failed(&read, Quality::CommError, 1_400)
            .is_empty()
    );
    // An exception is a change of quality.
    assert_eq!(
        poller.read_failed(&read, Quality::ModbusException(2), 1_500)[0].quality,
        Quality::ModbusException(2)
    );
    // Recovery: Good again even with the same value.
    let recovered = poller.registers_read(&read, &[206], 600, 1_600);
    assert_eq!(recovered[0].quality, Quality::Good);
}

#[test]
fn a_point_not_refreshed_for_two_periods_turns_stale_once() {
    let mut poller = Poller::new(
        map(r#"{"name": "b", "object": "discrete_input", "address": 0, "pollMs": 100}"#),
        0,
    );
    let read = poller.due(0).remove(0);
    assert_eq!(
        poller.bits_read(&read, &[true], 0, 5)[0].value,
        Some(Value::Bool(true))
    );
    assert!(poller.stale(200, 205).is_empty());
    let stale = poller.stale(201, 206);
    assert_eq!(
        (stale[0].quality, stale[0].value),
        (Quality::Stale, Some(Value::Bool(true)))
    );
    assert!(poller.stale(500, 505).is_empty());
    assert_eq!(
        poller.bits_read(&read, &[true], 600, 605)[0].quality,
        Quality::Good
    );
}

#[test]
fn a_short_answer_is_a_comm_error_for_the_points_it_lacks() {
    let mut poller = Poller::new(
        map(
            r#"{"name": "a", "object": "holding_register", "address": 0, "type": "u16"},
               {"name": "b", "object": "holding_register", "address": 1, "type": "u32"}"#,
        ),
        0,
    );
    let read = poller.due(0).remove(0);
    let readings = poller.registers_read(&read, &[7, 1], 0, 9);
    let qualities: Vec<_> = readings
        .iter()
        .map(|r| (r.point.as_str(), r.quality))
        .collect();
    assert_eq!(qualities, [("a", Quality::Good), ("b", Quality::CommError)]);
}
