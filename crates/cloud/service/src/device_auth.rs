//! Device authentication for the `/v1/device/...` routes (docs/design.md §4: "device calls
//! authenticate the device: its signature, then its certificate"). The device presents its
//! 24-hour certificate in the TLS handshake, where rustls checks that it holds the certified key
//! (`ferro_tls::PossessionOnlyClientVerifier`); here the certificate is verified against the CAs
//! of the tenant it names and the device must be claimed by that tenant. The result is kept on
//! the connection ([`crate::server::ConnInfo`]), so a device that keeps its connection pays for
//! one ECDSA verification, not one per request; its expiry is re-checked on every request, and
//! handlers re-read the device row (group, target set) on every request. A device its tenant
//! blocked is refused here at its next request, on a kept connection too (one indexed read per
//! request), and gets no new certificate at attestation.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use ferro_wire::ErrorCode;
use time::OffsetDateTime;

use crate::datastore::devices;
use crate::error::ApiError;
use crate::server::ConnInfo;
use crate::state::AppState;
use crate::tenant_ca::load_cas_cached;

/// A device whose certificate verified on this connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// Device ID, 128 lowercase hex.
    pub device_id: String,
    /// Its tenant (hyphenated UUID, as stored).
    pub tenant_id: String,
    /// When the certificate expires (requests after it are refused: re-attest).
    pub not_after: OffsetDateTime,
}

/// Extractor: the device that made the request, authenticated by its certificate.
#[derive(Clone, Debug)]
pub struct AuthenticatedDevice(pub DeviceIdentity);

fn refused(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, message.to_string())
}

impl FromRequestParts<AppState> for AuthenticatedDevice {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let conn = parts
            .extensions
            .get::<ConnectInfo<ConnInfo>>()
            .map(|c| c.0.clone())
            .ok_or_else(|| refused("device routes are served over HTTPS only"))?;
        let Some(der) = conn.client_certificate.clone() else {
            return Err(refused(
                "this route needs the device certificate in the TLS handshake; attest \
                 (POST /v1/attestation/evidence) to obtain one",
            ));
        };
        let identity = conn
            .device
            .get_or_try_init(|| verify(state, &der))
            .await?
            .clone();
        if OffsetDateTime::now_utc() > identity.not_after {
            return Err(refused(
                "the device certificate expired; attest again for a new one and reconnect",
            ));
        }
        // Blocking takes effect at once, not when the certificate expires.
        let scope = crate::authz::device_scope(&identity)?;
        let blocked = devices::blocked(&state.db, &scope, &identity.device_id).await?;
        match blocked {
            Some(false) => Ok(AuthenticatedDevice(identity)),
            Some(true) => Err(ApiError::new(
                ErrorCode::Forbidden,
                "the tenant blocked this device; a tenant administrator can unblock it (ferro \
                 device update --blocked false)"
                    .to_string(),
            )),
            None => Err(refused(
                "the device certificate names a tenant that does not own this device",
            )),
        }
    }
}

/// Verify a client certificate as a device certificate of a claimed device.
async fn verify(state: &AppState, der: &[u8]) -> Result<DeviceIdentity, ApiError> {
    let parsed = ferro_pki::DeviceCertificate::parse(der)
        .map_err(|_| refused("the client certificate is not a Ferrosphere device certificate"))?;
    let tid = parsed.tenant_id.hyphenated().to_string();
    let cas = load_cas_cached(state, &tid).await?;
    let now = OffsetDateTime::now_utc();
    let verified = ferro_pki::verify_device_certificate(der, &cas, now).map_err(|e| {
        tracing::debug!(error = %e, "device certificate refused");
        refused("the device certificate is expired or not issued by its tenant's CA; attest again")
    })?;
    let device_id = verified.certificate().device_id.to_string();
    let claimed = devices::claimed_by(&state.db, &device_id).await?;
    if claimed.as_deref() != Some(tid.as_str()) {
        return Err(refused(
            "the device certificate names a tenant that does not own this device",
        ));
    }
    Ok(DeviceIdentity {
        device_id,
        tenant_id: tid,
        not_after: verified.certificate().not_after,
    })
}
