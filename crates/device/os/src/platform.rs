//! How the device restarts into `ferro-boot` after an OS switch or a forced reboot
//! (docs/updates.md, "Switching the OS"): the [`Restart`] seam.
//!
//! With the software root of trust, re-executing `ferro-boot` is a reboot as far as attestation
//! goes: its measurements live in the process and start over with it. With a TPM it is not: the
//! measurement PCR keeps the old OS's measurement until the platform resets, so a re-executed
//! boot would attest Untrusted (`multiple_os_measurements`) until then. There the restart is a
//! platform reboot: a board runs its reboot command (`reboot` unless configured); a virtual device on
//! swtpm power-cycles its TPM (reset and TPM2_Startup(CLEAR), as a board's firmware would),
//! empties `run/` (a tmpfs on a board) and starts `ferro-boot` afresh.

use crate::{DataDir, DeviceConfig, DeviceError};

/// The environment variable naming a board's reboot command (split on whitespace, run without a
/// shell), e.g. `systemctl reboot`. Without it a TPM board runs [`DEFAULT_REBOOT_COMMAND`].
pub const REBOOT_COMMAND_ENV: &str = "FERRO_REBOOT_COMMAND";

/// A TPM board's reboot command when [`REBOOT_COMMAND_ENV`] is not set: `reboot` (systemd's or
/// util-linux's, from `PATH`), which asks init to reboot the platform.
pub const DEFAULT_REBOOT_COMMAND: &str = "reboot";

/// How long a board's reboot may take to stop this process before the device says it did not.
const REBOOT_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// How this device restarts into `ferro-boot`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Software root of trust: re-execute `ferro-boot` (same PID, fresh process image).
    Reexec,
    /// A TPM on swtpm (a virtual device): power-cycle the TPM, empty `run/`, start `ferro-boot`.
    VirtualPowerCycle {
        /// The TPM's TCTI (`swtpm:host=H,port=P`).
        tcti: String,
    },
    /// A board with a TPM: reboot the platform.
    BoardReboot {
        /// The reboot command (argv): [`REBOOT_COMMAND_ENV`]'s, else [`DEFAULT_REBOOT_COMMAND`].
        command: Vec<String>,
    },
}

impl Restart {
    /// The restart of a device with root of trust `config`; `reboot_command` is
    /// [`REBOOT_COMMAND_ENV`]'s value (it makes any TPM device reboot with it).
    pub fn for_device(config: &DeviceConfig, reboot_command: Option<&str>) -> Restart {
        let command = reboot_command
            .map(|c| c.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .filter(|argv| !argv.is_empty());
        match (config, command) {
            (DeviceConfig::Software, _) => Restart::Reexec,
            (DeviceConfig::Tpm { .. }, Some(command)) => Restart::BoardReboot { command },
            (DeviceConfig::Tpm { tcti }, None) if tcti == "swtpm" || tcti.starts_with("swtpm:") => {
                Restart::VirtualPowerCycle { tcti: tcti.clone() }
            }
            (DeviceConfig::Tpm { .. }, None) => Restart::BoardReboot {
                command: vec![DEFAULT_REBOOT_COMMAND.to_string()],
            },
        }
    }

    /// Reset what a reboot resets; `Ok` means: start `ferro-boot` now (re-execute it). A board
    /// reboot that works never returns (the platform stops this process).
    pub fn reset_platform(&self, data_dir: &DataDir) -> Result<(), DeviceError> {
        match self {
            Restart::Reexec => Ok(()),
            Restart::VirtualPowerCycle { tcti } => {
                power_cycle(tcti)?;
                // A board's run/ is a tmpfs: gone with the power.
                match std::fs::remove_dir_all(data_dir.run_dir()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(DeviceError::Restart(format!(
                            "cannot empty {}: {e}",
                            data_dir.run_dir().display()
                        )));
                    }
                }
                tracing::info!(tcti = %tcti, "virtual TPM power-cycled; run/ emptied");
                Ok(())
            }
            Restart::BoardReboot { command } => {
                let (program, args) = command
                    .split_first()
                    .ok_or_else(|| DeviceError::Restart("the reboot command is empty".into()))?;
                tracing::info!(?command, "rebooting the platform");
                let status = std::process::Command::new(program)
                    .args(args)
                    .status()
                    .map_err(|e| {
                        DeviceError::Restart(format!(
                            "cannot run the reboot command {command:?}: {e}"
                        ))
                    })?;
                if !status.success() {
                    return Err(DeviceError::Restart(format!(
                        "the reboot command {command:?} failed ({status})"
                    )));
                }
                std::thread::sleep(REBOOT_GRACE);
                Err(DeviceError::Restart(format!(
                    "the platform did not reboot within {} s; restart the device to boot the \
                     new OS",
                    REBOOT_GRACE.as_secs()
                )))
            }
        }
    }
}

#[cfg(feature = "tpm")]
fn power_cycle(tcti: &str) -> Result<(), DeviceError> {
    ferro_trust::power_cycle_virtual_tpm(tcti)
        .map_err(|e| DeviceError::Restart(format!("cannot power-cycle the virtual TPM: {e}")))
}

#[cfg(not(feature = "tpm"))]
fn power_cycle(tcti: &str) -> Result<(), DeviceError> {
    Err(DeviceError::Restart(format!(
        "this ferro-device was built without TPM support (feature `tpm`) but the device's TPM \
         is {tcti:?}; restart the device to boot the new OS"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_of_trust_decides_the_restart() {
        let tpm = |t: &str| DeviceConfig::Tpm { tcti: t.into() };
        let cases = [
            (DeviceConfig::Software, None, Restart::Reexec),
            (
                DeviceConfig::Software,
                Some("systemctl reboot"),
                Restart::Reexec,
            ),
            (
                tpm("swtpm:host=127.0.0.1,port=2321"),
                None,
                Restart::VirtualPowerCycle {
                    tcti: "swtpm:host=127.0.0.1,port=2321".into(),
                },
            ),
            (
                tpm("device:/dev/tpmrm0"),
                None,
                Restart::BoardReboot {
                    command: vec!["reboot".into()],
                },
            ),
            (
                tpm("device:/dev/tpmrm0"),
                Some(" systemctl  reboot "),
                Restart::BoardReboot {
                    command: vec!["systemctl".into(), "reboot".into()],
                },
            ),
            (
                tpm("swtpm:port=9"),
                Some("/sbin/reboot"),
                Restart::BoardReboot {
                    command: vec!["/sbin/reboot".into()],
                },
            ),
            (
                tpm("device:/dev/tpmrm0"),
                Some("   "),
                Restart::BoardReboot {
                    command: vec!["reboot".into()],
                },
            ),
        ];
        for (config, command, want) in cases {
            assert_eq!(
                Restart::for_device(&config, command),
                want,
                "{config:?} {command:?}"
            );
        }
    }

    #[test]
    fn a_failing_reboot_command_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let r = Restart::BoardReboot {
            command: vec!["false".into()],
        };
        let e = r.reset_platform(&DataDir::new(dir.path())).unwrap_err();
        assert!(e.to_string().contains("the reboot command"), "{e}");
        let r = Restart::BoardReboot {
            command: vec!["/nonexistent/reboot".into()],
        };
        let e = r.reset_platform(&DataDir::new(dir.path())).unwrap_err();
        assert!(
            e.to_string().contains("cannot run the reboot command"),
            "{e}"
        );
    }
}
