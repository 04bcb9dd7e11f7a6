//! Linux sysfs backends that need no crate: PWM (`/sys/class/pwm/pwmchipN`) and IIO ADCs
//! (`/sys/bus/iio/devices/iio:deviceN`). Each controller maps a manifest value to a directory,
//! so tests run them against a temporary directory laid out like sysfs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::traits::{AdcBackend, PwmBackend};
use crate::types::{PeripheralError, Polarity, PwmState};

/// PWM through sysfs: `controllers` maps a manifest value (`PWM-CONTROLLER-0`) to a
/// `pwmchipN` directory.
#[derive(Debug, Clone, Default)]
pub struct SysfsPwm {
    controllers: BTreeMap<String, PathBuf>,
}

impl SysfsPwm {
    pub fn new(controllers: BTreeMap<String, PathBuf>) -> Self {
        Self { controllers }
    }

    fn chip(&self, controller: &str) -> Result<&Path, PeripheralError> {
        self.controllers
            .get(controller)
            .map(PathBuf::as_path)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("PWM {controller}")))
    }
}

fn write_attribute(path: &Path, value: &str) -> Result<(), PeripheralError> {
    fs::write(path, value).map_err(|error| PeripheralError::io(path.display(), error))
}

fn read_attribute(path: &Path) -> Result<String, PeripheralError> {
    fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .map_err(|error| PeripheralError::io(path.display(), error))
}

impl PwmBackend for SysfsPwm {
    fn apply(
        &self,
        controller: &str,
        channel: u32,
        state: &PwmState,
    ) -> Result<(), PeripheralError> {
        state.validate()?;
        let chip = self.chip(controller)?;
        let npwm: u32 = read_attribute(&chip.join("npwm"))?
            .parse()
            .map_err(|_| PeripheralError::io(chip.display(), "npwm is not a number"))?;
        if channel >= npwm {
            return Err(PeripheralError::NoSuchResource(format!(
                "PWM {controller} channel {channel}"
            )));
        }
        let dir = chip.join(format!("pwm{channel}"));
        if !dir.is_dir() {
            write_attribute(&chip.join("export"), &channel.to_string())?;
        }
        // The kernel refuses a duty cycle above the current period and a period below the current
        // duty cycle: zero the duty cycle first, then period, then duty cycle.
        write_attribute(&dir.join("duty_cycle"), "0")?;
        write_attribute(&dir.join("period"), &state.period_ns.to_string())?;
        write_attribute(&dir.join("duty_cycle"), &state.duty_cycle_ns.to_string())?;
        let polarity = match state.polarity {
            Polarity::Normal => "normal",
            Polarity::Inversed => "inversed",
        };
        write_attribute(&dir.join("polarity"), polarity)?;
        write_attribute(&dir.join("enable"), if state.enabled { "1" } else { "0" })
    }
}

/// ADCs through the IIO sysfs interface: `controllers` maps a manifest value
/// (`ADC-CONTROLLER-0`) to an `iio:deviceN` directory; channel K is `in_voltageK_raw`.
#[derive(Debug, Clone, Default)]
pub struct IioAdc {
    controllers: BTreeMap<String, (PathBuf, u8)>,
}

impl IioAdc {
    /// `controllers`: manifest value to (IIO device directory, sample bits).
    pub fn new(controllers: BTreeMap<String, (PathBuf, u8)>) -> Self {
        Self { controllers }
    }

    fn device(&self, controller: &str) -> Result<&(PathBuf, u8), PeripheralError> {
        self.controllers
            .get(controller)
            .ok_or_else(|| PeripheralError::NoSuchResource(format!("ADC {controller}")))
    }
}

impl AdcBackend for IioAdc {
    fn sample(&self, controller: &str, channel: u32) -> Result<u32, PeripheralError> {
        let (dir, _) = self.device(controller)?;
        let path = dir.join(format!("in_voltage{channel}_raw"));
        if !path.exists() {
            return Err(PeripheralError::NoSuchResource(format!(
                "ADC {controller} channel {channel}"
            )));
        }
        read_attribute(&path)?
            .parse()
            .map_err(|_| PeripheralError::io(path.display(), "not an unsigned sample"))
    }

