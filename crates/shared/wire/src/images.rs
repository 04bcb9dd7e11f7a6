//! Wire types of developer keys, images, deployments, OS release keys and OS releases.
//!
//! Binary bodies (image packages) are not described here: uploads are the raw package with
//! `Content-Type: application/octet-stream`, downloads answer the same content type with HTTP
//! Range support and an `ETag` that is the package's SHA-256.

use crate::{DeviceGroupId, OsFeed, TenantId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;
use uuid::Uuid;

typed_id!(
    /// An image: the `image_id` of the package's signed metadata (unique per packed image; a
    /// tenant holds at most one image per ID).
    ImageId
);
typed_id!(
    /// A deployment: an immutable set of images for a device group.
    DeploymentId
);

/// Longest PEM text accepted for a public key, in bytes.
pub const MAX_PUBLIC_KEY_PEM_LEN: usize = 4096;
/// Most images in one deployment.
pub const MAX_DEPLOYMENT_IMAGES: usize = 64;
/// Most developer keys a tenant may register (and OS release keys the platform may register).
pub const MAX_SIGNING_KEYS: usize = 100;

/// Whether `s` is a key ID as the API writes it: 64 lowercase hex characters (the SHA-256 of the
/// key's DER SubjectPublicKeyInfo).
#[must_use]
pub fn is_valid_key_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

// ---------------------------------------------------------------------------------------------
// Signing keys (developer keys of a tenant; OS release keys of the platform)

/// `POST /v1/tenants/{tenantId}/developer-keys` and `POST /v1/os-release-keys`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterSigningKeyRequest {
    /// The public key: PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of an ECDSA P-256 key, as
    /// `ferro key create` writes it. At most 4096 bytes.
    pub public_key_pem: String,
    /// A name for people: letters, digits, spaces, `-`, `_`; at most 50 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::Name))]
    pub name: String,
}

/// A registered signing key: a tenant's developer key, or a platform OS release key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RegisteredSigningKey {
    /// Key ID: SHA-256 of the DER SubjectPublicKeyInfo, 64 lowercase hex characters (the `kid`
    /// of the packages it signs).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::KeyId))]
    pub key_id: String,
    /// The tenant (absent for platform OS release keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub tenant_id: Option<TenantId>,
    /// Name.
    pub name: String,
    /// The public key (PEM, LF line endings).
    pub public_key_pem: String,
    /// Who registered it.
    pub created_by: UserId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

// ---------------------------------------------------------------------------------------------
// Images

named_enum! {
    /// What an image is (the package's `image_type`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum ImageType {
        /// A high-level (WebAssembly component) application.
        App => "App",
        /// A real-time (Cortex-M4) application.
        RtApp => "RtApp",
        /// The OS bundle (published as OS releases by the platform operator only).
        Os => "Os",
        /// A board configuration.
        BoardConfig => "BoardConfig",
    }
}

/// An image of a tenant: the production package the service re-signed with the tenant image
/// key at upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Image ID (from the package's signed metadata).
    pub id: ImageId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Component ID (stable across an app's versions; the manifest's `ComponentId`).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub component_id: Uuid,
    /// Name (the manifest's `Name`, or the board configuration's).
    pub name: String,
    /// Type.
    pub image_type: ImageType,
    /// Version, `major.minor.patch`.
    pub version: String,
    /// Anti-rollback security version.
    pub security_version: u32,
    /// Minimum OS runtime version.
    pub target_runtime_version: u32,
    /// Debug image (runs only on devices with the appDevelopment capability).
    pub debug: bool,
    /// Payload size in bytes.
    pub payload_size: u64,
    /// SHA-256 of the payload (hex).
    pub payload_sha256: String,
    /// SHA-256 of the stored production package (hex); also the download's `ETag`.
    pub package_sha256: String,
    /// Size of the stored production package in bytes.
    pub package_size: u64,
    /// Always false: the stored package carries the tenant image key's production signature.
    pub test_signed: bool,
    /// Key ID of the tenant image key that signed the stored package.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::KeyId))]
    pub signer_key_id: String,
    /// Key ID of the developer key that signed the uploaded package.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::KeyId))]
    pub uploaded_signer_key_id: String,
    /// SHA-256 of the uploaded package (hex): uploading the same bytes again is idempotent.
    pub uploaded_sha256: String,
    /// Who uploaded it.
    pub uploaded_by: UserId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub uploaded_at: OffsetDateTime,
}

/// Query of `GET /v1/tenants/{tenantId}/images`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageQuery {
    /// Only the images of this component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Uuid))]
    pub component_id: Option<Uuid>,
    /// Items per page, 1 to 500 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
    /// The `continuationToken` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Deployments

