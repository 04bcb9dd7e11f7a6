//! Wire types of device attestation (`/v1/attestation/...`, docs/attestation.md): the challenge,
//! the evidence and the appraisal result with its reasons and, when trusted, the device
//! certificate.
//!
//! Binary values: the nonce is base64url without padding (RFC 4648 section 5); the evidence (a
//! COSE_Sign1) is standard base64 with padding, like the other signed documents of the API.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{DeviceId, FirmwareReferenceId, ProductId};

/// Length of an attestation nonce in bytes.
pub const ATTESTATION_NONCE_LEN: usize = 32;

/// `POST /v1/attestation/challenge`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestationChallengeRequest {
    /// The device ID (128 hex characters).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::DeviceId))]
    pub device_id: DeviceId,
}

/// A single-use challenge for one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AttestationChallenge {
    /// 32 random bytes, base64url without padding: the EAT nonce to sign.
    pub nonce: String,
    /// After this the nonce is refused (`nonce_expired`).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: OffsetDateTime,
}

/// `POST /v1/attestation/evidence`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestationEvidenceRequest {
    /// The device ID (128 hex characters).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::DeviceId))]
    pub device_id: DeviceId,
    /// The nonce of the challenge, as it was given.
    pub nonce: String,
    /// The evidence: a COSE_Sign1 (EAT) by the device key, standard base64.
    pub evidence: String,
}

named_enum! {
    /// The appraisal's verdict.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum AttestationVerdict {
        /// Every check passed; a device certificate was issued.
        Trusted => "Trusted",
        /// At least one check failed (see the reasons); no certificate.
        Untrusted => "Untrusted",
    }
}

named_enum! {
    /// What the appraisal of a device's firmware (stage 0: the TPM's PCRs 0-7, as UEFI measured
    /// boot extends them) found (docs/attestation.md, "Firmware appraisal").
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum FirmwareAppraisal {
        /// The quoted firmware PCRs are one of the reference values registered for the device's
        /// product.
        Matched => "Matched",
        /// Stage 0 not appraised: no reference values are registered for the device's product
        /// (or it is in no device group), and the operator does not require them. The verdict
        /// rests on the OS and apps only.
        NotAppraised => "NotAppraised",
        /// The firmware made the device untrusted (see the reasons: not in the reference set,
        /// no firmware measurements, or reference values required and none registered).
        Refused => "Refused",
    }
}

/// The most firmware reference values one product may hold (a few at once during a firmware
/// rollout).
pub const MAX_FIRMWARE_REFERENCES_PER_PRODUCT: usize = 16;

/// A firmware reference value: the SHA-256 values of TPM PCRs 0..=7 that a genuine device of
/// the product shows after its firmware and boot loader measured themselves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FirmwareReference {
    /// ID.
    pub id: FirmwareReferenceId,
    /// The product whose devices it applies to.
    pub product_id: ProductId,
    /// PCRs 0 to 7 in order, each 64 lowercase hex characters (SHA-256 bank).
    pub pcrs: Vec<String>,
    /// What it is (e.g. the firmware and boot loader versions).
    pub description: String,
    /// When it was registered.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// `POST /v1/tenants/{tenantId}/products/{productId}/firmware-references`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateFirmwareReferenceRequest {
    /// PCRs 0 to 7 in order: exactly 8 values of 64 hex characters (either case).
    pub pcrs: Vec<String>,
    /// What it is, at most 200 characters.
    #[serde(default)]
    pub description: String,
}

/// Why an appraisal failed: a stable snake_case code (docs/attestation.md) and a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AttestationReason {
    /// Stable code: `unregistered`, `unclaimed`, `blocked`, `nonce_unknown`, `nonce_expired`,
    /// `nonce_replayed`, `bad_signature`, `wrong_device`, `quote_mismatch`,
    /// `unknown_measurement`, `test_signed_without_capability`, `no_tenant_ca`.
    pub code: String,
    /// What failed (never secrets).
    pub message: String,
}

/// The appraisal result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AttestationResult {
    /// Trusted or Untrusted.
    pub verdict: AttestationVerdict,
    /// Empty when trusted; every failed check otherwise.
    pub reasons: Vec<AttestationReason>,
    /// Trusted: the device certificate (PEM), CN = device ID, O = tenant ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
    /// Trusted: the tenant's CA chain (PEM bundle, current CA first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_chain_pem: Option<String>,
    /// The service's clock when it answered (devices may lack a clock).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub service_time: OffsetDateTime,
    /// Trusted: the certificate's notAfter.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub not_after: Option<OffsetDateTime>,
    /// The device's current update target set and ownership document, as
    /// `GET /v1/device/target-set` answers them (docs/updates.md). Given to every claimed
    /// device whose evidence its own key signed, **Untrusted ones included**: a device without
    /// a certificate cannot call the device routes, and this is how it can still heal.
    /// Absent before the claim check, or if the service could not compute it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_set: Option<crate::DeviceTargetSet>,
}