    fn sample_bits(&self, controller: &str) -> Result<u8, PeripheralError> {
        Ok(self.device(controller)?.1)
    }

    fn reference_millivolts(&self, controller: &str) -> Result<u32, PeripheralError> {
        let (dir, bits) = self.device(controller)?;
        // IIO: millivolts = raw * scale, so full scale = scale * 2^bits.
        let path = dir.join("in_voltage_scale");
        let scale: f64 = read_attribute(&path)?
            .parse()
            .map_err(|_| PeripheralError::io(path.display(), "not a number"))?;
        let full_scale = scale * f64::from(1u32 << bits);
        if !full_scale.is_finite() || full_scale < 0.0 || full_scale > f64::from(u32::MAX) {
            return Err(PeripheralError::io(path.display(), "scale out of range"));
        }
        Ok(full_scale.round() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pwm_writes_the_sysfs_sequence() {
        let root = tempfile::tempdir().unwrap();
        let chip = root.path().join("pwmchip0");
        fs::create_dir_all(chip.join("pwm1")).unwrap();
        fs::write(chip.join("npwm"), "4\n").unwrap();
        let pwm = SysfsPwm::new(BTreeMap::from([(
            "PWM-CONTROLLER-0".to_owned(),
            chip.clone(),
        )]));
        let state = PwmState {
            period_ns: 1_000_000,
            duty_cycle_ns: 300_000,
            polarity: Polarity::Inversed,
            enabled: true,
        };
        pwm.apply("PWM-CONTROLLER-0", 1, &state).unwrap();
        let read = |name: &str| fs::read_to_string(chip.join("pwm1").join(name)).unwrap();
        assert_eq!(read("period"), "1000000");
        assert_eq!(read("duty_cycle"), "300000");
        assert_eq!(read("polarity"), "inversed");
        assert_eq!(read("enable"), "1");
        assert!(matches!(
            pwm.apply("PWM-CONTROLLER-0", 4, &state),
            Err(PeripheralError::NoSuchResource(_))
        ));
        assert!(matches!(
            pwm.apply("PWM-CONTROLLER-1", 0, &state),
            Err(PeripheralError::NoSuchResource(_))
        ));
        // Channel 2 is not exported: the backend exports it (the kernel would create pwm2).
        let error = pwm.apply("PWM-CONTROLLER-0", 2, &state).unwrap_err();
        assert!(matches!(error, PeripheralError::Io { .. }));
        assert_eq!(fs::read_to_string(chip.join("export")).unwrap(), "2");
    }

    #[test]
    fn iio_adc_reads_raw_and_scale() {
        let root = tempfile::tempdir().unwrap();
        let device = root.path().join("iio:device0");
        fs::create_dir_all(&device).unwrap();
        fs::write(device.join("in_voltage0_raw"), "1234\n").unwrap();
        fs::write(device.join("in_voltage1_raw"), "garbage\n").unwrap();
        fs::write(device.join("in_voltage_scale"), "0.610351562\n").unwrap();
        let adc = IioAdc::new(BTreeMap::from([(
            "ADC-CONTROLLER-0".to_owned(),
            (device.clone(), 12),
        )]));
        assert_eq!(adc.sample("ADC-CONTROLLER-0", 0).unwrap(), 1234);
        assert!(matches!(
            adc.sample("ADC-CONTROLLER-0", 1),
            Err(PeripheralError::Io { .. })
        ));
        assert!(matches!(
            adc.sample("ADC-CONTROLLER-0", 2),
            Err(PeripheralError::NoSuchResource(_))
        ));
        assert_eq!(adc.sample_bits("ADC-CONTROLLER-0").unwrap(), 12);
        assert_eq!(adc.reference_millivolts("ADC-CONTROLLER-0").unwrap(), 2500);
    }
}
