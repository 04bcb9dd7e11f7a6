//! What the device lends its apps through `ferro_runtime::DeviceServices`: TLS client
//! configurations that authenticate with the device certificate (the key stays in the root of
//! trust), the certificate chain, signed telemetry batches (the device key signs, through the
//! root of trust, with what the app cannot choose in the protected header: docs/provenance.md),
//! and power requests. The runtime has already checked the app's manifest
//! (DeviceAuthentication, PowerControls), and for batches their size and the app's rate,
//! before it calls any of these.

use std::sync::Arc;

use ferro_runtime::{
    AppId, BatchOrigin, DeviceServices, PendingUpdate, PowerRequest, ServiceError,
};
use rustls::pki_types::CertificateDer;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::identity::DeviceContext;

/// The device's services for apps.
#[derive(Debug)]
pub struct AppServices {
    ctx: DeviceContext,
    restart: Arc<Notify>,
    deferrals: Arc<crate::deferral::Deferrals>,
    /// This boot's ID and the next batch's number in it (signed telemetry batches).
    batches: ferro_provenance::BootSequence,
}

impl AppServices {
    /// Services of `ctx`'s device; a reboot request is told to `restart`; update notices and
    /// deferrals go through `deferrals`.
    pub fn new(
        ctx: &DeviceContext,
        restart: Arc<Notify>,
        deferrals: Arc<crate::deferral::Deferrals>,
    ) -> AppServices {
        AppServices {
            ctx: ctx.clone(),
            restart,
            deferrals,
            batches: ferro_provenance::BootSequence::default(),
        }
    }

    /// The tenant that owns the device (from its verified ownership document).
    fn owner(&self) -> Option<Uuid> {
        let dir = ferro_update::UpdateDir::open(self.ctx.data_dir.update_dir()).ok()?;
        dir.load_ownership(&self.ctx.key_list, &self.ctx.device_id())
            .ok()
            .flatten()
            .map(|o| o.tenant_id())
    }

    /// The current device certificate, read from the certificate store each time (the agent
    /// renews it in place).
    fn certificate(&self) -> Option<ferro_attest::DeviceCertificate> {
        crate::run::stored_certificate(&self.ctx)
    }
}

impl DeviceServices for AppServices {
    /// Only for the tenant that owns the device: an app that names another tenant in its
    /// DeviceAuthentication gets nothing. Servers are verified against the platform root and
    /// the owning tenant's CA chain.
    fn tls_client_config(&self, app: AppId, tenant: Uuid) -> Option<Arc<rustls::ClientConfig>> {
        if self.owner() != Some(tenant) {
            tracing::warn!(%app, %tenant, "an app asked for the certificate of a tenant that does not own this device");
            return None;
        }
        let certificate = self.certificate()?;
        let chain = certificate.chain_der().ok()?;
        let mut anchors = vec![CertificateDer::from(
            self.ctx.platform_root.certificate_der.clone(),
        )];
        anchors.extend(ferro_attest::pem_certificates(&certificate.ca_chain_pem).ok()?);
        ferro_attest::mtls_client_config(&*self.ctx.rot, chain, &anchors)
            .map(Arc::new)
            .map_err(|error| tracing::warn!(%app, %error, "no TLS configuration for the app"))
            .ok()
    }

    fn certificate_chain_pem(&self, _app: AppId) -> Option<String> {
        self.certificate().map(|c| crate::run::pem_bundle(&c))
    }

    /// Only for the tenant that owns the device, with a current certificate: the device key
    /// signs in the root of trust; the header names this boot, the next sequence number and
    /// the time, besides what the runtime says of the app.
    fn sign_batch(
        &self,
        app: AppId,
        origin: &BatchOrigin,
        payload: &[u8],
    ) -> Result<Vec<u8>, ServiceError> {
        if self.owner() != Some(origin.tenant) {
            tracing::warn!(%app, tenant = %origin.tenant, "an app asked for a batch signed for a tenant that does not own this device");
            return Err(ServiceError::NoCertificate);
        }
        let certificate = self.certificate().ok_or(ServiceError::NoCertificate)?;
        let chain: Vec<Vec<u8>> = certificate
            .chain_der()
            .map_err(|_| ServiceError::NoCertificate)?
            .into_iter()
            .map(|der| der.to_vec())
            .collect();
        let claims = self
            .batches
            .next_claims(app.uuid(), origin.image_id, origin.development);
        let key = self.ctx.rot.device_key();
        ferro_provenance::sign_batch(key.as_ref(), &chain, &claims, payload).map_err(|error| {
            tracing::warn!(%app, %error, "could not sign the app's telemetry batch");
            ServiceError::SigningFailed
        })
    }

    fn pending_update(&self) -> Option<PendingUpdate> {
        self.deferrals
            .pending_update(time::OffsetDateTime::now_utc())
    }

    fn defer_update(&self, app: AppId, minutes: u32) -> Result<(), ServiceError> {
        self.deferrals
            .defer(app, minutes, time::OffsetDateTime::now_utc())
    }

    fn resume_update(&self, app: AppId) -> Result<(), ServiceError> {
        self.deferrals.resume(app)
    }

    fn power_request(&self, app: AppId, request: PowerRequest) -> Result<(), ServiceError> {
        match request {
            PowerRequest::ForceReboot => {
                tracing::info!(%app, "the app asked for a reboot");
                self.restart.notify_one();
                Ok(())
            }
            PowerRequest::ForcePowerDown { .. } | PowerRequest::SetPowerProfile(_) => {
                Err(ServiceError::PowerStateUnsupported)
            }
        }
    }
}
