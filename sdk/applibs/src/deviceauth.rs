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
