//! Feed arbitrary bytes to `inspect` and to `verify` (with the fixed TEST-ONLY key trusted).
//! Neither may panic. Seed with `test-vectors/packages/*.fsimg`; anything verify accepts must be
//! self-consistent (the fuzzer cannot forge signatures, so only seeds themselves verify).
#![no_main]

use std::sync::OnceLock;

use ferro_signing::{SoftwareSigningKey, TrustedKeys};
use libfuzzer_sys::fuzz_target;

const TEST_KEY_PEM: &str = include_str!("../../test-vectors/keys/test-only-signing-key.pem");

fn trusted() -> &'static TrustedKeys {
    static T: OnceLock<TrustedKeys> = OnceLock::new();
    T.get_or_init(|| {
        let key = SoftwareSigningKey::from_pkcs8_pem(TEST_KEY_PEM).expect("test key");
        [key.public_key().clone()].into_iter().collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = ferro_image::inspect(data);
    let mut sink = Vec::new();
    if let Ok(v) = ferro_image::verify(data, trusted(), &mut sink) {
        // Anything accepted must be self-consistent.
        assert_eq!(v.metadata().payload_size, sink.len() as u64);
    }
});
