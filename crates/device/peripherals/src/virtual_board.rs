//! The virtual board: the pins, buses and controllers of a hardware definition, with simulated
//! parts that tests (and later the local device API) read and drive.
//!
//! Built by [`VirtualBoard::from_hardware_definition`]:
//! - every `Gpio` with a numeric `AppManifestValue` is a pin; a `Gpio` whose name contains `LED`
//!   is an LED (active low, as on the MT3620 boards: driving the pin low lights it), one whose
//!   name contains `BUTTON` is a button (active low: pressed pulls the pin low);
//! - every `Uart` value is a UART wired to a simulated peer with bounded queues both ways
//!   (optionally looping the app's bytes back);
//! - every `I2cMaster` value is a bus; a TMP102-style temperature sensor sits on each bus whose
//!   peripheral name contains `SENSOR`, at the address of the `int` named
//!   `*TEMPERATURE_SENSOR_ADDRESS` (0x48 when the definition has none);
//! - every `SpiMaster` value is a bus whose simulated device echoes what it receives;
//! - every `Adc` value is a 12-bit, 8-channel controller with a 2500 mV reference; channel values
//!   are set by tests (the potentiometer starts at mid-scale);
//! - every `Pwm` value is a 4-channel controller that records the last state applied.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferro_manifest::{AppManifestValue, HardwareDefinition, PeripheralType};

use crate::traits::{AdcBackend, GpioBackend, I2cBackend, PwmBackend, SpiBackend, UartBackend};
use crate::types::{
    Level, MAX_TIMEOUT, OutputMode, PeripheralError, PwmState, UartConfig, check_i2c_address,
    check_len,
};

/// Bytes each direction of a simulated UART buffers before refusing more.
pub const UART_QUEUE_BYTES: usize = 64 * 1024;
/// ADC resolution of the virtual controllers.
pub const ADC_BITS: u8 = 12;
/// ADC channels per virtual controller.
pub const ADC_CHANNELS: u32 = 8;
/// ADC reference of the virtual controllers, in millivolts.
pub const ADC_REFERENCE_MILLIVOLTS: u32 = 2500;
/// PWM channels per virtual controller.
pub const PWM_CHANNELS: u32 = 4;
/// I2C address of the temperature sensor when the definition names none.
pub const DEFAULT_TEMPERATURE_SENSOR_ADDRESS: u16 = 0x48;

/// What the app has done with a pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinMode {
    Closed,
    Input,
    Output(OutputMode),
}

#[derive(Debug, Clone)]
struct Pin {
    mode: PinMode,
    /// Level the app drives (outputs).
    driven: Level,
    /// Level the outside world presents (buttons, tests); read by inputs.
    external: Level,
    /// Changes of the driven level by `set_level` since the board started.
    transitions: u64,
    part: Option<Part>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Led,
    Button,
}

#[derive(Debug, Default)]
struct Uart {
    open: Option<UartConfig>,
    to_app: VecDeque<u8>,
    from_app: VecDeque<u8>,
    loopback: bool,
}

#[derive(Debug, Clone)]
struct TemperatureSensor {
    millicelsius: i32,
    pointer: u8,
    config: [u8; 2],
}

#[derive(Debug, Default)]
struct I2cBus {
    sensors: BTreeMap<u16, TemperatureSensor>,
}

#[derive(Debug, Default)]
struct State {
    pins: BTreeMap<u32, Pin>,
    uarts: BTreeMap<String, Uart>,
    i2c: BTreeMap<String, I2cBus>,
    spi: BTreeMap<String, Vec<u8>>,
    adc: BTreeMap<String, Vec<u32>>,
    pwm: BTreeMap<String, Vec<Option<PwmState>>>,
    /// Changes of an external level (a button, a test) since the board started.
    input_changes: u64,
}

/// A simulated board. Cheap to share (`Arc<VirtualBoard>`); every method is thread-safe.
#[derive(Debug)]
pub struct VirtualBoard {
    name: String,
    names: BTreeMap<String, u32>,
    state: Mutex<State>,
    uart_data: Condvar,
    /// Signalled when an external level changes (`input_changes`).
    inputs: Condvar,
}

