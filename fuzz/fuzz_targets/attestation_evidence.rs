//! Feed arbitrary bytes to the service-side attestation parsers: EAT claims, evidence
//! verification and the TPMS_ATTEST (quote) parser. None may panic on any input.
#![no_main]

use std::sync::OnceLock;

use ferro_signing::{PublicKey, SoftwareSigningKey};
use ferro_trust::evidence::{decode_claims, verify_evidence};
use ferro_trust::tpm_attest::parse_quote;
use libfuzzer_sys::fuzz_target;

const TEST_KEY_PEM: &str = include_str!("../../test-vectors/keys/test-only-signing-key.pem");

fn key() -> &'static PublicKey {
    static K: OnceLock<PublicKey> = OnceLock::new();
    K.get_or_init(|| {
        SoftwareSigningKey::from_pkcs8_pem(TEST_KEY_PEM)
            .expect("test key")
            .public_key()
            .clone()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = decode_claims(data);
    // With and without a registered attestation key (the test key stands in for one).
    let _ = verify_evidence(data, key(), None, &[7u8; 32]);
    let _ = verify_evidence(data, key(), Some(key()), &[7u8; 32]);
    let _ = parse_quote(data);
});