/// `POST /v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDeploymentRequest {
    /// The images to deploy: images of this tenant (not OS images), at most one per component,
    /// at most 64. An empty list deploys no apps (removes them from the group's devices).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub image_ids: Vec<ImageId>,
    /// Roll the deployment out in waves (absent: every device of the group at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutRequest>,
}

/// An image as a deployment lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeployedImage {
    /// Image ID.
    pub image_id: ImageId,
    /// Component ID.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub component_id: Uuid,
    /// Name.
    pub name: String,
    /// Type.
    pub image_type: ImageType,
    /// Version.
    pub version: String,
    /// When the image was deleted (`ferro image delete`), after this deployment was superseded:
    /// the history keeps the image's ID, name, type and version, its package is gone.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub deleted_at: Option<OffsetDateTime>,
}

/// A deployment: an immutable set of images. The newest deployment of a device group is its
/// current one; older ones are kept as history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// ID (time-ordered).
    pub id: DeploymentId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Device group.
    pub device_group_id: DeviceGroupId,
    /// The images, ordered by component ID.
    pub images: Vec<DeployedImage>,
    /// Who deployed.
    pub deployed_by: UserId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub deployed_at: OffsetDateTime,
    /// Its rollout in waves (absent: it went to every device of the group at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

// ---------------------------------------------------------------------------------------------
// Rollouts in waves (docs/updates.md, "Rollout waves")

/// Most waves a rollout may have.
pub const MAX_ROLLOUT_WAVES: usize = 10;
/// Longest wait between two waves, in seconds (30 days).
pub const MAX_WAVE_WAIT_SECONDS: i64 = 30 * 24 * 3600;

/// A rollout in waves, as a deployment is created with it: the deployment reaches a cumulative
/// percentage of the group's devices per wave, the next wave starting `waveWaitSeconds` after
/// the one before, and the service pauses it by itself when more than `maxFailurePercent` of the
/// devices included so far report `Failed` for it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutRequest {
    /// Cumulative percentages of the group's devices, strictly increasing, the last one 100: for
    /// example `[10, 50, 100]`. 1 to 10 waves; each above 0 with at most two decimals.
    pub waves: Vec<f64>,
    /// Seconds from the start of one wave to the start of the next (0 to 2,592,000, i.e. 30
    /// days; 0 starts every wave at once).
    pub wave_wait_seconds: i64,
    /// Pause the rollout when more than this percentage of the devices included so far report
    /// `Failed` for the deployment (0 to 100, at most two decimals; 0: any failure pauses it).
    pub max_failure_percent: f64,
}

/// A deployment's rollout configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Cumulative percentages of the group's devices, the last one 100.
    pub waves: Vec<f64>,
    /// Seconds between the starts of two waves.
    pub wave_wait_seconds: u64,
    /// The failure percentage above which the rollout pauses itself.
    pub max_failure_percent: f64,
}

/// Where a rollout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RolloutState {
    /// Waves start as their waits pass.
    Rolling,
    /// Paused (see `pause`): no further wave starts until it is resumed.
    Paused,
    /// The last wave has started: every device of the group is included.
    Complete,
    /// A newer deployment of the group froze it where it stood.
    Superseded,
}

named_enum! {
    /// Why a rollout paused.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum PauseReason {
        /// More than `maxFailurePercent` of the included devices reported `Failed` (the service
        /// paused it).
        FailureThreshold => "FailureThreshold",
        /// An operator paused it.
        Operator => "Operator",
    }
}

/// A rollout's pause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RolloutPause {
    /// When it paused.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: OffsetDateTime,
    /// Why.
    pub reason: PauseReason,
    /// What the service saw (failures and devices), or who paused it.
    pub detail: String,
    /// The operator who paused it (absent: the service paused it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<UserId>,
}

/// `GET .../deployments/{deploymentId}/rollout`, and the answer of pause and resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// Its device group.
    pub device_group_id: DeviceGroupId,
    /// Its rollout configuration.
    pub rollout: Rollout,
    /// Where it stands.
    pub state: RolloutState,
    /// The wave reached (1 = the first).
    pub current_wave: u32,
    /// That wave's cumulative percentage of the group's devices.
    pub current_percent: f64,
    /// When the next wave starts if nothing pauses the rollout first (absent when paused,
    /// superseded or complete).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_wave_at: Option<OffsetDateTime>,
    /// Devices in the group now.
    pub devices_in_group: u64,
    /// Of those, in the waves reached: they are given this deployment's images.
    pub devices_included: u64,
    /// Devices given a target set with this deployment's images so far.
    pub devices_targeted: u64,
    /// Included devices whose last report is `Failed` for this deployment's images, reported
    /// since `failuresCountedSince`.
    pub devices_failed: u64,
    /// `devicesFailed` as a percentage of `devicesIncluded`.
    pub failure_percent: f64,
    /// Failures are counted from here: the deployment's creation, or the last resume.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub failures_counted_since: OffsetDateTime,
    /// The pause, while paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<RolloutPause>,
    /// When a newer deployment of the group froze this rollout.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub superseded_at: Option<OffsetDateTime>,
}

