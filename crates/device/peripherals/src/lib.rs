//! Peripherals for Ferrosphere devices behind one trait family.
//!
//! This crate owns the peripheral traits ([`GpioBackend`], [`UartBackend`], [`I2cBackend`],
//! [`SpiBackend`], [`AdcBackend`], [`PwmBackend`], bundled as [`Peripherals`]), the virtual
//! board ([`VirtualBoard`]: the pins and buses of a hardware definition with simulated LEDs,
//! buttons, a TMP102-style I2C temperature sensor, UART peers, SPI echo, ADC channels and PWM
//! recorders, all readable and drivable by tests), the Linux backends (sysfs PWM and IIO ADC
//! always; GPIO character device, i2c-dev, spidev and serial ports with feature `linux`), and
//! peripheral ownership ([`OwnershipTable`]: one app per peripheral, pin block and server port).
//! Backends know nothing of apps or manifests' permissions: the runtime checks those. It depends
//! on `ferro-manifest` only (for hardware definitions and capability types) and must not depend
//! on the runtime, wasmtime, the device or the service.

mod ownership;
mod sysfs;
mod traits;
mod types;
mod virtual_board;

#[cfg(feature = "linux")]
pub mod linux;

pub use ownership::{OwnershipError, OwnershipTable, PinBlocks, Resource};
pub use sysfs::{IioAdc, SysfsPwm};
pub use traits::{
    AdcBackend, GpioBackend, I2cBackend, Peripherals, PwmBackend, SpiBackend, UartBackend,
};
pub use types::{
    FlowControl, Level, MAX_TIMEOUT, MAX_TRANSFER_BYTES, OutputMode, Parity, PeripheralError,
    Polarity, PwmState, StopBits, UartConfig,
};
pub use virtual_board::{
    ADC_BITS, ADC_CHANNELS, ADC_REFERENCE_MILLIVOLTS, DEFAULT_TEMPERATURE_SENSOR_ADDRESS,
    PWM_CHANNELS, PinMode, UART_QUEUE_BYTES, VirtualBoard,
};
