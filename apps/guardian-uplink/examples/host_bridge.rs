//! The bare host bridge of the guardian's benchmark (`docs/guardian.md`, "Performance";
//! `scripts/bench/guardian.sh` runs it through `crates/device/runtime/benches/guardian.rs`): the
//! guardian's code path as a plain host process, without the sandbox. The register map's
//! poller (`ferro-registermap`), Modbus TCP framing by `rmodbus` over a `std` socket, and this
//! crate's uplink (the spool in a file, MQTT 3.1.1 by `mqttbytes`, JSON batches) over a plain TCP
//! connection to the broker: no sandbox, no signing, no TLS, so it is an upper bound for the
//! guardian.
//!
//! ```text
//! host_bridge bridge MAP.json BROKER_HOST:PORT DEVICE SPOOL_FILE SPOOL_BYTES
//!     bridges the map's machine to the broker until killed (JSON, topic ferro/guardian/DEVICE)
//! host_bridge probe MACHINE_HOST:PORT COUNT SECONDS
//!     the machine alone: reads COUNT input registers from 0 back to back for SECONDS and prints
//!     `reads R points P seconds S`
//! ```
//!
//! Only what the benchmark needs: Modbus TCP, reads; a failed exchange ends the process (the
//! guardian's retries and RTU are `apps/guardian/src/bus.rs`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferro_registermap::map::{DataType, ObjectType};
use ferro_registermap::{ReadRequest, RegisterMap, Transport, ValueKind};
use guardian_uplink::spool::Storage;
use guardian_uplink::{Connector, Format, PointInfo, StdClock, Unsealed, Uplink, UplinkConfig};
use rmodbus::client::ModbusRequest;

/// The spool in a file of the host, within `capacity` bytes.
struct FileStorage {
    file: File,
    capacity: u64,
}

