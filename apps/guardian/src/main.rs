//! Guardian: bridges a legacy machine that must never be on a network (a PLC, a meter, a
//! chiller) to the cloud (`docs/guardian.md`). It reads `register_map.json` from its own signed
//! image package, polls the map's points over Modbus TCP (on the private interface its manifest
//! grants) or Modbus RTU (on a granted UART), and hands the readings to its uplink; write
//! requests from the uplink are executed only for writable points within their bounds, and
//! every one is acknowledged.

mod bus;
mod config;
mod seams;
mod uplink;

use std::time::Duration;

use applibs::log;
use bus::{Answer, Bus, Failure};
use ferro_registermap::codec;
use ferro_registermap::{
    MAX_REQUEST_ID_CHARS, Poller, Quality, Reading, Refusal, RegisterMap, WriteAck, WriteFailure,
    WriteOutcome, WriteRequest,
};
use seams::{CommandSource, LogUplink, ReadingSink};

use applibs::time::unix_ms;

/// One poll round: every due read, then the staleness check.
fn poll(poller: &mut Poller, bus: &mut Bus) -> Vec<Reading> {
    let mut readings = Vec::new();
    let mut link_down = false;
    for read in poller.due(applibs::time::monotonic_ms()) {
        // Once a read found the machine silent (after its retries), the rest of the round reads
        // CommError at once rather than each waiting out its own timeouts.
        let answer = if link_down {
            Err(Failure::CommError)
        } else {
            bus.read(&read)
        };
        let now = applibs::time::monotonic_ms();
        readings.extend(match answer {
            Ok(Answer::Registers(registers)) => {
                poller.registers_read(&read, &registers, now, unix_ms())
            }
            Ok(Answer::Bits(bits)) => poller.bits_read(&read, &bits, now, unix_ms()),
            Err(Failure::Exception(code)) => {
                poller.read_failed(&read, Quality::ModbusException(code), unix_ms())
            }
            Err(Failure::CommError) => {
                link_down = true;
                poller.read_failed(&read, Quality::CommError, unix_ms())
            }
        });
    }
    readings.extend(poller.stale(applibs::time::monotonic_ms(), unix_ms()));
    readings
}

/// Executes one write request: only writable points, within their bounds, of their type.
fn execute(map: &RegisterMap, bus: &mut Bus, request: &WriteRequest) -> WriteOutcome {
    if request.id.chars().count() > MAX_REQUEST_ID_CHARS {
        return WriteOutcome::Refused(Refusal::BadRequestId);
    }
    let Some(point) = map.point(&request.point) else {
        return WriteOutcome::Refused(Refusal::UnknownPoint {
            point: request.point.clone(),
        });
    };
    let encoded = match codec::encode(point, request.value) {
        Ok(encoded) => encoded,
        Err(refusal) => return WriteOutcome::Refused(refusal),
    };
    match bus.write(point.address, &encoded) {
        Ok(()) => WriteOutcome::Written,
        Err(Failure::Exception(code)) => WriteOutcome::Failed(WriteFailure::ModbusException(code)),
        Err(Failure::CommError) => WriteOutcome::Failed(WriteFailure::CommError),
    }
}

fn run<U: ReadingSink + CommandSource>(map: RegisterMap, uplink: &mut U) -> ! {
    let mut bus = Bus::new(&map);
    let mut poller = Poller::new(map.clone(), applibs::time::monotonic_ms());
    loop {
        let readings = poll(&mut poller, &mut bus);
        if !readings.is_empty() {
            uplink.accept(readings);
        }
        while let Some(request) = uplink.next_request() {
            let outcome = execute(&map, &mut bus, &request);
            match &outcome {
                // Logged at level error: the device turns it into an error event of the
                // tenant's error report.
                WriteOutcome::Refused(refusal) => log::error(&format!(
                    "guardian: write {} refused: {refusal}",
                    request.id
                )),
                WriteOutcome::Failed(failure) => {
                    log::warning(&format!("guardian: write {} failed: {failure}", request.id))
                }
                WriteOutcome::Written => {}
            }
            uplink.acknowledge(WriteAck {
                id: request.id,
                outcome,
            });
        }
        let now = applibs::time::monotonic_ms();
        let wait = poller.next_due().saturating_sub(now);
        uplink.service(unix_ms(), Duration::from_millis(wait));
    }
}

fn main() {
    let map = match config::load() {
        Ok(map) => map,
        Err(config::ConfigError::Map(errors)) => {
            for issue in &errors.0 {
                log::error(&format!("guardian: {}: {issue}", config::MAP_FILE));
            }
            std::process::exit(2);
        }
        Err(error) => {
            log::error(&format!("guardian: cannot start: {error}"));
            std::process::exit(2);
        }
    };
    log::info(&format!(
        "guardian: register map with {} points, polling {:?}",
        map.points.len(),
        map.transport
    ));
    let args: Vec<String> = std::env::args().skip(1).collect();
    match uplink::UplinkArgs::parse(&args) {
        Some(uplink_args) => match uplink::MqttUplink::new(uplink_args, &map) {
            Ok(mut uplink) => run(map, &mut uplink),
            Err(error) => {
                log::error(&format!("guardian: cannot open the spool: {error}"));
                std::process::exit(2);
            }
        },
        None => run(map, &mut LogUplink::from_args(args.into_iter())),
    }
}
