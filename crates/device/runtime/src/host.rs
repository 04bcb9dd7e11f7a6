//! The host side of the `ferrosphere:device` world: per-instance state and one implementation
//! per interface. Every call checks the resource it names against the app's manifest, even
//! though the interface is linked only when the manifest grants it (defense in depth).

use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ferro_manifest::{Capabilities, PowerControl, Resolved};
use ferro_peripherals::{PeripheralError, Peripherals};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::events::{ErrorKind, EventLog, EventThrottle};
use crate::limits::{Interrupt, MemoryLimiter};
use crate::logs::{LogBuffer, LogLevel, LogSource};
use crate::network::Sockets;
use crate::services::{BatchOrigin, DeviceServices, PowerProfile, PowerRequest, ServiceError};
use crate::storage::Storage;
use crate::{AppId, Limits};

wasmtime::component::bindgen!({
    world: "app",
    path: "../../../wit",
    imports: { default: trappable },
});

use api::types::Error as ApiError;
pub(crate) use ferrosphere::device as api;

/// The longest message of an app-reported error event (the rest stays in the log).
const MAX_REPORTED_CHARS: usize = 200;

/// Longest a single blocking host call waits before checking for a stop request.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(20);

/// A stop request, shared by the runtime and the instance.
#[derive(Debug, Default)]
pub(crate) struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopSignal {
    pub(crate) fn request(&self) {
        *self
            .stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    pub(crate) fn clear(&self) {
        *self
            .stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = false;
    }

    pub(crate) fn is_requested(&self) -> bool {
        *self
            .stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits `duration` or until a stop is requested; returns whether one was.
    pub(crate) fn wait(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut stopped = self
            .stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if *stopped {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            stopped = self
                .wake
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

/// What an instance shares with the runtime.
#[derive(Debug)]
pub(crate) struct AppShared {
    pub(crate) id: AppId,
    pub(crate) name: String,
    pub(crate) capabilities: Capabilities<Resolved>,
    pub(crate) limits: Limits,
    pub(crate) logs: Arc<LogBuffer>,
    pub(crate) events: Arc<EventLog>,
    pub(crate) stop: StopSignal,
    /// The app's one name lookup thread at a time (network.rs).
    pub(crate) lookup: crate::connect::LookupSlot,
    pub(crate) memory: crate::limits::MemoryCounters,
    pub(crate) throttle: Mutex<EventThrottle>,
    /// The files of the app's own image package (`imagefiles`).
    pub(crate) package_files: crate::PackageFiles,
    /// The image the app runs from and whether it was sideloaded (what its signed batches
    /// name); `None`: installed without an image, no signed batches.
    pub(crate) image: Option<(uuid::Uuid, bool)>,
    /// The app's signed-batch rate (kept across restarts, so a crash loop does not refill it).
    pub(crate) signing: Mutex<crate::limits::TokenBucket>,
}

impl AppShared {
    /// Records an event the app can provoke at will, throttled per app.
    pub(crate) fn throttled_event(&self, kind: ErrorKind) {
        let allowed = self
            .throttle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .allow();
        if allowed {
            self.events.push(self.id, &self.name, kind, None);
        }
    }

    pub(crate) fn denied(&self, resource: String) -> ApiError {
        self.throttled_event(ErrorKind::AccessDenied {
            resource: resource.clone(),
        });
        ApiError::NotPermitted(resource)
    }
}

/// The data of one app instance's store.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) app: Arc<AppShared>,
    pub(crate) peripherals: Peripherals,
    pub(crate) services: Arc<dyn DeviceServices>,
    pub(crate) limiter: MemoryLimiter,
    /// When the app last blocked in the host (the CPU slice runs from here).
    pub(crate) last_yield: Instant,
    /// Computation per window (the CPU budget).
    pub(crate) cpu: crate::limits::CpuWindow,
    pub(crate) gpio_open: BTreeSet<u32>,
    pub(crate) uart_open: BTreeSet<String>,
    pub(crate) sockets: Sockets,
    /// The board's private networks (who may reach them, through which interface).
    pub(crate) private_networks: Arc<crate::private_net::PrivateNetworks>,
    pub(crate) discovery: crate::discovery::Discovery,
    pub(crate) storage: Option<Storage>,
    /// Where `application.connect` goes (the device's real-time partners).
    pub(crate) partners: Arc<dyn crate::partners::PartnerConnector>,
    /// Open connections to real-time partners (closed with the instance).
    pub(crate) connections: crate::application::Connections,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl Drop for HostState {
    fn drop(&mut self) {
        // An instance's peripherals are released with it (outputs stop driving).
        for pin in std::mem::take(&mut self.gpio_open) {
            self.peripherals.gpio.close(pin);
        }
        for uart in std::mem::take(&mut self.uart_open) {
            self.peripherals.uart.close(&uart);
        }
    }
}

pub(crate) fn peripheral_error(error: PeripheralError) -> ApiError {
    match error {
        PeripheralError::NoSuchResource(_) | PeripheralError::NotOpen(_) => {
            ApiError::NoSuchResource(error.to_string())
        }
        PeripheralError::WrongMode(text) => ApiError::Busy(text),
        PeripheralError::InvalidArgument(_) => ApiError::InvalidArgument(error.to_string()),
        PeripheralError::Nack { .. } | PeripheralError::Io { .. } => {
            ApiError::Io(error.to_string())
        }
        PeripheralError::Unsupported(_) => ApiError::Unsupported(error.to_string()),
        PeripheralError::TimedOut => ApiError::TimedOut,
    }
}

pub(crate) type HostResult<T> = wasmtime::Result<Result<T, ApiError>>;

impl HostState {
    /// Marks the end of a blocking call: the CPU slice starts again.
    pub(crate) fn yielded(&mut self) {
        self.last_yield = Instant::now();
    }

    /// Marks the start of a blocking call: the computation since the last one counts against
    /// the CPU budget; the wait does not.
    pub(crate) fn begin_blocking(&mut self) {
        let now = Instant::now();
        self.cpu.account(now, self.last_yield);
        self.last_yield = now;
    }

    /// Sleeps `duration` unless a stop is requested (then traps).
    pub(crate) fn interruptible_sleep(&mut self, duration: Duration) -> wasmtime::Result<()> {
        self.begin_blocking();
        let stopped = self.app.stop.wait(duration);
        self.yielded();
        if stopped {
            return Err(wasmtime::Error::new(Interrupt::Stopped));
        }
        Ok(())
    }

    /// Traps if a stop was requested.
    pub(crate) fn check_stop(&self) -> wasmtime::Result<()> {
        if self.app.stop.is_requested() {
            return Err(wasmtime::Error::new(Interrupt::Stopped));
        }
        Ok(())
    }

    fn gpio_allowed(&self, pin: u32) -> Result<(), ApiError> {
        if self.app.capabilities.gpio().contains(&pin) {
            Ok(())
        } else {
            Err(self
                .app
                .denied(format!("GPIO {pin} is not in the app manifest's Gpio list")))
        }
    }

    fn named_allowed(&self, granted: &[String], kind: &str, id: &str) -> Result<(), ApiError> {
        if granted.iter().any(|value| value == id) {
            Ok(())
        } else {
            Err(self.app.denied(format!(
                "{kind} {id:?} is not in the app manifest's {kind} list"
            )))
        }
    }

    fn power_allowed(&self, control: PowerControl) -> Result<(), ApiError> {
        if self.app.capabilities.power_controls().contains(&control) {
            Ok(())
        } else {
            Err(self.app.denied(format!(
                "PowerControls does not include {}",
                control.as_str()
            )))
        }
    }
}

fn level_in(level: api::gpio::Level) -> ferro_peripherals::Level {
    match level {
        api::gpio::Level::Low => ferro_peripherals::Level::Low,
        api::gpio::Level::High => ferro_peripherals::Level::High,
    }
}

fn level_out(level: ferro_peripherals::Level) -> api::gpio::Level {
    match level {
        ferro_peripherals::Level::Low => api::gpio::Level::Low,
        ferro_peripherals::Level::High => api::gpio::Level::High,
    }
}

/// Most pins a batch call may name.
const MAX_BATCH_PINS: usize = 256;

impl api::types::Host for HostState {}

impl api::gpio::Host for HostState {
    fn open_output(
        &mut self,
        pin: u32,
        mode: api::gpio::OutputMode,
        initial: api::gpio::Level,
    ) -> HostResult<()> {
        if let Err(error) = self.gpio_allowed(pin) {
            return Ok(Err(error));
        }
        let mode = match mode {
            api::gpio::OutputMode::PushPull => ferro_peripherals::OutputMode::PushPull,
            api::gpio::OutputMode::OpenDrain => ferro_peripherals::OutputMode::OpenDrain,
            api::gpio::OutputMode::OpenSource => ferro_peripherals::OutputMode::OpenSource,
        };
        let result = self
            .peripherals
            .gpio
            .open_output(pin, mode, level_in(initial));
        if result.is_ok() {
            self.gpio_open.insert(pin);
        }
        Ok(result.map_err(peripheral_error))
    }

    fn open_input(&mut self, pin: u32) -> HostResult<()> {
        if let Err(error) = self.gpio_allowed(pin) {
            return Ok(Err(error));
        }
        let result = self.peripherals.gpio.open_input(pin);
        if result.is_ok() {
            self.gpio_open.insert(pin);
        }
        Ok(result.map_err(peripheral_error))
    }

    fn set_level(&mut self, pin: u32, value: api::gpio::Level) -> HostResult<()> {
        if let Err(error) = self.gpio_allowed(pin) {
            return Ok(Err(error));
        }
        Ok(self
            .peripherals
            .gpio
            .set_level(pin, level_in(value))
            .map_err(peripheral_error))
    }

    fn get_level(&mut self, pin: u32) -> HostResult<api::gpio::Level> {
        if let Err(error) = self.gpio_allowed(pin) {
            return Ok(Err(error));
        }
        Ok(self
            .peripherals
            .gpio
            .get_level(pin)
            .map(level_out)
            .map_err(peripheral_error))
    }

    fn set_levels(&mut self, values: Vec<(u32, api::gpio::Level)>) -> HostResult<()> {
        if values.len() > MAX_BATCH_PINS {
            return Ok(Err(ApiError::InvalidArgument(format!(
                "{} pins in one call; at most {MAX_BATCH_PINS}",
                values.len()
            ))));
        }
        // Check every pin before driving any, so a denied pin changes nothing.
        for (pin, _) in &values {
            if let Err(error) = self.gpio_allowed(*pin) {
                return Ok(Err(error));
            }
        }
        for (pin, level) in values {
            if let Err(error) = self.peripherals.gpio.set_level(pin, level_in(level)) {
                return Ok(Err(peripheral_error(error)));
            }
        }
        Ok(Ok(()))
    }

    fn get_levels(&mut self, pins: Vec<u32>) -> HostResult<Vec<api::gpio::Level>> {
        if pins.len() > MAX_BATCH_PINS {
            return Ok(Err(ApiError::InvalidArgument(format!(
                "{} pins in one call; at most {MAX_BATCH_PINS}",
                pins.len()
            ))));
        }
        for pin in &pins {
            if let Err(error) = self.gpio_allowed(*pin) {
                return Ok(Err(error));
            }
        }
        let mut levels = Vec::with_capacity(pins.len());
        for pin in pins {
            match self.peripherals.gpio.get_level(pin) {
                Ok(level) => levels.push(level_out(level)),
                Err(error) => return Ok(Err(peripheral_error(error))),
            }
        }
        Ok(Ok(levels))
    }

    fn close(&mut self, pin: u32) -> wasmtime::Result<()> {
        if self.gpio_open.remove(&pin) {
            self.peripherals.gpio.close(pin);
        }
        Ok(())
    }
}

impl api::uart::Host for HostState {
    fn open(&mut self, uart: String, config: api::uart::Config) -> HostResult<()> {
        if let Err(error) = self.named_allowed(self.app.capabilities.uart(), "Uart", &uart) {
            return Ok(Err(error));
        }
        let config = ferro_peripherals::UartConfig {
            baud_rate: config.baud_rate,
            data_bits: config.data_bits,
            parity: match config.parity {
                api::uart::Parity::None => ferro_peripherals::Parity::None,
                api::uart::Parity::Even => ferro_peripherals::Parity::Even,
                api::uart::Parity::Odd => ferro_peripherals::Parity::Odd,
            },
            stop_bits: match config.stop_bits {
                api::uart::StopBits::One => ferro_peripherals::StopBits::One,
                api::uart::StopBits::Two => ferro_peripherals::StopBits::Two,
            },
            flow_control: match config.flow_control {
                api::uart::FlowControl::None => ferro_peripherals::FlowControl::None,
                api::uart::FlowControl::RtsCts => ferro_peripherals::FlowControl::RtsCts,
            },
        };
        let result = self.peripherals.uart.open(&uart, &config);
        if result.is_ok() {
            self.uart_open.insert(uart);
        }
        Ok(result.map_err(peripheral_error))
    }

    fn write(&mut self, uart: String, data: Vec<u8>) -> HostResult<u32> {
        if let Err(error) = self.named_allowed(self.app.capabilities.uart(), "Uart", &uart) {
            return Ok(Err(error));
        }
        Ok(self
            .peripherals
            .uart
            .write(&uart, &data)
            .map(|count| u32::try_from(count).unwrap_or(u32::MAX))
            .map_err(peripheral_error))
    }

    fn read(&mut self, uart: String, max_len: u32, timeout_ms: u32) -> HostResult<Vec<u8>> {
        if let Err(error) = self.named_allowed(self.app.capabilities.uart(), "Uart", &uart) {
            return Ok(Err(error));
        }
        if max_len == 0 {
            return Ok(Ok(Vec::new()));
        }
        self.begin_blocking();
        let timeout =
            Duration::from_millis(u64::from(timeout_ms)).min(ferro_peripherals::MAX_TIMEOUT);
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let step = remaining.min(STOP_POLL);
            let result = self.peripherals.uart.read(&uart, max_len as usize, step);
            self.yielded();
            match result {
                Ok(data) if data.is_empty() && !remaining.is_zero() => self.check_stop()?,
                other => return Ok(other.map_err(peripheral_error)),
            }
        }
    }

    fn close(&mut self, uart: String) -> wasmtime::Result<()> {
        if self.uart_open.remove(&uart) {
            self.peripherals.uart.close(&uart);
        }
        Ok(())
    }
}

impl api::i2c::Host for HostState {
    fn write(&mut self, bus: String, address: u16, data: Vec<u8>) -> HostResult<()> {
        if let Err(error) =
            self.named_allowed(self.app.capabilities.i2c_master(), "I2cMaster", &bus)
        {
            return Ok(Err(error));
        }
        Ok(self
            .peripherals
            .i2c
            .write(&bus, address, &data)
            .map_err(peripheral_error))
    }

    fn read(&mut self, bus: String, address: u16, len: u32) -> HostResult<Vec<u8>> {
        if let Err(error) =
            self.named_allowed(self.app.capabilities.i2c_master(), "I2cMaster", &bus)
        {
            return Ok(Err(error));
        }
        Ok(self
            .peripherals
            .i2c
            .read(&bus, address, len as usize)
            .map_err(peripheral_error))
    }

    fn write_read(
        &mut self,
        bus: String,
        address: u16,
        data: Vec<u8>,
        read_len: u32,
    ) -> HostResult<Vec<u8>> {
        if let Err(error) =
            self.named_allowed(self.app.capabilities.i2c_master(), "I2cMaster", &bus)
        {
            return Ok(Err(error));
        }
        Ok(self
            .peripherals
            .i2c
            .write_read(&bus, address, &data, read_len as usize)
            .map_err(peripheral_error))
    }
}

impl api::spi::Host for HostState {
    fn transfer(&mut self, bus: String, chip_select: i32, data: Vec<u8>) -> HostResult<Vec<u8>> {
        if let Err(error) =
            self.named_allowed(self.app.capabilities.spi_master(), "SpiMaster", &bus)
        {
            return Ok(Err(error));
        }
        Ok(self
            .peripherals
            .spi
            .transfer(&bus, chip_select, &data)
            .map_err(peripheral_error))
    }
}

impl api::adc::Host for HostState {
    fn sample(&mut self, controller: String, channel: u32) -> HostResult<u32> {
        if let Err(error) = self.named_allowed(self.app.capabilities.adc(), "Adc", &controller) {
            return Ok(Err(error));
        }
        Ok(self
            .peripherals
            .adc
            .sample(&controller, channel)
            .map_err(peripheral_error))
    }

    fn sample_bits(&mut self, controller: String) -> HostResult<u8> {
        if let Err(error) = self.named_allowed(self.app.capabilities.adc(), "Adc", &controller) {
            return Ok(Err(error));
        }
        Ok(self
            .peripherals
            .adc
            .sample_bits(&controller)
            .map_err(peripheral_error))
    }

    fn reference_millivolts(&mut self, controller: String) -> HostResult<u32> {
        if let Err(error) = self.named_allowed(self.app.capabilities.adc(), "Adc", &controller) {
            return Ok(Err(error));
        }
        Ok(self
            .peripherals
            .adc
            .reference_millivolts(&controller)
            .map_err(peripheral_error))
    }
}

impl api::pwm::Host for HostState {
    fn apply(
        &mut self,
        controller: String,
        channel: u32,
        state: api::pwm::State,
    ) -> HostResult<()> {
        if let Err(error) = self.named_allowed(self.app.capabilities.pwm(), "Pwm", &controller) {
            return Ok(Err(error));
        }
        let state = ferro_peripherals::PwmState {
            period_ns: state.period_ns,
            duty_cycle_ns: state.duty_cycle_ns,
            polarity: match state.polarity {
                api::pwm::Polarity::Normal => ferro_peripherals::Polarity::Normal,
                api::pwm::Polarity::Inversed => ferro_peripherals::Polarity::Inversed,
            },
            enabled: state.enabled,
        };
        Ok(self
            .peripherals
            .pwm
            .apply(&controller, channel, &state)
            .map_err(peripheral_error))
    }
}

impl api::log::Host for HostState {
    fn write(&mut self, level: api::log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            api::log::Level::Error => LogLevel::Error,
            api::log::Level::Warning => LogLevel::Warning,
            api::log::Level::Info => LogLevel::Info,
            api::log::Level::Debug => LogLevel::Debug,
        };
        for line in message.lines() {
            self.app.logs.app_line(level, LogSource::Log, line);
        }
        // An error the app reports itself becomes an error event (the tenant's error report),
        // throttled like every event an app can provoke at will.
        if level == LogLevel::Error && !message.trim().is_empty() {
            let first = message
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("");
            self.app.throttled_event(ErrorKind::AppReported {
                message: first.chars().take(MAX_REPORTED_CHARS).collect(),
            });
        }
        Ok(())
    }
}

impl api::imagefiles::Host for HostState {
    fn read(&mut self, path: String) -> HostResult<Vec<u8>> {
        Ok(match self.app.package_files.read(&path) {
            Ok(bytes) => Ok(bytes.to_vec()),
            Err(error @ crate::PackageFileError::BadPath(_)) => {
                Err(ApiError::InvalidArgument(error.to_string()))
            }
            Err(error @ crate::PackageFileError::NotFound(_)) => {
                Err(ApiError::NoSuchResource(error.to_string()))
            }
        })
    }
}

impl api::timers::Host for HostState {
    fn monotonic_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(
            u64::try_from(crate::limits::monotonic_origin().elapsed().as_millis())
                .unwrap_or(u64::MAX),
        )
    }

    fn sleep_ms(&mut self, ms: u32) -> wasmtime::Result<()> {
        self.interruptible_sleep(Duration::from_millis(u64::from(ms)))
    }
}

impl api::deviceauth::Host for HostState {
    fn is_certificate_ready(&mut self) -> wasmtime::Result<bool> {
        if self.app.capabilities.device_authentication().is_none() {
            return Ok(false);
        }
        Ok(self.services.certificate_chain_pem(self.app.id).is_some())
    }

    fn certificate_chain_pem(&mut self) -> HostResult<String> {
        if self.app.capabilities.device_authentication().is_none() {
            return Ok(Err(self.app.denied(
                "the app manifest does not grant DeviceAuthentication".to_owned(),
            )));
        }
        Ok(self
            .services
            .certificate_chain_pem(self.app.id)
            .ok_or_else(|| ApiError::NoSuchResource("no current device certificate".to_owned())))
    }

    /// Checks the grant, the size and the app's signing rate, then lets the device sign (the
    /// wait for the root of trust does not count against the CPU slice).
    fn sign_batch(&mut self, payload: Vec<u8>) -> HostResult<Vec<u8>> {
        let Some(tenant) = self.app.capabilities.device_authentication() else {
            return Ok(Err(self.app.denied(
                "the app manifest does not grant DeviceAuthentication".to_owned(),
            )));
        };
        let limits = &self.app.limits;
        if payload.len() > limits.max_batch_bytes {
            return Ok(Err(ApiError::LimitExceeded(format!(
                "a signed batch is at most {} bytes, not {}",
                limits.max_batch_bytes,
                payload.len()
            ))));
        }
        let Some((image_id, development)) = self.app.image else {
            return Ok(Err(ApiError::Unsupported(
                "the app does not run from a verified image".to_owned(),
            )));
        };
        let allowed = self
            .app
            .signing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(Instant::now());
        if !allowed {
            return Ok(Err(ApiError::LimitExceeded(format!(
                "signed batches are limited to {} a second (bursts of {})",
                limits.batch_signatures_per_second, limits.batch_signature_burst
            ))));
        }
        let origin = BatchOrigin {
            tenant,
            image_id,
            development,
        };
        self.begin_blocking();
        let signed = self.services.sign_batch(self.app.id, &origin, &payload);
        self.yielded();
        Ok(signed.map_err(|error| match error {
            ServiceError::NoCertificate => ApiError::NoSuchResource(error.to_string()),
            ServiceError::SigningFailed => ApiError::Io(error.to_string()),
            _ => ApiError::Unsupported(error.to_string()),
        }))
    }
}

impl api::sysevent::Host for HostState {
    fn pending_update(&mut self) -> HostResult<Option<api::sysevent::UpdateInfo>> {
        if !self
            .app
            .capabilities
            .has(ferro_manifest::CapabilityFlag::SystemEventNotifications)
        {
            return Ok(Err(self.app.denied(
                "the app manifest does not grant SystemEventNotifications".to_owned(),
            )));
        }
        Ok(Ok(self.services.pending_update().map(|update| {
            api::sysevent::UpdateInfo {
                kind: if update.os {
                    api::sysevent::UpdateKind::Os
                } else {
                    api::sysevent::UpdateKind::App
                },
                seconds_until_apply: update.seconds_until_apply,
            }
        })))
    }

    fn defer_update(&mut self, minutes: u32) -> HostResult<()> {
        if !self
            .app
            .capabilities
            .has(ferro_manifest::CapabilityFlag::SoftwareUpdateDeferral)
        {
            return Ok(Err(self.app.denied(
                "the app manifest does not grant SoftwareUpdateDeferral".to_owned(),
            )));
        }
        Ok(self
            .services
            .defer_update(self.app.id, minutes)
            .map_err(|e| ApiError::Unsupported(e.to_string())))
    }

    fn resume_update(&mut self) -> HostResult<()> {
        if !self
            .app
            .capabilities
            .has(ferro_manifest::CapabilityFlag::SoftwareUpdateDeferral)
        {
            return Ok(Err(self.app.denied(
                "the app manifest does not grant SoftwareUpdateDeferral".to_owned(),
            )));
        }
        Ok(self
            .services
            .resume_update(self.app.id)
            .map_err(|e| ApiError::Unsupported(e.to_string())))
    }
}

impl api::powermanagement::Host for HostState {
    fn force_reboot(&mut self) -> HostResult<()> {
        if let Err(error) = self.power_allowed(PowerControl::ForceReboot) {
            return Ok(Err(error));
        }
        Ok(self
            .services
            .power_request(self.app.id, PowerRequest::ForceReboot)
            .map_err(|e| ApiError::Unsupported(e.to_string())))
    }

    fn force_power_down(&mut self, max_seconds: u32) -> HostResult<()> {
        if let Err(error) = self.power_allowed(PowerControl::ForcePowerDown) {
            return Ok(Err(error));
        }
        Ok(self
            .services
            .power_request(self.app.id, PowerRequest::ForcePowerDown { max_seconds })
            .map_err(|e| ApiError::Unsupported(e.to_string())))
    }

    fn set_power_profile(&mut self, profile: api::powermanagement::PowerProfile) -> HostResult<()> {
        if let Err(error) = self.power_allowed(PowerControl::SetPowerProfile) {
            return Ok(Err(error));
        }
        let profile = match profile {
            api::powermanagement::PowerProfile::HighPerformance => PowerProfile::HighPerformance,
            api::powermanagement::PowerProfile::Balanced => PowerProfile::Balanced,
            api::powermanagement::PowerProfile::PowerSaver => PowerProfile::PowerSaver,
        };
        Ok(self
            .services
            .power_request(self.app.id, PowerRequest::SetPowerProfile(profile))
            .map_err(|e| ApiError::Unsupported(e.to_string())))
    }
}

/// A `ferrosphere:device` interface and the manifest capability that links it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeviceInterface {
    /// `ferrosphere:device/<name>`.
    pub(crate) name: &'static str,
    /// Which manifest capability grants it (`None`: always linked).
    pub(crate) grant: Option<&'static str>,
    pub(crate) granted: fn(&Capabilities<Resolved>) -> bool,
    add: fn(&mut Linker<HostState>) -> wasmtime::Result<()>,
}

fn always(_: &Capabilities<Resolved>) -> bool {
    true
}

/// Every interface of the world, with its grant rule.
pub(crate) const DEVICE_INTERFACES: &[DeviceInterface] = &[
    DeviceInterface {
        name: "types",
        grant: None,
        granted: always,
        add: |linker| api::types::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state),
    },
    DeviceInterface {
        name: "log",
        grant: None,
        granted: always,
        add: |linker| api::log::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state),
    },
    DeviceInterface {
        name: "imagefiles",
        grant: None,
        granted: always,
        add: |linker| {
            api::imagefiles::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state)
        },
    },
    DeviceInterface {
        name: "timers",
        grant: None,
        granted: always,
        add: |linker| api::timers::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state),
    },
    DeviceInterface {
        name: "gpio",
        grant: Some("Gpio"),
        granted: |caps| !caps.gpio().is_empty(),
        add: |linker| api::gpio::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state),
    },
    DeviceInterface {
        name: "uart",
        grant: Some("Uart"),
        granted: |caps| !caps.uart().is_empty(),
        add: |linker| api::uart::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state),
    },
    DeviceInterface {
        name: "i2c",
        grant: Some("I2cMaster"),
        granted: |caps| !caps.i2c_master().is_empty(),
        add: |linker| api::i2c::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state),
    },
    DeviceInterface {
        name: "spi",
        grant: Some("SpiMaster"),
        granted: |caps| !caps.spi_master().is_empty(),
        add: |linker| api::spi::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state),
    },
    DeviceInterface {
        name: "adc",
        grant: Some("Adc"),
        granted: |caps| !caps.adc().is_empty(),
        add: |linker| api::adc::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state),
    },
    DeviceInterface {
        name: "pwm",
        grant: Some("Pwm"),
        granted: |caps| !caps.pwm().is_empty(),
        add: |linker| api::pwm::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state),
    },
    DeviceInterface {
        name: "storage",
        grant: Some("MutableStorage"),
        granted: |caps| caps.mutable_storage_kib().is_some(),
        add: |linker| api::storage::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state),
    },
    DeviceInterface {
        name: "networking",
        grant: Some("AllowedConnections, AllowedTcpServerPorts or AllowedUdpServerPorts"),
        granted: |caps| {
            !caps.allowed_connections().is_empty()
                || !caps.tcp_server_ports().is_empty()
                || !caps.udp_server_ports().is_empty()
        },
        add: |linker| {
            api::networking::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state)
        },
    },
    DeviceInterface {
        name: "servicediscovery",
        grant: Some("AllowedConnections listing a service type (`_service._tcp.domain`)"),
        granted: |caps| {
            caps.allowed_connections().iter().any(|entry| {
                matches!(
                    entry,
                    ferro_manifest::AllowedConnection::ServiceDiscovery(_)
                )
            })
        },
        add: |linker| {
            api::servicediscovery::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state)
        },
    },
    DeviceInterface {
        name: "deviceauth",
        grant: Some("DeviceAuthentication"),
        granted: |caps| caps.device_authentication().is_some(),
        add: |linker| {
            api::deviceauth::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state)
        },
    },
    DeviceInterface {
        name: "sysevent",
        grant: Some("SystemEventNotifications or SoftwareUpdateDeferral"),
        granted: |caps| {
            caps.has(ferro_manifest::CapabilityFlag::SystemEventNotifications)
                || caps.has(ferro_manifest::CapabilityFlag::SoftwareUpdateDeferral)
        },
        add: |linker| api::sysevent::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state),
    },
    DeviceInterface {
        name: "application",
        grant: Some("AllowedApplicationConnections"),
        granted: |caps| !caps.application_connections().is_empty(),
        add: |linker| {
            api::application::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state)
        },
    },
    DeviceInterface {
        name: "powermanagement",
        grant: Some("PowerControls"),
        granted: |caps| !caps.power_controls().is_empty(),
        add: |linker| {
            api::powermanagement::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state)
        },
    },
];

impl DeviceInterface {
    pub(crate) fn add_to(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        (self.add)(linker)
    }
}
