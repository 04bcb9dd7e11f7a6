//! The guardian app (apps/guardian), built, in the real runtime, against a pymodbus simulator
//! of the legacy machine (`ferro_e2e::modbus`): polling over Modbus TCP and RTU with values and
//! scaling right, a machine that goes silent and comes back, exception responses, and write
//! requests in and out of bounds and to read-only points, acknowledged and reported.
//!
//! Needs `python3` with pymodbus (`FERRO_PYTHON`, set by scripts/test.sh) and `socat`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::{Device, device_with, manifest_with, wait_until, wasm};
use ferro_e2e::modbus::Simulator;
use ferro_peripherals::Peripherals;
use ferro_peripherals::linux::LinuxUart;
use ferro_runtime::{AppId, ErrorKind, InstallOptions, PackageFiles};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// The guardian with `map` in its package, and the command channel it connects to.
struct Guardian {
    device: Device,
    app: AppId,
    listener: TcpListener,
    channel: Option<(TcpStream, BufReader<TcpStream>)>,
}

fn start(map: &Value, uart_pty: Option<&std::path::Path>) -> Guardian {
    common::init_tracing();
    let listener = TcpListener::bind("127.0.0.1:0").expect("command listener");
    let port = listener.local_addr().expect("address").port();
    let manifest = manifest_with("guardian", |json| {
        json["CmdArgs"] = json!(["--commands", format!("127.0.0.1:{port}")]);
    });
    let files = PackageFiles::new([
        (
            "register_map.json".to_owned(),
            serde_json::to_vec(map).expect("json"),
        ),
        ("app_manifest.json".to_owned(), manifest.json_bytes()),
    ])
    .expect("package files");
    let device = device_with(|_| {});
    let device = match uart_pty {
        None => device,
        Some(pty) => {
            // The guardian's UART (ISU0, `$SAMPLE_UART`) is the device end of the pty pair.
            let mut peripherals = Peripherals::all_from(device.board.clone());
            let paths = BTreeMap::from([("ISU0".to_owned(), pty.to_path_buf())]);
            peripherals.uart = Arc::new(LinuxUart::new(paths));
            let runtime = ferro_runtime::Runtime::new(
                common::test_config(device.storage.path()),
                peripherals,
            )
            .expect("runtime");
            Device { runtime, ..device }
        }
    };
    let app = device
        .runtime
        .install(
            &wasm("guardian"),
            &manifest,
            InstallOptions {
                package_files: files,
                ..InstallOptions::default()
            },
        )
        .expect("install guardian");
    Guardian {
        device,
        app,
        listener,
        channel: None,
    }
}

impl Guardian {
    fn wait_for_log(&self, needle: &str) -> String {
        self.device.wait_for_log(self.app, needle, WAIT)
    }

    /// Sends one write request; returns its acknowledgement.
    fn write(&mut self, id: &str, point: &str, value: Value) -> Value {
        if self.channel.is_none() {
            let (stream, _) = self.listener.accept().expect("the guardian connects");
            stream.set_read_timeout(Some(WAIT)).expect("timeout");
            let reader = BufReader::new(stream.try_clone().expect("clone"));
            self.channel = Some((stream, reader));
        }
        let (stream, reader) = self.channel.as_mut().expect("channel");
        let request = json!({"id": id, "point": point, "value": value});
        writeln!(stream, "{request}").expect("send request");
        let mut line = String::new();
        reader.read_line(&mut line).expect("an acknowledgement");
        let ack: Value = serde_json::from_str(&line).expect("ack JSON");
        assert_eq!(ack["id"], id, "{ack}");
        ack["outcome"].clone()
    }
}

fn tcp_map(port: u16, points: Value) -> Value {
    json!({
        "schemaVersion": 1,
        "transport": {"type": "tcp", "host": "127.0.0.1", "port": port},
        "unitId": 1,
        "timeoutMs": 200,
        "retries": 1,
        "points": points,
    })
}

