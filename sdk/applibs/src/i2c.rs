//! I2C controllers (manifest capability `I2cMaster`).
//!
//! ```no_run
//! use applibs::i2c::I2cMaster;
//! let bus = I2cMaster::new("ISU2");
//! let raw = bus.write_read(0x48, &[0x00], 2)?; // TMP102 temperature register
//! # Ok::<(), applibs::Error>(())
//! ```

use crate::bindings::ferrosphere::device::i2c as raw;
use crate::error::Result;

/// An I2C controller, named by manifest value (`ISU2`).
#[derive(Debug, Clone)]
pub struct I2cMaster {
    bus: String,
}

impl I2cMaster {
    /// A handle on `bus` (no host call; permission is checked on each transfer).
    pub fn new(bus: &str) -> Self {
        Self {
            bus: bus.to_owned(),
        }
    }

    /// Writes `data` to the device at 7-bit `address`.
    pub fn write(&self, address: u16, data: &[u8]) -> Result<()> {
        Ok(raw::write(&self.bus, address, data)?)
    }

    /// Reads `len` bytes from the device at `address`.
    pub fn read(&self, address: u16, len: u32) -> Result<Vec<u8>> {
        Ok(raw::read(&self.bus, address, len)?)
    }

    /// Writes then reads with a repeated start (a register read).
    pub fn write_read(&self, address: u16, data: &[u8], read_len: u32) -> Result<Vec<u8>> {
        Ok(raw::write_read(&self.bus, address, data, read_len)?)
    }
}
