//! Real-time apps end to end on a virtual device (the real `ferro-service`, `ferro`, `ferro-boot`
//! and `ferro-device`, QEMU cores, a wasm partner): rt-app packages sideloaded in development
//! mode are verified, measured, ELF-checked and started on a real-time core of the board (the
//! virtual chip's `IO0` and `IO1`), with their peripherals in the one ownership table. An image
//! that is no ELF for the core, a peripheral another app holds and a board whose cores are all
//! busy are refused at install, naming the apps involved, and change nothing. A high-level app
//! (`partner-probe`) exchanges messages with `rt-echo` through the mailbox; connects that either
//! manifest does not allow are refused and both logs say so; a stop and start of the RT app is
//! a disconnect the partner recovers from; a core that faults is restarted, reported as an
//! AppCrash in the tenant's error report, while the high-level app runs on and the device
//! attests. After a restart the device attests `Trusted` and the apps hold the same cores.
//!
//! Needs `cargo build --workspace`, the wasm apps and the RT apps (`cd apps/rt && cargo build
//! --release`) first; scripts/test.sh builds them.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::{VirtualDevice, attached, attached_fails, s};
use ferro_e2e::User;
use ferro_image::Version;
use serde_json::{Value, json};

/// rt-echo; partner-probe's manifest names it.
const ALPHA: &str = "005180bc-402f-4cb3-a662-72937dbcde47";
const PROBE: &str = "0f1e2d3c-0010-4a5b-8c7d-000000000010";
const STRANGER: &str = "11111111-2222-4333-8444-555555555555";
const BRAVO: &str = "b2000000-0000-4000-8000-0000000000b2";
const CHARLIE: &str = "c3000000-0000-4000-8000-0000000000c3";
const DELTA: &str = "d4000000-0000-4000-8000-0000000000d4";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// The built RT app `guest` (apps/rt).
fn elf(guest: &str) -> Vec<u8> {
    let path = repo()
        .join("apps/rt/target/thumbv7em-none-eabihf/release")
        .join(guest);
    fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the RT apps first: (cd apps/rt && cargo build --release)",
            path.display()
        )
    })
}

/// Packs an rt-app `name` of `component` whose image is `image`, granting `capabilities`,
/// test-signed by the user's key.
fn pack_rt(
    user: &User,
    work: &Path,
    app: (&str, &str, &str),
    image: &[u8],
    capabilities: Value,
) -> PathBuf {
    pack_rt_watchdog(user, work, app, image, capabilities, None)
}

/// [`pack_rt`] with the manifest's `WatchdogPeriodMs`.
fn pack_rt_watchdog(
    user: &User,
    work: &Path,
    (name, component, version): (&str, &str, &str),
    image: &[u8],
    capabilities: Value,
    watchdog_ms: Option<u32>,
) -> PathBuf {
    let mut manifest = json!({
        "SchemaVersion": 1,
        "Name": name,
        "ComponentId": component,
        "EntryPoint": "/bin/app",
        "CmdArgs": [],
        "ApplicationType": "RealTimeCapable",
        "Capabilities": capabilities,
    });
    if let Some(ms) = watchdog_ms {
        manifest["WatchdogPeriodMs"] = json!(ms);
    }
    common::pack_app(
        user,
        work,
        &format!("rt-{name}-{version}"),
        &manifest,
        image,
        version,
        1,
    )
}

/// `ferro device sideload deploy --image-package PACKAGE`.
fn sideload_args(package: &Path) -> [&str; 5] {
    [
        "device",
        "sideload",
        "deploy",
        "--image-package",
        s(package),
    ]
}

fn sideload(user: &User, dir: &Path, package: &Path) -> Value {
    attached(user, dir, &sideload_args(package))
}

fn sideload_fails(user: &User, dir: &Path, package: &Path) -> String {
    attached_fails(user, dir, &sideload_args(package))
}

fn status(user: &User, dir: &Path, component: &str) -> Value {
    attached(
        user,
        dir,
        &["device", "app", "show-status", "--component-id", component],
    )
}

