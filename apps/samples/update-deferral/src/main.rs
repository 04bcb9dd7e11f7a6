//! Update deferral, as an appliance needs it: an update must not restart the device in the
//! middle of a job. While a job runs, every pending update is deferred by the minutes given as
//! the first command-line argument (`CmdArgs`); a press of `SAMPLE_BUTTON_2` ends the job and
//! lets the update proceed at once.
//!
//! Needs `SystemEventNotifications` (to see the pending update) and `SoftwareUpdateDeferral` (to
//! defer it) in its manifest; the device caps deferrals (24 hours for the OS, 7 days for apps).

use std::time::Duration;

use applibs::gpio::InputPin;
use applibs::sysevent::{self, UpdateKind};
use applibs::{log, time};
use sample_appliance::SAMPLE_BUTTON_2;

const POLL: Duration = Duration::from_millis(100);

fn main() {
    if let Err(error) = run() {
        log::error(&format!("update-deferral: {error}"));
        std::process::exit(1);
    }
}

fn run() -> Result<(), applibs::Error> {
    let minutes: u32 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(30);
    let button = InputPin::open(SAMPLE_BUTTON_2)?;
    log::info(&format!(
        "update-deferral: job running; updates wait {minutes} min; button on GPIO {SAMPLE_BUTTON_2} ends the job"
    ));
    let mut busy = true;
    let mut deferred = false;
    let mut was_pressed = false;
    loop {
        let pressed = button.is_low()?;
        if pressed && !was_pressed && busy {
            busy = false;
            log::info("update-deferral: job done");
            if deferred {
                sysevent::resume_update()?;
                log::info("update-deferral: the update may proceed");
                deferred = false;
            }
        }
        was_pressed = pressed;
        match sysevent::pending_update()? {
            Some(update) if busy && !deferred => {
                let kind = match update.kind {
                    UpdateKind::Os => "OS",
                    UpdateKind::App => "app",
                };
                sysevent::defer_update(minutes)?;
                deferred = true;
                log::info(&format!(
                    "update-deferral: {kind} update pending (due in {} s); deferred by {minutes} min",
                    update.seconds_until_apply
                ));
            }
            None => deferred = false,
            _ => {}
        }
        time::sleep(POLL);
    }
}