impl VirtualBoard {
    /// The board a hardware definition (with its imports) describes, with its simulated parts.
    pub fn from_hardware_definition(definition: &HardwareDefinition) -> Self {
        let mut state = State::default();
        let mut names = BTreeMap::new();
        let sensor_address = definition
            .peripherals()
            .iter()
            .find(|peripheral| {
                peripheral.peripheral_type == PeripheralType::Int
                    && peripheral.name.ends_with("TEMPERATURE_SENSOR_ADDRESS")
            })
            .and_then(|peripheral| peripheral.int_value)
            .and_then(|value| u16::try_from(value).ok())
            .filter(|address| *address <= 0x7f)
            .unwrap_or(DEFAULT_TEMPERATURE_SENSOR_ADDRESS);
        for peripheral in definition.peripherals() {
            let Some(value) = &peripheral.app_manifest_value else {
                continue;
            };
            match (peripheral.peripheral_type, value) {
                (PeripheralType::Gpio, AppManifestValue::Number(pin)) => {
                    names.insert(peripheral.name.clone(), *pin);
                    let entry = state.pins.entry(*pin).or_insert(Pin {
                        mode: PinMode::Closed,
                        driven: Level::Low,
                        external: Level::Low,
                        transitions: 0,
                        part: None,
                    });
                    if peripheral.name.contains("LED") {
                        entry.part = Some(Part::Led);
                    } else if peripheral.name.contains("BUTTON") {
                        entry.part = Some(Part::Button);
                        // Released: the pull-up holds the line high.
                        entry.external = Level::High;
                    }
                }
                (PeripheralType::Uart, AppManifestValue::Text(id)) => {
                    state.uarts.entry(id.clone()).or_default();
                }
                (PeripheralType::I2cMaster, AppManifestValue::Text(id)) => {
                    let bus = state.i2c.entry(id.clone()).or_default();
                    if peripheral.name.contains("SENSOR") {
                        bus.sensors.insert(
                            sensor_address,
                            TemperatureSensor {
                                millicelsius: 21_500,
                                pointer: 0,
                                config: [0x60, 0xa0],
                            },
                        );
                    }
                }
                (PeripheralType::SpiMaster, AppManifestValue::Text(id)) => {
                    state.spi.entry(id.clone()).or_default();
                }
                (PeripheralType::Adc, AppManifestValue::Text(id)) => {
                    state.adc.entry(id.clone()).or_insert_with(|| {
                        let mut channels = vec![0; ADC_CHANNELS as usize];
                        channels[0] = 1 << (ADC_BITS - 1);
                        channels
                    });
                }
                (PeripheralType::Pwm, AppManifestValue::Text(id)) => {
                    state
                        .pwm
                        .entry(id.clone())
                        .or_insert_with(|| vec![None; PWM_CHANNELS as usize]);
                }
                _ => {}
            }
        }
        Self {
            name: definition.name().to_owned(),
            names,
            state: Mutex::new(state),
            uart_data: Condvar::new(),
            inputs: Condvar::new(),
        }
    }

