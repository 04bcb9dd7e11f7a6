//! HTTPS to the security service, trusting only the platform root certificate.

use std::time::Duration;

use crate::DeviceError;
use crate::identity::PlatformRoot;

/// The path of the platform key list.
pub const KEY_LIST_PATH: &str = "/v1/platform/key-list";

fn client(platform_root: &PlatformRoot) -> Result<reqwest::blocking::Client, DeviceError> {
    // reqwest is built without a default provider: ring is Ferrosphere's one provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let anchor = rustls::pki_types::CertificateDer::from(platform_root.certificate_der.clone());
    let tls = ferro_tls::client_config(&[anchor], None)
        .map_err(|e| DeviceError::Service(format!("TLS configuration: {e}")))?;
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .https_only(true)
        .user_agent(concat!("ferro-device/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| DeviceError::Service(error_chain(&e)))
}

/// `GET {service}/v1/platform/key-list` over HTTPS trusting only `platform_root`.
pub fn fetch_key_list(
    service_url: &str,
    platform_root: &PlatformRoot,
) -> Result<Vec<u8>, DeviceError> {
    let url = format!("{}{KEY_LIST_PATH}", service_url.trim_end_matches('/'));
    let response = client(platform_root)?
        .get(&url)
        .send()
        .map_err(|e| DeviceError::Service(format!("GET {url}: {}", error_chain(&e))))?;
    let status = response.status();
    if !status.is_success() {
        return Err(DeviceError::Service(format!("GET {url}: HTTP {status}")));
    }
    let max = ferro_pki::MAX_KEY_LIST_LEN as u64;
    if response.content_length().is_some_and(|n| n > max) {
        return Err(DeviceError::Service("key list too large".to_string()));
    }
    let bytes = response
        .bytes()
        .map_err(|e| DeviceError::Service(format!("GET {url}: {}", error_chain(&e))))?;
    Ok(bytes.to_vec())
}

/// An HTTPS client of the service that authenticates with the device certificate
/// (`certificate_pem`: leaf then chain) and signs with the root of trust's device key, trusting
/// only the platform root for the service.
pub fn mtls_client(
    ctx: &crate::DeviceContext,
    certificate_pem: &str,
) -> Result<reqwest::Client, DeviceError> {
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
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("ferro-device/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| DeviceError::Service(format!("HTTPS client: {}", error_chain(&e))))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
