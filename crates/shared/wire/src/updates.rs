//! Wire types of over-the-air updates (docs/updates.md): the device's signed target set, its
//! update status reports, the update-now signal, and the management views of them.
//!
//! Device routes (`/v1/device/...`) authenticate the device by its certificate in the TLS
//! handshake. Signed documents travel as standard base64 with padding.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::DeviceId;

/// Longest `detail` text in a status report (characters).
pub const MAX_UPDATE_DETAIL_LEN: usize = 1024;
/// Most installed images a status report lists.
pub const MAX_REPORTED_IMAGES: usize = 64;
/// Longest an update-signal long poll may wait (seconds).
pub const MAX_SIGNAL_WAIT_SECONDS: u64 = 300;

/// `GET /v1/device/target-set`: the device's current target set and the ownership document
/// that says whose metadata key signs it. The `ETag` is `"v<version>-<expiry>"` (expiry in Unix
/// seconds: an unchanged set is re-signed with a later expiry at half its life); with a
/// matching `If-None-Match` the answer is 304 without a body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceTargetSet {
    /// The target set's version (also inside the signed document).
    pub version: u64,
    /// The signed target set (COSE_Sign1 by the tenant metadata key), standard base64.
    pub target_set: String,
    /// The device ownership document (COSE_Sign1 by the platform tenant endorsement key),
    /// standard base64.
    pub ownership: String,
}

named_enum! {
    /// Where a device is in applying its target set.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum UpdateState {
        /// It runs what its target set names.
        UpToDate => "UpToDate",
        /// It is asking for its target set.
        Checking => "Checking",
        /// It is downloading images.
        Downloading => "Downloading",
        /// It is installing (writing the inactive slot, switching).
        Installing => "Installing",
        /// The new set is installed and running.
        Installed => "Installed",
        /// The update failed (see the detail); the device runs its previous set.
        Failed => "Failed",
        /// An app deferred the update (see `deferredUntil`).
        Deferred => "Deferred",
    }
}

/// An image a device runs (as it reports it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstalledImage {
    /// Component ID.
    pub component_id: Uuid,
    /// Image ID.
    pub image_id: Uuid,
    /// `Os`, `App`, `RtApp` or `BoardConfig`.
    pub kind: String,
    /// Version text.
    pub version: String,
}

/// `POST /v1/device/update-status`: the device's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateStatusReport {
    /// The state.
    pub state: UpdateState,
    /// The target set version the report is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<u64>,
    /// Why it failed, or what it is doing (at most 1024 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// With `Deferred`: until when.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub deferred_until: Option<OffsetDateTime>,
    /// What the device runs now (at most 64 images).
    #[serde(default)]
    pub installed: Vec<InstalledImage>,
}

/// `GET /v1/tenants/{tenantId}/devices/{deviceId}/deployment-status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeviceDeploymentStatus {
    /// The device.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::DeviceId))]
    pub device_id: DeviceId,
    /// The version of the newest target set the service computed for it (none yet: never asked).
    pub target_version: Option<u64>,
    /// The last reported state (none: never reported).
    pub state: Option<UpdateState>,
    /// The target set version of that report.
    pub reported_target_version: Option<u64>,
    /// Its detail.
    pub detail: Option<String>,
    /// With `Deferred`: until when.
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub deferred_until: Option<OffsetDateTime>,
    /// When the device reported.
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub reported_at: Option<OffsetDateTime>,
    /// What it reported running.
    pub installed: Vec<InstalledImage>,
}

/// One image of a device's target set (`ferro device image list-targeted`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TargetedImage {
    /// Component ID.
    pub component_id: Uuid,
    /// Image ID.
    pub image_id: Uuid,
    /// `Os`, `App`, `RtApp` or `BoardConfig`.
    pub kind: String,
    /// Version text.
    pub version: String,
    /// Security version.
    pub security_version: u32,
    /// SHA-256 of the package (its download address), hex.
    pub package_sha256: String,
    /// Package size in bytes.
    pub package_size: u64,
}

/// The images a device's current target set names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TargetedImages {
    /// The device.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::DeviceId))]
    pub device_id: DeviceId,
    /// The target set's version.
    pub target_version: u64,
    /// When the signed set expires.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: OffsetDateTime,
    /// Whether the device manages apps (false under No3rdPartyAppUpdates or without a group).
    pub manage_apps: bool,
    /// The images.
    pub images: Vec<TargetedImage>,
}

/// `GET /v1/device/update-signal` (200): an update-now request newer than `since`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSignal {
    /// The newest signal's ID (pass it as `since` next time); empty if there has been none.
    pub signal: String,
    /// True when the device should check for updates now (false only for the first call,
    /// without `since`, which just tells the device where the signals stand).
    pub check_now: bool,
}

/// `POST .../update-now`: how many devices were told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpdateNowResult {
    /// The signal's ID.
    pub signal: String,
    /// How many devices it reaches (those in the group, or 1).
    pub device_count: u64,
}