    /// A board with no parts at all (a device whose hardware definition is missing): every
    /// peripheral an app asks for is refused.
    pub fn empty(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            names: BTreeMap::new(),
            state: Mutex::new(State::default()),
            uart_data: Condvar::new(),
            inputs: Condvar::new(),
        }
    }

    /// `Description.Name` of the definition the board was built from.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the simulation inconsistent in a way that
        // matters more than stopping the device, so recover the guard.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The GPIO number of a hardware definition name (`FERRO_VBOARD_BUTTON_A`, `SAMPLE_LED`).
    pub fn gpio_by_name(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied()
    }

    /// The hardware definition names that map to GPIO `pin` (e.g. `SAMPLE_LED` and
    /// `FERRO_VBOARD_LED1_RED`), sorted.
    pub fn gpio_names(&self, pin: u32) -> Vec<String> {
        self.names
            .iter()
            .filter(|(_, p)| **p == pin)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Every pin of the board.
    pub fn pins(&self) -> Vec<u32> {
        self.lock().pins.keys().copied().collect()
    }

    /// Whether `pin` exists.
    pub fn has_pin(&self, pin: u32) -> bool {
        self.lock().pins.contains_key(&pin)
    }

    /// How the app has opened `pin`.
    pub fn pin_mode(&self, pin: u32) -> Option<PinMode> {
        self.lock().pins.get(&pin).map(|state| state.mode)
    }

    /// The level the app drives on an output pin (`None` unless it is an open output).
    pub fn driven_level(&self, pin: u32) -> Option<Level> {
        self.lock()
            .pins
            .get(&pin)
            .filter(|state| matches!(state.mode, PinMode::Output(_)))
            .map(|state| state.driven)
    }

    /// How many times the app changed the level it drives on `pin`.
    pub fn transitions(&self, pin: u32) -> u64 {
        self.lock()
            .pins
            .get(&pin)
            .map(|state| state.transitions)
            .unwrap_or(0)
    }

    /// Whether the LED on `pin` is lit (an open output driven low).
    pub fn led_is_on(&self, pin: u32) -> bool {
        self.driven_level(pin) == Some(Level::Low)
    }

    /// The pins with an LED.
    pub fn leds(&self) -> Vec<u32> {
        self.parts(Part::Led)
    }

    /// The pins with a button.
    pub fn buttons(&self) -> Vec<u32> {
        self.parts(Part::Button)
    }

    fn parts(&self, part: Part) -> Vec<u32> {
        self.lock()
            .pins
            .iter()
            .filter(|(_, state)| state.part == Some(part))
            .map(|(pin, _)| *pin)
            .collect()
    }

    /// Presses (`true`) or releases the button on `pin`.
    pub fn set_button(&self, pin: u32, pressed: bool) -> Result<(), PeripheralError> {
        let mut state = self.lock();
        let entry = state
            .pins
            .get_mut(&pin)
            .filter(|state| state.part == Some(Part::Button))
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("a button on GPIO {pin}")))?;
        let level = if pressed { Level::Low } else { Level::High };
        if entry.external != level {
            entry.external = level;
            state.input_changes += 1;
            self.inputs.notify_all();
        }
        Ok(())
    }

    /// Whether the button on `pin` is held down.
    pub fn button_is_pressed(&self, pin: u32) -> bool {
        self.lock()
            .pins
            .get(&pin)
            .is_some_and(|state| state.part == Some(Part::Button) && state.external == Level::Low)
    }

    /// Sets the level the outside world presents to `pin` (what an input reads).
    pub fn set_external_level(&self, pin: u32, level: Level) -> Result<(), PeripheralError> {
        let mut state = self.lock();
        let entry = state
            .pins
            .get_mut(&pin)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("GPIO {pin}")))?;
        if entry.external != level {
            entry.external = level;
            state.input_changes += 1;
            self.inputs.notify_all();
        }
        Ok(())
    }

    /// The level the outside world presents to `pin` (a button's, or what a test set),
    /// whatever the app has opened it as.
    pub fn external_level(&self, pin: u32) -> Option<Level> {
        self.lock().pins.get(&pin).map(|state| state.external)
    }

    /// How many times an external level changed (a button pressed or released, a level set)
    /// since the board started.
    pub fn input_changes(&self) -> u64 {
        self.lock().input_changes
    }

    /// Waits until the external levels changed since the count `seen` (from
    /// [`Self::input_changes`] or an earlier call) or `timeout` passed; answers the count then
    /// (equal to `seen` on a timeout). For a forwarder of inputs (the device's real-time cores)
    /// that must see an edge at once without polling.
    pub fn wait_input_change(&self, seen: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout.min(MAX_TIMEOUT);
        let mut state = self.lock();
        while state.input_changes == seen {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .inputs
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        state.input_changes
    }

    /// Sets the temperature every simulated sensor reports, in millidegrees Celsius, clamped to
    /// what the sensor's 12-bit register holds (-55 °C to 127.9375 °C).
    pub fn set_temperature_millicelsius(&self, millicelsius: i32) {
        let clamped = millicelsius.clamp(-55_000, 127_937);
        for bus in self.lock().i2c.values_mut() {
            for sensor in bus.sensors.values_mut() {
                sensor.millicelsius = clamped;
            }
        }
    }

    /// Queues bytes from the UART peer to the app; returns how many fit.
    pub fn uart_peer_send(&self, uart: &str, data: &[u8]) -> Result<usize, PeripheralError> {
        let mut state = self.lock();
        let port = state
            .uarts
            .get_mut(uart)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("UART {uart}")))?;
        let room = UART_QUEUE_BYTES.saturating_sub(port.to_app.len());
        let accepted = data.len().min(room);
        port.to_app.extend(&data[..accepted]);
        self.uart_data.notify_all();
        Ok(accepted)
    }

    /// Takes what the app wrote to the UART so far.
    pub fn uart_peer_take(&self, uart: &str) -> Result<Vec<u8>, PeripheralError> {
        let mut state = self.lock();
        let port = state
            .uarts
            .get_mut(uart)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("UART {uart}")))?;
        Ok(port.from_app.drain(..).collect())
    }

    /// Makes the UART peer echo what the app writes.
    pub fn set_uart_loopback(&self, uart: &str, loopback: bool) -> Result<(), PeripheralError> {
        let mut state = self.lock();
        let port = state
            .uarts
            .get_mut(uart)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("UART {uart}")))?;
        port.loopback = loopback;
        Ok(())
    }

    /// The configuration the app opened a UART with.
    pub fn uart_config(&self, uart: &str) -> Option<UartConfig> {
        self.lock().uarts.get(uart).and_then(|port| port.open)
    }

    /// Sets the raw value an ADC channel samples (clamped to the resolution).
    pub fn set_adc_sample(
        &self,
        controller: &str,
        channel: u32,
        value: u32,
    ) -> Result<(), PeripheralError> {
        let mut state = self.lock();
        let slot = state
            .adc
            .get_mut(controller)
            .and_then(|channels| channels.get_mut(channel as usize))
            .ok_or_else(|| {
                PeripheralError::NoSuchResource(format!("ADC {controller} channel {channel}"))
            })?;
        *slot = value.min((1 << ADC_BITS) - 1);
        Ok(())
    }

    /// The last state applied to a PWM channel.
    pub fn pwm_state(&self, controller: &str, channel: u32) -> Option<PwmState> {
        self.lock()
            .pwm
            .get(controller)
            .and_then(|channels| channels.get(channel as usize).copied().flatten())
    }

    fn uart_mut<'a>(state: &'a mut State, uart: &str) -> Result<&'a mut Uart, PeripheralError> {
        let port = state
            .uarts
            .get_mut(uart)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("UART {uart}")))?;
        if port.open.is_none() {
            return Err(PeripheralError::NotOpen(format!("UART {uart}")));
        }
        Ok(port)
    }
}

