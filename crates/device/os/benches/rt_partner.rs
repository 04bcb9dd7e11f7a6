//! Device-level benchmark of the mailbox (`cargo bench -p ferro-device --bench rt_partner`;
//! needs the wasm apps and the RT apps built, see scripts/test.sh): round trips between a
//! WebAssembly app (partner-probe in its bench mode) and rt-echo on a QEMU core, through the WIT
//! `application` interface, the runtime and the device's connector (`RtHost`), against the
//! ferro-rtcore host-level round trip (an `Endpoint` in this process, no wasm) in the same run,
//! for 16-byte and 1024-byte messages. Prints one table.
//!
//! The guest's clock has millisecond resolution, so the host times the wasm round trips: a
//! connector around the device's records when each `send` reaches the host; the time between
//! two sends is one round trip as the app sees it (its send, the core's answer, its receive,
//! its check, the next send).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferro_device::rt_apps::{RtAppSpec, RtHost};
use ferro_manifest::{AppManifest, HardwareDefinition};
use ferro_peripherals::{Peripherals, VirtualBoard};
use ferro_rtcore::{
    Backoff, ComponentId, CoreId, MemoryMap, QemuConfig, QemuCore, RealTimeCore, RunConfig,
    VerifiedElf,
};
use ferro_runtime::{
    AppId, InstallOptions, PartnerConnector, PartnerError, PartnerLink, PartnerMessage, Runtime,
    RuntimeConfig,
};
use uuid::Uuid;

const ECHO: &str = "005180bc-402f-4cb3-a662-72937dbcde47";
const PROBE: &str = "0f1e2d3c-0010-4a5b-8c7d-000000000010";
const WARMUP: usize = 200;
const ROUND_TRIPS: usize = 3000;
const SIZES: [usize; 2] = [16, 1024];

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn rt_elf(name: &str) -> Vec<u8> {
    let path = repo()
        .join("apps/rt/target/thumbv7em-none-eabihf/release")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the RT apps first: (cd apps/rt && cargo build --release)",
            path.display()
        )
    })
}

