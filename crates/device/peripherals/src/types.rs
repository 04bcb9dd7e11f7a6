//! Values and errors shared by every backend.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

/// Largest single I2C, SPI, UART or storage transfer a backend accepts (bounds host memory per
/// call whatever an app asks for).
pub const MAX_TRANSFER_BYTES: usize = 64 * 1024;

/// Longest wait any blocking backend call accepts.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

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

/// How an output drives its pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputMode {
    PushPull,
    OpenDrain,
    OpenSource,
}

/// UART parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// UART stop bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopBits {
    One,
    Two,
}

/// UART flow control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowControl {
    None,
    RtsCts,
}

/// A UART configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UartConfig {
    pub baud_rate: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: StopBits,
    pub flow_control: FlowControl,
}

impl Default for UartConfig {
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

impl UartConfig {
    /// Checks ranges every backend supports.
    pub fn validate(&self) -> Result<(), PeripheralError> {
        if !(50..=4_000_000).contains(&self.baud_rate) {
            return Err(PeripheralError::InvalidArgument(format!(
                "baud rate {} is outside 50-4000000",
                self.baud_rate
            )));
        }
        if !(5..=8).contains(&self.data_bits) {
            return Err(PeripheralError::InvalidArgument(format!(
                "{} data bits; expected 5-8",
                self.data_bits
            )));
        }
        Ok(())
    }
}

/// PWM output polarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    Normal,
    Inversed,
}

/// The state of one PWM channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PwmState {
    pub period_ns: u32,
    pub duty_cycle_ns: u32,
    pub polarity: Polarity,
    pub enabled: bool,
}

impl PwmState {
    /// Checks that the duty cycle fits the period and an enabled channel has a period.
    pub fn validate(&self) -> Result<(), PeripheralError> {
        if self.duty_cycle_ns > self.period_ns {
            return Err(PeripheralError::InvalidArgument(format!(
                "duty cycle {} ns exceeds period {} ns",
                self.duty_cycle_ns, self.period_ns
            )));
        }
        if self.enabled && self.period_ns == 0 {
            return Err(PeripheralError::InvalidArgument(
                "an enabled PWM channel needs a period above 0 ns".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Why a peripheral operation failed. Every message names the resource.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PeripheralError {
    /// The board has no such pin, bus, controller or channel.
    #[error("{0} does not exist on this board")]
    NoSuchResource(String),
    /// The resource exists but is not open.
    #[error("{0} is not open")]
    NotOpen(String),
    /// The resource is open in another mode (e.g. writing an input pin).
    #[error("{0}")]
    WrongMode(String),
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No I2C device acknowledged its address.
    #[error("no device answers at I2C address {address:#04x} on {bus}")]
    Nack { bus: String, address: u16 },
    /// The operating system or device failed.
    #[error("I/O error on {resource}: {message}")]
    Io { resource: String, message: String },
    /// The backend cannot do this.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Nothing happened before the timeout.
    #[error("timed out")]
    TimedOut,
}

impl PeripheralError {
    pub(crate) fn io(resource: impl fmt::Display, error: impl fmt::Display) -> Self {
        Self::Io {
            resource: resource.to_string(),
            message: error.to_string(),
        }
    }
}

pub(crate) fn check_len(what: &str, len: usize) -> Result<(), PeripheralError> {
    if len > MAX_TRANSFER_BYTES {
        return Err(PeripheralError::InvalidArgument(format!(
            "{what} of {len} bytes exceeds the {MAX_TRANSFER_BYTES}-byte limit"
        )));
    }
    Ok(())
}

pub(crate) fn check_i2c_address(bus: &str, address: u16) -> Result<(), PeripheralError> {
    if address > 0x7f {
        return Err(PeripheralError::InvalidArgument(format!(
            "I2C address {address:#x} on {bus} is not a 7-bit address"
        )));
    }
    Ok(())
}