impl GpioBackend for VirtualBoard {
    fn open_output(
        &self,
        pin: u32,
        mode: OutputMode,
        initial: Level,
    ) -> Result<(), PeripheralError> {
        let mut state = self.lock();
        let entry = state
            .pins
            .get_mut(&pin)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("GPIO {pin}")))?;
        if entry.part == Some(Part::Button) {
            return Err(PeripheralError::WrongMode(format!(
                "GPIO {pin} has a button and can only be an input"
            )));
        }
        entry.mode = PinMode::Output(mode);
        entry.driven = initial;
        Ok(())
    }

    fn open_input(&self, pin: u32) -> Result<(), PeripheralError> {
        let mut state = self.lock();
        let entry = state
            .pins
            .get_mut(&pin)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("GPIO {pin}")))?;
        entry.mode = PinMode::Input;
        Ok(())
    }

    fn set_level(&self, pin: u32, level: Level) -> Result<(), PeripheralError> {
        let mut state = self.lock();
        let entry = state
            .pins
            .get_mut(&pin)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("GPIO {pin}")))?;
        match entry.mode {
            PinMode::Output(_) => {
                if entry.driven != level {
                    entry.transitions += 1;
                }
                entry.driven = level;
                Ok(())
            }
            PinMode::Input => Err(PeripheralError::WrongMode(format!(
                "GPIO {pin} is an input; open it as an output to drive it"
            ))),
            PinMode::Closed => Err(PeripheralError::NotOpen(format!("GPIO {pin}"))),
        }
    }

    fn get_level(&self, pin: u32) -> Result<Level, PeripheralError> {
        let state = self.lock();
        let entry = state
            .pins
            .get(&pin)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("GPIO {pin}")))?;
        match entry.mode {
            PinMode::Output(_) => Ok(entry.driven),
            PinMode::Input => Ok(entry.external),
            PinMode::Closed => Err(PeripheralError::NotOpen(format!("GPIO {pin}"))),
        }
    }

    fn close(&self, pin: u32) {
        if let Some(entry) = self.lock().pins.get_mut(&pin) {
            entry.mode = PinMode::Closed;
        }
    }
}

