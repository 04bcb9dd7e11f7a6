//! The peripheral trait family and [`Peripherals`], the set a runtime is given.
//!
//! Backends are shared by every app on the device and know nothing of apps: the runtime checks
//! each call against the calling app's manifest, and ownership ([`crate::OwnershipTable`])
//! guarantees one app per peripheral, so a backend never arbitrates between apps.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::types::{Level, OutputMode, PeripheralError, PwmState, UartConfig};

/// GPIO pins, numbered as in app manifests.
pub trait GpioBackend: Send + Sync + fmt::Debug {
    /// Opens `pin` as an output driving `initial`.
    fn open_output(
        &self,
        pin: u32,
        mode: OutputMode,
        initial: Level,
    ) -> Result<(), PeripheralError>;
    /// Opens `pin` as an input.
    fn open_input(&self, pin: u32) -> Result<(), PeripheralError>;
    /// Drives an open output.
    fn set_level(&self, pin: u32, level: Level) -> Result<(), PeripheralError>;
    /// Reads an open pin.
    fn get_level(&self, pin: u32) -> Result<Level, PeripheralError>;
    /// Closes `pin` (an input again, undriven); closing a closed pin does nothing.
    fn close(&self, pin: u32);
}

/// UARTs, named by manifest value (`ISU0`).
pub trait UartBackend: Send + Sync + fmt::Debug {
    fn open(&self, uart: &str, config: &UartConfig) -> Result<(), PeripheralError>;
    /// Writes bytes; returns how many were accepted.
    fn write(&self, uart: &str, data: &[u8]) -> Result<usize, PeripheralError>;
    /// Reads up to `max_len` bytes, waiting at most `timeout` for the first; empty on timeout.
    fn read(
        &self,
        uart: &str,
        max_len: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, PeripheralError>;
    fn close(&self, uart: &str);
}

/// I2C controllers, named by manifest value.
pub trait I2cBackend: Send + Sync + fmt::Debug {
    fn write(&self, bus: &str, address: u16, data: &[u8]) -> Result<(), PeripheralError>;
    fn read(&self, bus: &str, address: u16, len: usize) -> Result<Vec<u8>, PeripheralError>;
    /// Write then read with a repeated start.
    fn write_read(
        &self,
        bus: &str,
        address: u16,
        data: &[u8],
        read_len: usize,
    ) -> Result<Vec<u8>, PeripheralError>;
}

/// SPI controllers, named by manifest value.
pub trait SpiBackend: Send + Sync + fmt::Debug {
    /// Full-duplex transfer of `data`; returns as many bytes read.
    fn transfer(
        &self,
        bus: &str,
        chip_select: i32,
        data: &[u8],
    ) -> Result<Vec<u8>, PeripheralError>;
}

/// ADC controllers, named by manifest value.
pub trait AdcBackend: Send + Sync + fmt::Debug {
    fn sample(&self, controller: &str, channel: u32) -> Result<u32, PeripheralError>;
    fn sample_bits(&self, controller: &str) -> Result<u8, PeripheralError>;
    fn reference_millivolts(&self, controller: &str) -> Result<u32, PeripheralError>;
}

/// PWM controllers, named by manifest value.
pub trait PwmBackend: Send + Sync + fmt::Debug {
    fn apply(
        &self,
        controller: &str,
        channel: u32,
        state: &PwmState,
    ) -> Result<(), PeripheralError>;
}

/// The peripherals of one device: a backend per kind. Mix backends freely (e.g. Linux GPIO and
/// I2C with a virtual UART).
#[derive(Debug, Clone)]
pub struct Peripherals {
    pub gpio: Arc<dyn GpioBackend>,
    pub uart: Arc<dyn UartBackend>,
    pub i2c: Arc<dyn I2cBackend>,
    pub spi: Arc<dyn SpiBackend>,
    pub adc: Arc<dyn AdcBackend>,
    pub pwm: Arc<dyn PwmBackend>,
}

impl Peripherals {
    /// Every kind served by one backend (e.g. [`crate::VirtualBoard`]).
    pub fn all_from<B>(board: Arc<B>) -> Self
    where
        B: GpioBackend + UartBackend + I2cBackend + SpiBackend + AdcBackend + PwmBackend + 'static,
    {
        Self {
            gpio: board.clone(),
            uart: board.clone(),
            i2c: board.clone(),
            spi: board.clone(),
            adc: board.clone(),
            pwm: board,
        }
    }
}
