//! The device certificate (manifest capability `DeviceAuthentication`). The private key stays in
//! the device; use [`crate::net::TcpStream::connect_tls`] for authenticated connections.

use crate::bindings::ferrosphere::device::deviceauth as raw;
use crate::error::Result;

/// Whether a current device certificate is available.
pub fn is_certificate_ready() -> bool {
    raw::is_certificate_ready()
}

/// The certificate chain, PEM, leaf first.
pub fn certificate_chain_pem() -> Result<String> {
    Ok(raw::certificate_chain_pem()?)
}

/// `payload` (the exact bytes the app will publish) signed by the device as a telemetry batch: a
/// COSE_Sign1 whose protected header the device fills with the device ID, this app's component
/// ID, the image ID it runs from, the boot, a per-boot sequence number, the time and the device
/// certificate chain, so the cloud can check that the bytes came from this app on this device
/// (`ferro telemetry verify`, docs/provenance.md). Publish the returned bytes. At most 256 KiB,
/// and a per-app rate (`Error::LimitExceeded` beyond either).
pub fn sign_batch(payload: &[u8]) -> Result<Vec<u8>> {
    Ok(raw::sign_batch(payload)?)
}