impl Storage for FileStorage {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read(&mut self, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match self
                .file
                .read_at(&mut buf[filled..], offset + filled as u64)?
            {
                0 => break,
                n => filled += n,
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }
}

/// Plain TCP to the broker.
struct PlainConnector(String);

impl Connector for PlainConnector {
    type Transport = TcpStream;
    fn connect(&mut self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(&self.0)?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// One Modbus TCP connection to the machine.
struct Machine {
    stream: TcpStream,
    transaction: u16,
    unit_id: u8,
}

impl Machine {
    fn connect(address: &str, unit_id: u8, timeout: Duration) -> io::Result<Machine> {
        let stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        Ok(Machine {
            stream,
            transaction: 0,
            unit_id,
        })
    }

    /// Reads `count` registers (or bits) of `object` from `address`.
    fn read(&mut self, object: ObjectType, address: u16, count: u16) -> io::Result<Vec<u16>> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        self.transaction = self.transaction.wrapping_add(1);
        let mut request = ModbusRequest::new_tcp_udp(self.unit_id, self.transaction);
        let mut frame = Vec::new();
        match object {
            ObjectType::Coil => request.generate_get_coils(address, count, &mut frame),
            ObjectType::DiscreteInput => request.generate_get_discretes(address, count, &mut frame),
            ObjectType::HoldingRegister => {
                request.generate_get_holdings(address, count, &mut frame)
            }
            ObjectType::InputRegister => request.generate_get_inputs(address, count, &mut frame),
        }
        .map_err(|_| bad("request"))?;
        self.stream.write_all(&frame)?;
        let mut response = vec![0; 7];
        self.stream.read_exact(&mut response)?;
        // The MBAP header's length field counts the bytes after the first 6 (as the guardian's
        // bus reads it: rmodbus's guess refuses frames over 255 bytes, 124 or 125 registers).
        if response[2..4] != [0, 0] {
            return Err(bad("protocol ID"));
        }
        let total = 6 + usize::from(u16::from_be_bytes([response[4], response[5]]));
        if !(9..=260).contains(&total) {
            return Err(bad("frame length"));
        }
        response.resize(total, 0);
        self.stream.read_exact(&mut response[7..])?;
        let mut values = Vec::new();
        if object.is_bit() {
            let mut bits = Vec::new();
            request
                .parse_bool(&response, &mut bits)
                .map_err(|_| bad("response"))?;
            values.extend(bits.into_iter().map(u16::from));
        } else {
            request
                .parse_u16(&response, &mut values)
                .map_err(|_| bad("response"))?;
        }
        Ok(values)
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn bridge(args: &[String]) -> Result<(), String> {
    let [map_file, broker, device, spool_file, spool_bytes] = args else {
        return Err("bridge MAP.json BROKER_HOST:PORT DEVICE SPOOL_FILE SPOOL_BYTES".to_owned());
    };
    let text = std::fs::read(map_file).map_err(|e| format!("{map_file}: {e}"))?;
    let map = RegisterMap::parse(&text, None).map_err(|e| format!("{map_file}: {e}"))?;
    let Transport::Tcp { host, port } = &map.transport else {
        return Err("the bare bridge speaks Modbus TCP only".to_owned());
    };
    let clock = StdClock::default();
    let monotonic = |clock: &StdClock| clock.0.elapsed().as_millis() as u64;
    let mut machine = Machine::connect(
        &format!("{host}:{port}"),
        map.unit_id,
        Duration::from_millis(u64::from(map.timeout_ms)),
    )
    .map_err(|e| format!("the machine: {e}"))?;
    let points = map
        .points
        .iter()
        .map(|point| PointInfo {
            name: point.name.clone(),
            unit: point.unit.clone(),
            kind: if point.data_type == DataType::Bool || point.object.is_bit() {
                ValueKind::Bool
            } else {
                ValueKind::Number
            },
        })
        .collect();
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(spool_file)
        .map_err(|e| format!("{spool_file}: {e}"))?;
    let storage = FileStorage {
        file,
        capacity: spool_bytes
            .parse()
            .map_err(|e| format!("{spool_bytes}: {e}"))?,
    };
    let config = UplinkConfig::new(device, Format::Json);
    let mut uplink = Uplink::new(
        config,
        points,
        storage,
        PlainConnector(broker.clone()),
        clock,
        Unsealed,
    )
    .map_err(|e| format!("the spool: {e}"))?;
    let mut poller = ferro_registermap::Poller::new(map, monotonic(&clock));
    loop {
        let mut readings = Vec::new();
        for read in poller.due(monotonic(&clock)) {
            let ReadRequest {
                object,
                address,
                count,
                ..
            } = read;
            let values = machine
                .read(object, address, count)
                .map_err(|e| format!("read {object:?} {address}+{count}: {e}"))?;
            let now = monotonic(&clock);
            readings.extend(if object.is_bit() {
                let bits: Vec<bool> = values.iter().map(|v| *v != 0).collect();
                poller.bits_read(&read, &bits, now, unix_ms())
            } else {
                poller.registers_read(&read, &values, now, unix_ms())
            });
        }
        readings.extend(poller.stale(monotonic(&clock), unix_ms()));
        if !readings.is_empty() {
            uplink.accept(&readings, unix_ms());
        }
        let wait = poller.next_due().saturating_sub(monotonic(&clock));
        uplink.service(unix_ms(), Duration::from_millis(wait));
        for event in uplink.take_events() {
            eprintln!("host_bridge: {event:?}");
        }
    }
}

fn probe(args: &[String]) -> Result<(), String> {
    let [machine, count, seconds] = args else {
        return Err("probe MACHINE_HOST:PORT COUNT SECONDS".to_owned());
    };
    let count: u16 = count.parse().map_err(|e| format!("{count}: {e}"))?;
    let seconds: f64 = seconds.parse().map_err(|e| format!("{seconds}: {e}"))?;
    let mut machine = Machine::connect(machine, 1, Duration::from_secs(5))
        .map_err(|e| format!("the machine: {e}"))?;
    let (mut reads, mut points) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        let mut address = 0u16;
        while address < count {
            let n = (count - address).min(125);
            machine
                .read(ObjectType::InputRegister, address, n)
                .map_err(|e| format!("read {address}+{n}: {e}"))?;
            reads += 1;
            points += u64::from(n);
            address += n;
        }
    }
    println!(
        "reads {reads} points {points} seconds {:.3}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bridge") => bridge(&args[1..]),
        Some("probe") => probe(&args[1..]),
        _ => Err("usage: host_bridge bridge ... | host_bridge probe ... (see the source)".into()),
    };
    if let Err(error) = result {
        eprintln!("host_bridge: {error}");
        std::process::exit(2);
    }
}
