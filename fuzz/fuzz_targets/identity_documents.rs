//! Feed arbitrary bytes to every decoder and verifier of Ferrosphere's signed identity documents
//! (registration records, capability files, key lists). None may panic; the fuzzer cannot forge
//! signatures, so the inner CBOR decoders are also fed the bytes directly.
#![no_main]

use std::sync::OnceLock;

use ferro_pki::{
    CapabilityFile, RegistrationRecord, verify_capability, verify_key_list,
    verify_registration_record,
};
use ferro_signing::{DeviceId, PublicKey, SoftwareSigningKey, TrustedKeys};
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
    let trusted: TrustedKeys = [key().clone()].into_iter().collect();
    let device = DeviceId::from_public_key(key());
    let _ = verify_registration_record(data);
    let _ = RegistrationRecord::from_cbor(data);
    let _ = verify_capability(data, &trusted, &device);
    let _ = CapabilityFile::from_cbor(data);
    let _ = verify_key_list(data, key());
});
