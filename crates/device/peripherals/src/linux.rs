//! Linux device backends (feature `linux`): GPIO character device (`gpiocdev`, uAPI v2),
//! i2c-dev (`i2cdev`), spidev (`spidev`) and serial ports (`serialport`, without libudev).
//!
//! These need real device nodes, which the test machines lack: they are compiled and linted by
//! the test command but exercised only on hardware. Each maps manifest values to device paths
//! given at construction; GPIO numbers are line offsets on one chip.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use gpiocdev::line::{Drive, Value};
use i2cdev::core::{I2CMessage, I2CTransfer};
use i2cdev::linux::{LinuxI2CBus, LinuxI2CMessage};

use crate::traits::{GpioBackend, I2cBackend, SpiBackend, UartBackend};
use crate::types::{
    FlowControl, Level, MAX_TIMEOUT, OutputMode, Parity, PeripheralError, StopBits, UartConfig,
    check_i2c_address, check_len,
};

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// GPIO lines of one character device (`/dev/gpiochipN`).
#[derive(Debug)]
pub struct LinuxGpio {
    chip: PathBuf,
    requests: Mutex<BTreeMap<u32, gpiocdev::Request>>,
}

impl LinuxGpio {
    pub fn new(chip: PathBuf) -> Self {
        Self {
            chip,
            requests: Mutex::new(BTreeMap::new()),
        }
    }

    fn value(level: Level) -> Value {
        match level {
            Level::Low => Value::Inactive,
            Level::High => Value::Active,
        }
    }

    fn request(
        &self,
        pin: u32,
        configure: impl FnOnce(&mut gpiocdev::request::Builder),
    ) -> Result<(), PeripheralError> {
        let mut requests = lock(&self.requests);
        // Re-opening releases the previous request first.
        requests.remove(&pin);
        let mut builder = gpiocdev::Request::builder();
        builder
            .on_chip(self.chip.clone())
            .with_consumer("ferrosphere")
            .with_line(pin);
        configure(&mut builder);
        let request = builder
            .request()
            .map_err(|error| PeripheralError::io(format!("GPIO {pin}"), error))?;
        requests.insert(pin, request);
        Ok(())
    }
}

impl GpioBackend for LinuxGpio {
    fn open_output(
        &self,
        pin: u32,
        mode: OutputMode,
        initial: Level,
    ) -> Result<(), PeripheralError> {
        let drive = match mode {
            OutputMode::PushPull => Drive::PushPull,
            OutputMode::OpenDrain => Drive::OpenDrain,
            OutputMode::OpenSource => Drive::OpenSource,
        };
        self.request(pin, |builder| {
            builder.as_output(Self::value(initial)).with_drive(drive);
        })
    }

    fn open_input(&self, pin: u32) -> Result<(), PeripheralError> {
        self.request(pin, |builder| {
            builder.as_input();
        })
    }

    fn set_level(&self, pin: u32, level: Level) -> Result<(), PeripheralError> {
        let requests = lock(&self.requests);
        let request = requests
            .get(&pin)
            .ok_or_else(|| PeripheralError::NotOpen(format!("GPIO {pin}")))?;
        request
            .set_value(pin, Self::value(level))
            .map_err(|error| PeripheralError::io(format!("GPIO {pin}"), error))
    }

    fn get_level(&self, pin: u32) -> Result<Level, PeripheralError> {
        let requests = lock(&self.requests);
        let request = requests
            .get(&pin)
            .ok_or_else(|| PeripheralError::NotOpen(format!("GPIO {pin}")))?;
        match request.value(pin) {
            Ok(Value::Active) => Ok(Level::High),
            Ok(Value::Inactive) => Ok(Level::Low),
            Err(error) => Err(PeripheralError::io(format!("GPIO {pin}"), error)),
        }
    }

    fn close(&self, pin: u32) {
        lock(&self.requests).remove(&pin);
    }
}

/// I2C controllers through i2c-dev: manifest value to `/dev/i2c-N`.
#[derive(Debug, Clone, Default)]
pub struct LinuxI2c {
    buses: BTreeMap<String, PathBuf>,
}

impl LinuxI2c {
    pub fn new(buses: BTreeMap<String, PathBuf>) -> Self {
        Self { buses }
    }

    fn transfer(
        &self,
        bus: &str,
        address: u16,
        write: &[u8],
        read: &mut [u8],
    ) -> Result<(), PeripheralError> {
        check_i2c_address(bus, address)?;
        check_len("an I2C write", write.len())?;
        check_len("an I2C read", read.len())?;
        let path = self
            .buses
            .get(bus)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("I2C bus {bus}")))?;
        let mut device = LinuxI2CBus::new(path).map_err(|error| PeripheralError::io(bus, error))?;
        let mut messages = Vec::with_capacity(2);
        if !write.is_empty() {
            messages.push(LinuxI2CMessage::write(write).with_address(address));
        }
        if !read.is_empty() {
            messages.push(LinuxI2CMessage::read(read).with_address(address));
        }
        if messages.is_empty() {
            return Ok(());
        }
        device
            .transfer(&mut messages)
            .map(|_| ())
            .map_err(|error| PeripheralError::io(bus, error))
    }
}

