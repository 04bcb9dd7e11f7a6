//! PWM controllers (manifest capability `Pwm`).
//!
//! ```no_run
//! use applibs::pwm::{Pwm, State};
//! let pwm = Pwm::new("PWM-CONTROLLER-2");
//! pwm.apply(1, State::enabled(1_000_000, 250_000))?; // 1 kHz, 25 %
//! # Ok::<(), applibs::Error>(())
//! ```

use crate::bindings::ferrosphere::device::pwm as raw;
use crate::error::Result;

pub use raw::Polarity;

/// The state of one channel.
#[derive(Debug, Clone, Copy)]
pub struct State {
    pub period_ns: u32,
    pub duty_cycle_ns: u32,
    pub polarity: Polarity,
    pub enabled: bool,
}

impl State {
    /// An enabled channel with normal polarity.
    pub fn enabled(period_ns: u32, duty_cycle_ns: u32) -> Self {
        Self {
            period_ns,
            duty_cycle_ns,
            polarity: Polarity::Normal,
            enabled: true,
        }
    }
}

/// A PWM controller, named by manifest value.
#[derive(Debug, Clone)]
pub struct Pwm {
    controller: String,
}

impl Pwm {
    pub fn new(controller: &str) -> Self {
        Self {
            controller: controller.to_owned(),
        }
    }

    /// Applies `state` to `channel`.
    pub fn apply(&self, channel: u32, state: State) -> Result<()> {
        Ok(raw::apply(
            &self.controller,
            channel,
            raw::State {
                period_ns: state.period_ns,
                duty_cycle_ns: state.duty_cycle_ns,
                polarity: state.polarity,
                enabled: state.enabled,
            },
        )?)
    }
}
