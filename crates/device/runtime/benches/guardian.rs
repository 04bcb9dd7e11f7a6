//! Guardian benchmark (`scripts/bench/guardian.sh` builds what it needs and runs it;
//! `docs/guardian.md`, "Performance"). One run, three subjects against the same pymodbus
//! machine (`tests/interop/modbus_sim.py`) and the same Mosquitto:
//!
//! - **guardian**: `apps/guardian` in its sandbox on this runtime (default limits), publishing
//!   over TLS with the device certificate to the listener that requires the tenant CA;
//! - **bare bridge**: the same code path as a plain host process
//!   (`apps/guardian-uplink/examples/host_bridge.rs`: the poller, rmodbus, the uplink and its
//!   spool in a file; no sandbox, no signing, no TLS), to the plain listener;
//! - **machine alone**: back-to-back reads of the same registers by a plain Rust client
//!   (`host_bridge probe`), the bound the machine sets.
//!
//! The map has 120 input registers (`FERRO_BENCH_POINTS` sets another number) that the machine advances at every read (so every poll
//! round publishes every point) and one holding register, `probe`. Throughput: points received
//! by a subscriber per second over `WINDOW`. Latency: the probe is set to a new value in the
//! machine, and the time until a subscriber receives a batch carrying it is taken, `SAMPLES`
//! times (sorted samples: p50, p99, max). Prints one table.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::broker::{Reaped, device_with_certificate, start_broker};
use common::pki::{TENANT, pki};
use common::{manifest_with, wasm};
use ferro_e2e::modbus::Simulator;
use ferro_runtime::{InstallOptions, PackageFiles};
use serde_json::{Value, json};

/// Counter points (input registers 0..points()) by default: one read a round.
const DEFAULT_POINTS: u16 = 120;

/// How many counter points the map has: `FERRO_BENCH_POINTS` (1..=999, above 125 several reads
/// a round) or [`DEFAULT_POINTS`].
fn points() -> u16 {
    std::env::var("FERRO_BENCH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=999).contains(n))
        .unwrap_or(DEFAULT_POINTS)
}
/// The map's shortest period.
const POLL_MS: u64 = 50;
const PROBE_ADDRESS: u16 = 1000;
const WARMUP: Duration = Duration::from_secs(3);
const WINDOW: Duration = Duration::from_secs(10);
const SAMPLES: u32 = 200;

/// The bench binary of the bare bridge (apps workspace, host target).
fn host_bridge() -> PathBuf {
    let path = std::env::var_os("FERRO_HOST_BRIDGE").map_or_else(
        || common::repo_root().join("apps/target/release/examples/host_bridge"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{}: build it first: cargo build --manifest-path apps/Cargo.toml -p guardian-uplink \
         --example host_bridge --release (scripts/bench/guardian.sh does)",
        path.display()
    );
    path
}

fn register_map(machine_port: u16) -> Value {
    let mut points: Vec<Value> = (0..points())
        .map(|address| {
            json!({"name": format!("p{address}"), "object": "input_register",
                   "address": address, "type": "u16", "pollMs": POLL_MS})
        })
        .collect();
    points.push(
        json!({"name": "probe", "object": "holding_register", "address": PROBE_ADDRESS,
                       "type": "u16", "pollMs": POLL_MS}),
    );
    json!({
        "schemaVersion": 1,
        "transport": {"type": "tcp", "host": "127.0.0.1", "port": machine_port},
        "unitId": 1, "timeoutMs": 1000, "retries": 1,
        "points": points,
    })
}

/// `mosquitto_sub` on one topic: each payload with the instant its line arrived.
struct Subscriber {
    _process: Reaped,
    started: Instant,
    received: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Subscriber {
    fn start(broker: &ferro_e2e::mosquitto::Mosquitto, plain_port: u16, topic: &str) -> Self {
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &plain_port.to_string(), "-q", "1"])
            .args(["-i", &format!("bench-{}", topic.len()), "-t", topic])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (apt-get install mosquitto-clients)");
        let stdout = child.stdout.take().expect("stdout");
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("received").push((Instant::now(), line));
            }
        });
        broker.wait_for_log(&format!("1 {topic}"), Duration::from_secs(10));
        Subscriber {
            _process: Reaped(child),
            started: Instant::now(),
            received,
        }
    }

    /// The batches received since `since`, parsed, with their arrival.
    fn batches_since(&self, since: Instant) -> Vec<(Instant, Value)> {
        self.received
            .lock()
            .expect("received")
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(at, line)| (*at, serde_json::from_str(line).expect("a JSON batch")))
            .collect()
    }
}

