//! Install, run, stop and restart well-behaved apps; what is linked when; ownership; blink
//! on the virtual board.

mod common;

use std::time::{Duration, Instant};

use common::{device, manifest, manifest_with, wait_until, wasm};
use ferro_peripherals::OwnershipError;
use ferro_runtime::{AppState, ErrorKind, InstallError, InstallOptions};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn hello_logs_and_restarts_after_exit() {
    common::init_tracing();
    let device = device();
    let mut events = device.runtime.subscribe_events();
    let app = device.install("hello");
    device.wait_for_log(app, "Hello from a Ferrosphere high-level app", WAIT);
    let event = events.next_timeout(WAIT).expect("exit event");
    assert_eq!(event.app, app);
    assert_eq!(event.app_name, "hello");
    assert_eq!(event.kind, ErrorKind::Exited { code: 0 });
    assert!(!event.kind.is_crash());
    assert_eq!(event.restart_in, Some(Duration::from_millis(50)));
    // It runs again after the backoff.
    let again = events.next_timeout(WAIT).expect("second exit");
    assert_eq!(again.restart_in, Some(Duration::from_millis(100)));
    let status = device.runtime.status(app).unwrap();
    assert!(status.restarts >= 2);
    assert!(status.last_start_duration.is_some());
    assert_eq!(status.last_exit, Some(ErrorKind::Exited { code: 0 }));
    device.runtime.stop(app).unwrap();
    assert_eq!(device.runtime.status(app).unwrap().state, AppState::Stopped);
}

#[test]
fn blink_blinks_and_the_button_toggles_the_indicator() {
    let device = device();
    let led = device.board.gpio_by_name("SAMPLE_LED").unwrap();
    let indicator = device.board.gpio_by_name("SAMPLE_RGBLED_GREEN").unwrap();
    let button = device.board.gpio_by_name("SAMPLE_BUTTON_1").unwrap();
    let manifest = manifest_with("blink", |json| json["CmdArgs"] = serde_json::json!(["20"]));
    let app = device
        .runtime
        .install(&wasm("blink"), &manifest, InstallOptions::default())
        .unwrap();
    device.wait_for_log(app, "blink: LED on GPIO 8 every 20 ms", WAIT);
    wait_until(WAIT, || (device.board.transitions(led) >= 4).then_some(()))
        .expect("the LED blinks");
    assert!(!device.board.led_is_on(indicator));
    for expected in [true, false, true] {
        device.board.set_button(button, true).unwrap();
        wait_until(WAIT, || {
            (device.board.led_is_on(indicator) == expected).then_some(())
        })
        .unwrap_or_else(|| panic!("indicator should be {expected}"));
        device.board.set_button(button, false).unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
    device.wait_for_log(app, "button pressed: indicator on", WAIT);
    device.wait_for_log(app, "button pressed: indicator off", WAIT);
    assert_eq!(device.runtime.status(app).unwrap().state, AppState::Running);
    // Stopping releases the pins: the LEDs go dark.
    device.runtime.stop(app).unwrap();
    assert!(!device.board.led_is_on(indicator));
    assert_eq!(device.board.driven_level(led), None);
}

#[test]
fn stop_is_prompt_while_the_app_sleeps() {
    let device = device();
    let manifest = manifest_with("blink", |json| {
        json["CmdArgs"] = serde_json::json!(["100000"]);
    });
    let app = device
        .runtime
        .install(&wasm("blink"), &manifest, InstallOptions::default())
        .unwrap();
    device.wait_for_log(app, "blink: LED", WAIT);
    let started = Instant::now();
    device.runtime.stop(app).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // And it starts again on request.
    device.runtime.start(app).unwrap();
    wait_until(WAIT, || {
        (device.runtime.status(app).ok()?.state == AppState::Running).then_some(())
    })
    .expect("running again");
}

#[test]
fn manual_start_waits_for_start() {
    let device = device();
    let app = device
        .runtime
        .install(
            &wasm("hello"),
            &manifest("hello"),
            InstallOptions {
                manual_start: true,
                limits: None,
                ..InstallOptions::default()
            },
        )
        .unwrap();
    // The runtime got past the point where it would have started it: an app installed after it
    // without `manual_start` (one that needs no peripherals) has run and logged.
    let other = device.install("hostile-trap");
    device.wait_for_log(other, "about to trap", WAIT);
    let status = device.runtime.status(app).unwrap();
    assert_eq!(status.state, AppState::Stopped);
    assert!(status.manual_start);
    assert!(device.runtime.logs(app).unwrap().is_empty());
    let mut follower = device.runtime.follow_logs(app).unwrap();
    device.runtime.start(app).unwrap();
    let line = follower.next_timeout(WAIT).expect("a log line");
    assert_eq!(line.text, "Hello from a Ferrosphere high-level app");
    assert_eq!(line.source, ferro_runtime::LogSource::Stdout);
}

#[test]
fn an_ungranted_interface_fails_install_naming_it() {
    let device = device();
    // hostile-storage imports ferrosphere:device/storage; this manifest grants no storage.
    let manifest = manifest_with("hostile-storage", |json| {
        json["Capabilities"] = serde_json::json!({});
    });
    let error = device
        .runtime
        .install(
            &wasm("hostile-storage"),
            &manifest,
            InstallOptions::default(),
        )
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("ferrosphere:device/storage@0.1.0"),
        "{message}"
    );
    assert!(message.contains("MutableStorage"), "{message}");
    // Blink without Gpio: the gpio interface is not linked.
    let manifest = manifest_with("blink", |json| {
        json["Capabilities"] = serde_json::json!({});
    });
    let error = device
        .runtime
        .install(&wasm("blink"), &manifest, InstallOptions::default())
        .unwrap_err();
    assert!(
        error.to_string().contains("ferrosphere:device/gpio"),
        "{error}"
    );
    assert!(device.runtime.apps().is_empty());
}

