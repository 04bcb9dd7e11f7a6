//! Runtime benchmark (`cargo bench -p ferro-runtime`; needs the apps built, see scripts/test.sh):
//! compile-and-link time at install, cold start of an installed app to its first log line
//! (against instantiation alone), the cost of one host call against a plain function call
//! (measured inside the guest), and the resident memory of the process with 0, 1 and 10 apps
//! running. Prints one table; numbers are for this machine and this build.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_manifest::{AppManifest, HardwareDefinition, ResolvedManifest};
use ferro_peripherals::{Peripherals, VirtualBoard};
use ferro_runtime::{AppId, InstallOptions, Limits, Runtime, RuntimeConfig};

const WAIT: Duration = Duration::from_secs(120);

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// The built app; missing or older than its sources fails, naming the command that builds it.
fn wasm(name: &str) -> Vec<u8> {
    let path = ferro_e2e::artifacts::wasm_app(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn manifest(
    name: &str,
    hardware: &HardwareDefinition,
    edit: impl FnOnce(&mut serde_json::Value),
) -> ResolvedManifest {
    let path = ferro_e2e::artifacts::app_dir(name).join("app_manifest.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("manifest")).expect("json");
    edit(&mut json);
    AppManifest::parse(&serde_json::to_vec(&json).expect("json"))
        .expect("parse")
        .resolve(Some(hardware))
        .expect("resolve")
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse().ok())
        })
        .unwrap_or(0)
}

fn wait_for_line(runtime: &Runtime, app: AppId, prefix: &str) -> String {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some(line) = runtime
            .logs(app)
            .expect("logs")
            .into_iter()
            .find(|line| line.text.starts_with(prefix))
        {
            return line.text;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no line {prefix:?} from {app}");
}

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    (
        samples[0],
        samples[samples.len() / 2],
        samples[samples.len() - 1],
    )
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let hardware = HardwareDefinition::load(
        &repo().join("hardware/ferro_vboard/sample_appliance.json"),
        &[],
    )
    .expect("hardware");
    let board = Arc::new(VirtualBoard::from_hardware_definition(&hardware));
    let storage = tempfile::tempdir().expect("tempdir");
    let mut config = RuntimeConfig::new(storage.path().to_path_buf());
    config.limits = Limits {
        cpu_slice: Duration::from_secs(60),
        cpu_budget: Duration::from_secs(60),
        ..Limits::default()
    };
    let rss_empty_process = rss_kib();
    let runtime = Runtime::new(config, Peripherals::all_from(board)).expect("runtime");
    let rss_zero_apps = rss_kib();

    // Install: compile and link (the runtime keeps the compiled component for restarts).
    let hello = wasm("hello");
    let mut installs = Vec::new();
    for index in 0..5 {
        let manifest = manifest("hello", &hardware, |json| {
            json["ComponentId"] = serde_json::json!(format!("55555555-2222-4333-8444-{index:012}"));
            json["Capabilities"] = serde_json::json!({});
        });
        let started = Instant::now();
        let app = runtime
            .install(
                &hello,
                &manifest,
                InstallOptions {
                    manual_start: true,
                    limits: None,
                    ..InstallOptions::default()
                },
            )
            .expect("install");
        installs.push(started.elapsed());
        runtime.uninstall(app, false).expect("uninstall");
    }

    // Cold start of an installed app to its first log line, and instantiation alone.
    let manifest_hello = manifest("hello", &hardware, |json| {
        json["Capabilities"] = serde_json::json!({});
    });
    let app = runtime
        .install(
            &hello,
            &manifest_hello,
            InstallOptions {
                manual_start: true,
                limits: None,
                ..InstallOptions::default()
            },
        )
        .expect("install");
    let mut cold_starts = Vec::new();
    let mut instantiations = Vec::new();
    for _ in 0..30 {
        let mut follower = runtime.follow_logs(app).expect("follow");
        let started = Instant::now();
        runtime.start(app).expect("start");
        follower.next_timeout(WAIT).expect("first line");
        cold_starts.push(started.elapsed());
        runtime.stop(app).expect("stop");
        if let Some(duration) = runtime.status(app).expect("status").last_start_duration {
            instantiations.push(duration);
        }
    }
    runtime.uninstall(app, false).expect("uninstall");

    // Host calls, measured by the guest.
    let probe = runtime
        .install(
            &wasm("bench-guest"),
            &manifest("bench-guest", &hardware, |json| {
                json["CmdArgs"] = serde_json::json!(["hostcall", "56"]);
            }),
            InstallOptions::default(),
        )
        .expect("install bench-guest");
    let gpio = wait_for_line(&runtime, probe, "gpio-read ns/call");
    let clock = wait_for_line(&runtime, probe, "monotonic-ms ns/call");
    let plain = wait_for_line(&runtime, probe, "plain ns/call");
    runtime.uninstall(probe, false).expect("uninstall");

    // Resident memory with 1 and 10 idle apps.
    let rss_before_apps = rss_kib();
    let guest = wasm("bench-guest");
    let mut idle = Vec::new();
    let mut rss_one = 0;
    for index in 0..10u32 {
        let pin = 56 + index;
        let manifest = manifest("bench-guest", &hardware, |json| {
            json["ComponentId"] = serde_json::json!(format!("66666666-2222-4333-8444-{index:012}"));
            json["CmdArgs"] = serde_json::json!(["idle", pin.to_string()]);
            json["Capabilities"] = serde_json::json!({"Gpio": [pin]});
        });
        let app = runtime
            .install(&guest, &manifest, InstallOptions::default())
            .expect("install idle");
        wait_for_line(&runtime, app, "idle");
        idle.push(app);
        if index == 0 {
            std::thread::sleep(Duration::from_millis(200));
            rss_one = rss_kib();
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let rss_ten = rss_kib();
    let linear: u64 = idle
        .iter()
        .map(|app| runtime.memory_stats(*app).expect("stats").current_bytes)
        .sum();

    let (install_min, install_median, install_max) = stats(installs);
    let (cold_min, cold_median, cold_max) = stats(cold_starts);
    let (inst_min, inst_median, inst_max) = stats(instantiations);
    println!(
        "ferro-runtime benchmark (release build, {} apps)",
        idle.len()
    );
    println!("| measure | min | median | max |");
    println!("|---|---|---|---|");
    println!(
        "| install hello (compile + link, {} bytes) | {} | {} | {} |",
        hello.len(),
        ms(install_min),
        ms(install_median),
        ms(install_max)
    );
    println!(
        "| cold start of installed hello to first log line | {} | {} | {} |",
        ms(cold_min),
        ms(cold_median),
        ms(cold_max)
    );
    println!(
        "| of which instantiation (store + instance) | {} | {} | {} |",
        ms(inst_min),
        ms(inst_median),
        ms(inst_max)
    );
    println!("| host call: {gpio} | | | |");
    println!("| host call: {clock} | | | |");
    println!("| baseline: {plain} | | | |");
    println!(
        "| RSS: process before runtime / runtime, 0 apps / 1 idle app / 10 idle apps | {rss_empty_process} KiB / {rss_zero_apps} KiB / {rss_one} KiB / {rss_ten} KiB | | |"
    );
    println!(
        "| RSS growth per idle app (10 apps) | {} KiB | | |",
        rss_ten.saturating_sub(rss_before_apps) / 10
    );
    println!(
        "| linear memory of the 10 idle apps | {} KiB | | |",
        linear / 1024
    );
}
