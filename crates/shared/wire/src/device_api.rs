//! The local device API: what the `ferro` CLI and a developer's tools send to one attached
//! device, as Azure Sphere's device REST API (sideloading, app control, logs), over a Unix
//! socket in the device's data directory ([`SOCKET_PATH`]) whose file permissions are the access
//! control. Errors use the service's [`crate::ErrorBody`] so one client handles both.
//!
//! The OpenAPI document of these routes is `openapi/device-local.json`, generated from
//! the device's handlers (`ferro_device::local_api`) with these types' schemas (feature
//! `openapi`).
//!
//! Routes (all under `/v1`):
//! - `GET /device`: [`AttachedDevice`]; `POST /device/restart`: 202, the device restarts.
//! - `PUT /capability` (body: the capability file), `DELETE /capability`: [`DevelopmentMode`].
//! - `GET /images`: [`InstalledImages`].
//! - `POST /sideload?manualStart=BOOL` (body: the image package; header
//!   [`DEVELOPER_KEY_HEADER`]): [`SideloadResult`]; `DELETE /sideload/{componentId}`: 204.
//! - `GET /apps`: [`AppStatusList`]; `GET /apps/{id}`: [`AppStatus`]; `POST /apps/{id}/start`,
//!   `POST /apps/{id}/stop`: [`AppStatus`]; `GET /apps/{id}/quota`: [`AppQuota`];
//!   `GET /apps/{id}/memory`: [`AppMemoryStats`]; `GET /apps/{id}/logs?follow=BOOL`:
//!   [`LogLine`]s as JSON lines (`application/x-ndjson`), streamed while `follow` holds.
//! - `GET /board`: [`BoardState`]; `PUT /board/buttons/{name}`: [`ButtonPress`] -> [`BoardState`];
//!   `PUT /board/temperature`: [`TemperatureSetting`] -> [`BoardState`];
//!   `POST /board/uarts/{name}/peer`: [`UartPeerSend`] -> [`UartPeerExchange`] (virtual board
//!   only).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The socket, relative to the device's data directory.
pub const SOCKET_PATH: &str = "run/device-api.sock";

/// Header of `POST /v1/sideload`: the developer's public key (base64 of its DER
/// SubjectPublicKeyInfo). The device accepts it only if its appDevelopment capability names the
/// key's ID (SHA-256 of that DER).
pub const DEVELOPER_KEY_HEADER: &str = "ferro-developer-key";

/// Largest image package the device takes by sideloading.
pub const MAX_SIDELOAD_BYTES: usize = 32 * 1024 * 1024;

/// `GET /v1/device`: what `ferro device show-attached` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttachedDevice {
    /// Device ID (128 lowercase hex characters).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::DeviceId))]
    pub device_id: crate::DeviceId,
    /// `Blank`, `Module1Complete` or `DeviceComplete`.
    pub manufacturing_state: String,
    /// `Software` or `Tpm`.
    pub root_of_trust: String,
    /// The running OS version, if known.
    pub os_version: Option<String>,
    /// The slot ferro-boot booted (`a` or `b`).
    pub booted_slot: Option<String>,
    /// `Trusted`, `Untrusted`, or absent before the first verdict of this boot.
    pub attestation: Option<String>,
    /// Why the service did not trust the device.
    #[serde(default)]
    pub attestation_reasons: Vec<String>,
    /// When the device certificate expires (RFC 3339), if it has one.
    pub certificate_not_after: Option<String>,
    /// The board the device's peripherals come from (hardware definition name).
    pub board: Option<String>,
    /// Development mode: the appDevelopment capability, if the device holds one.
    pub development: DevelopmentMode,
    /// The security service the device belongs to.
    pub service_url: String,
}

/// The device's appDevelopment capability.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DevelopmentMode {
    /// Whether a valid appDevelopment capability for this device is applied.
    pub enabled: bool,
    /// The developer key IDs (hex SHA-256 of their public keys) it accepts test-signed images from.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::schema::KeyId>))]
    pub developer_keys: Vec<String>,
}

/// Where an installed image came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ImageSource {
    /// The device's target set (a deployment of its device group).
    Cloud,
    /// `ferro device sideload deploy` (development mode).
    Sideloaded,
}

/// One image installed on the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstalledImage {
    /// Component ID.
    pub component_id: Uuid,
    /// Image ID.
    pub image_id: Uuid,
    /// The app's name.
    pub name: String,
    /// `App`, `RtApp` or `BoardConfig`.
    pub kind: String,
    /// Version.
    pub version: String,
    /// Cloud or sideloaded.
    pub source: ImageSource,
    /// Whether it verified at this boot (an image that did not is installed but never runs).
    pub verified: bool,
    /// Size of the package in bytes.
    pub package_size: u64,
}

