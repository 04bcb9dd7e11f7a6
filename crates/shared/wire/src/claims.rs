//! Wire types of device ownership (docs/service/README.md, "Claiming and ownership"): claim
//! codes, the manufacturer's assignment of devices to a tenant, ownership transfers between
//! tenants, and the platform operator's reassignment of a disputed device.
//!
//! A claim code is 16 random bytes the service makes when it first stores a device's
//! registration record, shown once to the manufacturer (who hands it to the buyer with the
//! device); the service keeps only its SHA-256. It is written as 32 lowercase hex characters in
//! four groups of eight (`1f2e3d4c-...`); input may use either case and any hyphens or spaces.

use crate::{DeviceId, TenantId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;
use uuid::Uuid;

/// Bytes of randomness in a claim code (128 bits: guessing one is pointless).
pub const CLAIM_CODE_BYTES: usize = 16;
/// Longest reason an operator may give for a reassignment.
pub const MAX_REASON_LEN: usize = 1000;

/// A claim code's 16 bytes from its text form (hex, any case, hyphens and spaces ignored), or
/// `None` if it is not exactly 32 hex digits.
#[must_use]
pub fn parse_claim_code(s: &str) -> Option<[u8; CLAIM_CODE_BYTES]> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| *b != b'-' && !b.is_ascii_whitespace())
        .collect();
    if digits.len() != 2 * CLAIM_CODE_BYTES || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; CLAIM_CODE_BYTES];
    for (i, pair) in digits.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// The text form of a claim code: 32 lowercase hex characters in four groups of eight.
#[must_use]
pub fn format_claim_code(bytes: &[u8; CLAIM_CODE_BYTES]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.as_bytes()
        .chunks(8)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// One device of a claim: its ID and the claim code that came with it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceClaim {
    /// Device ID (128 hex characters).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::DeviceId))]
    pub device_id: String,
    /// The device's claim code (32 hex digits; hyphens and spaces are ignored).
    pub claim_code: String,
}

impl std::fmt::Debug for DeviceClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceClaim")
            .field("device_id", &self.device_id)
            .field("claim_code", &"<redacted>")
            .finish()
    }
}

/// `POST /v1/manufacturing/assignments` (platform operator): the manufacturer's flow, which
/// gives registered, unclaimed devices to a tenant without claim codes (all or nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignDevicesRequest {
    /// The tenant that receives the devices.
    pub tenant_id: TenantId,
    /// 1 to 1000 device IDs.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::schema::DeviceId>, min_items = 1, max_items = 1000))]
    pub device_ids: Vec<String>,
}

/// `POST /v1/manufacturing/devices/{deviceId}/reassign` (platform operator): settle a dispute
/// by giving a device to another tenant, or to none (unclaimed, with a new claim code).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReassignDeviceRequest {
    /// The new tenant, or null to unclaim the device.
    pub tenant_id: Option<TenantId>,
    /// Why (1 to 1000 characters; kept in the audit log of the platform and of both tenants).
    pub reason: String,
}

/// Answer of a reassignment.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeviceReassigned {
    /// Device ID.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::DeviceId))]
    pub device_id: DeviceId,
    /// Its tenant before (null if it was unclaimed).
    pub from_tenant_id: Option<TenantId>,
    /// Its tenant now (null: unclaimed).
    pub to_tenant_id: Option<TenantId>,
    /// With an unclaim: the device's new claim code (the old one no longer works), shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_code: Option<String>,
}

impl std::fmt::Debug for DeviceReassigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceReassigned")
            .field("device_id", &self.device_id)
            .field("from_tenant_id", &self.from_tenant_id)
            .field("to_tenant_id", &self.to_tenant_id)
            .finish_non_exhaustive()
    }
}

typed_id!(
    /// An offer of a device from one tenant to another.
    DeviceTransferId
);

/// `POST /v1/tenants/{tenantId}/devices/{deviceId}/transfers` (Administrator of the device's
/// tenant): offer the device to another tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTransferRequest {
    /// The tenant that may accept the device.
    pub target_tenant_id: TenantId,
    /// Days until the offer expires, 1 to 90 (default 14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// Days a transfer offer stays open when the request does not say.
pub const DEFAULT_TRANSFER_DAYS: u32 = 14;
/// The longest a transfer offer stays open, in days.
pub const MAX_TRANSFER_DAYS: u32 = 90;

named_enum! {
    /// Where a transfer is.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum TransferState {
        /// Offered, waiting for the target tenant.
        Pending => "Pending",
        /// Accepted: the device belongs to the target tenant.
        Accepted => "Accepted",
        /// Cancelled by either tenant, or void because the device changed hands otherwise.
        Cancelled => "Cancelled",
        /// Not accepted before `expiresAt`: it can no longer be accepted or cancelled.
        Expired => "Expired",
    }
}

/// An offer of one device from one tenant to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeviceTransfer {
    /// Transfer ID.
    pub id: DeviceTransferId,
    /// Device ID.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::DeviceId))]
    pub device_id: DeviceId,
    /// The tenant that offered the device.
    pub from_tenant_id: TenantId,
    /// The tenant that may accept it.
    pub to_tenant_id: TenantId,
    /// Pending, Accepted, Cancelled or Expired (a pending offer past `expiresAt`).
    pub state: TransferState,
    /// Who offered it.
    pub created_by: UserId,
    /// When it was offered.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// When the offer expires if it is not accepted or cancelled before.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: OffsetDateTime,
    /// When it was accepted or cancelled.
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub closed_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_codes_round_trip_and_refuse_anything_else() {
        let bytes = [0xab; CLAIM_CODE_BYTES];
        let text = format_claim_code(&bytes);
        assert_eq!(text, "abababab-abababab-abababab-abababab");
        assert_eq!(parse_claim_code(&text), Some(bytes));
        assert_eq!(
            parse_claim_code(&text.to_uppercase().replace('-', " ")),
            Some(bytes)
        );
        assert_eq!(parse_claim_code(&text[..34]), None);
        assert_eq!(parse_claim_code(&format!("{text}ab")), None);
        assert_eq!(parse_claim_code(&text.replace('a', "g")), None);
        assert_eq!(parse_claim_code(""), None);
    }

    #[test]
    fn claim_codes_never_print() {
        let claim = DeviceClaim {
            device_id: "0".repeat(128),
            claim_code: "secret-code".into(),
        };
        assert!(!format!("{claim:?}").contains("secret"));
    }
}