// ---------------------------------------------------------------------------------------------
// OS releases

/// An OS release: an OS bundle the platform operator published, signed by the platform OS
/// release key. Every release is in the RetailEval feed; a promoted (or directly published)
/// release is in Retail too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OsRelease {
    /// Image ID (from the bundle's signed metadata).
    pub image_id: ImageId,
    /// `Retail` once released to Retail, else `RetailEval`.
    pub feed: OsFeed,
    /// Version, `major.minor.patch` (grows with every release).
    pub version: String,
    /// Anti-rollback security version.
    pub security_version: u32,
    /// Runtime version the OS offers apps (the package's target runtime version field).
    pub target_runtime_version: u32,
    /// Name (`ferrosphere-os`).
    pub name: String,
    /// SHA-256 of the payload (hex).
    pub payload_sha256: String,
    /// SHA-256 of the signed package (hex); also the download's `ETag`.
    pub package_sha256: String,
    /// Size of the signed package in bytes.
    pub package_size: u64,
    /// Key ID of the platform OS release key that signed it.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::KeyId))]
    pub signer_key_id: String,
    /// Key ID of the registered OS release build key that signed the upload.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::KeyId))]
    pub uploaded_signer_key_id: String,
    /// Who published it.
    pub published_by: UserId,
    /// When it was published (to RetailEval, or straight to Retail).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub published_at: OffsetDateTime,
    /// When it reached Retail (absent while only in RetailEval).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub retail_at: Option<OffsetDateTime>,
    /// When the platform operator revoked it (`POST /v1/os-releases/{imageId}/revoke`): never
    /// offered again, and a device that runs it attests Untrusted (`os_release_revoked`).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub revoked_at: Option<OffsetDateTime>,
}

/// Query of `POST /v1/os-releases`: the feed to publish to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct PublishOsReleaseQuery {
    /// `RetailEval` (evaluation first; promote later) or `Retail` (both feeds at once).
    pub feed: OsFeed,
}

/// Query of `GET /v1/os-releases`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct OsReleaseQuery {
    /// Only the releases of this feed (`RetailEval` holds every release; `Retail` the released
    /// ones). Absent: every release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<OsFeed>,
    /// Items per page, 1 to 500 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
    /// The `continuationToken` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids() {
        assert!(is_valid_key_id(&"ab".repeat(32)));
        assert!(!is_valid_key_id(&"AB".repeat(32)));
        assert!(!is_valid_key_id(&"ab".repeat(31)));
        assert!(!is_valid_key_id(&"zz".repeat(32)));
    }

    #[test]
    fn image_types_round_trip() {
        for t in [
            ImageType::App,
            ImageType::RtApp,
            ImageType::Os,
            ImageType::BoardConfig,
        ] {
            assert_eq!(t.as_str().parse::<ImageType>(), Ok(t));
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.as_str())
            );
        }
    }

    #[test]
    fn deployment_request_is_strict() {
        assert!(
            serde_json::from_str::<CreateDeploymentRequest>(r#"{"imageIds":[],"x":1}"#).is_err()
        );
        let r: CreateDeploymentRequest =
            serde_json::from_str(r#"{"imageIds":["0190c1a8-3c7a-7c4e-9b1e-2f4d5a6b7c8d"]}"#)
                .unwrap();
        assert_eq!(r.image_ids.len(), 1);
        assert!(r.rollout.is_none());
        let r: CreateDeploymentRequest = serde_json::from_str(
            r#"{"imageIds":[],"rollout":{"waves":[10,50,100],"waveWaitSeconds":3600,"maxFailurePercent":5}}"#,
        )
        .unwrap();
        assert_eq!(r.rollout.unwrap().waves, vec![10.0, 50.0, 100.0]);
        assert!(
            serde_json::from_str::<CreateDeploymentRequest>(
                r#"{"imageIds":[],"rollout":{"waves":[100],"waveWaitSeconds":0,"maxFailurePercent":5,"x":1}}"#
            )
            .is_err()
        );
    }
}
