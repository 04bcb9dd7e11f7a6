//! The two seams between the Modbus side of the guardian (this crate's poller and command
//! executor) and its uplink (`src/uplink/`: MQTT, payloads, store and forward).
//!
//! The app is one thread: the main loop polls the points that are due, hands their readings to
//! the [`ReadingSink`], executes the write requests the [`CommandSource`] has, acknowledges
//! each, and gives the uplink the time left until the next poll is due
//! ([`ReadingSink::service`]). Neither seam may wait longer than it is given: the poll periods
//! are the machine's, and a slow broker must never delay a read.

use std::time::Duration;

use ferro_registermap::{Reading, WriteAck, WriteRequest};

/// Where readings go. `accept` must return at once (queue, do not send); the sending happens in
/// `service`, within the budget the main loop gives.
pub trait ReadingSink {
    /// Takes the readings of one poll round (at least one).
    fn accept(&mut self, readings: Vec<Reading>);

    /// Does the uplink's I/O (connect, publish, store and forward) for at most `budget`; the
    /// main loop calls it between poll rounds, and sleeps for whatever is left when it returns
    /// early. `now_ms` is Unix time in milliseconds.
    fn service(&mut self, now_ms: u64, budget: Duration);
}

/// Where write requests come from and their acknowledgements go.
pub trait CommandSource {
    /// The next write request received and not yet taken, if any; must not wait.
    fn next_request(&mut self) -> Option<WriteRequest>;

    /// The answer to a request taken from `next_request` (every one is answered exactly once).
    fn acknowledge(&mut self, ack: WriteAck);
}

/// The sink and source of a guardian without an uplink: readings and acknowledgements go to
/// the app's log (one line each), and no command arrives. What the app runs when its
/// arguments name no broker; the simulator tests read its log.
#[derive(Debug, Default)]
pub struct LogUplink;

impl ReadingSink for LogUplink {
    fn accept(&mut self, readings: Vec<Reading>) {
        for reading in readings {
            applibs::log::info(&format!("guardian: reading {}", reading_line(&reading)));
        }
    }

    fn service(&mut self, _now_ms: u64, budget: Duration) {
        applibs::time::sleep(budget);
    }
}

impl CommandSource for LogUplink {
    fn next_request(&mut self) -> Option<WriteRequest> {
        None
    }

    fn acknowledge(&mut self, ack: WriteAck) {
        applibs::log::info(&format!("guardian: ack {ack:?}"));
    }
}

/// One reading as a log line: `point=value quality=... t=...`.
pub fn reading_line(reading: &Reading) -> String {
    let value = match reading.value {
        Some(value) => value.to_string(),
        None => "none".to_owned(),
    };
    format!(
        "{}={} quality={:?} t={}",
        reading.point, value, reading.quality, reading.timestamp_ms
    )
}
