//! `ferro-pki` owns Ferrosphere's platform PKI (docs/design.md §2 to §4): the [`KeyStore`] trait
//! behind which every service-held key lives (with [`FileKeyStore`], PKCS#8 files of mode 0600 in
//! a 0700 directory, as the default backend); the X.509 certificates of the platform (platform
//! root CA, service TLS certificate, per-tenant self-signed CAs with rotation, 24-hour device
//! certificates, proof-of-possession certificates for brokers), all ECDSA P-256 / SHA-256, built
//! with rcgen and signed through [`ferro_signing::Signer`] so any CA key can live in an HSM
//! (certificate profiles in `docs/pki.md`). The signed identity documents (registration records,
//! capability files, the platform key list, ownership documents, target sets;
//! `docs/identity-documents.md`) live in `ferro-documents`, which has no X.509 so the boot TCB
//! can link it; they are re-exported here, and [`verify_registration_record`] adds the X.509
//! check of a TPM EK certificate ([`check_ek_certificate`]).
//!
//! It depends on `ferro-signing` and `ferro-documents` only among Ferrosphere crates, and must not depend on HTTP,
//! a database, the service, the device or the CLI: it turns keys and identities into bytes and
//! back, and leaves storage of certificates and policy (who may get what) to its callers. It
//! never hand-writes cryptography, DER, X.509 or CBOR (rcgen, x509-parser, p256, ciborium/coset
//! via `ferro-signing`), never panics on untrusted input, never puts key material in `Debug`,
//! `Display` or errors, and forbids `unsafe`.

mod certs;
mod ek;
mod error;
mod keystore;
mod rcgen_signer;

pub use certs::{
    Certificate, DEVICE_CERT_VALIDITY, DeviceCertificate, MAX_SERVICE_NAMES,
    MAX_VERIFICATION_CODE_LEN, PLATFORM_ROOT_VALIDITY, PROOF_OF_POSSESSION_VALIDITY,
    SERVICE_TLS_VALIDITY, SelfCheck, TENANT_CA_CN_PREFIX, TENANT_CA_CUTOVER_MARGIN,
    TENANT_CA_ROTATION_MARGIN, TENANT_CA_VALIDITY, TenantCa, VerifiedDeviceCertificate,
    certificate_key_id, create_tenant_ca, current_tenant_ca, issue_device_certificate,
    issue_device_certificate_checked, issue_platform_root_certificate,
    issue_proof_of_possession_certificate, issue_service_tls_certificate, sanitize_organization,
    tenant_ca_chain_pem, tenant_ca_rotation_due, validate_verification_code,
    verify_certificate_signature, verify_device_certificate,
};
pub use ek::{check_ek_certificate, verify_registration_record};
pub use error::{CertError, KeyStoreError};
pub use keystore::{
    FileKeyStore, KeyName, KeyStore, MAX_KEY_NAME_LEN, MAX_KEY_NAME_SEGMENT_LEN,
    MAX_KEY_NAME_SEGMENTS, SharedSigner,
};
pub use rcgen_signer::RcgenSigner;
// The signed identity documents live in ferro-documents (no X.509, so the boot TCB links
// them); re-exported here so the service and tools keep one import path. Registration records
// are verified through `verify_registration_record` of this crate, which adds the X.509 check
// of the EK certificate.
pub use ferro_documents::{
    Capability, CapabilityFile, DeviceOwnership, DocumentError, KeyList, MAX_CAPABILITY_FILE_LEN,
    MAX_DEVELOPER_KEYS, MAX_EK_CERTIFICATE_LEN, MAX_KEY_LIST_LEN, MAX_KEYS_PER_ROLE,
    MAX_OWNERSHIP_LEN, MAX_REGISTRATION_RECORD_LEN, MAX_TARGET_IMAGES, MAX_TARGET_SET_LEN,
    MAX_TENANT_KEYS, ManufacturingState, PlatformKeyRole, RegistrationRecord, RootOfTrust,
    TargetImage, TargetKind, TargetSet, VerifiedCapability, VerifiedKeyList, VerifiedOwnership,
    VerifiedRegistration, VerifiedTargetSet, verify_capability, verify_key_list, verify_ownership,
    verify_target_set,
};

/// The `time` crate this API uses (for `OffsetDateTime` and `Duration`).
pub use time;