#[test]
fn polls_over_tcp_with_scaling_and_executes_writes_within_bounds() {
    let mut machine = Simulator::tcp();
    machine.set("ir", 0, &[215]); // 21.5 °C at scale 0.1
    machine.set("ir", 1, &[(-40i16) as u16]); // -4.0 °C
    machine.set("ir", 10, &[0x0002, 0x0001]); // u32 0x00010002 = 65538, low word first
    machine.set("hr", 20, &[0x4048, 0xF5C3]); // f32 3.14
    machine.set("di", 0, &[1]);
    let map = tcp_map(
        machine.port.expect("port"),
        json!([
            {"name": "supply_temp", "object": "input_register", "address": 0, "type": "i16", "scale": 0.1, "pollMs": 100},
            {"name": "return_temp", "object": "input_register", "address": 1, "type": "i16", "scale": 0.1, "pollMs": 100},
            {"name": "energy", "object": "input_register", "address": 10, "type": "u32", "wordOrder": "low_first", "pollMs": 100},
            {"name": "flow", "object": "holding_register", "address": 20, "type": "f32", "pollMs": 100},
            {"name": "alarm", "object": "discrete_input", "address": 0, "pollMs": 100},
            {"name": "setpoint", "object": "holding_register", "address": 100, "type": "i16", "scale": 0.1,
             "pollMs": 100, "writable": {"min": 5, "max": 25}},
            {"name": "running", "object": "coil", "address": 0, "pollMs": 100, "writable": true}
        ]),
    );
    let mut guardian = start(&map, None);
    guardian.wait_for_log("reading supply_temp=21.5 quality=\"good\"");
    guardian.wait_for_log("reading return_temp=-4 quality=\"good\"");
    guardian.wait_for_log("reading energy=65538 quality=\"good\"");
    let flow = guardian.wait_for_log("reading flow=3.14");
    assert!(flow.contains("quality=\"good\""), "{flow}");
    guardian.wait_for_log("reading alarm=true quality=\"good\"");
    // A change on the machine reaches the guardian at the next poll.
    machine.set("ir", 0, &[230]);
    guardian.wait_for_log("reading supply_temp=23 quality=\"good\"");

    // Writes: within bounds written (inverse scaling: 21.5 -> raw 215), a coil, then refusals.
    assert_eq!(
        guardian.write("w1", "setpoint", json!(21.5)),
        json!("written")
    );
    assert_eq!(machine.get("hr", 100, 1), [215]);
    assert_eq!(
        guardian.write("w2", "running", json!(true)),
        json!("written")
    );
    assert_eq!(machine.get("co", 0, 1), [1]);
    let out_of_bounds = guardian.write("w3", "setpoint", json!(40));
    assert_eq!(
        out_of_bounds["refused"]["reason"], "out_of_bounds",
        "{out_of_bounds}"
    );
    let read_only = guardian.write("w4", "supply_temp", json!(20));
    assert_eq!(
        read_only["refused"]["reason"], "not_writable",
        "{read_only}"
    );
    let unknown = guardian.write("w5", "no_such_point", json!(1));
    assert_eq!(unknown["refused"]["reason"], "unknown_point", "{unknown}");
    let wrong_type = guardian.write("w6", "running", json!(1));
    assert_eq!(
        wrong_type["refused"]["reason"], "wrong_type",
        "{wrong_type}"
    );
    // Nothing was written by the refused requests.
    assert_eq!(machine.get("hr", 100, 1), [215]);
    // Each refusal is an error event of the app (the tenant's error report).
    let reported = wait_until(WAIT, || {
        let events: Vec<String> = guardian
            .device
            .runtime
            .recent_events()
            .into_iter()
            .filter_map(|event| match event.kind {
                ErrorKind::AppReported { message } => Some(message),
                _ => None,
            })
            .collect();
        (events.len() >= 4).then_some(events)
    })
    .expect("four AppReported events");
    assert!(reported[0].contains("write w3 refused"), "{reported:?}");
    assert!(reported[1].contains("write w4 refused"), "{reported:?}");
}

#[test]
fn reads_the_largest_batch_of_125_registers_over_tcp() {
    // 125 consecutive registers make one read, whose answer (259 bytes with the MBAP header) is
    // longer than 255 bytes.
    let mut machine = Simulator::tcp();
    machine.set("ir", 0, &[11]);
    machine.set("ir", 124, &[4242]);
    let points: Vec<Value> = (0..125)
        .map(|address| {
            json!({"name": format!("r{address}"), "object": "input_register",
                   "address": address, "type": "u16", "pollMs": 100})
        })
        .collect();
    let guardian = start(&tcp_map(machine.port.expect("port"), json!(points)), None);
    guardian.wait_for_log("reading r124=4242 quality=\"good\"");
    guardian.wait_for_log("reading r0=11 quality=\"good\"");
}

