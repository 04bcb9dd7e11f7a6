//! The strict rules as data: each input (hex) with the one outcome it must have when read as a
//! map of fields 1..=3 and re-encoded from what was read (as every document does).

use ferro_cbor::{CborError, Fields, Value, check_canonical, decode_bounded, encode, uint};

/// The fields read (key, value), or the refusal.
type Outcome = Result<Vec<(u64, u64)>, CborError>;

/// Read `bytes` as a document with fields 1..=3 whose values are unsigned integers, in the
/// manner of every Ferrosphere document: bounded decode, fields, then the re-encoding of the
/// document it read (fields in ascending key order) must be the bytes received.
fn read(bytes: &[u8]) -> Outcome {
    let mut fields = Fields::from_map(decode_bounded(bytes, 64)?, 3)?;
    let read: Vec<(u64, u64)> = (1..=3)
        .filter_map(|k| fields.take(k).map(|v| (k, v)))
        .map(|(k, v)| (k, ferro_cbor::as_u64(&v).unwrap_or(u64::MAX)))
        .collect();
    let document = Value::Map(read.iter().map(|(k, v)| (uint(*k), uint(*v))).collect());
    check_canonical(bytes, &encode(&document)?)?;
    Ok(read)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn each_input_has_exactly_its_outcome() {
    let deep = format!("{}00", "81".repeat(ferro_cbor::MAX_DEPTH + 1));
    let too_long = format!("a1011b{}", "00".repeat(70));
    let cases: Vec<(&str, &str, Outcome)> = vec![
        (
            "a2 {1: 1, 2: 500}",
            "a2010102190 1f4",
            Ok(vec![(1, 1), (2, 500)]),
        ),
        ("empty map", "a0", Ok(vec![])),
        (
            "1 as a one-byte argument",
            "a1011801",
            Err(CborError::NonCanonical),
        ),
        (
            "keys descending",
            "a202000100",
            Err(CborError::NonCanonical),
        ),
        (
            "indefinite-length map",
            "bf0101ff",
            Err(CborError::NonCanonical),
        ),
        ("a trailing byte", "a1010100", Err(CborError::NonCanonical)),
        ("key 1 twice", "a201000100", Err(CborError::DuplicateKey(1))),
        (
            "key 4 of 3",
            "a10400",
            Err(CborError::UnknownKey("4".into())),
        ),
        ("key 0", "a10000", Err(CborError::UnknownKey("0".into()))),
        (
            "negative key",
            "a12000",
            Err(CborError::UnknownKey("-1".into())),
        ),
        (
            "text key",
            "a1617800",
            Err(CborError::UnknownKey("\"x\"".into())),
        ),
        ("array", "8101", Err(CborError::NotAMap)),
        (
            "more than 64 bytes",
            too_long.as_str(),
            Err(CborError::TooLarge { len: 73, max: 64 }),
        ),
    ];
    for (what, input, expected) in cases {
        let input = input.replace(' ', "");
        assert_eq!(read(&hex(&input)), expected, "{what}");
    }
    // Malformed input: a break code alone, a truncated map, nesting past MAX_DEPTH.
    for (what, input) in [("break", "ff"), ("cut short", "a201"), ("too deep", &deep)] {
        assert!(
            matches!(read(&hex(input)), Err(CborError::Malformed(_))),
            "{what}: {:?}",
            read(&hex(input))
        );
    }
}

proptest::proptest! {
    /// Whatever the bytes, reading returns (no panic), and what is accepted re-encodes to
    /// exactly those bytes.
    #[test]
    fn arbitrary_bytes_never_panic_and_accepted_ones_are_canonical(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
        if let Ok(fields) = read(&bytes) {
            let document = Value::Map(fields.iter().map(|(k, v)| (uint(*k), uint(*v))).collect());
            proptest::prop_assert_eq!(encode(&document).unwrap(), bytes);
        }
    }
}
