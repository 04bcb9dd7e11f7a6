//! Drives the guardian's uplink (`guardian-uplink`) as the guardian app does, with synthetic
//! readings instead of a Modbus poller: the runtime's guardian uplink tests run it against a
//! real Mosquitto that requires the device certificate.
//!
//! Each round (every `interval` ms) is one batch of four points: `counter` (the round number,
//! 0, 1, 2, ... across restarts of the app it starts again at 0), `flag` (a boolean), `temp`
//! (a float, unit `degC`) and `pressure` (a Modbus exception 2 every fourth round, else good).
//! Write requests are answered: `setpoint` with a value in 0..=100 is written, any other value
//! is refused as out of bounds, any other point as unknown.
//!
//! Arguments (`CmdArgs`): broker host, port, `json` or `sparkplug`, device ID, interval in ms.

use std::time::Duration;

use ferro_registermap::{
    PointName, Quality, Reading, Refusal, Value, ValueKind, WriteAck, WriteOutcome,
};
use guardian_uplink::device::{DeviceClock, DeviceStorage, TlsConnector, log_events};
use guardian_uplink::{Format, PointInfo, Unsealed, Uplink, UplinkConfig};

fn name(text: &str) -> PointName {
    PointName::new(text).unwrap_or_else(|_| unreachable!("a valid point name"))
}

use applibs::time::unix_ms as now_ms;

fn readings(round: u64, now: u64) -> Vec<Reading> {
    let pressure = if round % 4 == 3 {
        Reading {
            point: name("pressure"),
            value: None,
            timestamp_ms: now,
            quality: Quality::ModbusException(2),
        }
    } else {
        Reading {
            point: name("pressure"),
            value: Some(Value::Float(1.5)),
            timestamp_ms: now,
            quality: Quality::Good,
        }
    };
    vec![
        Reading {
            point: name("counter"),
            value: Some(Value::Int(round as i64)),
            timestamp_ms: now,
            quality: Quality::Good,
        },
        Reading {
            point: name("flag"),
            value: Some(Value::Bool(round.is_multiple_of(2))),
            timestamp_ms: now,
            quality: Quality::Good,
        },
        Reading {
            point: name("temp"),
            value: Some(Value::Float(20.0 + round as f64 / 4.0)),
            timestamp_ms: now,
            quality: Quality::Good,
        },
        pressure,
    ]
}

fn answer(request: &ferro_registermap::WriteRequest) -> WriteOutcome {
    if request.point.as_str() != "setpoint" {
        return WriteOutcome::Refused(Refusal::UnknownPoint {
            point: request.point.clone(),
        });
    }
    let value = request.value.as_f64();
    if (0.0..=100.0).contains(&value) {
        WriteOutcome::Written
    } else {
        WriteOutcome::Refused(Refusal::OutOfBounds {
            point: request.point.clone(),
            value: request.value,
            min: 0.0,
            max: 100.0,
        })
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_owned());
    let host = arg(0, "127.0.0.1");
    let port = arg(1, "8883").parse().unwrap_or(8883);
    let format = if arg(2, "json") == "sparkplug" {
        Format::SparkplugB
    } else {
        Format::Json
    };
    let device = arg(3, "guardian-1");
    let interval = Duration::from_millis(arg(4, "100").parse().unwrap_or(100));

    let mut config = UplinkConfig::new(&device, format);
    config.backoff_initial = Duration::from_millis(100);
    config.backoff_max = Duration::from_millis(500);
    config.keep_alive = Duration::from_secs(5);
    let points = vec![
        PointInfo {
            name: name("counter"),
            unit: None,
            kind: ValueKind::Number,
        },
        PointInfo {
            name: name("flag"),
            unit: None,
            kind: ValueKind::Bool,
        },
        PointInfo {
            name: name("temp"),
            unit: Some("degC".to_owned()),
            kind: ValueKind::Number,
        },
        PointInfo {
            name: name("pressure"),
            unit: Some("bar".to_owned()),
            kind: ValueKind::Number,
        },
    ];
    let connector = TlsConnector {
        host,
        port,
        timeout: Duration::from_secs(5),
    };
    let mut uplink = match Uplink::new(
        config,
        points,
        DeviceStorage,
        connector,
        DeviceClock,
        Unsealed,
    ) {
        Ok(uplink) => uplink,
        Err(error) => {
            applibs::log::error(&format!("uplink-probe: {error}"));
            std::process::exit(1);
        }
    };
    applibs::log::info(&format!(
        "uplink-probe: started, {} messages spooled",
        uplink.spool().len()
    ));
    let mut round = 0u64;
    loop {
        uplink.accept(&readings(round, now_ms()), now_ms());
        while let Some(request) = uplink.next_request() {
            let outcome = answer(&request);
            applibs::log::info(&format!(
                "uplink-probe: write {} -> {outcome:?}",
                request.id
            ));
            uplink.acknowledge(&WriteAck {
                id: request.id,
                outcome,
            });
        }
        uplink.service(now_ms(), interval);
        log_events(uplink.take_events());
        if round.is_multiple_of(10) {
            applibs::log::info(&format!(
                "uplink-probe: round {round}, {} spooled, {} dropped",
                uplink.spool().len(),
                uplink.spool().dropped_total()
            ));
        }
        round += 1;
    }
}
