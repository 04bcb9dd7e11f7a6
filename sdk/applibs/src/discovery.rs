//! DNS service discovery (RFC 6763) through the device: the instances of a service type the
//! manifest lists in `AllowedConnections` (e.g. `_sample-service._tcp.local`). After a
//! discovery the app may connect to exactly the addresses and ports it returned (by address or
//! by the instance's host), with [`crate::net::TcpStream`] for `_tcp` types and
//! [`crate::net::UdpSocket`] for `_udp` ones; a later discovery of the same type replaces them.
//!
//! ```no_run
//! use applibs::discovery::discover;
//! use applibs::net::TcpStream;
//! use std::time::Duration;
//! for instance in discover("_sample-service._tcp.local", Duration::from_secs(5))? {
//!     let stream = TcpStream::connect(&instance.host, instance.port, Duration::from_secs(5))?;
//!     stream.send(b"hello")?;
//! }
//! # Ok::<(), applibs::Error>(())
//! ```

use std::time::Duration;

use crate::bindings::ferrosphere::device::servicediscovery as raw;
use crate::error::Result;

/// One discovered service instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInstance {
    /// The instance name (the first label of its DNS name).
    pub name: String,
    /// The host its SRV record names (`printer-1.local`).
    pub host: String,
    /// The port its SRV record names.
    pub port: u16,
    /// The host's addresses, as text.
    pub addresses: Vec<String>,
    /// The TXT entries as sent (`key=value` or `key`).
    pub txt: Vec<Vec<u8>>,
}

impl ServiceInstance {
    /// The value of TXT entry `key` (case-insensitive, RFC 6763 section 6.4): `Some(b"")` for a
    /// `key` or `key=` entry, `None` when there is none.
    pub fn txt_value(&self, key: &str) -> Option<&[u8]> {
        self.txt.iter().find_map(|entry| {
            let (name, value) = match entry.iter().position(|byte| *byte == b'=') {
                Some(at) => (&entry[..at], &entry[at + 1..]),
                None => (&entry[..], &[][..]),
            };
            name.eq_ignore_ascii_case(key.as_bytes()).then_some(value)
        })
    }
}

/// Discovers the instances of `service_type`, waiting at most `timeout` in all.
pub fn discover(service_type: &str, timeout: Duration) -> Result<Vec<ServiceInstance>> {
    let millis = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    Ok(raw::discover(service_type, millis)?
        .into_iter()
        .map(|instance| ServiceInstance {
            name: instance.name,
            host: instance.host,
            port: instance.port,
            addresses: instance.addresses,
            txt: instance.txt,
        })
        .collect())
}
