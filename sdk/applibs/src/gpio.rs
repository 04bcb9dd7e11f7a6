//! GPIO pins (manifest capability `Gpio`). A pin number is the manifest value (after `$NAME`
//! resolution); use the constants generated from your hardware definition.
//!
//! ```no_run
//! use applibs::gpio::{Level, OutputPin};
//! let mut led = OutputPin::open(8, Level::High)?;
//! led.set(Level::Low)?; // on: the virtual board's LEDs are active low
//! # Ok::<(), applibs::Error>(())
//! ```

use crate::bindings::ferrosphere::device::gpio as raw;
use crate::error::Result;

/// A pin's logical level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Low,
    High,
}

impl Level {
    /// The other level.
    pub fn toggled(self) -> Self {
        match self {
            Self::Low => Self::High,
            Self::High => Self::Low,
        }
    }
}

impl From<Level> for raw::Level {
    fn from(level: Level) -> Self {
        match level {
            Level::Low => Self::Low,
            Level::High => Self::High,
        }
    }
}

impl From<raw::Level> for Level {
    fn from(level: raw::Level) -> Self {
        match level {
            raw::Level::Low => Self::Low,
            raw::Level::High => Self::High,
        }
    }
}

/// How an output drives its pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OutputMode {
    #[default]
    PushPull,
    OpenDrain,
    OpenSource,
}

impl From<OutputMode> for raw::OutputMode {
    fn from(mode: OutputMode) -> Self {
        match mode {
            OutputMode::PushPull => Self::PushPull,
            OutputMode::OpenDrain => Self::OpenDrain,
            OutputMode::OpenSource => Self::OpenSource,
        }
    }
}

/// An output pin; closed when dropped.
#[derive(Debug)]
pub struct OutputPin {
    pin: u32,
    level: Level,
}

impl OutputPin {
    /// Opens `pin` as a push-pull output driving `initial`.
    pub fn open(pin: u32, initial: Level) -> Result<Self> {
        Self::open_with_mode(pin, OutputMode::PushPull, initial)
    }

    /// Opens `pin` as an output with `mode`.
    pub fn open_with_mode(pin: u32, mode: OutputMode, initial: Level) -> Result<Self> {
        raw::open_output(pin, mode.into(), initial.into())?;
        Ok(Self {
            pin,
            level: initial,
        })
    }

    /// The pin number.
    pub fn pin(&self) -> u32 {
        self.pin
    }

    /// Drives `level`.
    pub fn set(&mut self, level: Level) -> Result<()> {
        raw::set_level(self.pin, level.into())?;
        self.level = level;
        Ok(())
    }

    /// Drives the other level; returns the new one.
    pub fn toggle(&mut self) -> Result<Level> {
        let next = self.level.toggled();
        self.set(next)?;
        Ok(next)
    }

    /// The level last driven.
    pub fn level(&self) -> Level {
        self.level
    }
}

impl Drop for OutputPin {
    fn drop(&mut self) {
        raw::close(self.pin);
    }
}

/// An input pin; closed when dropped.
#[derive(Debug)]
pub struct InputPin {
    pin: u32,
}

impl InputPin {
    /// Opens `pin` as an input.
    pub fn open(pin: u32) -> Result<Self> {
        raw::open_input(pin)?;
        Ok(Self { pin })
    }

    /// The pin number.
    pub fn pin(&self) -> u32 {
        self.pin
    }

    /// Reads the level.
    pub fn read(&self) -> Result<Level> {
        Ok(raw::get_level(self.pin)?.into())
    }

    /// Whether the pin reads low (an active-low button is pressed).
    pub fn is_low(&self) -> Result<bool> {
        Ok(self.read()? == Level::Low)
    }
}

impl Drop for InputPin {
    fn drop(&mut self) {
        raw::close(self.pin);
    }
}

/// Drives several open outputs in one host call.
pub fn set_many(values: &[(u32, Level)]) -> Result<()> {
    let values: Vec<(u32, raw::Level)> = values
        .iter()
        .map(|(pin, level)| (*pin, (*level).into()))
        .collect();
    Ok(raw::set_levels(&values)?)
}

/// Reads several open pins in one host call.
pub fn read_many(pins: &[u32]) -> Result<Vec<Level>> {
    Ok(raw::get_levels(pins)?
        .into_iter()
        .map(Level::from)
        .collect())
}
