//! What the device provides to apps beyond peripherals: the device certificate, update
//! notifications and deferral, power requests. The device integration implements
//! [`DeviceServices`]; the runtime checks the manifest before calling it.

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use crate::AppId;

/// An update the device is about to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingUpdate {
    pub os: bool,
    pub seconds_until_apply: u32,
}

/// A power request from an app (already checked against its `PowerControls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerRequest {
    ForceReboot,
    ForcePowerDown { max_seconds: u32 },
    SetPowerProfile(PowerProfile),
}

/// Power profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerProfile {
    HighPerformance,
    Balanced,
    PowerSaver,
}

/// Device services for apps. Every method has a fail-closed default (not ready, nothing
/// pending, unsupported).
pub trait DeviceServices: Send + Sync + fmt::Debug {
    /// A TLS client configuration authenticating with the device certificate of `tenant` (the
    /// app's `DeviceAuthentication`), its key kept in the root of trust (e.g.
    /// `ferro_attest::mtls_client_config`), trusting the anchors the device trusts for app
    /// connections. `None` while there is no current certificate.
    fn tls_client_config(&self, _app: AppId, _tenant: Uuid) -> Option<Arc<rustls::ClientConfig>> {
        None
    }
    /// The device certificate chain (PEM, leaf first), if current.
    fn certificate_chain_pem(&self, _app: AppId) -> Option<String> {
        None
    }
    /// The pending update, if any.
    fn pending_update(&self) -> Option<PendingUpdate> {
        None
    }
    /// Defers the pending update for `app` by `minutes`.
    fn defer_update(&self, _app: AppId, _minutes: u32) -> Result<(), String> {
        Err("update deferral is not available on this device".to_owned())
    }
    /// Withdraws `app`'s deferral.
    fn resume_update(&self, _app: AppId) -> Result<(), String> {
        Err("update deferral is not available on this device".to_owned())
    }
    /// Carries out a power request.
    fn power_request(&self, _app: AppId, _request: PowerRequest) -> Result<(), String> {
        Err("power control is not available on this device".to_owned())
    }
}

/// No device services: the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDeviceServices;

impl DeviceServices for NoDeviceServices {}
