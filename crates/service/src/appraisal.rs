//! Attestation appraisal (docs/attestation.md): the checks the service makes on a device's
//! evidence, each failure a stable reason code. The HTTP side is `routes::attestation`.

use ferro_trust::MeasurementEvent;
use ferro_trust::evidence::EvidenceError;
use ferro_wire::AttestationReason;

/// Reason codes (stable; adding one is compatible).
pub mod codes {
    /// No registration record for the device ID.
    pub const UNREGISTERED: &str = "unregistered";
    /// Registered but claimed by no tenant.
    pub const UNCLAIMED: &str = "unclaimed";
    /// The tenant blocked the device.
    pub const BLOCKED: &str = "blocked";
    /// The nonce was never issued for this device (or was purged long after expiry).
    pub const NONCE_UNKNOWN: &str = "nonce_unknown";
    /// The nonce's life ended before the evidence arrived.
    pub const NONCE_EXPIRED: &str = "nonce_expired";
    /// The nonce was already used.
    pub const NONCE_REPLAYED: &str = "nonce_replayed";
    /// The evidence signs another nonce than the one submitted with it.
    pub const NONCE_MISMATCH: &str = "nonce_mismatch";
    /// The evidence is not signed by the registered device key (or is malformed).
    pub const BAD_SIGNATURE: &str = "bad_signature";
    /// The evidence names another device than its signing key.
    pub const WRONG_DEVICE: &str = "wrong_device";
    /// TPM: the quote is missing, unsigned, for another nonce, or the log does not replay to it.
    pub const QUOTE_MISMATCH: &str = "quote_mismatch";
    /// TPM: the quote is not signed by the attestation key of the device's registration record,
    /// or the record has none (a TPM device registered before record format version 2).
    pub const UNKNOWN_ATTESTATION_KEY: &str = "unknown_attestation_key";
    /// A measurement is neither a published OS release nor an image of the device's tenant.
    pub const UNKNOWN_MEASUREMENT: &str = "unknown_measurement";
    /// An image unknown to the tenant (test-signed) on a device without AppDevelopment.
    pub const TEST_SIGNED_WITHOUT_CAPABILITY: &str = "test_signed_without_capability";
    /// The tenant has no valid CA to issue the certificate with.
    pub const NO_TENANT_CA: &str = "no_tenant_ca";
}

/// A reason with its message.
pub fn reason(code: &str, message: impl Into<String>) -> AttestationReason {
    AttestationReason {
        code: code.to_string(),
        message: message.into(),
    }
}

/// The reason for evidence that did not verify.
pub fn evidence_reason(e: &EvidenceError) -> AttestationReason {
    use EvidenceError as E;
    let code = match e {
        E::TooLarge | E::Envelope(_) | E::Malformed(_) => codes::BAD_SIGNATURE,
        E::NonceMismatch => codes::NONCE_MISMATCH,
        E::WrongDevice => codes::WRONG_DEVICE,
        E::UnknownAttestationKey | E::NoRegisteredAttestationKey => codes::UNKNOWN_ATTESTATION_KEY,
        _ => codes::QUOTE_MISMATCH,
    };
    reason(code, format!("{} ({})", e, e.code()))
}

/// What the service knows about a measured image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Known {
    /// Its image ID is known with this payload digest (hex) and component (None for OS releases).
    Image {
        /// Lowercase hex SHA-256 of the payload.
        payload_sha256: String,
        /// Component ID of a tenant image.
        component_id: Option<String>,
    },
    /// Its image ID is unknown.
    Unknown,
}

/// Appraise measurements. `os` and `tenant` answer what the service knows of each measurement's
/// image ID among OS releases and the device's tenant's images; `app_development` says whether
/// the device holds a current AppDevelopment capability. Returns the reasons (empty = good).
pub fn appraise_measurements(
    measurements: &[MeasurementEvent],
    os: impl Fn(&MeasurementEvent) -> Known,
    tenant: impl Fn(&MeasurementEvent) -> Known,
    app_development: bool,
) -> Vec<AttestationReason> {
    let mut out = Vec::new();
    for (i, m) in measurements.iter().enumerate() {
        let digest = hex::encode(m.digest);
        let is_os = m.component_id == ferro_image::OS_COMPONENT_ID;
        let known = if is_os { os(m) } else { tenant(m) };
        match known {
            Known::Image {
                payload_sha256,
                component_id,
            } => {
                let component_ok = component_id
                    .as_deref()
                    .is_none_or(|c| c == m.component_id.to_string());
                if payload_sha256 != digest || !component_ok {
                    out.push(reason(
                        codes::UNKNOWN_MEASUREMENT,
                        format!(
                            "measurement {i}: image {} is known, but not with digest {digest} \
                             for component {} (tampered or corrupted image)",
                            m.image_id, m.component_id
                        ),
                    ));
                }
            }
            Known::Unknown if is_os => out.push(reason(
                codes::UNKNOWN_MEASUREMENT,
                format!(
                    "measurement {i}: OS image {} is no published OS release",
                    m.image_id
                ),
            )),
            Known::Unknown if !app_development => out.push(reason(
                codes::TEST_SIGNED_WITHOUT_CAPABILITY,
                format!(
                    "measurement {i}: image {} is not an image of this tenant (test-signed?) and \
                     the device holds no AppDevelopment capability",
                    m.image_id
                ),
            )),
            Known::Unknown => {}
        }
    }
    out
}
