//! Guardian: bridges a legacy machine that must never be on a network (a PLC, a meter, a
//! chiller) to the cloud (`docs/guardian.md`). It reads `register_map.json` from its own signed
//! image package, polls the map's points over Modbus TCP (on the private interface its manifest
//! grants) or Modbus RTU (on a granted UART), and hands the readings to its uplink; write
//! requests from the uplink are executed only for writable points within their bounds, and
//! every one is acknowledged.

mod seams;

use seams::{CommandSource, LogUplink, ReadingSink};

fn run(sink: &mut dyn ReadingSink, commands: &mut dyn CommandSource) {
    // The poller and the command executor fill this loop (issue 19 part A).
    let _ = commands.next_request();
    sink.service(0, std::time::Duration::from_secs(1));
}

fn main() {
    let mut uplink = LogUplink;
    let mut commands = LogUplink;
    loop {
        run(&mut uplink, &mut commands);
    }
}
