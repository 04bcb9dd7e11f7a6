//! SPI controllers (manifest capability `SpiMaster`).
//!
//! ```no_run
//! let bus = applibs::spi::SpiMaster::new("ISU1");
//! let reply = bus.transfer(-1, &[0x8f, 0x00])?;
//! # Ok::<(), applibs::Error>(())
//! ```

use crate::bindings::ferrosphere::device::spi as raw;
use crate::error::Result;

/// An SPI controller, named by manifest value (`ISU1`).
#[derive(Debug, Clone)]
pub struct SpiMaster {
    bus: String,
}

impl SpiMaster {
    pub fn new(bus: &str) -> Self {
        Self {
            bus: bus.to_owned(),
        }
    }

    /// Full-duplex transfer with `chip_select` (the board's constant, e.g. `-1` for A).
    pub fn transfer(&self, chip_select: i32, data: &[u8]) -> Result<Vec<u8>> {
        Ok(raw::transfer(&self.bus, chip_select, data)?)
    }
}
