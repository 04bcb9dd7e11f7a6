//! The uplink on the device (feature `device`): the app's mutable storage as the spool's
//! [`Storage`], the device's TLS connection (authenticated by the device certificate, whose key
//! the app never sees) as the [`Connector`], the device's monotonic clock, and the device's
//! batch signature (`deviceauth.sign-batch`, docs/provenance.md) as the [`Seal`].

use std::io;
use std::time::Duration;

use applibs::net::TcpStream;

use crate::mqtt::Transport;
use crate::spool::Storage;
use crate::{Clock, Connector, Seal, SealError};

/// The app's mutable storage (manifest capability `MutableStorage`), all of it the spool's.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeviceStorage;

impl Storage for DeviceStorage {
    fn capacity(&self) -> u64 {
        applibs::storage::quota()
    }

    fn read(&mut self, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        Ok(applibs::storage::read(offset, len)?)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        Ok(applibs::storage::write(offset, data)?)
    }
}

/// The device's TLS socket to the broker.
pub struct DeviceTransport(TcpStream);

impl io::Read for DeviceTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl io::Write for DeviceTransport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Transport for DeviceTransport {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.0
            .set_read_timeout(timeout.max(Duration::from_millis(1)));
        Ok(())
    }
}

/// Connects to the broker with TLS and the device certificate (manifest capabilities
/// `AllowedConnections` and `DeviceAuthentication`).
#[derive(Debug, Clone)]
pub struct TlsConnector {
    pub host: String,
    pub port: u16,
    pub timeout: Duration,
}

impl Connector for TlsConnector {
    type Transport = DeviceTransport;

    fn connect(&mut self) -> io::Result<DeviceTransport> {
        Ok(DeviceTransport(TcpStream::connect_tls(
            &self.host,
            self.port,
            self.timeout,
        )?))
    }
}

/// The device's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeviceClock;

impl Clock for DeviceClock {
    fn monotonic_ms(&self) -> u64 {
        applibs::time::monotonic_ms()
    }

    fn sleep(&self, duration: Duration) {
        applibs::time::sleep(duration);
    }
}

/// Seals each batch with the device key through the root of trust (manifest capability
/// `DeviceAuthentication`): a COSE_Sign1 whose protected header names the device, this app,
/// the image it runs from, the boot, a sequence number and the time.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeviceSeal;

impl Seal for DeviceSeal {
    fn seal(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, SealError> {
        match applibs::deviceauth::sign_batch(payload) {
            Ok(sign1) => Ok(Some(sign1)),
            // The app's signing rate (the runtime's token bucket refills) or no current device
            // certificate yet (the device has not attested): both pass.
            Err(error @ (applibs::Error::LimitExceeded(_) | applibs::Error::NoSuchResource(_))) => {
                Err(SealError::Later(error.to_string()))
            }
            Err(error) => Err(SealError::Refused(error.to_string())),
        }
    }
}

/// Logs the uplink's events: errors (a drop from a full spool, a bad command, a storage
/// failure) at error level, which the device reports as error events in the tenant's report.
pub fn log_events(events: Vec<crate::Event>) {
    use crate::Event;
    for event in events {
        match event {
            Event::Connected { session_present } => applibs::log::info(&format!(
                "guardian: connected to the broker (session present: {session_present})"
            )),
            Event::Disconnected { reason, retry_in } => applibs::log::warning(&format!(
                "guardian: broker unreachable ({reason}); retrying in {} ms",
                retry_in.as_millis()
            )),
            Event::Dropped { count, total } => applibs::log::error(&format!(
                "guardian: spool full: dropped the {count} oldest batches ({total} in all)"
            )),
            Event::BadCommand(error) => {
                applibs::log::error(&format!("guardian: command refused: {error}"))
            }
            Event::Storage(error) => {
                applibs::log::error(&format!("guardian: spool storage failed: {error}"))
            }
            Event::Unsigned { batch, reason } => applibs::log::error(&format!(
                "guardian: batch {batch} stored unsigned: {reason}"
            )),
        }
    }
}