fn point<'a>(batch: &'a Value, name: &str) -> Option<&'a Value> {
    batch["points"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

struct Figures {
    points_per_second: f64,
    batches_per_second: f64,
    /// Median of (batch made − first read of the round): the Modbus side of a round.
    read_ms: f64,
    /// Sorted latencies from a change in the machine to the batch at the subscriber.
    latency: Vec<Duration>,
}

/// Measures the subject publishing to `subscriber` (already running, polling `machine`).
fn measure(
    name: &str,
    machine: &mut Simulator,
    subscriber: &Subscriber,
    diagnose: &dyn Fn() -> String,
) -> Figures {
    // Wait for the subject's first batch.
    let deadline = Instant::now() + Duration::from_secs(120);
    while subscriber.batches_since(subscriber.started).is_empty() {
        assert!(
            Instant::now() < deadline,
            "{name}: no batch within 120 s: {}",
            diagnose()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    machine.command(&format!("advance ir 0 {}", points()));
    std::thread::sleep(WARMUP);
    let start = Instant::now();
    std::thread::sleep(WINDOW);
    let window = start.elapsed();
    machine.command("hold");
    let batches: Vec<Value> = subscriber
        .batches_since(start)
        .into_iter()
        .map(|(_, batch)| batch)
        .collect();
    let points: usize = batches
        .iter()
        .map(|b| b["points"].as_array().map_or(0, Vec::len))
        .sum();
    let mut reads: Vec<u64> = batches
        .iter()
        .filter_map(|b| {
            let first = b["points"]
                .as_array()?
                .iter()
                .filter_map(|p| p["timestamp"].as_u64())
                .min()?;
            Some(b["timestamp"].as_u64()?.saturating_sub(first))
        })
        .collect();
    reads.sort_unstable();
    std::thread::sleep(Duration::from_millis(500));

    let mut latency = Vec::new();
    for sample in 0..SAMPLES {
        // A new value each time (the bridge's run starts where the guardian's left the probe).
        let value = 1 + sample as u16;
        // Spread the changes over the poll period (a fixed phase would measure one point of it).
        std::thread::sleep(Duration::from_millis(u64::from(sample * 37 % 50)));
        let sent = Instant::now();
        machine.set("hr", PROBE_ADDRESS, &[value]);
        let deadline = sent + Duration::from_secs(10);
        let arrived = loop {
            let found = subscriber.batches_since(sent).into_iter().find(|(_, b)| {
                point(b, "probe").is_some_and(|p| p["value"] == value && p["quality"] == "good")
            });
            if let Some((at, _)) = found {
                break at;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: probe {value} not seen in 10 s: {}",
                diagnose()
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        latency.push(arrived - sent);
    }
    latency.sort();
    Figures {
        points_per_second: points as f64 / window.as_secs_f64(),
        batches_per_second: batches.len() as f64 / window.as_secs_f64(),
        read_ms: reads.get(reads.len() / 2).copied().unwrap_or(0) as f64,
        latency,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> String {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    format!("{:.1}", sorted[at].as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let bridge_binary = host_bridge();
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki();
    let (broker, tls_port, plain_port) = start_broker(dir.path(), &pki);
    let mut machine = Simulator::tcp();
    let machine_port = machine.port.expect("port");
    let map = register_map(machine_port);
    let map_bytes = serde_json::to_vec(&map).expect("json");

    // (c) The machine alone.
    let probe = Command::new(&bridge_binary)
        .args(["probe", &format!("127.0.0.1:{machine_port}")])
        .args([points().to_string(), WINDOW.as_secs().to_string()])
        .output()
        .expect("host_bridge probe");
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let probe = String::from_utf8_lossy(&probe.stdout).to_string();
    let field = |key: &str| -> f64 {
        let words: Vec<&str> = probe.split_whitespace().collect();
        let at = words.iter().position(|w| *w == key).expect("probe output");
        words[at + 1].parse().expect("number")
    };
    let machine_reads = field("reads") / field("seconds");
    let machine_points = field("points") / field("seconds");

    // (a) The guardian in its sandbox.
    let guardian = {
        let subscriber = Subscriber::start(
            &broker,
            plain_port,
            "ferro/guardian/bench-guardian/telemetry",
        );
        let device = device_with_certificate(&pki);
        let manifest = manifest_with("guardian", |json| {
            json["CmdArgs"] = json!([
                "--broker",
                format!("127.0.0.1:{tls_port}"),
                "--device",
                "bench-guardian"
            ]);
            json["Capabilities"]["DeviceAuthentication"] = TENANT.into();
            json["Capabilities"]["MutableStorage"] = json!({"SizeKB": 64});
        });
        let files = PackageFiles::new([
            ("register_map.json".to_owned(), map_bytes.clone()),
            ("app_manifest.json".to_owned(), manifest.json_bytes()),
        ])
        .expect("package files");
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
            .expect("install the guardian");
        let figures = measure("guardian", &mut machine, &subscriber, &|| {
            format!("{:#?}", device.log_texts(app))
        });
        let log = device.log_texts(app);
        device.runtime.stop(app).expect("stop the guardian");
        if let Some(problem) = log
            .iter()
            .find(|l| l.contains("dropped") || l.contains("Disconnected"))
        {
            eprintln!("guardian log: {problem}");
        }
        figures
    };

    // (b) The bare bridge.
    let bridge = {
        let subscriber =
            Subscriber::start(&broker, plain_port, "ferro/guardian/bench-bridge/telemetry");
        let map_file = dir.path().join("register_map.json");
        std::fs::write(&map_file, &map_bytes).expect("map");
        let child: Child = Command::new(&bridge_binary)
            .arg("bridge")
            .arg(&map_file)
            .arg(format!("127.0.0.1:{plain_port}"))
            .arg("bench-bridge")
            .arg(dir.path().join("bridge.spool"))
            .arg((64 * 1024).to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("host_bridge bridge");
        let _bridge = Reaped(child);
        measure("bare bridge", &mut machine, &subscriber, &|| {
            "see host_bridge's standard error".to_owned()
        })
    };

    println!(
        "guardian benchmark: {} points + probe, pollMs {POLL_MS}, window {} s, {SAMPLES} \
         latency samples",
        points(),
        WINDOW.as_secs()
    );
    println!(
        "{:<28} {:>12} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "subject", "points/s", "batches/s", "read ms", "p50 ms", "p99 ms", "max ms"
    );
    for (name, f) in [
        ("guardian (sandbox, TLS)", &guardian),
        ("bare bridge (host, plain)", &bridge),
    ] {
        println!(
            "{:<28} {:>12.0} {:>10.1} {:>9.0} {:>9} {:>9} {:>9}",
            name,
            f.points_per_second,
            f.batches_per_second,
            f.read_ms,
            percentile(&f.latency, 0.50),
            percentile(&f.latency, 0.99),
            percentile(&f.latency, 1.0),
        );
    }
    println!(
        "{:<28} {:>12.0} {:>10} (reads/s {:.0}, back to back, {} registers a read at most)",
        "machine alone (rmodbus)", machine_points, "-", machine_reads, 125
    );
    println!(
        "guardian / bare bridge: {:.0}% of points/s; the map's period allows {:.0} points/s",
        100.0 * guardian.points_per_second / bridge.points_per_second,
        f64::from(points()) * 1000.0 / POLL_MS as f64
    );
}
