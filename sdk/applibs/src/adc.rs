//! ADC controllers (manifest capability `Adc`).
//!
//! ```no_run
//! let adc = applibs::adc::Adc::new("ADC-CONTROLLER-0");
//! let millivolts = adc.sample_millivolts(0)?;
//! # Ok::<(), applibs::Error>(())
//! ```

use crate::bindings::ferrosphere::device::adc as raw;
use crate::error::Result;

/// An ADC controller, named by manifest value.
#[derive(Debug, Clone)]
pub struct Adc {
    controller: String,
}

impl Adc {
    pub fn new(controller: &str) -> Self {
        Self {
            controller: controller.to_owned(),
        }
    }

    /// A raw sample of `channel`.
    pub fn sample(&self, channel: u32) -> Result<u32> {
        Ok(raw::sample(&self.controller, channel)?)
    }

    /// Bits per sample.
    pub fn sample_bits(&self) -> Result<u8> {
        Ok(raw::sample_bits(&self.controller)?)
    }

    /// Full-scale reference in millivolts.
    pub fn reference_millivolts(&self) -> Result<u32> {
        Ok(raw::reference_millivolts(&self.controller)?)
    }

    /// A sample of `channel` converted to millivolts.
    pub fn sample_millivolts(&self, channel: u32) -> Result<u32> {
        let sample = u64::from(self.sample(channel)?);
        let bits = u32::from(self.sample_bits()?.min(32));
        let reference = u64::from(self.reference_millivolts()?);
        let full_scale = (1u64 << bits).max(1);
        Ok(u32::try_from(sample * reference / full_scale).unwrap_or(u32::MAX))
    }
}
