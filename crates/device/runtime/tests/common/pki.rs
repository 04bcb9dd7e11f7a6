//! Test PKI: a platform root and a TLS server certificate for 127.0.0.1 under it, a tenant CA
//! and a device certificate from it, and device services lending a TLS client identity (and
//! signing telemetry batches with the device key, as `ferro-device` does).

use std::sync::Arc;

use ferro_pki::time::{Duration as CertDuration, OffsetDateTime};
use ferro_pki::{
    FileKeyStore, create_tenant_ca, issue_device_certificate, issue_platform_root_certificate,
    issue_service_tls_certificate,
};
use ferro_provenance::BootSequence;
use ferro_runtime::{AppId, BatchOrigin, DeviceServices, ServiceError};
use ferro_signing::{DeviceId, SoftwareSigningKey};
use rustls::pki_types::CertificateDer;
use uuid::Uuid;

/// The `DeviceAuthentication` tenant of `apps/test-guests/tls-client` and `apps/samples/telemetry`.
pub const TENANT: &str = "2d7f3c1e-9b4a-4c5d-8e6f-7a8b9c0d1e2f";

pub struct Pki {
    /// The server's chain (leaf, platform root) and key.
    pub server_chain: Vec<CertificateDer<'static>>,
    pub server_key: Arc<SoftwareSigningKey>,
    pub server_cert_pem: String,
    pub platform_root: CertificateDer<'static>,
    pub platform_root_pem: String,
    pub tenant_ca: CertificateDer<'static>,
    pub tenant_ca_pem: String,
    pub device_chain: Vec<CertificateDer<'static>>,
    pub device_key: Arc<SoftwareSigningKey>,
    _store: tempfile::TempDir,
}

pub fn pki() -> Pki {
    let now = OffsetDateTime::now_utc() - CertDuration::minutes(1);
    let root_key = SoftwareSigningKey::generate();
    let root = issue_platform_root_certificate(&root_key, now).expect("root");
    let server_key = SoftwareSigningKey::generate();
    let server = issue_service_tls_certificate(
        &root_key,
        &root,
        server_key.public_key(),
        &["127.0.0.1"],
        now,
        CertDuration::days(1),
    )
    .expect("server certificate");
    let store_dir = tempfile::tempdir().expect("tempdir");
    let store = FileKeyStore::open(&store_dir.path().join("keys")).expect("key store");
    let tenant: Uuid = TENANT.parse().expect("uuid");
    let ca = create_tenant_ca(&store, tenant, "Test tenant", now).expect("tenant CA");
    let device_key = SoftwareSigningKey::generate();
    let device_id = DeviceId::from_public_key(device_key.public_key());
    let device = issue_device_certificate(
        &ca,
        &store,
        &device_id,
        tenant,
        device_key.public_key(),
        now,
        CertDuration::hours(24),
    )
    .expect("device certificate");
    Pki {
        server_chain: vec![
            CertificateDer::from(server.der().to_vec()),
            CertificateDer::from(root.der().to_vec()),
        ],
        server_key: Arc::new(server_key),
        server_cert_pem: server.pem(),
        platform_root: CertificateDer::from(root.der().to_vec()),
        platform_root_pem: root.pem(),
        tenant_ca: CertificateDer::from(ca.der().to_vec()),
        tenant_ca_pem: ca.pem().to_string(),
        device_chain: vec![CertificateDer::from(device.der().to_vec())],
        device_key: Arc::new(device_key),
        _store: store_dir,
    }
}

/// Device services lending `config` for `tenant` only.
#[derive(Debug)]
pub struct Services {
    pub config: Option<Arc<rustls::ClientConfig>>,
    pub tenant: Uuid,
}

impl DeviceServices for Services {
    fn tls_client_config(&self, _app: AppId, tenant: Uuid) -> Option<Arc<rustls::ClientConfig>> {
        (tenant == self.tenant)
            .then(|| self.config.clone())
            .flatten()
    }
    fn certificate_chain_pem(&self, _app: AppId) -> Option<String> {
        self.config
            .as_ref()
            .map(|_| "-----BEGIN CERTIFICATE-----".to_owned())
    }
}

/// A client identity: the device certificate, its key behind a signer, trusting the platform
/// root only.
pub fn client_config(pki: &Pki) -> Arc<rustls::ClientConfig> {
    Arc::new(
        ferro_tls::client_config(
            std::slice::from_ref(&pki.platform_root),
            Some((pki.device_chain.clone(), pki.device_key.clone())),
        )
        .expect("client config"),
    )
}

/// [`Services`] that also sign telemetry batches as `ferro_device::app_services` does: the
/// device key of the TLS identity, its certificate and the tenant CA in x5chain, this boot's
/// next claims; only for the tenant the device belongs to.
#[derive(Debug)]
pub struct SigningServices {
    pub tls: Services,
    pub key: Arc<SoftwareSigningKey>,
    pub chain: Vec<Vec<u8>>,
    pub batches: BootSequence,
}

impl SigningServices {
    pub fn new(pki: &Pki, boot: Uuid) -> SigningServices {
        SigningServices {
            tls: Services {
                config: Some(client_config(pki)),
                tenant: TENANT.parse().expect("uuid"),
            },
            key: pki.device_key.clone(),
            chain: vec![pki.device_chain[0].to_vec(), pki.tenant_ca.to_vec()],
            batches: BootSequence::new(boot),
        }
    }
}

impl DeviceServices for SigningServices {
    fn tls_client_config(&self, app: AppId, tenant: Uuid) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.tls_client_config(app, tenant)
    }

    fn certificate_chain_pem(&self, app: AppId) -> Option<String> {
        self.tls.certificate_chain_pem(app)
    }

    fn sign_batch(
        &self,
        app: AppId,
        origin: &BatchOrigin,
        payload: &[u8],
    ) -> Result<Vec<u8>, ServiceError> {
        if origin.tenant != self.tls.tenant {
            return Err(ServiceError::NoCertificate);
        }
        let claims = self
            .batches
            .next_claims(app.uuid(), origin.image_id, origin.development);
        ferro_provenance::sign_batch(self.key.as_ref(), &self.chain, &claims, payload)
            .map_err(|_| ServiceError::SigningFailed)
    }
}
