//! Feed arbitrary bytes to every decoder and verifier of the two update documents a device
//! parses off the network: device ownership documents and target sets (docs/updates.md). None
//! may panic. The fuzzer cannot forge signatures, so the inner CBOR decoders are also fed the
//! bytes directly, and target sets are verified under the checked-in valid ownership document.
#![no_main]

use std::sync::OnceLock;

use ferro_pki::{
    DeviceOwnership, TargetSet, VerifiedOwnership, verify_ownership, verify_target_set,
};
use ferro_signing::{DeviceId, PublicKey, SoftwareSigningKey, TrustedKeys};
use libfuzzer_sys::fuzz_target;

const DEVICE_KEY_PEM: &str = include_str!("../../test-vectors/keys/test-only-signing-key.pem");
const TENANT_KEY_PEM: &str = include_str!("../../test-vectors/keys/test-only-untrusted-key.pem");
const OWNERSHIP: &[u8] = include_bytes!("../../test-vectors/updates/ownership.cose");

fn public(pem: &str) -> PublicKey {
    SoftwareSigningKey::from_pkcs8_pem(pem)
        .expect("test key")
        .public_key()
        .clone()
}

/// The test device, the tenant endorsement keys, and the valid ownership document.
fn context() -> &'static (DeviceId, TrustedKeys, VerifiedOwnership) {
    static C: OnceLock<(DeviceId, TrustedKeys, VerifiedOwnership)> = OnceLock::new();
    C.get_or_init(|| {
        let device = DeviceId::from_public_key(&public(DEVICE_KEY_PEM));
        let endorsement: TrustedKeys = [public(TENANT_KEY_PEM)].into_iter().collect();
        let owner = verify_ownership(OWNERSHIP, &endorsement, &device).expect("ownership vector");
        (device, endorsement, owner)
    })
}

fuzz_target!(|data: &[u8]| {
    let (device, endorsement, owner) = context();
    let _ = verify_ownership(data, endorsement, device);
    let _ = DeviceOwnership::from_cbor(data);
    let _ = verify_target_set(data, owner, device);
    let _ = TargetSet::from_cbor(data);
});