impl UartBackend for VirtualBoard {
    fn open(&self, uart: &str, config: &UartConfig) -> Result<(), PeripheralError> {
        config.validate()?;
        let mut state = self.lock();
        let port = state
            .uarts
            .get_mut(uart)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("UART {uart}")))?;
        port.open = Some(*config);
        Ok(())
    }

    fn write(&self, uart: &str, data: &[u8]) -> Result<usize, PeripheralError> {
        check_len("a UART write", data.len())?;
        let mut state = self.lock();
        let port = Self::uart_mut(&mut state, uart)?;
        let queue_len = if port.loopback {
            port.to_app.len()
        } else {
            port.from_app.len()
        };
        let accepted = data.len().min(UART_QUEUE_BYTES.saturating_sub(queue_len));
        if port.loopback {
            port.to_app.extend(&data[..accepted]);
            self.uart_data.notify_all();
        } else {
            port.from_app.extend(&data[..accepted]);
        }
        Ok(accepted)
    }

    fn read(
        &self,
        uart: &str,
        max_len: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, PeripheralError> {
        check_len("a UART read", max_len)?;
        let deadline = Instant::now() + timeout.min(MAX_TIMEOUT);
        let mut state = self.lock();
        loop {
            let port = Self::uart_mut(&mut state, uart)?;
            if !port.to_app.is_empty() || max_len == 0 {
                let take = max_len.min(port.to_app.len());
                return Ok(port.to_app.drain(..take).collect());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            state = self
                .uart_data
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    fn close(&self, uart: &str) {
        if let Some(port) = self.lock().uarts.get_mut(uart) {
            port.open = None;
        }
    }
}

impl TemperatureSensor {
    fn register(&self) -> [u8; 2] {
        match self.pointer {
            0 => {
                // TMP102: 12-bit two's complement, 0.0625 °C per LSB, left-justified.
                let raw = (self.millicelsius * 16 / 1000) as i16;
                (raw << 4).to_be_bytes()
            }
            1 => self.config,
            _ => [0, 0],
        }
    }

    fn write(&mut self, data: &[u8]) {
        if let Some((pointer, rest)) = data.split_first() {
            self.pointer = pointer & 0x03;
            if self.pointer == 1 && rest.len() >= 2 {
                self.config = [rest[0], rest[1]];
            }
        }
    }

    fn read(&self, len: usize) -> Vec<u8> {
        let register = self.register();
        (0..len).map(|index| register[index % 2]).collect()
    }
}

impl VirtualBoard {
    fn sensor<'a>(
        state: &'a mut State,
        bus: &str,
        address: u16,
    ) -> Result<&'a mut TemperatureSensor, PeripheralError> {
        check_i2c_address(bus, address)?;
        state
            .i2c
            .get_mut(bus)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("I2C bus {bus}")))?
            .sensors
            .get_mut(&address)
            .ok_or_else(|| PeripheralError::Nack {
                bus: bus.to_owned(),
                address,
            })
    }
}

