//! Wire types of devices and the platform PKI: manufacturing registrations, claiming, devices,
//! capability files, tenant CA certificates and error reports.
//!
//! Device IDs are [`DeviceId`]s: 128 hex characters (SHA-512 of the device public key), accepted
//! in either case on input and always answered in lower case. Lists of device IDs in requests
//! (claims, assignments) stay strings, each parsed by [`DeviceId`]'s one parser, so that the
//! service can report every malformed item at once. Binary documents (registration records,
//! capability files) travel as standard base64 (RFC 4648, with padding) inside JSON.

use crate::{DeviceGroupId, DeviceId, ProductId, TenantId};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

/// Length of a device ID in hex characters.
pub const DEVICE_ID_HEX_LEN: usize = DeviceId::TEXT_LEN;
/// Most registration records in one `POST /v1/manufacturing/registrations`.
pub const MAX_REGISTRATIONS_PER_REQUEST: usize = 1000;
/// Most device IDs in one claim request.
pub const MAX_CLAIMS_PER_REQUEST: usize = 1000;

named_enum! {
    /// Where a device's key lives.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum RootOfTrustKind {
        /// Software root of trust (virtual devices, development).
        Software => "Software",
        /// TPM 2.0.
        Tpm => "Tpm",
    }
}

named_enum! {
    /// Manufacturing state (Azure Sphere's names); it only moves forward.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum ManufacturingState {
        /// Nothing done yet.
        Blank => "Blank",
        /// Module manufacturing finished.
        Module1Complete => "Module1Complete",
        /// Device manufacturing finished.
        DeviceComplete => "DeviceComplete",
    }
}

// ---------------------------------------------------------------------------------------------
// Manufacturing

/// `POST /v1/manufacturing/registrations` (platform operator).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterDevicesRequest {
    /// 1 to 1000 signed registration records (COSE_Sign1 bytes, standard base64), as
    /// `ferro-device provision` writes them.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub records: Vec<String>,
}

/// One registered device (its `Debug` leaves the claim code out).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RegisteredDevice {
    /// Device ID (128 lowercase hex).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::DeviceId))]
    pub device_id: DeviceId,
    /// Root of trust.
    pub root_of_trust: RootOfTrustKind,
    /// Manufacturing state in the record.
    pub manufacturing_state: ManufacturingState,
    /// When the service first accepted the record.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub registered_at: OffsetDateTime,
    /// The device's claim code, only in the answer that first stored its record (shown once;
    /// the service keeps its SHA-256): hand it to the buyer, who needs it to claim the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_code: Option<String>,
}

impl std::fmt::Debug for RegisteredDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredDevice")
            .field("device_id", &self.device_id)
            .field("root_of_trust", &self.root_of_trust)
            .field("manufacturing_state", &self.manufacturing_state)
            .field("registered_at", &self.registered_at)
            .finish_non_exhaustive()
    }
}

/// Answer of `POST /v1/manufacturing/registrations`: every record of the request, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RegisterDevicesResponse {
    /// Records stored by this request.
    pub registered: u32,
    /// Records that were already stored, byte for byte (idempotent repeats).
    pub unchanged: u32,
    /// The devices, in request order.
    pub devices: Vec<RegisteredDevice>,
}

// ---------------------------------------------------------------------------------------------
// Claiming and devices

/// `POST /v1/tenants/{tenantId}/devices/claim`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimDevicesRequest {
    /// 1 to 1000 devices, each with the claim code that came with it (from the manufacturer).
    /// A wrong code gets the same answer as an unknown device.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub devices: Vec<crate::DeviceClaim>,
}

/// Answer of a claim: all or nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClaimDevicesResponse {
    /// Devices claimed by this request.
    pub claimed: u32,
    /// Devices this tenant had already claimed (idempotent repeats).
    pub already_owned: u32,
}