/// `GET /v1/images`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstalledImages {
    /// Installed images, by component ID.
    pub images: Vec<InstalledImage>,
}

/// `POST /v1/sideload` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SideloadResult {
    /// The app's component ID.
    pub component_id: Uuid,
    /// The image ID installed.
    pub image_id: Uuid,
    /// The app's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Whether it waits for `ferro device app start`.
    pub manual_start: bool,
    /// The image it replaced, if one of the same component was installed.
    pub replaced_image_id: Option<Uuid>,
}

/// Where an app is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AppState {
    /// Not running (manual start, stopped, or never started).
    Stopped,
    /// Being instantiated.
    Starting,
    /// Running.
    Running,
    /// Exited or crashed; restarts after a delay.
    BackingOff,
    /// Installed but refused by the runtime (the reason is in `lastExit`).
    Failed,
}

/// `GET /v1/apps/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppStatus {
    /// Component ID.
    pub component_id: Uuid,
    /// The app's name.
    pub name: String,
    /// Lifecycle state.
    pub state: AppState,
    /// Started only on request.
    pub manual_start: bool,
    /// Restarts after exits and crashes since install.
    pub restarts: u32,
    /// Why the last instance ended (or why the app could not be installed).
    pub last_exit: Option<String>,
    /// Milliseconds until the next restart, when backing off.
    pub restart_in_ms: Option<u64>,
    /// When the current instance started (RFC 3339).
    pub running_since: Option<String>,
    /// The real-time core a real-time app holds (`IO0`); absent for high-level apps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<String>,
}

/// `GET /v1/apps`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppStatusList {
    /// Every installed app.
    pub apps: Vec<AppStatus>,
}

/// `GET /v1/apps/{id}/quota`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppQuota {
    /// Component ID.
    pub component_id: Uuid,
    /// Bytes of mutable storage in use.
    pub used_bytes: u64,
    /// The manifest's `MutableStorage.SizeKB`, in bytes (0: no mutable storage granted).
    pub quota_bytes: u64,
}

/// `GET /v1/apps/{id}/memory`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppMemoryStats {
    /// Component ID.
    pub component_id: Uuid,
    /// Linear memory the image declares.
    pub image_bytes: u64,
    /// Linear memory now.
    pub current_bytes: u64,
    /// Highest since install.
    pub peak_bytes: u64,
    /// Image plus the allowance.
    pub limit_bytes: u64,
}

/// One line of an app's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogLine {
    /// Position in the app's log (starts at 1).
    pub seq: u64,
    /// When (RFC 3339).
    pub at: String,
    /// `Error`, `Warning`, `Info`, `Debug`.
    pub level: String,
    /// `Log`, `Stdout`, `Stderr`, `Runtime`.
    pub source: String,
    /// The text.
    pub text: String,
}

/// One LED or button of the virtual board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BoardPin {
    /// The peripheral's names in the board's hardware definition (most specific first).
    pub names: Vec<String>,
    /// GPIO number.
    pub pin: u32,
    /// LED lit / button pressed.
    pub active: bool,
}

/// `GET /v1/board`: the virtual board's parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BoardState {
    /// Hardware definition name.
    pub name: String,
    /// LEDs.
    pub leds: Vec<BoardPin>,
    /// Buttons.
    pub buttons: Vec<BoardPin>,
}

/// `PUT /v1/board/buttons/{name}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ButtonPress {
    /// Held down (true) or released (false).
    pub pressed: bool,
}

/// `PUT /v1/board/temperature`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemperatureSetting {
    /// The simulated sensor's temperature, in thousandths of a degree Celsius.
    pub millicelsius: i32,
}

/// Most bytes one `POST /v1/board/uarts/{name}/peer` sends.
pub const MAX_UART_PEER_SEND: usize = 4096;

/// `POST /v1/board/uarts/{name}/peer`: what the virtual board's UART peer (the device at the
/// other end of the app's UART) sends to the app, as bytes (at most [`MAX_UART_PEER_SEND`];
/// empty: only take what the app wrote).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UartPeerSend {
    /// The bytes, each 0-255.
    pub data: Vec<u8>,
}

/// The answer of `POST /v1/board/uarts/{name}/peer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UartPeerExchange {
    /// The UART (its `AppManifestValue`, e.g. `ISU1`).
    pub uart: String,
    /// How many of the bytes sent the board queued for the app (the rest did not fit its
    /// bounded queue).
    pub accepted: u32,
    /// What the app wrote to the UART since the last exchange.
    pub received: Vec<u8>,
}