#[test]
fn a_silent_machine_reads_comm_error_then_recovers() {
    let mut machine = Simulator::tcp();
    machine.set("hr", 5, &[42]);
    let map = tcp_map(
        machine.port.expect("port"),
        json!([{"name": "level", "object": "holding_register", "address": 5, "type": "u16", "pollMs": 100}]),
    );
    let guardian = start(&map, None);
    guardian.wait_for_log("reading level=42 quality=\"good\"");
    machine.command("mute");
    let failed = guardian.wait_for_log("quality=\"comm_error\"");
    // The last good value is kept with the failure.
    assert!(failed.contains("level=42"), "{failed}");
    machine.command("unmute");
    machine.set("hr", 5, &[43]);
    guardian.wait_for_log("reading level=43 quality=\"good\"");
}

#[test]
fn exception_responses_carry_their_code_in_readings_and_write_acks() {
    let mut machine = Simulator::tcp();
    machine.command("exception ir 7 2");
    machine.command("exception hr 9 4");
    let map = tcp_map(
        machine.port.expect("port"),
        json!([
            {"name": "missing", "object": "input_register", "address": 7, "type": "u16", "pollMs": 100},
            {"name": "valve", "object": "holding_register", "address": 9, "type": "u16", "pollMs": 100,
             "writable": {"min": 0, "max": 100}}
        ]),
    );
    let mut guardian = start(&map, None);
    guardian.wait_for_log("reading missing=none quality={\"modbus_exception\":2}");
    assert_eq!(
        guardian.write("w1", "valve", json!(50)),
        json!({"failed": {"modbus_exception": 4}})
    );
    machine.command("clear ir 7");
    machine.set("ir", 7, &[7]);
    guardian.wait_for_log("reading missing=7 quality=\"good\"");
}

#[test]
fn polls_and_writes_over_rtu_on_a_serial_line() {
    // A pty pair carries no parity (Linux refuses PARENB on a pty), so the line is 8N1 here.
    let mut machine = Simulator::rtu(19200, 'N', 1);
    machine.set("hr", 3, &[0x3F80, 0x0000]); // f32 1.0
    machine.set("co", 4, &[1]);
    let map = json!({
        "schemaVersion": 1,
        "transport": {"type": "rtu", "uart": "ISU0", "baudRate": 19200, "parity": "none", "stopBits": 1},
        "unitId": 17,
        "timeoutMs": 300,
        "points": [
            {"name": "pressure", "object": "holding_register", "address": 3, "type": "f32", "pollMs": 200},
            {"name": "pump", "object": "coil", "address": 4, "pollMs": 200, "writable": true}
        ]
    });
    let mut guardian = start(&map, Some(machine.device_pty()));
    guardian.wait_for_log("reading pressure=1 quality=\"good\"");
    guardian.wait_for_log("reading pump=true quality=\"good\"");
    assert_eq!(guardian.write("w1", "pump", json!(false)), json!("written"));
    assert_eq!(machine.get("co", 4, 1), [0]);
}

#[test]
fn a_map_with_errors_stops_the_guardian_naming_each() {
    let map = json!({
        "schemaVersion": 1,
        "transport": {"type": "tcp", "host": "10.9.9.9"},
        "unitId": 1,
        "points": [
            {"name": "a", "object": "input_register", "address": 70000, "type": "u16"},
            {"name": "b", "object": "input_register", "address": 1, "type": "u16", "writable": {"min": 0, "max": 1}}
        ]
    });
    let guardian = start(&map, None);
    guardian.wait_for_log("register_map.json: transport.host: 10.9.9.9 is not a host");
    guardian.wait_for_log("register_map.json: points[0].address: 70000 is out of range 0..=65535");
    guardian.wait_for_log(
        "register_map.json: points[1].writable: input_register points cannot be written",
    );
}
