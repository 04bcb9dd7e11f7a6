//! Feed arbitrary bytes to the cloud side's check of signed telemetry batches
//! (`ferro_provenance::verify_batch`) with the vectors' tenant CA as anchor, expecting every
//! image. It must refuse, never panic.
#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use ferro_provenance::{ExpectedProvenance, TenantAnchors, verify_batch};
use libfuzzer_sys::fuzz_target;

const TENANT_CA: &str = include_str!("../../test-vectors/provenance/tenant-ca.pem");

fn anchors() -> &'static TenantAnchors {
    static A: OnceLock<TenantAnchors> = OnceLock::new();
    A.get_or_init(|| TenantAnchors::from_pem(TENANT_CA).expect("tenant CA"))
}

fuzz_target!(|data: &[u8]| {
    let expected = ExpectedProvenance {
        image_ids: BTreeSet::from([uuid::Uuid::from_u128(
            0x1a9e_0000_0000_4000_8000_0000_0000_0001,
        )]),
        component_id: None,
        device_ids: None,
        allow_development: true,
    };
    let now = ferro_pki::time::OffsetDateTime::from_unix_timestamp(1_780_488_060).expect("time");
    let _ = verify_batch(data, anchors(), now, &expected);
});