/// The components installed, sorted.
fn installed(user: &User, dir: &Path) -> Vec<String> {
    let images = attached(user, dir, &["device", "image", "list-installed"]);
    let mut ids: Vec<String> = images["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["componentId"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

/// Packs partner-probe (the wasm test guest) with `args`, allowed to connect to `allowed`.
fn pack_probe(user: &User, work: &Path, args: &[&str], allowed: &[&str]) -> PathBuf {
    let manifest = json!({
        "SchemaVersion": 1,
        "Name": "partner-probe",
        "ComponentId": PROBE,
        "EntryPoint": "/bin/partner-probe",
        "CmdArgs": args,
        "ApplicationType": "Default",
        "Capabilities": {"AllowedApplicationConnections": allowed},
    });
    let wasm = fs::read(ferro_e2e::artifacts::wasm_app("partner-probe")).expect("read wasm");
    common::pack_app(user, work, "probe", &manifest, &wasm, "1.0.0", 1)
}

/// The text of an app's log lines.
fn log_text(user: &User, dir: &Path, component: &str) -> String {
    let out = user.run(&[
        "device",
        "app",
        "logs",
        "--component-id",
        component,
        "--device-dir",
        s(dir),
        "--output",
        "json",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `component`'s log contains `needle`.
fn wait_log(user: &User, dev: &mut VirtualDevice, component: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        dev.supervise();
        let text = log_text(user, &dev.dir, component);
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log of {component}:\n{text}\ndevice log:\n{}",
            dev.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn real_time_apps_run_on_cores_talk_to_their_partner_and_are_contained() {
    let work = tempfile::tempdir().expect("tempdir");
    let work = work.path();
    let (service, admin) = common::service_with_tenant("RT Tenant", "RtAppliance");
    let factory = common::publish_factory_os(&admin, work, Version::new(1, 0, 0), 1);
    let mut dev = VirtualDevice::provision_and_claim(&service, &admin, work, &factory.factory);
    let dir = dev.dir.clone();
    dev.boot(&[("FERRO_EVENT_UPLOAD_SECS", "5")]);
    assert_eq!(dev.wait_ready()["attestation"], "Trusted");
    let mode = attached(&admin, &dir, &["device", "enable-development"]);
    assert_eq!(mode["enabled"], true, "{mode}");
    let echo = elf("rt-echo");

    // An rt-app whose image is no ELF for the core: refused before any core starts.
    let bogus = pack_rt(
        &admin,
        work,
        ("bogus", CHARLIE, "0.1.0"),
        b"not an ELF",
        json!({}),
    );
    let refused = sideload_fails(&admin, &dir, &bogus);
    assert!(refused.contains("is not one core IO0 can run"), "{refused}");
    assert!(installed(&admin, &dir).is_empty());

    // alpha: rt-echo on the first core, with a GPIO and a UART, allowing partner-probe.
    let alpha = pack_rt(
        &admin,
        work,
        ("alpha", ALPHA, "1.0.0"),
        &echo,
        json!({"Gpio": [12], "Uart": ["ISU1"], "AllowedApplicationConnections": [PROBE]}),
    );
    let result = sideload(&admin, &dir, &alpha);
    assert_eq!(result["componentId"], ALPHA, "{result}");
    let shown = status(&admin, &dir, ALPHA);
    assert_eq!(shown["core"], "IO0", "{shown}");
    wait_log(&admin, &mut dev, ALPHA, "rt-echo ready");
    let shown = status(&admin, &dir, ALPHA);
    assert_eq!(shown["state"], "Running", "{shown}\n{}", dev.log_tail());
    let images = attached(&admin, &dir, &["device", "image", "list-installed"]);
    assert!(
        images["images"]
            .as_array()
            .expect("images")
            .iter()
            .any(|i| i["componentId"] == ALPHA && i["kind"] == "RtApp" && i["verified"] == true),
        "{images}"
    );

    // delta wants alpha's GPIO: refused at install, naming both apps; nothing changes.
    let delta = pack_rt(
        &admin,
        work,
        ("delta", DELTA, "1.0.0"),
        &echo,
        json!({"Gpio": [12]}),
    );
    let refused = sideload_fails(&admin, &dir, &delta);
    assert!(
        refused.contains("GPIO 12")
            && refused.contains("\"alpha\"")
            && refused.contains("\"delta\""),
        "{refused}"
    );
    assert_eq!(installed(&admin, &dir), [ALPHA]);

    // bravo: the second core; its manifest does not name partner-probe.
    let bravo = pack_rt(
        &admin,
        work,
        ("bravo", BRAVO, "1.0.0"),
        &echo,
        json!({"Gpio": [13]}),
    );
    sideload(&admin, &dir, &bravo);
    assert_eq!(status(&admin, &dir, BRAVO)["core"], "IO1");

    // charlie: every core is busy; the refusal names each core's holder and what to do.
    // (charlie is rt-io, on the board's LED1 red, button A and UART ISU1, with a watchdog period
    // of its own: it runs below, once alpha is gone.)
    let charlie = pack_rt_watchdog(
        &admin,
        work,
        ("charlie", CHARLIE, "1.0.0"),
        &elf("rt-io"),
        json!({"Gpio": [8, 12], "Uart": ["ISU1"]}),
        Some(3000),
    );
    let refused = sideload_fails(&admin, &dir, &charlie);
    assert!(
        refused.contains("every real-time core of the board is busy")
            && refused.contains(&format!("IO0 is held by app \"alpha\" ({ALPHA})"))
            && refused.contains(&format!("IO1 is held by app \"bravo\" ({BRAVO})"))
            && refused.contains("delete it"),
        "{refused}"
    );
    assert_eq!(installed(&admin, &dir), [ALPHA, BRAVO]);

    // The pair: partner-probe tries a component its manifest lacks, then bravo (whose manifest
    // lacks partner-probe), then exchanges 60,000 messages with alpha (long enough to restart alpha in the middle).
    let probe = pack_probe(
        &admin,
        work,
        &[ALPHA, "60000", STRANGER, BRAVO],
        &[ALPHA, BRAVO],
    );
    sideload(&admin, &dir, &probe);
    let text = wait_log(&admin, &mut dev, PROBE, &format!("connect {ALPHA}: ok"));
    assert!(
        text.contains(&format!("connect {STRANGER}: not permitted")),
        "{text}"
    );
    assert!(
        text.contains(&format!("connect {BRAVO}: not permitted")) && text.contains("does not list"),
        "{text}"
    );
    wait_log(
        &admin,
        &mut dev,
        BRAVO,
        &format!("connection from app {PROBE} refused"),
    );
    // A stop and start of rt-echo in the middle: a disconnect partner-probe recovers from.
    wait_log(&admin, &mut dev, ALPHA, "answered 1000");
    attached(
        &admin,
        &dir,
        &["device", "app", "stop", "--component-id", ALPHA],
    );
    assert_eq!(status(&admin, &dir, ALPHA)["state"], "Stopped");
    attached(
        &admin,
        &dir,
        &["device", "app", "start", "--component-id", ALPHA],
    );
    let text = wait_log(&admin, &mut dev, PROBE, "done 60000");
    assert!(text.contains("disconnected at"), "{text}");
    assert!(!text.contains("mismatch"), "{text}");
    assert!(text.contains("oversize: invalid argument"), "{text}");

    // Hostile: bravo becomes a guest that faults. Its core restarts with backoff, the crash
    // reaches the tenant's error report, alpha and the device are unharmed.
    let fault = pack_rt(
        &admin,
        work,
        ("bravo", BRAVO, "2.0.0"),
        &elf("rt-hardfault"),
        json!({"Gpio": [13]}),
    );
    sideload(&admin, &dir, &fault);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        dev.supervise();
        let shown = status(&admin, &dir, BRAVO);
        if shown["restarts"].as_u64().unwrap_or(0) >= 1 {
            assert_eq!(shown["core"], "IO1", "{shown}");
            break;
        }
        assert!(Instant::now() < deadline, "{shown}\n{}", dev.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status(&admin, &dir, ALPHA)["state"], "Running");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        dev.supervise();
        let report = work.join("errors.csv");
        let _ = admin.run(&[
            "tenant",
            "download-error-report",
            "--destination",
            s(&report),
        ]);
        let text = fs::read_to_string(&report).unwrap_or_default();
        if text.contains("real-time core crashed")
            && text.contains("AppCrash")
            && text.contains(BRAVO)
        {
            break;
        }
        assert!(Instant::now() < deadline, "{text}\n{}", dev.log_tail());
        std::thread::sleep(Duration::from_millis(500));
    }

    // A restart: verified, measured and started again, attested Trusted, the same cores.
    dev.stop();
    let _ = fs::remove_file(dir.join("run/ready.json"));
    dev.boot(&[]);
    assert_eq!(
        dev.wait_ready()["attestation"],
        "Trusted",
        "{}",
        dev.log_tail()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while installed(&admin, &dir).len() < 3 {
        assert!(Instant::now() < deadline, "{}", dev.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status(&admin, &dir, ALPHA)["core"], "IO0");
    assert_eq!(status(&admin, &dir, BRAVO)["core"], "IO1");
    wait_log(&admin, &mut dev, ALPHA, "rt-echo ready");

    // Deleting alpha frees IO0 and its GPIO: charlie gets the core; delta still finds none.
    let out = admin.run(&[
        "device",
        "sideload",
        "delete",
        "--component-id",
        ALPHA,
        "--device-dir",
        s(&dir),
    ]);
    assert!(out.status.success(), "{out:?}");
    sideload(&admin, &dir, &charlie);
    assert_eq!(status(&admin, &dir, CHARLIE)["core"], "IO0");
    let refused = sideload_fails(&admin, &dir, &delta);
    assert!(refused.contains("every real-time core"), "{refused}");

    // charlie's peripherals on the virtual board: the UART peer's bytes reach the core and its
    // answer comes back; a press of button A is seen by the core (a log line) and lights LED1
    // red through it; its 3 s watchdog (kicked at least every second) never trips.
    wait_log(&admin, &mut dev, CHARLIE, "rt-io ready");
    let mut sent = false;
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&received).contains("HELLO, CORE") {
        assert!(
            Instant::now() < deadline,
            "no answer on ISU1: {:?}\n{}",
            String::from_utf8_lossy(&received),
            dev.log_tail()
        );
        let text = if sent { "" } else { "hello, core" };
        let exchange = attached(
            &admin,
            &dir,
            &[
                "device",
                "board",
                "uart-peer",
                "--uart",
                "ISU1",
                "--send",
                text,
                "--wait-ms",
                "100",
            ],
        );
        if !sent {
            assert_eq!(exchange["accepted"], 11, "{exchange}");
            sent = true;
        }
        received.extend(
            exchange["received"]
                .as_array()
                .expect("received")
                .iter()
                .map(|b| b.as_u64().expect("byte") as u8),
        );
    }
    let led = |board: &Value| {
        board["leds"]
            .as_array()
            .expect("leds")
            .iter()
            .find(|l| l["pin"] == 8)
            .map(|l| l["active"] == true)
            .expect("LED1 red")
    };
    assert!(!led(&attached(&admin, &dir, &["device", "board", "show"])));
    attached(
        &admin,
        &dir,
        &[
            "device",
            "board",
            "press-button",
            "--button",
            "SAMPLE_BUTTON_1",
            "--hold-ms",
            "0",
        ],
    );
    wait_log(&admin, &mut dev, CHARLIE, "rt-io: press 1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !led(&attached(&admin, &dir, &["device", "board", "show"])) {
        assert!(
            Instant::now() < deadline,
            "LED1 red stays off while button A is held"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    attached(
        &admin,
        &dir,
        &[
            "device",
            "board",
            "release-button",
            "--button",
            "SAMPLE_BUTTON_1",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while led(&attached(&admin, &dir, &["device", "board", "show"])) {
        assert!(
            Instant::now() < deadline,
            "LED1 red stays on after the release"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // An unknown UART is refused by name.
    let refused = attached_fails(
        &admin,
        &dir,
        &[
            "device",
            "board",
            "uart-peer",
            "--uart",
            "ISU9",
            "--send",
            "x",
        ],
    );
    assert!(refused.contains("ISU9"), "{refused}");

    // bravo's next version is rt-io with a 200 ms watchdog: it sleeps up to a second between
    // kicks, so its watchdog trips (charlie, the same image with 3 s, ran on untouched).
    let short = pack_rt_watchdog(
        &admin,
        work,
        ("bravo", BRAVO, "3.0.0"),
        &elf("rt-io"),
        json!({"Gpio": [13]}),
        Some(200),
    );
    sideload(&admin, &dir, &short);
    wait_log(
        &admin,
        &mut dev,
        BRAVO,
        "watchdog: no kick within the period",
    );
    let shown = status(&admin, &dir, CHARLIE);
    assert_eq!(shown["state"], "Running", "{shown}");
    assert_eq!(shown["restarts"], 0, "{shown}");
    dev.stop();
}
