//! The device's HTTPS clients of the security service: TLS trusting only the platform root,
//! and, on the device routes, the device certificate signed through the root of trust. Every
//! request goes through `ferro_client::DeviceClient` (routes, typed errors, `Retry-After`);
//! this module only builds the TLS it runs on, which only the device can.

use std::time::Duration;

use ferro_client::DeviceClient;

use crate::DeviceError;
use crate::identity::PlatformRoot;

fn user_agent() -> &'static str {
    concat!("ferro-device/", env!("CARGO_PKG_VERSION"))
}

/// `GET {service}/v1/platform/key-list` over HTTPS trusting only `platform_root`.
pub fn fetch_key_list(
    service_url: &str,
    platform_root: &PlatformRoot,
) -> Result<Vec<u8>, DeviceError> {
    // reqwest is built without a default provider: ring is Ferrosphere's one provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let anchor = rustls::pki_types::CertificateDer::from(platform_root.certificate_der.clone());
    let tls = ferro_tls::client_config(&[anchor], None)
        .map_err(|e| DeviceError::Service(format!("TLS configuration: {e}")))?;
    let http = reqwest::Client::builder()
        .timeout(ferro_client::REQUEST_TIMEOUT)
        .https_only(true)
        .user_agent(user_agent())
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| DeviceError::Service(format!("HTTPS client: {e}")))?;
    let client = DeviceClient::new(service_url, http).map_err(service_error)?;
    // Provisioning is a one-shot command, not the agent: a runtime for this one request.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DeviceError::Service(format!("async runtime: {e}")))?;
    runtime
        .block_on(client.key_list(ferro_pki::MAX_KEY_LIST_LEN))
        .map_err(service_error)
}

/// The device's client of the service that authenticates with the device certificate
/// (`certificate_pem`: leaf then chain) and signs with the root of trust's device key, trusting
/// only the platform root for the service.
pub fn device_client(
    ctx: &crate::DeviceContext,
    certificate_pem: &str,
) -> Result<DeviceClient, DeviceError> {
    use rustls::pki_types::CertificateDer;
    let chain: Vec<CertificateDer<'static>> = pem::parse_many(certificate_pem)
        .map_err(|e| DeviceError::Attestation(format!("device certificate PEM: {e}")))?
        .into_iter()
        .map(|p| CertificateDer::from(p.contents().to_vec()))
        .collect();
    let anchors = [CertificateDer::from(
        ctx.platform_root.certificate_der.clone(),
    )];
    let tls = ferro_attest::mtls_client_config(&*ctx.rot, chain, &anchors)
        .map_err(|e| DeviceError::Attestation(e.to_string()))?;
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(user_agent())
        .build()
        .map_err(|e| DeviceError::Service(format!("HTTPS client: {e}")))?;
    DeviceClient::new(&ctx.service_url, http).map_err(service_error)
}

/// A failed call as the device's error (the call's own error says which route and why).
pub(crate) fn service_error(error: ferro_client::DeviceClientError) -> DeviceError {
    DeviceError::Service(error.to_string())
}
