//! GPIO through the control block: the core writes its output levels and enables there and
//! reads its input levels the host writes (on real chips these are the core's own GPIO
//! registers; the host maps each bit to the board pin the app's manifest names).

/// A GPIO number outside 0..32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinOutOfRange(pub u8);

fn bit(pin: u8) -> Result<u32, PinOutOfRange> {
    1u32.checked_shl(u32::from(pin)).ok_or(PinOutOfRange(pin))
}

/// Drives `pin` high or low (and enables it as an output).
pub fn set(pin: u8, high: bool) -> Result<(), PinOutOfRange> {
    let bit = bit(pin)?;
    cortex_m::interrupt::free(|_| {
        let levels = crate::CONTROL.gpio();
        let output = if high {
            levels.output | bit
        } else {
            levels.output & !bit
        };
        crate::CONTROL.set_gpio_outputs(output, levels.enable | bit);
    });
    Ok(())
}

/// The input levels the host gives, one bit per GPIO 0-31 (the board's levels of the pins the
/// app's manifest grants; a change rings the core's doorbell, see [`crate::wait_until`]).
pub fn inputs() -> u32 {
    crate::CONTROL.gpio().input
}

/// The level the host gives input `pin`.
pub fn input(pin: u8) -> Result<bool, PinOutOfRange> {
    Ok(crate::CONTROL.gpio().input & bit(pin)? != 0)
}
