//! Blink: the LED blinks, and each press of button 1 toggles a second LED.
//!
//! Peripherals come from the sample appliance hardware definition
//! (`hardware/ferro_vboard/sample_appliance.json`): `SAMPLE_LED` blinks, `SAMPLE_BUTTON_1`
//! toggles `SAMPLE_RGBLED_GREEN`. The `sample-appliance` crate holds the constants generated from
//! that definition (a runtime test checks it is current). The first command-line argument
//! (`CmdArgs` in `app_manifest.json`) is the blink half-period in milliseconds.

#[allow(dead_code)]
use std::time::Duration;

use applibs::gpio::{InputPin, Level, OutputPin};
use applibs::{log, time};
use sample_appliance::{SAMPLE_BUTTON_1, SAMPLE_LED, SAMPLE_RGBLED_GREEN};

const POLL: Duration = Duration::from_millis(10);

fn main() {
    if let Err(error) = run() {
        log::error(&format!("blink: {error}"));
        std::process::exit(1);
    }
}

fn run() -> Result<(), applibs::Error> {
    let half_period_ms: u64 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .filter(|ms| *ms > 0)
        .unwrap_or(250);
    // The board's LEDs are active low: High is off.
    let mut led = OutputPin::open(SAMPLE_LED, Level::High)?;
    let mut indicator = OutputPin::open(SAMPLE_RGBLED_GREEN, Level::High)?;
    let button = InputPin::open(SAMPLE_BUTTON_1)?;
    log::info(&format!(
        "blink: LED on GPIO {SAMPLE_LED} every {half_period_ms} ms; button on GPIO {SAMPLE_BUTTON_1} toggles GPIO {SAMPLE_RGBLED_GREEN}"
    ));
    let mut was_pressed = false;
    let mut last_blink = time::monotonic_ms();
    loop {
        let pressed = button.is_low()?;
        if pressed && !was_pressed {
            let level = indicator.toggle()?;
            let state = if level == Level::Low { "on" } else { "off" };
            println!("button pressed: indicator {state}");
        }
        was_pressed = pressed;
        let now = time::monotonic_ms();
        if now.saturating_sub(last_blink) >= half_period_ms {
            led.toggle()?;
            last_blink = now;
        }
        time::sleep(POLL);
    }
}
