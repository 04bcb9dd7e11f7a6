//! UARTs (manifest capability `Uart`), named by manifest value (`ISU0`).
//!
//! ```no_run
//! use applibs::uart::{Config, Uart};
//! use std::time::Duration;
//! let uart = Uart::open("ISU0", Config::default())?;
//! uart.write_all(b"hello\n")?;
//! let reply = uart.read(64, Duration::from_millis(500))?;
//! # Ok::<(), applibs::Error>(())
//! ```

use std::time::Duration;

use crate::bindings::ferrosphere::device::uart as raw;
use crate::error::{Error, Result};

pub use raw::{FlowControl, Parity, StopBits};

/// A UART configuration; the default is 115200 8N1 without flow control.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub baud_rate: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: StopBits,
    pub flow_control: FlowControl,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            baud_rate: 115_200,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: StopBits::One,
            flow_control: FlowControl::None,
        }
    }
}

/// An open UART; closed when dropped.
#[derive(Debug)]
pub struct Uart {
    id: String,
}

impl Uart {
    /// Opens the UART `id` with `config`.
    pub fn open(id: &str, config: Config) -> Result<Self> {
        raw::open(
            id,
            raw::Config {
                baud_rate: config.baud_rate,
                data_bits: config.data_bits,
                parity: config.parity,
                stop_bits: config.stop_bits,
                flow_control: config.flow_control,
            },
        )?;
        Ok(Self { id: id.to_owned() })
    }

    /// Writes what the UART accepts now; returns the count.
    pub fn write(&self, data: &[u8]) -> Result<usize> {
        Ok(raw::write(&self.id, data)? as usize)
    }

    /// Writes everything, or fails when the UART stops accepting bytes.
    pub fn write_all(&self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let written = self.write(data)?;
            if written == 0 {
                return Err(Error::Io(format!("UART {} accepts no more bytes", self.id)));
            }
            data = &data[written..];
        }
        Ok(())
    }

    /// Reads up to `max_len` bytes, waiting at most `timeout`; empty if nothing arrived.
    pub fn read(&self, max_len: u32, timeout: Duration) -> Result<Vec<u8>> {
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        Ok(raw::read(&self.id, max_len, timeout_ms)?)
    }
}

impl Drop for Uart {
    fn drop(&mut self) {
        raw::close(&self.id);
    }
}
