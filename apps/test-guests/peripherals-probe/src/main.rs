//! Exercises each peripheral interface of the SDK once against the sample appliance: the
//! temperature sensor (I2C), the UART peer, SPI, the potentiometer (ADC), the LED PWM
//! controller, a power request and the update notification. Each step logs one line
//! `probe <what>: <outcome>`; steps on resources the manifest does not grant must be refused.

#[allow(dead_code)]
use std::time::Duration;

use applibs::adc::Adc;
use applibs::i2c::I2cMaster;
use applibs::pwm::{Pwm, State};
use applibs::spi::SpiMaster;
use applibs::uart::{Config, Uart};
use sample_appliance as hw;

fn report<T: std::fmt::Debug>(what: &str, result: Result<T, applibs::Error>) {
    match result {
        Ok(value) => println!("probe {what}: ok {value:?}"),
        Err(error) => println!("probe {what}: {error}"),
    }
}

fn main() {
    let sensor = I2cMaster::new(hw::SAMPLE_TEMPERATURE_SENSOR_I2C);
    let address = hw::SAMPLE_TEMPERATURE_SENSOR_ADDRESS as u16;
    report(
        "temperature",
        sensor.write_read(address, &[0x00], 2).map(|bytes| {
            let raw = i16::from_be_bytes([bytes[0], bytes[1]]) >> 4;
            f32::from(raw) * 0.0625
        }),
    );
    report("i2c absent device", sensor.read(0x10, 1));
    report("i2c ISU3", I2cMaster::new("ISU3").read(address, 2));

    match Uart::open(hw::SAMPLE_UART, Config::default()) {
        Ok(uart) => {
            report("uart write", uart.write_all(b"ping"));
            report(
                "uart read",
                uart.read(16, Duration::from_secs(5))
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
            );
        }
        Err(error) => println!("probe uart open: {error}"),
    }
    report(
        "uart ISU1",
        Uart::open("ISU1", Config::default()).map(|_| ()),
    );

    let spi = SpiMaster::new(hw::SAMPLE_LSM6DS3_SPI);
    report("spi", spi.transfer(hw::SAMPLE_LSM6DS3_SPI_CS, &[1, 2, 3]));
    report("spi ISU4", SpiMaster::new("ISU4").transfer(-1, &[1]));

    let adc = Adc::new(hw::SAMPLE_POTENTIOMETER_ADC_CONTROLLER);
    report(
        "adc millivolts",
        adc.sample_millivolts(hw::SAMPLE_POTENTIOMETER_ADC_CHANNEL as u32),
    );

    let pwm = Pwm::new(hw::SAMPLE_LED_PWM_CONTROLLER);
    report(
        "pwm",
        pwm.apply(
            hw::SAMPLE_LED_PWM_CHANNEL as u32,
            State::enabled(1_000_000, 250_000),
        ),
    );
    report("pwm bad duty", pwm.apply(0, State::enabled(1_000, 2_000)));
    report(
        "pwm PWM-CONTROLLER-0",
        Pwm::new("PWM-CONTROLLER-0").apply(0, State::enabled(1_000, 500)),
    );

    report(
        "power profile",
        applibs::power::set_power_profile(applibs::power::PowerProfile::PowerSaver),
    );
    report("power reboot", applibs::power::force_reboot());
    report("pending update", applibs::sysevent::pending_update());
    report("defer update", applibs::sysevent::defer_update(10));
    println!("probe done");
    applibs::time::sleep(Duration::from_secs(3600));
}
