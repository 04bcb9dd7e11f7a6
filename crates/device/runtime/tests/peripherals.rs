//! Every peripheral interface through the runtime against the virtual board
//! (`apps/test-guests/peripherals-probe`): granted buses work end to end, others are refused, and device
//! services see only what the manifest allows.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{device_with, manifest, wasm};
use ferro_runtime::{
    AppId, DeviceServices, InstallOptions, PowerProfile, PowerRequest, ServiceError,
};

#[derive(Debug, Default)]
struct RecordingServices {
    power: Mutex<Vec<(AppId, PowerRequest)>>,
}

impl DeviceServices for RecordingServices {
    fn power_request(&self, app: AppId, request: PowerRequest) -> Result<(), ServiceError> {
        self.power.lock().unwrap().push((app, request));
        Ok(())
    }
}

#[test]
fn probe_reaches_granted_peripherals_only() {
    let services = Arc::new(RecordingServices::default());
    let for_config = services.clone();
    let device = device_with(move |config| config.services = for_config);
    device.board.set_temperature_millicelsius(23_500);
    device.board.set_uart_loopback("ISU0", true).unwrap();
    device
        .board
        .set_adc_sample("ADC-CONTROLLER-0", 0, 1024)
        .unwrap();
    let app = device
        .runtime
        .install(
            &wasm("peripherals-probe"),
            &manifest("peripherals-probe"),
            InstallOptions::default(),
        )
        .unwrap();
    device.wait_for_log(app, "probe done", Duration::from_secs(30));
    let log = device.log_texts(app);
    let outcome = |what: &str| {
        log.iter()
            .find(|line| line.starts_with(&format!("probe {what}: ")))
            .unwrap_or_else(|| panic!("no probe {what} in {log:#?}"))
            .clone()
    };
    assert_eq!(outcome("temperature"), "probe temperature: ok 23.5");
    assert!(outcome("i2c absent device").contains("no device answers at I2C address 0x10"));
    assert!(outcome("i2c ISU3").contains("not permitted"));
    assert_eq!(outcome("uart write"), "probe uart write: ok ()");
    assert_eq!(outcome("uart read"), "probe uart read: ok \"ping\"");
    assert!(outcome("uart ISU1").contains("not permitted"));
    assert_eq!(outcome("spi"), "probe spi: ok [1, 2, 3]");
    assert!(outcome("spi ISU4").contains("not permitted"));
    // 1024 of 4096 at 2500 mV full scale.
    assert_eq!(outcome("adc millivolts"), "probe adc millivolts: ok 625");
    assert_eq!(outcome("pwm"), "probe pwm: ok ()");
    assert!(outcome("pwm bad duty").contains("invalid argument"));
    assert!(outcome("pwm PWM-CONTROLLER-0").contains("not permitted"));
    assert_eq!(outcome("power profile"), "probe power profile: ok ()");
    assert!(outcome("power reboot").contains("not permitted"));
    assert_eq!(outcome("pending update"), "probe pending update: ok None");
    assert!(outcome("defer update").contains("not permitted"));

    let pwm = device.board.pwm_state("PWM-CONTROLLER-2", 1).unwrap();
    assert_eq!((pwm.period_ns, pwm.duty_cycle_ns), (1_000_000, 250_000));
    assert_eq!(device.board.pwm_state("PWM-CONTROLLER-0", 0), None);
    assert_eq!(
        *services.power.lock().unwrap(),
        vec![(app, PowerRequest::SetPowerProfile(PowerProfile::PowerSaver))]
    );
    // The UART is released when the app stops.
    device.runtime.stop(app).unwrap();
    assert_eq!(device.board.uart_config("ISU0"), None);
}
