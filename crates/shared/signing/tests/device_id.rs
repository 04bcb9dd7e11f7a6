//! Device IDs: known answer (computed independently with `openssl pkey -pubout -outform DER |
//! sha512sum`), strict parsing (either case in, lower case out), round trips.

use std::str::FromStr;

use ferro_signing::{DeviceId, DeviceIdError, SoftwareSigningKey};
use proptest::prelude::*;

const TEST_KEY: &str = include_str!("../../../../test-vectors/keys/test-only-signing-key.pem");
const TEST_KEY_DEVICE_ID: &str = "0135d6f14fc9e6693d76bd1282702b228ba1c869ac62a0ccca576cc5740e9661\
                                  0cf6e36d4c42715dc84932d2ef06ce738159e975028d0917fe9bd2bf2aad3ec9";

#[test]
fn device_id_known_answer() {
    let key = SoftwareSigningKey::from_pkcs8_pem(TEST_KEY).unwrap();
    let id = DeviceId::from_public_key(key.public_key());
    assert_eq!(id.to_string(), TEST_KEY_DEVICE_ID);
    assert_eq!(DeviceId::from_str(TEST_KEY_DEVICE_ID).unwrap(), id);
    assert_eq!(DeviceId::from_slice(id.as_bytes()), Some(id));
    assert_eq!(DeviceId::from_bytes(*id.as_bytes()), id);
    assert!(format!("{id:?}").contains(TEST_KEY_DEVICE_ID));
}

#[test]
fn device_id_parsing_accepts_either_case_and_prints_lower_case() {
    let upper = TEST_KEY_DEVICE_ID.to_ascii_uppercase();
    let mixed = format!("{}{}", &upper[..64], &TEST_KEY_DEVICE_ID[64..]);
    for input in [TEST_KEY_DEVICE_ID, upper.as_str(), mixed.as_str()] {
        let id = DeviceId::from_str(input).unwrap();
        assert_eq!(id.to_string(), TEST_KEY_DEVICE_ID, "{input}");
    }
}

#[test]
fn device_id_parsing_is_strict() {
    let cases: &[(String, DeviceIdError)] = &[
        (String::new(), DeviceIdError::WrongLength(0)),
        ("a".repeat(127), DeviceIdError::WrongLength(127)),
        ("a".repeat(129), DeviceIdError::WrongLength(129)),
        ("g".repeat(128), DeviceIdError::NotHex),
        ("G".repeat(128), DeviceIdError::NotHex),
        (format!("{} ", "a".repeat(127)), DeviceIdError::NotHex),
        (format!(" {}", "a".repeat(127)), DeviceIdError::NotHex),
        (format!("+{}", "a".repeat(127)), DeviceIdError::NotHex),
        (format!("0x{}", "a".repeat(126)), DeviceIdError::NotHex),
        // 64 two-byte characters: 128 bytes but not hex.
        ("é".repeat(64), DeviceIdError::NotHex),
    ];
    for (input, expected) in cases {
        assert_eq!(DeviceId::from_str(input), Err(*expected), "{input:?}");
    }
    assert_eq!(DeviceId::from_slice(&[0u8; 63]), None);
}

#[test]
fn distinct_keys_have_distinct_ids() {
    let a = SoftwareSigningKey::generate();
    let b = SoftwareSigningKey::generate();
    assert_ne!(
        DeviceId::from_public_key(a.public_key()),
        DeviceId::from_public_key(b.public_key())
    );
}

proptest! {
    #[test]
    fn device_id_text_round_trips(bytes in proptest::collection::vec(any::<u8>(), 64)) {
        let id = DeviceId::from_slice(&bytes).unwrap();
        let text = id.to_string();
        prop_assert_eq!(text.len(), 128);
        prop_assert_eq!(DeviceId::from_str(&text).unwrap(), id);
    }

    #[test]
    fn device_id_parse_never_panics(s in "\\PC{0,140}") {
        let _ = DeviceId::from_str(&s);
    }
}
