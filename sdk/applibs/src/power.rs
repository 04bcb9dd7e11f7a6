//! Power control (manifest capability `PowerControls`).

use crate::bindings::ferrosphere::device::powermanagement as raw;
use crate::error::Result;

pub use raw::PowerProfile;

/// Requests a device reboot (`ForceReboot`).
pub fn force_reboot() -> Result<()> {
    Ok(raw::force_reboot()?)
}

/// Requests power-down for at most `max_seconds` (`ForcePowerDown`).
pub fn force_power_down(max_seconds: u32) -> Result<()> {
    Ok(raw::force_power_down(max_seconds)?)
}

/// Sets the power profile (`SetPowerProfile`).
pub fn set_power_profile(profile: PowerProfile) -> Result<()> {
    Ok(raw::set_power_profile(profile)?)
}
