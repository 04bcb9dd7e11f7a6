//! The two seams between the Modbus side of the guardian (this crate's poller and command
//! executor) and its uplink (`src/uplink/`: MQTT, payloads, store and forward).
//!
//! The app is one thread: the main loop polls the points that are due, hands their readings to
//! the [`ReadingSink`], executes the write requests the [`CommandSource`] has, acknowledges
//! each, and gives the uplink the time left until the next poll is due
//! ([`ReadingSink::service`]). The main loop takes one value that is both (`run<U: ReadingSink +
//! CommandSource>`), so one MQTT session can serve both directions. Neither seam may wait longer than it is given: the poll periods
//! are the machine's, and a slow broker must never delay a read.

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

use applibs::net::TcpStream;
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

/// The uplink of a guardian without a broker: readings and acknowledgements go to the app's
/// log, one line each; with `--commands HOST:PORT` in its arguments, it also connects there (a
/// host its manifest allows) and takes write requests as JSON lines, answering each with a
/// JSON [`WriteAck`] line. What the simulator tests and the local demo run.
#[derive(Debug, Default)]
pub struct LogUplink {
    commands: Option<(String, u16)>,
    stream: Option<TcpStream>,
    received: Vec<u8>,
    pending: VecDeque<WriteRequest>,
}

/// The longest command line taken; a longer one is dropped (and logged).
const MAX_COMMAND_LINE: usize = 4096;

impl LogUplink {
    pub fn from_args(mut args: impl Iterator<Item = String>) -> LogUplink {
        let mut uplink = LogUplink::default();
        while let Some(arg) = args.next() {
            if arg == "--commands" {
                uplink.commands = args.next().and_then(|target| {
                    let (host, port) = target.rsplit_once(':')?;
                    Some((host.to_owned(), port.parse().ok()?))
                });
            }
        }
        uplink
    }

    /// Waits at most `budget` for command bytes; splits complete lines into requests.
    fn receive(&mut self, budget: Duration) {
        let Some((host, port)) = &self.commands else {
            applibs::time::sleep(budget);
            return;
        };
        if self.stream.is_none() {
            match TcpStream::connect(host, *port, budget.max(Duration::from_millis(10))) {
                Ok(stream) => self.stream = Some(stream),
                Err(_) => {
                    applibs::time::sleep(budget);
                    return;
                }
            }
        }
        let Some(stream) = &self.stream else { return };
        match stream.receive(MAX_COMMAND_LINE as u32, budget) {
            Ok(bytes) if bytes.is_empty() => self.stream = None,
            Ok(bytes) => self.received.extend_from_slice(&bytes),
            Err(applibs::Error::TimedOut) => {}
            Err(_) => self.stream = None,
        }
        while let Some(end) = self.received.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = self.received.drain(..=end).collect();
            match serde_json::from_slice::<WriteRequest>(&line) {
                Ok(request) => self.pending.push_back(request),
                Err(error) => applibs::log::error(&format!("guardian: bad command line: {error}")),
            }
        }
        if self.received.len() > MAX_COMMAND_LINE {
            applibs::log::error("guardian: command line too long, dropped");
            self.received.clear();
        }
    }
}

impl ReadingSink for LogUplink {
    fn accept(&mut self, readings: Vec<Reading>) {
        for reading in readings {
            applibs::log::info(&format!("guardian: reading {}", reading_line(&reading)));
        }
    }

    fn service(&mut self, _now_ms: u64, budget: Duration) {
        self.receive(budget);
    }
}

impl CommandSource for LogUplink {
    fn next_request(&mut self) -> Option<WriteRequest> {
        self.pending.pop_front()
    }

    fn acknowledge(&mut self, ack: WriteAck) {
        let line = serde_json::to_string(&ack).unwrap_or_default();
        applibs::log::info(&format!("guardian: ack {line}"));
        if let Some(stream) = &mut self.stream {
            let sent = stream.write_all(format!("{line}\n").as_bytes());
            if sent.is_err() {
                self.stream = None;
            }
        }
    }
}

/// One reading as a log line: `point=value quality=... t=...`.
pub fn reading_line(reading: &Reading) -> String {
    let value = match reading.value {
        Some(value) => value.to_string(),
        None => "none".to_owned(),
    };
    format!(
        "{}={} quality={} t={}",
        reading.point,
        value,
        serde_json::to_string(&reading.quality).unwrap_or_default(),
        reading.timestamp_ms
    )
}