#[test]
fn install_refuses_bad_input() {
    let device = device();
    let error = device
        .runtime
        .install(b"not wasm", &manifest("hello"), InstallOptions::default())
        .unwrap_err();
    assert!(
        matches!(error, InstallError::InvalidComponent(_)),
        "{error}"
    );
    // A core module is not a component.
    let error = device
        .runtime
        .install(
            b"\0asm\x01\0\0\0",
            &manifest("hello"),
            InstallOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(error, InstallError::InvalidComponent(_)),
        "{error}"
    );
    // Text is not accepted, only binary components.
    let error = device
        .runtime
        .install(
            b"(component)",
            &manifest("hello"),
            InstallOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(error, InstallError::InvalidComponent(_)),
        "{error}"
    );
    // An empty component (binary) is valid but not a command.
    let empty_component = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    let error = device
        .runtime
        .install(
            &empty_component,
            &manifest("hello"),
            InstallOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(error, InstallError::NotACommand(_)), "{error}");
    let real_time = manifest_with("hello", |json| {
        json["ApplicationType"] = serde_json::json!("RealTimeCapable");
    });
    let error = device
        .runtime
        .install(&wasm("hello"), &real_time, InstallOptions::default())
        .unwrap_err();
    assert!(matches!(error, InstallError::NotHighLevel(_)), "{error}");
    device.install("hello");
    let error = device
        .runtime
        .install(
            &wasm("hello"),
            &manifest("hello"),
            InstallOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(error, InstallError::AlreadyInstalled(_)),
        "{error}"
    );
    assert_eq!(device.runtime.apps().len(), 1);
}

#[test]
fn payload_directories_are_read_at_the_entry_point() {
    let device = device();
    let payload = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(payload.path().join("bin")).unwrap();
    std::fs::write(payload.path().join("bin/hello"), wasm("hello")).unwrap();
    let manifest = manifest_with("hello", |json| {
        json["EntryPoint"] = serde_json::json!("/bin/hello");
    });
    let app = device
        .runtime
        .install_from_dir(payload.path(), &manifest, InstallOptions::default())
        .unwrap();
    device.wait_for_log(app, "Hello", WAIT);
    let missing = manifest_with("hello", |json| {
        json["EntryPoint"] = serde_json::json!("/bin/missing");
        json["ComponentId"] = serde_json::json!("11111111-2222-4333-8444-555555555555");
    });
    let error = device
        .runtime
        .install_from_dir(payload.path(), &missing, InstallOptions::default())
        .unwrap_err();
    assert!(matches!(error, InstallError::Payload { .. }), "{error}");
}