/// A device of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// Device ID (128 lowercase hex).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::DeviceId))]
    pub device_id: DeviceId,
    /// The tenant that claimed it.
    pub tenant_id: TenantId,
    /// Its device group, if any.
    pub device_group_id: Option<DeviceGroupId>,
    /// The product of its device group, if any.
    pub product_id: Option<ProductId>,
    /// Manufacturing state (from its registration record).
    pub manufacturing_state: ManufacturingState,
    /// Root of trust (from its registration record).
    pub root_of_trust: RootOfTrustKind,
    /// When the tenant claimed it.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub claimed_at: OffsetDateTime,
    /// Last attestation (null until devices attest).
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_attested_at: Option<OffsetDateTime>,
    /// Result of the last attestation (null until devices attest): `Trusted` or `Untrusted`.
    pub last_attestation_result: Option<String>,
    /// Why the last attestation was untrusted (empty when trusted; null until devices attest).
    #[serde(default)]
    pub last_attestation_reasons: Option<Vec<crate::AttestationReason>>,
    /// What the last appraisal found of the device's firmware (null until its evidence was
    /// verified): `Matched`, `NotAppraised` (stage 0 not appraised) or `Refused`.
    #[serde(default)]
    pub last_attestation_firmware: Option<crate::FirmwareAppraisal>,
    /// The firmware PCRs 0-7 of its last verified evidence (TPM devices; 64 lowercase hex
    /// each), so an operator can register a known-good device's values as a reference.
    #[serde(default)]
    pub last_firmware_pcrs: Option<Vec<String>>,
    /// Blocked by a tenant administrator: every attestation is untrusted (no certificate) until
    /// unblocked.
    #[serde(default)]
    pub blocked: bool,
}

/// Query of `GET /v1/tenants/{tenantId}/devices`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceQuery {
    /// Only devices in this device group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Uuid))]
    pub device_group: Option<DeviceGroupId>,
    /// Only devices in a device group of this product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Uuid))]
    pub product: Option<ProductId>,
    /// Items per page, 1 to 500 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
    /// The `continuationToken` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
}

/// Query of `GET /v1/tenants/{tenantId}/devices/count`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceCountQuery {
    /// Only devices in this device group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Uuid))]
    pub device_group: Option<DeviceGroupId>,
    /// Only devices in a device group of this product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Uuid))]
    pub product: Option<ProductId>,
}

/// `GET /v1/tenants/{tenantId}/devices/count`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeviceCount {
    /// Number of devices.
    pub count: u64,
}

fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /v1/tenants/{tenantId}/devices/{deviceId}`: move the device into a device group of the
/// tenant, or out of any group with `null`; block or unblock it. At least one field is required
/// (an empty body changes nothing and is refused).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateDeviceRequest {
    /// The device group, or `null` for none; absent leaves it as it is (so a client serialises
    /// `None` as no field, `Some(None)` as `null`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub device_group_id: Option<Option<DeviceGroupId>>,
    /// `true` blocks the device (Administrator): its attestations are untrusted and it gets no
    /// new certificate; `false` unblocks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Capability files

named_enum! {
    /// The kind of a device capability.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum CapabilityType {
        /// Debugging and sideloading of images test-signed by the listed developer keys.
        AppDevelopment => "AppDevelopment",
        /// Local servicing operations, no sideloading.
        FieldServicing => "FieldServicing",
    }
}

/// `POST /v1/tenants/{tenantId}/devices/{deviceId}/capabilities`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateCapabilityRequest {
    /// What the capability grants.
    #[serde(rename = "type")]
    pub capability_type: CapabilityType,
    /// AppDevelopment only: key IDs (64 hex characters, SHA-256 of the SubjectPublicKeyInfo) of
    /// the developer keys whose test-signed images the device accepts, 1 to 32, either case.
    /// Absent: the tenant's registered developer keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::schema::AnyCaseKeyId>>, min_items = 1, max_items = 32))]
    pub developer_key_ids: Option<Vec<String>>,
}

/// A signed capability file for one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CapabilityFileResponse {
    /// The device it is bound to.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::DeviceId))]
    pub device_id: DeviceId,
    /// What it grants.
    #[serde(rename = "type")]
    pub capability_type: CapabilityType,
    /// Developer key IDs (AppDevelopment), sorted.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::schema::KeyId>))]
    pub developer_key_ids: Vec<String>,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub issued_at: OffsetDateTime,
    /// The capability file (COSE_Sign1 bytes, standard base64): write it to a file as is.
    pub capability_file: String,
}

/// `DELETE /v1/tenants/{tenantId}/devices/{deviceId}/capabilities/{capabilityType}`: what was
/// revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RevokedCapabilities {
    /// The device.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::DeviceId))]
    pub device_id: DeviceId,
    /// The kind revoked.
    #[serde(rename = "type")]
    pub capability_type: CapabilityType,
    /// How many capability files of this kind issued for the device were in force and are now
    /// revoked (0: none was).
    pub revoked: u64,
}

// ---------------------------------------------------------------------------------------------
// Tenant CA certificates

/// Role of a tenant CA certificate at the time of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CaCertificateStatus {
    /// Issues device certificates now.
    Current,
    /// Valid and newer than the current one: register it with brokers before it takes over.
    Next,
    /// Older than the current one, or expired.
    Previous,
}

/// A tenant CA certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CaCertificate {
    /// Serial number, lowercase hex (the ID in routes).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::CaSerial))]
    pub serial: String,
    /// SHA-1 of the DER, uppercase hex (the thumbprint Azure IoT Hub shows; display only).
    pub sha1_thumbprint: String,
    /// SHA-256 of the DER, uppercase hex.
    pub sha256_thumbprint: String,
    /// notBefore.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub not_before: OffsetDateTime,
    /// notAfter.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub not_after: OffsetDateTime,
    /// Current, Next or Previous.
    pub status: CaCertificateStatus,
}

/// Encoding of a downloaded certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CertificateFormat {
    /// PEM text (`application/x-pem-file`).
    #[default]
    Pem,
    /// DER bytes (`application/pkix-cert`).
    Der,
}

/// Query of `GET /v1/tenants/{tenantId}/ca-certificates/{serial}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateFormatQuery {
    /// `pem` (default) or `der`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(inline))]
    pub format: Option<CertificateFormat>,
}

