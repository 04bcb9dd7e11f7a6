//! Network access through the device (manifest capabilities `AllowedConnections`,
//! `AllowedTcpServerPorts`, `AllowedUdpServerPorts`). The device checks every host and port
//! against the manifest: a host name and its address are different entries.
//!
//! ```no_run
//! use applibs::net::TcpStream;
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! let mut stream = TcpStream::connect("telemetry.example.com", 8883, Duration::from_secs(5))?;
//! stream.write_all(b"ping")?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::time::Duration;

use crate::bindings::ferrosphere::device::networking as raw;
use crate::error::Result;

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

/// A connected TCP (or TLS) stream; closed when dropped. Reads wait at most its read timeout.
#[derive(Debug)]
pub struct TcpStream {
    handle: u32,
    read_timeout: Duration,
}

impl TcpStream {
    /// Connects to `host:port`.
    pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<Self> {
        let handle = raw::tcp_connect(host, port, millis(timeout))?;
        Ok(Self::from_handle(handle))
    }

    /// Connects with TLS authenticated by the device certificate (`DeviceAuthentication`).
    pub fn connect_tls(host: &str, port: u16, timeout: Duration) -> Result<Self> {
        let handle = raw::tls_connect(host, port, millis(timeout))?;
        Ok(Self::from_handle(handle))
    }

    fn from_handle(handle: u32) -> Self {
        Self {
            handle,
            read_timeout: Duration::from_secs(30),
        }
    }

    /// Sets how long reads wait.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.read_timeout = timeout;
    }

    /// Sends bytes; returns how many were sent.
    pub fn send(&self, data: &[u8]) -> Result<usize> {
        Ok(raw::send(self.handle, data)? as usize)
    }

    /// Receives up to `max_len` bytes; empty when the peer closed.
    pub fn receive(&self, max_len: u32, timeout: Duration) -> Result<Vec<u8>> {
        Ok(raw::receive(self.handle, max_len, millis(timeout))?)
    }
}

impl io::Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let max = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let data = self.receive(max, self.read_timeout)?;
        let count = data.len().min(buf.len());
        buf[..count].copy_from_slice(&data[..count]);
        Ok(count)
    }
}

impl io::Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.send(buf)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        raw::close(self.handle);
    }
}

/// A TCP listener on a port from `AllowedTcpServerPorts`; closed when dropped.
#[derive(Debug)]
pub struct TcpListener {
    handle: u32,
}

impl TcpListener {
    pub fn bind(port: u16) -> Result<Self> {
        Ok(Self {
            handle: raw::tcp_listen(port)?,
        })
    }

    /// Accepts one connection, waiting at most `timeout`.
    pub fn accept(&self, timeout: Duration) -> Result<TcpStream> {
        let handle = raw::tcp_accept(self.handle, millis(timeout))?;
        Ok(TcpStream::from_handle(handle))
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        raw::close(self.handle);
    }
}

/// A UDP socket; closed when dropped.
#[derive(Debug)]
pub struct UdpSocket {
    handle: u32,
}

impl UdpSocket {
    /// Binds a port from `AllowedUdpServerPorts`, or `0` for an ephemeral client port.
    pub fn bind(port: u16) -> Result<Self> {
        Ok(Self {
            handle: raw::udp_bind(port)?,
        })
    }

    /// Sends a datagram to an allowed host.
    pub fn send_to(&self, host: &str, port: u16, data: &[u8]) -> Result<usize> {
        Ok(raw::udp_send_to(self.handle, host, port, data)? as usize)
    }

    /// Receives one datagram and its sender's address.
    pub fn receive(&self, max_len: u32, timeout: Duration) -> Result<(Vec<u8>, String)> {
        Ok(raw::udp_receive(self.handle, max_len, millis(timeout))?)
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        raw::close(self.handle);
    }
}