#[test]
fn a_peripheral_belongs_to_one_app() {
    let device = device();
    let blink = device.install("blink");
    // hostile-gpio asks for GPIO 8, which blink holds (SAMPLE_LED).
    let error = device
        .runtime
        .install(
            &wasm("hostile-gpio"),
            &manifest("hostile-gpio"),
            InstallOptions::default(),
        )
        .unwrap_err();
    let InstallError::Ownership(OwnershipError::Conflict { owner, .. }) = &error else {
        panic!("{error}");
    };
    assert_eq!(owner, &blink.to_string());
    assert_eq!(
        error.to_string(),
        format!("GPIO 8 is not available: GPIO 8 belongs to app {blink}")
    );
    // A pin-block conflict across apps: PWM-CONTROLLER-2 shares its block with GPIO 8.
    let pwm = manifest_with("hostile-gpio", |json| {
        json["Capabilities"] = serde_json::json!({"Pwm": ["PWM-CONTROLLER-2"]});
        json["ComponentId"] = serde_json::json!("22222222-2222-4333-8444-555555555555");
    });
    let error = device
        .runtime
        .install(&wasm("hello"), &pwm, InstallOptions::default())
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("share pin block PWM-CONTROLLER-2"),
        "{error}"
    );
    // Released at uninstall.
    device.runtime.uninstall(blink, false).unwrap();
    device.install("hostile-gpio");
}

#[test]
fn a_server_port_belongs_to_one_app() {
    let device = device();
    let first = manifest_with("hello", |json| {
        json["Capabilities"] = serde_json::json!({"AllowedTcpServerPorts": [18080]});
    });
    let first = device
        .runtime
        .install(&wasm("hello"), &first, InstallOptions::default())
        .unwrap();
    let second = manifest_with("hello", |json| {
        json["Capabilities"] =
            serde_json::json!({"AllowedTcpServerPorts": [18080], "AllowedUdpServerPorts": [18080]});
        json["ComponentId"] = serde_json::json!("33333333-2222-4333-8444-555555555555");
    });
    let error = device
        .runtime
        .install(&wasm("hello"), &second, InstallOptions::default())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "TCP server port 18080 is not available: TCP server port 18080 belongs to app {first}"
        )
    );
}

#[test]
fn storage_survives_restarts_and_is_deleted_at_uninstall() {
    let device = device();
    let app = device.install("hostile-storage");
    device.wait_for_log(app, "size", WAIT);
    device.runtime.stop(app).unwrap();
    assert_eq!(device.runtime.quota(app).unwrap().unwrap().used_bytes, 4096);
    let directory = device.storage.path().join(app.to_string());
    assert!(directory.join("mutable.bin").is_file());
    device.runtime.uninstall(app, true).unwrap();
    assert!(
        directory.join("mutable.bin").is_file(),
        "kept for an update"
    );
    let app = device.install("hostile-storage");
    device.runtime.uninstall(app, false).unwrap();
    assert!(!directory.exists(), "deleted with the app");
    // Apps without MutableStorage have no quota.
    let hello = device.install("hello");
    assert_eq!(device.runtime.quota(hello).unwrap(), None);
}