impl I2cBackend for LinuxI2c {
    fn write(&self, bus: &str, address: u16, data: &[u8]) -> Result<(), PeripheralError> {
        self.transfer(bus, address, data, &mut [])
    }

    fn read(&self, bus: &str, address: u16, len: usize) -> Result<Vec<u8>, PeripheralError> {
        check_len("an I2C read", len)?;
        let mut buffer = vec![0; len];
        self.transfer(bus, address, &[], &mut buffer)?;
        Ok(buffer)
    }

    fn write_read(
        &self,
        bus: &str,
        address: u16,
        data: &[u8],
        read_len: usize,
    ) -> Result<Vec<u8>, PeripheralError> {
        check_len("an I2C read", read_len)?;
        let mut buffer = vec![0; read_len];
        self.transfer(bus, address, data, &mut buffer)?;
        Ok(buffer)
    }
}

/// SPI controllers through spidev: (manifest value, chip select) to `/dev/spidevB.C`.
#[derive(Debug, Clone, Default)]
pub struct LinuxSpi {
    devices: BTreeMap<(String, i32), PathBuf>,
}

impl LinuxSpi {
    pub fn new(devices: BTreeMap<(String, i32), PathBuf>) -> Self {
        Self { devices }
    }
}

impl SpiBackend for LinuxSpi {
    fn transfer(
        &self,
        bus: &str,
        chip_select: i32,
        data: &[u8],
    ) -> Result<Vec<u8>, PeripheralError> {
        check_len("an SPI transfer", data.len())?;
        let path = self
            .devices
            .get(&(bus.to_owned(), chip_select))
            .ok_or_else(|| {
                PeripheralError::NoSuchResource(format!("SPI {bus} chip select {chip_select}"))
            })?;
        let device = spidev::Spidev::open(path).map_err(|error| PeripheralError::io(bus, error))?;
        let mut read = vec![0; data.len()];
        let mut transfer = spidev::SpidevTransfer::read_write(data, &mut read);
        device
            .transfer(&mut transfer)
            .map_err(|error| PeripheralError::io(bus, error))?;
        Ok(read)
    }
}

/// UARTs through serial ports: manifest value to `/dev/ttyX`.
#[derive(Debug, Default)]
pub struct LinuxUart {
    paths: BTreeMap<String, PathBuf>,
    open: Mutex<BTreeMap<String, Box<dyn serialport::SerialPort>>>,
}

impl LinuxUart {
    pub fn new(paths: BTreeMap<String, PathBuf>) -> Self {
        Self {
            paths,
            open: Mutex::new(BTreeMap::new()),
        }
    }
}

impl UartBackend for LinuxUart {
    fn open(&self, uart: &str, config: &UartConfig) -> Result<(), PeripheralError> {
        config.validate()?;
        let path = self
            .paths
            .get(uart)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("UART {uart}")))?;
        let data_bits = match config.data_bits {
            5 => serialport::DataBits::Five,
            6 => serialport::DataBits::Six,
            7 => serialport::DataBits::Seven,
            _ => serialport::DataBits::Eight,
        };
        let port = serialport::new(path.to_string_lossy(), config.baud_rate)
            .data_bits(data_bits)
            .parity(match config.parity {
                Parity::None => serialport::Parity::None,
                Parity::Even => serialport::Parity::Even,
                Parity::Odd => serialport::Parity::Odd,
            })
            .stop_bits(match config.stop_bits {
                StopBits::One => serialport::StopBits::One,
                StopBits::Two => serialport::StopBits::Two,
            })
            .flow_control(match config.flow_control {
                FlowControl::None => serialport::FlowControl::None,
                FlowControl::RtsCts => serialport::FlowControl::Hardware,
            })
            .open()
            .map_err(|error| PeripheralError::io(format!("UART {uart}"), error))?;
        lock(&self.open).insert(uart.to_owned(), port);
        Ok(())
    }

    fn write(&self, uart: &str, data: &[u8]) -> Result<usize, PeripheralError> {
        check_len("a UART write", data.len())?;
        let mut open = lock(&self.open);
        let port = open
            .get_mut(uart)
            .ok_or_else(|| PeripheralError::NotOpen(format!("UART {uart}")))?;
        port.write(data)
            .map_err(|error| PeripheralError::io(format!("UART {uart}"), error))
    }

    fn read(
        &self,
        uart: &str,
        max_len: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, PeripheralError> {
        check_len("a UART read", max_len)?;
        let mut open = lock(&self.open);
        let port = open
            .get_mut(uart)
            .ok_or_else(|| PeripheralError::NotOpen(format!("UART {uart}")))?;
        port.set_timeout(timeout.min(MAX_TIMEOUT))
            .map_err(|error| PeripheralError::io(format!("UART {uart}"), error))?;
        let mut buffer = vec![0; max_len];
        match port.read(&mut buffer) {
            Ok(count) => {
                buffer.truncate(count);
                Ok(buffer)
            }
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => Ok(Vec::new()),
            Err(error) => Err(PeripheralError::io(format!("UART {uart}"), error)),
        }
    }

    fn close(&self, uart: &str) {
        lock(&self.open).remove(uart);
    }
}