impl I2cBackend for VirtualBoard {
    fn write(&self, bus: &str, address: u16, data: &[u8]) -> Result<(), PeripheralError> {
        check_len("an I2C write", data.len())?;
        let mut state = self.lock();
        Self::sensor(&mut state, bus, address)?.write(data);
        Ok(())
    }

    fn read(&self, bus: &str, address: u16, len: usize) -> Result<Vec<u8>, PeripheralError> {
        check_len("an I2C read", len)?;
        let mut state = self.lock();
        Ok(Self::sensor(&mut state, bus, address)?.read(len))
    }

    fn write_read(
        &self,
        bus: &str,
        address: u16,
        data: &[u8],
        read_len: usize,
    ) -> Result<Vec<u8>, PeripheralError> {
        check_len("an I2C write", data.len())?;
        check_len("an I2C read", read_len)?;
        let mut state = self.lock();
        let sensor = Self::sensor(&mut state, bus, address)?;
        sensor.write(data);
        Ok(sensor.read(read_len))
    }
}

impl SpiBackend for VirtualBoard {
    fn transfer(
        &self,
        bus: &str,
        chip_select: i32,
        data: &[u8],
    ) -> Result<Vec<u8>, PeripheralError> {
        check_len("an SPI transfer", data.len())?;
        if !(-2..=-1).contains(&chip_select) {
            return Err(PeripheralError::InvalidArgument(format!(
                "chip select {chip_select} on {bus}; the board has A (-1) and B (-2)"
            )));
        }
        let mut state = self.lock();
        let last = state
            .spi
            .get_mut(bus)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("SPI bus {bus}")))?;
        *last = data.to_vec();
        Ok(data.to_vec())
    }
}

impl AdcBackend for VirtualBoard {
    fn sample(&self, controller: &str, channel: u32) -> Result<u32, PeripheralError> {
        self.lock()
            .adc
            .get(controller)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("ADC {controller}")))?
            .get(channel as usize)
            .copied()
            .ok_or_else(|| {
                PeripheralError::NoSuchResource(format!("ADC {controller} channel {channel}"))
            })
    }

    fn sample_bits(&self, controller: &str) -> Result<u8, PeripheralError> {
        if self.lock().adc.contains_key(controller) {
            Ok(ADC_BITS)
        } else {
            Err(PeripheralError::NoSuchResource(format!("ADC {controller}")))
        }
    }

    fn reference_millivolts(&self, controller: &str) -> Result<u32, PeripheralError> {
        if self.lock().adc.contains_key(controller) {
            Ok(ADC_REFERENCE_MILLIVOLTS)
        } else {
            Err(PeripheralError::NoSuchResource(format!("ADC {controller}")))
        }
    }
}

