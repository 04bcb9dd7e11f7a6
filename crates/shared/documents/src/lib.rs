//! `ferro-documents` owns Ferrosphere's signed identity documents (docs/design.md §3 and §4;
//! `docs/identity-documents.md`): the platform key list, device registration records, capability
//! files, device ownership documents and update target sets, each a purpose-bound COSE_Sign1
//! (`ferro-signing`) over deterministic, integer-keyed CBOR, decoded strictly (unknown and
//! duplicate keys, non-canonical encodings and out-of-range fields are refused) into types that
//! only verification makes (`VerifiedKeyList`, `VerifiedRegistration`, ...).
//!
//! It is part of the boot TCB (`ferro-boot` verifies the key list and the registration record at
//! every boot), so it stays small: it depends on `ferro-signing` only among Ferrosphere crates,
//! and must not depend on X.509 (no rcgen, no x509-parser: a registration record's TPM EK
//! certificate is checked here only to be one DER structure; `ferro_pki::check_ek_certificate`
//! parses it as X.509 where records are made and accepted), HTTP, a database, an async runtime,
//! the service or the device. It never hand-writes cryptography or CBOR (p256/ring via
//! `ferro-signing`, ciborium), never panics on untrusted input, never puts key material in
//! `Debug`, `Display` or errors, and forbids `unsafe`. `ferro-pki` re-exports all of it, so the
//! service and tools keep reaching the documents as `ferro_pki::...`.

mod capability;
mod cbor;
mod error;
mod keylist;
mod ownership;
mod registration;
mod target_set;

pub use capability::{
    Capability, CapabilityFile, MAX_CAPABILITY_FILE_LEN, MAX_DEVELOPER_KEYS, VerifiedCapability,
    verify_capability,
};
pub use error::DocumentError;
pub use keylist::{
    KeyList, MAX_KEY_LIST_LEN, MAX_KEYS_PER_ROLE, PlatformKeyRole, VerifiedKeyList, verify_key_list,
};
pub use ownership::{
    DeviceOwnership, MAX_OWNERSHIP_LEN, MAX_TENANT_KEYS, VerifiedOwnership, verify_ownership,
};
pub use registration::{
    MAX_EK_CERTIFICATE_LEN, MAX_REGISTRATION_RECORD_LEN, ManufacturingState, RegistrationRecord,
    RootOfTrust, VerifiedRegistration, verify_registration_record,
};
pub use target_set::{
    MAX_TARGET_IMAGES, MAX_TARGET_SET_LEN, TargetImage, TargetKind, TargetSet, VerifiedTargetSet,
    verify_target_set,
};

/// The `time` crate this API uses (for `OffsetDateTime` and `Duration`).
pub use time;