/// p50 and p99.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// The host-level round trip: rt-echo on a core of its own, an endpoint in this process.
fn host_level(run_dir: &std::path::Path) -> Vec<(Duration, Duration)> {
    let core = QemuCore::new(
        CoreId::new("IO1").expect("core name"),
        QemuConfig::new(run_dir.to_path_buf()),
    )
    .expect("core");
    let app = ComponentId(*Uuid::parse_str(ECHO).expect("uuid").as_bytes());
    let partner = ComponentId(*Uuid::parse_str(PROBE).expect("uuid").as_bytes());
    let image = VerifiedElf::verify(rt_elf("rt-echo"), &MemoryMap::mps2_an386()).expect("ELF");
    core.start(
        image,
        RunConfig {
            app,
            watchdog: None,
            backoff: Backoff::default(),
            app_uart: None,
        },
    )
    .expect("start");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !core.logs().iter().any(|l| l.text.contains("rt-echo ready")) {
        assert!(Instant::now() < deadline, "rt-echo did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let endpoint = core.connect(&app, partner).expect("connect");
    let results = SIZES
        .iter()
        .map(|&size| {
            let payload = vec![0x5a; size];
            let mut samples = Vec::with_capacity(ROUND_TRIPS);
            for i in 0..WARMUP + ROUND_TRIPS {
                let started = Instant::now();
                endpoint
                    .send_timeout(&payload, Duration::from_secs(5))
                    .expect("send");
                endpoint
                    .receive_timeout(Duration::from_secs(5))
                    .expect("answer");
                if i >= WARMUP {
                    samples.push(started.elapsed());
                }
            }
            percentiles(samples)
        })
        .collect();
    core.stop().expect("stop");
    results
}

/// The device's connector, recording when each send of the app reaches the host.
#[derive(Debug)]
struct Timed {
    inner: Arc<dyn PartnerConnector>,
    sends: Arc<Mutex<Vec<Instant>>>,
}

struct TimedLink {
    inner: Box<dyn PartnerLink>,
    sends: Arc<Mutex<Vec<Instant>>>,
}

impl PartnerConnector for Timed {
    fn connect(&self, app: AppId, partner: Uuid) -> Result<Box<dyn PartnerLink>, PartnerError> {
        let inner = self.inner.connect(app, partner)?;
        Ok(Box::new(TimedLink {
            inner,
            sends: self.sends.clone(),
        }))
    }
}

impl PartnerLink for TimedLink {
    fn send(&mut self, data: &[u8], timeout: Duration) -> Result<(), PartnerError> {
        self.sends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Instant::now());
        self.inner.send(data, timeout)
    }

    fn receive(&mut self, timeout: Duration) -> Result<PartnerMessage, PartnerError> {
        self.inner.receive(timeout)
    }
}

/// The device-level round trip: partner-probe (wasm) and rt-echo through `RtHost`.
fn device_level(run_dir: &std::path::Path) -> Vec<(Duration, Duration)> {
    let echo = Uuid::parse_str(ECHO).expect("uuid");
    let probe = Uuid::parse_str(PROBE).expect("uuid");
    let rt = RtHost::new(&["IO0".to_string()], run_dir, None);
    rt.install(
        echo,
        "IO0",
        RtAppSpec {
            name: "rt-echo".into(),
            elf: rt_elf("rt-echo"),
            allowed: vec![probe],
            gpio: Vec::new(),
            uart: None,
            watchdog: Duration::from_secs(5),
        },
        false,
    )
    .expect("install rt-echo");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rt
        .logs(echo)
        .expect("logs")
        .iter()
        .any(|l| l.text.contains("rt-echo ready"))
    {
        assert!(Instant::now() < deadline, "rt-echo did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let hardware = HardwareDefinition::load(
        &repo().join("hardware/ferro_vboard/sample_appliance.json"),
        &[],
    )
    .expect("hardware");
    let board = Arc::new(VirtualBoard::from_hardware_definition(&hardware));
    let storage = tempfile::tempdir().expect("tempdir");
    let sends = Arc::new(Mutex::new(Vec::new()));
    let mut config = RuntimeConfig::new(storage.path().to_path_buf());
    config.partners = Arc::new(Timed {
        inner: rt.connector(),
        sends: sends.clone(),
    });
    let runtime = Runtime::new(config, Peripherals::all_from(board)).expect("runtime");
    let wasm = std::fs::read(ferro_e2e::artifacts::wasm_app("partner-probe")).expect("wasm");
    SIZES
        .iter()
        .map(|&size| {
            sends
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
            let count = WARMUP + ROUND_TRIPS;
            let manifest = serde_json::json!({
                "SchemaVersion": 1,
                "Name": "partner-probe",
                "ComponentId": PROBE,
                "EntryPoint": "/bin/partner-probe",
                "CmdArgs": ["bench", ECHO, size.to_string(), count.to_string()],
                "ApplicationType": "Default",
                "Capabilities": {"AllowedApplicationConnections": [ECHO]},
            });
            let manifest = AppManifest::parse(&serde_json::to_vec(&manifest).expect("json"))
                .expect("manifest")
                .resolve(None)
                .expect("resolve");
            let app = runtime
                .install(&wasm, &manifest, InstallOptions::default())
                .expect("install partner-probe");
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                let lines = runtime.logs(app).expect("logs");
                if let Some(line) = lines.iter().find(|l| l.text.starts_with("bench ")) {
                    assert!(line.text.starts_with("bench done"), "{}", line.text);
                    break;
                }
                assert!(Instant::now() < deadline, "partner-probe: {lines:?}");
                std::thread::sleep(Duration::from_millis(20));
            }
            runtime.uninstall(app, false).expect("uninstall");
            let sends = sends
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            assert_eq!(sends.len(), count, "one send per round trip");
            let samples: Vec<Duration> = sends[WARMUP..]
                .windows(2)
                .map(|pair| pair[1] - pair[0])
                .collect();
            percentiles(samples)
        })
        .collect()
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("ferro-rt-partner-bench")
        .tempdir_in("/dev/shm")
        .expect("tmpfs dir");
    let host = host_level(dir.path());
    let device = device_level(dir.path());
    println!("round trips, {ROUND_TRIPS} per size after {WARMUP} of warm-up, one at a time");
    println!("| | p50 | p99 |");
    println!("|---|---|---|");
    for (i, size) in SIZES.iter().enumerate() {
        println!(
            "| ferro-rtcore endpoint (host) {size} B | {} | {} |",
            us(host[i].0),
            us(host[i].1)
        );
        println!(
            "| wasm app through `application` {size} B | {} | {} |",
            us(device[i].0),
            us(device[i].1)
        );
        println!(
            "| ratio (wasm / host) {size} B | {:.1} | {:.1} |",
            device[i].0.as_secs_f64() / host[i].0.as_secs_f64(),
            device[i].1.as_secs_f64() / host[i].1.as_secs_f64()
        );
    }
}