/// `POST /v1/tenants/{tenantId}/ca-certificates/{serial}/proof`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProofOfPossessionRequest {
    /// The verification code the broker gave (1 to 64 of `A-Z a-z 0-9 - _ .`).
    pub verification_code: String,
}

// ---------------------------------------------------------------------------------------------
// Error reports

/// Format of an error report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// RFC 4180 CSV with Azure Sphere's columns.
    #[default]
    Csv,
}

/// Query of `GET /v1/tenants/{tenantId}/error-report`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorReportQuery {
    /// `csv` (the default and only format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(inline))]
    pub format: Option<ReportFormat>,
}

/// The header row of the CSV error report (Azure Sphere's columns).
pub const ERROR_REPORT_CSV_HEADER: &str =
    "Device ID,Event Type,Event Class,Event Category,Event Count,Description,Start Time,End Time";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_parse_in_either_case_and_print_lower() {
        let id: DeviceId = "A".repeat(128).parse().unwrap();
        assert_eq!(id.to_string(), "a".repeat(128));
        assert!("g".repeat(128).parse::<DeviceId>().is_err());
        assert!("a".repeat(127).parse::<DeviceId>().is_err());
    }

    /// A device ID in a body: either case in, lower case out; anything else is `invalid_body`
    /// naming the field, without echoing the value.
    #[test]
    fn device_ids_in_json() {
        let lower = "0a".repeat(64);
        let cases: &[(String, Result<&str, &str>)] = &[
            (lower.clone(), Ok(lower.as_str())),
            ("0A".repeat(64), Ok(lower.as_str())),
            (
                "0a".repeat(63),
                Err("expected a device ID (128 hexadecimal characters)"),
            ),
            (
                "zz".repeat(64),
                Err("expected a device ID (128 hexadecimal characters)"),
            ),
        ];
        for (input, expected) in cases {
            let body = format!(r#"{{"deviceId":"{input}"}}"#);
            let parsed =
                crate::parse_json_body::<crate::AttestationChallengeRequest>(body.as_bytes());
            match (parsed, expected) {
                (Ok(req), Ok(out)) => {
                    let json = serde_json::to_value(&req).unwrap();
                    assert_eq!(json, serde_json::json!({ "deviceId": out }));
                }
                (Err(e), Err(msg)) => {
                    assert_eq!(e.code, crate::ErrorCode::InvalidBody, "{input}");
                    assert_eq!(e.message, format!("invalid value at `deviceId`: {msg}"));
                    assert!(!e.message.contains(input.as_str()));
                }
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
        let not_a_string =
            crate::parse_json_body::<crate::AttestationChallengeRequest>(br#"{"deviceId":7}"#);
        assert_eq!(
            not_a_string.unwrap_err().code,
            crate::ErrorCode::InvalidBody
        );
    }

    #[test]
    fn patch_distinguishes_absent_and_null() {
        let r: UpdateDeviceRequest = serde_json::from_str(r#"{"deviceGroupId":null}"#).unwrap();
        assert_eq!(r.device_group_id, Some(None));
        let r: UpdateDeviceRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(r.device_group_id, None);
    }
}