impl PwmBackend for VirtualBoard {
    fn apply(
        &self,
        controller: &str,
        channel: u32,
        state: &PwmState,
    ) -> Result<(), PeripheralError> {
        state.validate()?;
        let mut board = self.lock();
        let slot = board
            .pwm
            .get_mut(controller)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("PWM {controller}")))?
            .get_mut(channel as usize)
            .ok_or_else(|| {
                PeripheralError::NoSuchResource(format!("PWM {controller} channel {channel}"))
            })?;
        *slot = Some(*state);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Parity, Polarity};

    fn board() -> VirtualBoard {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../hardware");
        let definition =
            HardwareDefinition::load(&root.join("ferro_vboard/sample_appliance.json"), &[])
                .unwrap();
        VirtualBoard::from_hardware_definition(&definition)
    }

    #[test]
    fn pins_and_parts_come_from_the_definition() {
        let board = board();
        assert_eq!(board.gpio_by_name("SAMPLE_LED"), Some(8));
        assert_eq!(board.gpio_by_name("FERRO_VBOARD_BUTTON_A"), Some(12));
        assert!(board.leds().contains(&8));
        assert!(board.leds().contains(&20));
        assert_eq!(board.buttons(), vec![12, 13]);
        assert!(board.has_pin(80));
        assert!(!board.has_pin(81));
        assert_eq!(
            board.open_input(81),
            Err(PeripheralError::NoSuchResource("GPIO 81".into()))
        );
    }

    #[test]
    fn led_follows_the_output_active_low() {
        let board = board();
        assert!(!board.led_is_on(8));
        board
            .open_output(8, OutputMode::PushPull, Level::High)
            .unwrap();
        assert!(!board.led_is_on(8));
        board.set_level(8, Level::Low).unwrap();
        assert!(board.led_is_on(8));
        board.set_level(8, Level::High).unwrap();
        assert_eq!(board.transitions(8), 2);
        GpioBackend::close(&board, 8);
        assert!(!board.led_is_on(8));
        assert!(matches!(
            board.set_level(8, Level::Low),
            Err(PeripheralError::NotOpen(_))
        ));
    }

    #[test]
    fn buttons_are_active_low_inputs() {
        let board = board();
        board.open_input(12).unwrap();
        assert_eq!(board.get_level(12), Ok(Level::High));
        board.set_button(12, true).unwrap();
        assert_eq!(board.get_level(12), Ok(Level::Low));
        board.set_button(12, false).unwrap();
        assert_eq!(board.get_level(12), Ok(Level::High));
        assert!(board.set_button(8, true).is_err());
        assert!(matches!(
            board.open_output(12, OutputMode::PushPull, Level::High),
            Err(PeripheralError::WrongMode(_))
        ));
        assert!(matches!(
            board.set_level(12, Level::Low),
            Err(PeripheralError::WrongMode(_))
        ));
    }

    #[test]
    fn temperature_sensor_speaks_tmp102() {
        let board = board();
        board.set_temperature_millicelsius(25_000);
        let bytes = board.write_read("ISU2", 0x48, &[0x00], 2).unwrap();
        let raw = i16::from_be_bytes([bytes[0], bytes[1]]) >> 4;
        assert_eq!(f32::from(raw) * 0.0625, 25.0);
        board.set_temperature_millicelsius(1_000_000);
        let bytes = board.write_read("ISU2", 0x48, &[0x00], 2).unwrap();
        let raw = i16::from_be_bytes([bytes[0], bytes[1]]) >> 4;
        assert_eq!(f32::from(raw) * 0.0625, 127.875, "clamped, not wrapped");
        board.set_temperature_millicelsius(-10_250);
        let bytes = board.write_read("ISU2", 0x48, &[0x00], 2).unwrap();
        let raw = i16::from_be_bytes([bytes[0], bytes[1]]) >> 4;
        assert_eq!(f32::from(raw) * 0.0625, -10.25);
        assert_eq!(
            I2cBackend::read(&board, "ISU2", 0x49, 2),
            Err(PeripheralError::Nack {
                bus: "ISU2".into(),
                address: 0x49
            })
        );
        assert!(matches!(
            I2cBackend::read(&board, "ISU2", 0x80, 2),
            Err(PeripheralError::InvalidArgument(_))
        ));
        assert!(matches!(
            I2cBackend::read(&board, "ISU9", 0x48, 2),
            Err(PeripheralError::NoSuchResource(_))
        ));
        assert!(matches!(
            I2cBackend::read(&board, "ISU2", 0x48, 10 * 1024 * 1024),
            Err(PeripheralError::InvalidArgument(_))
        ));
    }

    #[test]
    fn uart_peer_both_ways() {
        let board = board();
        assert!(matches!(
            UartBackend::write(&board, "ISU0", b"x"),
            Err(PeripheralError::NotOpen(_))
        ));
        let config = UartConfig {
            parity: Parity::Even,
            ..UartConfig::default()
        };
        UartBackend::open(&board, "ISU0", &config).unwrap();
        assert_eq!(board.uart_config("ISU0"), Some(config));
        assert_eq!(UartBackend::write(&board, "ISU0", b"ping").unwrap(), 4);
        assert_eq!(board.uart_peer_take("ISU0").unwrap(), b"ping");
        assert_eq!(
            UartBackend::read(&board, "ISU0", 16, Duration::from_millis(10)).unwrap(),
            b""
        );
        board.uart_peer_send("ISU0", b"pong").unwrap();
        assert_eq!(
            UartBackend::read(&board, "ISU0", 2, Duration::from_millis(10)).unwrap(),
            b"po"
        );
        board.set_uart_loopback("ISU0", true).unwrap();
        UartBackend::write(&board, "ISU0", b"!").unwrap();
        assert_eq!(
            UartBackend::read(&board, "ISU0", 16, Duration::ZERO).unwrap(),
            b"ng!"
        );
        let bad = UartConfig {
            baud_rate: 0,
            ..UartConfig::default()
        };
        assert!(UartBackend::open(&board, "ISU0", &bad).is_err());
    }

    #[test]
    fn uart_read_wakes_when_the_peer_sends() {
        let board = std::sync::Arc::new(board());
        UartBackend::open(&*board, "ISU1", &UartConfig::default()).unwrap();
        let sender = board.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            sender.uart_peer_send("ISU1", b"hi").unwrap();
        });
        let started = Instant::now();
        let data = UartBackend::read(&*board, "ISU1", 8, Duration::from_secs(5)).unwrap();
        assert_eq!(data, b"hi");
        assert!(started.elapsed() < Duration::from_secs(2));
        thread.join().unwrap();
    }

    #[test]
    fn an_input_change_wakes_its_waiter_and_only_a_change_counts() {
        let board = std::sync::Arc::new(board());
        let button = board.buttons()[0];
        let seen = board.input_changes();
        // Releasing a released button changes nothing: the waiter times out.
        board.set_button(button, false).unwrap();
        assert_eq!(
            board.wait_input_change(seen, Duration::from_millis(20)),
            seen
        );
        let presser = board.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            presser.set_button(button, true).unwrap();
        });
        let now = board.wait_input_change(seen, Duration::from_secs(5));
        assert_eq!(now, seen + 1);
        assert_eq!(board.external_level(button), Some(Level::Low));
        thread.join().unwrap();
        board.set_external_level(button, Level::High).unwrap();
        assert_eq!(board.input_changes(), seen + 2);
        assert_eq!(board.external_level(999), None);
    }

    #[test]
    fn uart_queues_are_bounded() {
        let board = board();
        UartBackend::open(&board, "ISU0", &UartConfig::default()).unwrap();
        let chunk = vec![0u8; 60 * 1024];
        assert_eq!(
            UartBackend::write(&board, "ISU0", &chunk).unwrap(),
            60 * 1024
        );
        assert_eq!(
            UartBackend::write(&board, "ISU0", &chunk).unwrap(),
            4 * 1024
        );
        assert_eq!(UartBackend::write(&board, "ISU0", &chunk).unwrap(), 0);
    }

    #[test]
    fn spi_adc_pwm() {
        let board = board();
        assert_eq!(
            board.transfer("ISU1", -1, &[1, 2, 3]).unwrap(),
            vec![1, 2, 3]
        );
        assert!(board.transfer("ISU1", 5, &[1]).is_err());
        assert_eq!(board.sample("ADC-CONTROLLER-0", 0).unwrap(), 2048);
        board.set_adc_sample("ADC-CONTROLLER-0", 3, 99_999).unwrap();
        assert_eq!(board.sample("ADC-CONTROLLER-0", 3).unwrap(), 4095);
        assert!(board.sample("ADC-CONTROLLER-0", 8).is_err());
        assert_eq!(board.sample_bits("ADC-CONTROLLER-0").unwrap(), 12);
        let state = PwmState {
            period_ns: 1_000_000,
            duty_cycle_ns: 250_000,
            polarity: Polarity::Normal,
            enabled: true,
        };
        board.apply("PWM-CONTROLLER-2", 1, &state).unwrap();
        assert_eq!(board.pwm_state("PWM-CONTROLLER-2", 1), Some(state));
        assert!(board.apply("PWM-CONTROLLER-2", 4, &state).is_err());
        let bad = PwmState {
            duty_cycle_ns: 2_000_000,
            ..state
        };
        assert!(matches!(
            board.apply("PWM-CONTROLLER-2", 0, &bad),
            Err(PeripheralError::InvalidArgument(_))
        ));
    }
}
