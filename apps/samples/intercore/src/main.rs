//! Intercore: the high-level half of the intercore sample (Azure Sphere's IntercoreComms HL
//! app). It connects to its real-time partner, `apps/rt/rt-echo` (component ID in the first
//! argument), sends a message every second and on each press of button 2, and logs each answer
//! (rt-echo answers with the sender's component ID, 16 bytes, then the message). When the
//! partner restarts, the connection is gone: intercore logs it and connects again.
//!
//! Both manifests must name each other in `AllowedApplicationConnections`: this one names
//! rt-echo's component ID, and rt-echo's must name intercore's
//! (`25025d2c-66da-4448-bae1-ac26fcdd3627`).

use std::time::Duration;

use applibs::application::Connection;
use applibs::gpio::InputPin;
use applibs::{log, time};
use sample_appliance::SAMPLE_BUTTON_2;

const POLL: Duration = Duration::from_millis(10);
const PERIOD_MS: u64 = 1000;

fn main() {
    let partner = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "005180bc-402f-4cb3-a662-72937dbcde47".to_owned());
    if let Err(error) = run(&partner) {
        log::error(&format!("intercore: {error}"));
        std::process::exit(1);
    }
}

/// Connects to `partner`, retrying while it is not running yet.
fn connect(partner: &str) -> Result<Connection, applibs::Error> {
    loop {
        match Connection::connect(partner) {
            Ok(connection) => {
                log::info(&format!("intercore: connected to {partner}"));
                return Ok(connection);
            }
            Err(applibs::Error::Io(reason)) => {
                log::warning(&format!("intercore: {reason}; retrying"));
                time::sleep(Duration::from_secs(1));
            }
            Err(error) => return Err(error),
        }
    }
}

fn run(partner: &str) -> Result<(), applibs::Error> {
    let button = InputPin::open(SAMPLE_BUTTON_2)?;
    let mut connection = connect(partner)?;
    let mut sent: u64 = 0;
    let mut was_pressed = false;
    let mut next_tick = time::monotonic_ms();
    loop {
        let pressed = button.is_low()?;
        let press = pressed && !was_pressed;
        was_pressed = pressed;
        let now = time::monotonic_ms();
        if press || now >= next_tick {
            if now >= next_tick {
                next_tick = now + PERIOD_MS;
            }
            sent += 1;
            let text = if press {
                format!("button pressed (message {sent})")
            } else {
                format!("hello {sent}")
            };
            match connection.send(text.as_bytes(), Duration::from_secs(1)) {
                Ok(()) => {}
                Err(error) if error.is_disconnect() => {
                    log::warning("intercore: the partner restarted; connecting again");
                    connection = connect(partner)?;
                    continue;
                }
                Err(applibs::Error::TimedOut) => {
                    log::warning("intercore: the partner's queue is full; message not sent");
                    continue;
                }
                Err(error) => return Err(error),
            }
        }
        match connection.receive(POLL) {
            Ok(Some(answer)) => {
                let body = answer.data.get(16..).unwrap_or_default();
                log::info(&format!(
                    "intercore: answer from {}: {}",
                    answer.sender,
                    String::from_utf8_lossy(body)
                ));
            }
            Ok(None) => {}
            Err(error) if error.is_disconnect() => {
                log::warning("intercore: the partner restarted; connecting again");
                connection = connect(partner)?;
            }
            Err(error) => return Err(error),
        }
    }
}
