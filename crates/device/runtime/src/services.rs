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

/// What the runtime knows of an app that asks for a signed telemetry batch: the device puts it in
/// the batch's protected header, where the app cannot choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOrigin {
    /// The tenant of the app's `DeviceAuthentication`.
    pub tenant: Uuid,
    /// The image ID of the verified image the app runs from.
    pub image_id: Uuid,
    /// Whether that image was sideloaded in development mode.
    pub development: bool,
}

/// Why the device did not carry out an app's service request. The message reaches the app (as
/// the WIT `api-error::unsupported`), so it says what the device cannot do and nothing more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The device does not offer this service at all (the name of the service).
    #[error("{0} is not available on this device")]
    Unavailable(&'static str),
    /// No update is pending: there is nothing to defer or let proceed.
    #[error("no update is pending")]
    NoPendingUpdate,
    /// The device can reboot but cannot power down or change its power profile.
    #[error("this device cannot power down or change its power profile")]
    PowerStateUnsupported,
    /// There is no current device certificate (not attested yet, or not for this tenant).
    #[error("no current device certificate")]
    NoCertificate,
    /// The root of trust did not sign (the device logs why).
    #[error("the device could not sign")]
    SigningFailed,
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
    /// `payload` signed as a telemetry batch of `app` by the device key in the root of trust
    /// (`ferro_provenance::sign_batch`), `origin` in its protected header. The runtime has
    /// checked the manifest, the size and the app's signing rate.
    fn sign_batch(
        &self,
        _app: AppId,
        _origin: &BatchOrigin,
        _payload: &[u8],
    ) -> Result<Vec<u8>, ServiceError> {
        Err(ServiceError::Unavailable("signed telemetry batches"))
    }
    /// The pending update, if any.
    fn pending_update(&self) -> Option<PendingUpdate> {
        None
    }
    /// Defers the pending update for `app` by `minutes`.
    fn defer_update(&self, _app: AppId, _minutes: u32) -> Result<(), ServiceError> {
        Err(ServiceError::Unavailable("update deferral"))
    }
    /// Withdraws `app`'s deferral.
    fn resume_update(&self, _app: AppId) -> Result<(), ServiceError> {
        Err(ServiceError::Unavailable("update deferral"))
    }
    /// Carries out a power request.
    fn power_request(&self, _app: AppId, _request: PowerRequest) -> Result<(), ServiceError> {
        Err(ServiceError::Unavailable("power control"))
    }
}

/// No device services: the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDeviceServices;

impl DeviceServices for NoDeviceServices {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without device services every request is refused with the message the app is shown.
    #[test]
    fn the_defaults_refuse_with_the_messages_apps_see() {
        let app = AppId::from(Uuid::nil());
        let services = NoDeviceServices;
        let cases = [
            (
                services.defer_update(app, 5),
                "update deferral is not available on this device",
            ),
            (
                services.resume_update(app),
                "update deferral is not available on this device",
            ),
            (
                services.power_request(app, PowerRequest::ForceReboot),
                "power control is not available on this device",
            ),
        ];
        for (result, message) in cases {
            assert_eq!(result.map_err(|e| e.to_string()), Err(message.to_owned()));
        }
    }
}