/// Issue 16: a test-signed image sideloaded under a production app's component ID must not
/// read that app's mutable storage. The production app fills its storage; the same component
/// installed in the development area starts with empty storage of its own, its writes do not
/// reach the production file, and removing it leaves the production data in place.
#[test]
fn a_sideloaded_image_does_not_see_the_production_apps_storage() {
    let device = device();
    let production = device.install("hostile-storage");
    device.wait_for_log(production, "size", WAIT);
    device.runtime.stop(production).unwrap();
    let production_file = device
        .storage
        .path()
        .join(production.to_string())
        .join("mutable.bin");
    assert_eq!(std::fs::read(&production_file).unwrap(), vec![0x5a; 4096]);
    // What the production app keeps there (the guest only ever writes 0x5a).
    let written = b"production secret".to_vec();
    std::fs::write(&production_file, &written).unwrap();
    // Replaced by a sideloaded image of the same component (an update keeps storage).
    device.runtime.uninstall(production, true).unwrap();
    let install = |storage_area| {
        device
            .runtime
            .install(
                &wasm("hostile-storage"),
                &manifest("hostile-storage"),
                InstallOptions {
                    manual_start: true,
                    storage_area,
                    ..InstallOptions::default()
                },
            )
            .unwrap()
    };
    let sideloaded = install(ferro_runtime::StorageArea::Development);
    assert_eq!(sideloaded, production, "same component ID");
    assert_eq!(
        device
            .runtime
            .quota(sideloaded)
            .unwrap()
            .unwrap()
            .used_bytes,
        0,
        "the sideloaded image sees empty storage"
    );
    // It writes its own storage, in its own place.
    let mut logs = device.runtime.follow_logs(sideloaded).unwrap();
    device.runtime.start(sideloaded).unwrap();
    while !logs
        .next_timeout(WAIT)
        .expect("a log line")
        .text
        .starts_with("size")
    {}
    device.runtime.stop(sideloaded).unwrap();
    let development_file = device
        .storage
        .path()
        .join("development")
        .join(sideloaded.to_string())
        .join("mutable.bin");
    assert_eq!(std::fs::read(&development_file).unwrap().len(), 4096);
    // Deleting the sideloaded image deletes its storage only; the production app comes back
    // to its own data.
    device.runtime.uninstall(sideloaded, false).unwrap();
    assert!(!development_file.exists());
    assert_eq!(std::fs::read(&production_file).unwrap(), written);
    let back = install(ferro_runtime::StorageArea::Production);
    assert_eq!(
        device.runtime.quota(back).unwrap().unwrap().used_bytes,
        written.len() as u64
    );
}

#[test]
fn many_apps_run_side_by_side() {
    let device = device();
    let mut apps = Vec::new();
    for index in 0..10 {
        let manifest = manifest_with("hello", |json| {
            json["ComponentId"] = serde_json::json!(format!("44444444-2222-4333-8444-{index:012}"));
            json["Capabilities"] = serde_json::json!({});
        });
        apps.push(
            device
                .runtime
                .install(&wasm("hello"), &manifest, InstallOptions::default())
                .unwrap(),
        );
    }
    for app in &apps {
        device.wait_for_log(*app, "Hello", WAIT);
    }
    for app in apps {
        device.runtime.uninstall(app, false).unwrap();
    }
    assert!(device.runtime.apps().is_empty());
}

#[test]
fn unknown_apps_are_reported() {
    let device = device();
    let unknown = ferro_runtime::AppId::from(uuid::Uuid::nil());
    assert!(matches!(
        device.runtime.status(unknown),
        Err(ferro_runtime::ControlError::NotInstalled(_))
    ));
    assert!(device.runtime.start(unknown).is_err());
    assert!(device.runtime.stop(unknown).is_err());
    assert!(device.runtime.logs(unknown).is_err());
}

#[test]
fn concurrent_starts_and_stops_leave_one_supervisor_at_most() {
    let device = std::sync::Arc::new(device());
    let manifest = manifest_with("blink", |json| json["CmdArgs"] = serde_json::json!(["10"]));
    let app = device
        .runtime
        .install(&wasm("blink"), &manifest, InstallOptions::default())
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|index| {
            let device = device.clone();
            std::thread::spawn(move || {
                for round in 0..15 {
                    if (index + round) % 2 == 0 {
                        device.runtime.start(app).unwrap();
                    } else {
                        device.runtime.stop(app).unwrap();
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    device.runtime.stop(app).unwrap();
    // Nothing keeps running behind the runtime's back: `stop` joined the app's instance, and no
    // instance is left holding (and driving) the LED's pin.
    let led = device.board.gpio_by_name("SAMPLE_LED").unwrap();
    assert_eq!(device.board.driven_level(led), None);
    assert_eq!(device.runtime.status(app).unwrap().state, AppState::Stopped);
    // And after uninstall it cannot be started.
    device.runtime.uninstall(app, false).unwrap();
    assert!(device.runtime.start(app).is_err());
}
