//! Hostile guests, each next to a well-behaved app (blink): the hostile one is contained (its
//! limit hit becomes an error event, it is restarted with backoff or refused), and blink keeps
//! blinking throughout. Guests are in `apps/hostile-*`.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{Device, device, manifest_with, wait_until, wasm};
use ferro_runtime::{AppId, AppState, ErrorEvent, ErrorKind, InstallError, InstallOptions};

const LED: u32 = 8;
const WAIT: Duration = Duration::from_secs(30);

/// Installs blink with a 20 ms half-period.
fn install_blink(device: &Device) -> AppId {
    let manifest = manifest_with("blink", |json| json["CmdArgs"] = serde_json::json!(["20"]));
    device
        .runtime
        .install(&wasm("blink"), &manifest, InstallOptions::default())
        .expect("install blink")
}

/// Blink's LED keeps changing.
fn assert_blinking(device: &Device) {
    let before = device.board.transitions(LED);
    let moved = wait_until(Duration::from_secs(10), || {
        (device.board.transitions(LED) >= before + 3).then_some(())
    });
    assert!(
        moved.is_some(),
        "blink stopped blinking: {} transitions before, {} after",
        before,
        device.board.transitions(LED)
    );
}

fn install_hostile(device: &Device, name: &str) -> AppId {
    device.install(name)
}

/// The first event of `app` matching `wanted`.
fn wait_event(device: &Device, app: AppId, wanted: impl Fn(&ErrorKind) -> bool) -> ErrorEvent {
    wait_until(WAIT, || {
        device
            .runtime
            .recent_events()
            .into_iter()
            .find(|event| event.app == app && wanted(&event.kind))
    })
    .unwrap_or_else(|| {
        panic!(
            "no matching event for {app}; events: {:#?}",
            device.runtime.recent_events()
        )
    })
}

#[test]
fn endless_loop_is_stopped_by_the_cpu_limit_and_restarted() {
    common::init_tracing();
    let device = device();
    let blink = install_blink(&device);
    device.wait_for_log(blink, "blink: LED on GPIO 8", WAIT);
    let hostile = install_hostile(&device, "hostile-loop");
    let event = wait_event(&device, hostile, |kind| {
        matches!(kind, ErrorKind::CpuLimit { .. })
    });
    assert_eq!(
        event.kind,
        ErrorKind::CpuLimit {
            slice: Duration::from_millis(500)
        }
    );
    assert!(event.kind.is_crash());
    assert!(event.restart_in.is_some());
    assert_blinking(&device);
    // It is restarted and stopped again: a crash loop with growing delays.
    wait_until(WAIT, || {
        (device.runtime.status(hostile).ok()?.restarts >= 2).then_some(())
    })
    .expect("restarted");
    let delays: Vec<Duration> = device
        .runtime
        .recent_events()
        .into_iter()
        .filter(|event| event.app == hostile)
        .filter_map(|event| event.restart_in)
        .collect();
    assert!(
        delays.windows(2).all(|pair| pair[1] >= pair[0]),
        "{delays:?}"
    );
    // Stop works while it spins.
    let started = Instant::now();
    device.runtime.stop(hostile).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        device.runtime.status(hostile).unwrap().state,
        AppState::Stopped
    );
    assert_blinking(&device);
    assert_eq!(device.runtime.status(blink).unwrap().restarts, 0);
}

#[test]
fn a_busy_app_that_dodges_the_slice_hits_the_cpu_budget() {
    // A 1 s budget per 3 s window keeps the test short (the default is 5 s per 10 s).
    let device = common::device_with(|config| {
        config.limits.cpu_budget = Duration::from_secs(1);
        config.limits.cpu_window = Duration::from_secs(3);
    });
    let blink = install_blink(&device);
    let hostile = install_hostile(&device, "hostile-busy");
    let event = wait_event(&device, hostile, |kind| {
        matches!(kind, ErrorKind::CpuBudget { .. })
    });
    assert_eq!(
        event.kind,
        ErrorKind::CpuBudget {
            budget: Duration::from_secs(1),
            window: Duration::from_secs(3)
        }
    );
    assert!(
        device
            .runtime
            .recent_events()
            .iter()
            .all(|event| !matches!(event.kind, ErrorKind::CpuLimit { .. })),
        "the slice did not trip: only the budget did"
    );
    assert_blinking(&device);
    assert_eq!(device.runtime.status(blink).unwrap().restarts, 0);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let device = device();
    let blink = install_blink(&device);
    let hostile = install_hostile(&device, "hostile-memory");
    let event = wait_event(&device, hostile, |kind| {
        matches!(kind, ErrorKind::MemoryLimit { .. })
    });
    let stats = device.runtime.memory_stats(hostile).unwrap();
    assert!(stats.image_bytes > 0, "{stats:?}");
    assert_eq!(stats.limit_bytes, stats.image_bytes + 256 * 1024);
    assert_eq!(
        event.kind,
        ErrorKind::MemoryLimit {
            limit_bytes: stats.limit_bytes
        }
    );
    assert!(stats.peak_bytes <= stats.limit_bytes, "{stats:?}");
    device.wait_for_log(hostile, "holding", WAIT);
    assert_blinking(&device);
    assert_eq!(device.runtime.status(blink).unwrap().restarts, 0);
}

#[test]
fn memory_allowance_is_configurable_per_install() {
    let device = device();
    let limits = ferro_runtime::Limits {
        extra_memory_bytes: 1024 * 1024,
        ..ferro_runtime::Limits::default()
    };
    let hostile = device
        .runtime
        .install(
            &wasm("hostile-memory"),
            &common::manifest("hostile-memory"),
            InstallOptions {
                manual_start: false,
                limits: Some(limits),
                ..InstallOptions::default()
            },
        )
        .unwrap();
    wait_event(&device, hostile, |kind| {
        matches!(kind, ErrorKind::MemoryLimit { .. })
    });
    let stats = device.runtime.memory_stats(hostile).unwrap();
    assert_eq!(stats.limit_bytes, stats.image_bytes + 1024 * 1024);
    assert!(
        stats.peak_bytes > stats.image_bytes + 256 * 1024,
        "{stats:?}"
    );
}

#[test]
fn deep_recursion_traps() {
    let device = device();
    let blink = install_blink(&device);
    let hostile = install_hostile(&device, "hostile-recursion");
    let event = wait_event(&device, hostile, |kind| {
        matches!(kind, ErrorKind::Trapped { .. })
    });
    let ErrorKind::Trapped { reason } = &event.kind else {
        unreachable!()
    };
    // Rust keeps its stack in linear memory: overflowing it leaves the memory's bounds (or the
    // engine's own stack limit trips first).
    assert!(
        reason.contains("out of bounds") || reason.contains("stack"),
        "{reason}"
    );
    assert_blinking(&device);
    assert_eq!(device.runtime.status(blink).unwrap().restarts, 0);
}

#[test]
fn log_flood_is_rate_limited_and_bounded() {
    let device = device();
    let blink = install_blink(&device);
    let hostile = install_hostile(&device, "hostile-logflood");
    wait_event(&device, hostile, |kind| {
        matches!(kind, ErrorKind::LogRateLimited { .. })
    });
    // It floods on: wait until more lines were dropped than the ring holds.
    let dropped = wait_until(Duration::from_secs(30), || {
        let dropped = device.runtime.dropped_log_lines(hostile).ok()?;
        (dropped > 1000).then_some(dropped)
    })
    .expect("more than 1000 lines dropped");
    let lines = device.runtime.logs(hostile).unwrap();
    assert!(
        lines.len() <= 1000,
        "the log ring is bounded ({dropped} dropped)"
    );
    // At most burst + rate * elapsed lines were kept (200 + 50/s), far below what it wrote.
    let kept = lines
        .iter()
        .filter(|line| line.text.starts_with("flood"))
        .count();
    assert!(kept < 600, "kept {kept}");
    // Contained, not killed: it keeps running, and so does blink, whose log is its own.
    assert_eq!(
        device.runtime.status(hostile).unwrap().state,
        AppState::Running
    );
    assert_blinking(&device);
    assert!(
        device
            .log_texts(blink)
            .iter()
            .all(|line| !line.contains("flood"))
    );
    // The rate-limit events are themselves rate-limited (about one per second).
    let reports = device
        .runtime
        .recent_events()
        .into_iter()
        .filter(|event| event.app == hostile)
        .count();
    assert!(reports <= 5, "{reports} events");
}

/// Install `hostile-connect` against `port` (with `allowed` as its AllowedConnections, if
/// given) and wait until it has made its last attempt.
fn run_hostile_connect(device: &Device, port: u16, allowed: Option<serde_json::Value>) -> AppId {
    let manifest = manifest_with("hostile-connect", |json| {
        json["CmdArgs"] = serde_json::json!([port.to_string()]);
        if let Some(allowed) = allowed {
            json["Capabilities"]["AllowedConnections"] = allowed;
        }
    });
    let app = device
        .runtime
        .install(
            &wasm("hostile-connect"),
            &manifest,
            InstallOptions::default(),
        )
        .unwrap();
    device.wait_for_log(app, "attempt 127.0.0.1:", WAIT);
    app
}

/// Issue 16 (DNS rebinding): a name the manifest lists is refused when it resolves to a
/// loopback address (here `localhost`), unless the manifest lists that address itself.
#[test]
fn a_listed_name_that_resolves_to_loopback_is_refused() {
    let device = device();
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let attempt = |allowed: serde_json::Value| {
        let app = run_hostile_connect(&device, port, Some(allowed));
        device.runtime.stop(app).unwrap();
        let line = device
            .log_texts(app)
            .into_iter()
            .find(|line| line.starts_with("attempt localhost: "))
            .expect("a localhost attempt");
        device.runtime.uninstall(app, false).unwrap();
        line
    };
    // `localhost` listed, its address not: refused, naming the address.
    let refused = attempt(serde_json::json!(["localhost"]));
    assert!(refused.contains("not permitted"), "{refused}");
    assert!(refused.contains("loopback"), "{refused}");
    // Listing the address itself lets the name reach it.
    let allowed = attempt(serde_json::json!(["localhost", "127.0.0.1"]));
    assert!(allowed.contains("CONNECTED"), "{allowed}");
}

#[test]
fn undeclared_hosts_are_refused_by_name_and_by_address() {
    let device = device();
    let blink = install_blink(&device);
    // Listen on every address, so a connection to any loopback address would land here.
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let hostile = run_hostile_connect(&device, port, None);
    let log = device.log_texts(hostile);
    let outcome = |what: &str| {
        log.iter()
            .find(|line| line.starts_with(&format!("attempt {what}: ")))
            .unwrap_or_else(|| panic!("no attempt {what} in {log:#?}"))
            .clone()
    };
    for refused in [
        "localhost",
        "example.com",
        "127.0.0.2",
        "2130706433",
        "0x7f.0.0.1",
        "::1",
        "tls-unlisted",
        "tls-no-deviceauth",
        "listen",
        "udp 127.0.0.2",
    ] {
        let line = outcome(refused);
        assert!(line.contains("not permitted"), "{line}");
    }
    assert!(outcome("tls-no-deviceauth").contains("DeviceAuthentication"));
    let injection = outcome("127.0.0.1:port-injection");
    assert!(
        injection.contains("not permitted") || injection.contains("invalid argument"),
        "{injection}"
    );
    assert!(outcome("127.0.0.1").contains("CONNECTED"));
    // The app exits and is restarted; stop it, then count what reached the listener: only the
    // allowed connection, once per run.
    device.runtime.stop(hostile).unwrap();
    let runs = device
        .log_texts(hostile)
        .iter()
        .filter(|line| line.starts_with("attempt 127.0.0.1: CONNECTED"))
        .count();
    let mut accepted = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                let mut text = String::new();
                let _ = stream.read_to_string(&mut text);
                accepted.push(text);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    assert!(runs >= 1);
    assert_eq!(accepted, vec!["hello from the sandbox"; runs]);
    let denials = device
        .runtime
        .recent_events()
        .into_iter()
        .filter(|event| event.app == hostile)
        .filter(|event| matches!(event.kind, ErrorKind::AccessDenied { .. }))
        .count();
    assert!(denials >= 8, "{denials} denials reported");
    assert_blinking(&device);
    assert_eq!(device.runtime.status(blink).unwrap().restarts, 0);
}

#[test]
fn wasi_sockets_are_not_linked() {
    let device = device();
    let error = device
        .runtime
        .install(
            &wasm("hostile-stdnet"),
            &common::manifest("hostile-stdnet"),
            InstallOptions::default(),
        )
        .unwrap_err();
    let InstallError::ImportNotGranted {
        import,
        reason,
        others,
    } = &error
    else {
        panic!("{error}");
    };
    assert!(reason.contains("does not provide"), "{reason}");
    let refused: Vec<&String> = std::iter::once(import).chain(others).collect();
    assert!(
        refused
            .iter()
            .any(|name| name.starts_with("wasi:sockets/tcp")),
        "{refused:?}"
    );
    assert!(error.to_string().contains("wasi:sockets/"), "{error}");
    assert!(device.runtime.apps().is_empty(), "nothing left behind");
}

#[test]
fn gpio_not_in_the_manifest_is_refused() {
    let device = device();
    let hostile = install_hostile(&device, "hostile-gpio");
    device.wait_for_log(hostile, "done", WAIT);
    let log = device.log_texts(hostile);
    let outcome = |what: &str| {
        log.iter()
            .find(|line| line.starts_with(&format!("attempt {what}: ")))
            .unwrap_or_else(|| panic!("no attempt {what} in {log:#?}"))
            .clone()
    };
    assert_eq!(outcome("open 8"), "attempt open 8: ALLOWED");
    for refused in [
        "open 9",
        "open button 12",
        "open 4294967295",
        "batch set 8+9",
        "batch read 12",
    ] {
        let line = outcome(refused);
        assert!(line.contains("not permitted"), "{line}");
        assert!(line.contains("Gpio"), "{line}");
    }
    // The batch was refused whole: GPIO 8 was not driven low by it.
    assert_eq!(
        device.board.pin_mode(9),
        Some(ferro_peripherals::PinMode::Closed)
    );
    assert_eq!(device.board.transitions(8), 0);
}

#[test]
fn storage_writes_past_the_quota_are_refused() {
    let device = device();
    let hostile = install_hostile(&device, "hostile-storage");
    device.wait_for_log(hostile, "size", WAIT);
    let log = device.log_texts(hostile);
    assert!(log.contains(&"quota 4096 bytes".to_owned()), "{log:#?}");
    assert!(
        log.iter()
            .any(|line| line.starts_with("write at 4096: limit exceeded")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|line| line.starts_with("write at u64::MAX-10: limit exceeded")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|line| line.starts_with("truncate 1 TiB: limit exceeded")),
        "{log:#?}"
    );
    let quota = device.runtime.quota(hostile).unwrap().unwrap();
    assert_eq!(quota.quota_bytes, 4096);
    assert_eq!(quota.used_bytes, 4096);
    wait_event(&device, hostile, |kind| {
        *kind == ErrorKind::StorageQuota { quota_bytes: 4096 }
    });
}

#[test]
fn trap_at_start_backs_off_and_is_reported() {
    let device = device();
    let blink = install_blink(&device);
    let hostile = install_hostile(&device, "hostile-trap");
    let crashes = wait_until(WAIT, || {
        let crashes: Vec<ErrorEvent> = device
            .runtime
            .recent_events()
            .into_iter()
            .filter(|event| event.app == hostile)
            .collect();
        (crashes.len() >= 4).then_some(crashes)
    })
    .expect("four crashes");
    for event in &crashes {
        assert!(matches!(event.kind, ErrorKind::Trapped { .. }), "{event:?}");
        assert!(event.kind.is_crash());
    }
    let delays: Vec<u128> = crashes
        .iter()
        .map(|event| event.restart_in.unwrap().as_millis())
        .collect();
    assert_eq!(&delays[..4], &[50, 100, 200, 400]);
    let log = device.log_texts(hostile);
    assert!(log.iter().any(|line| line == "about to trap"));
    assert!(
        log.iter().any(|line| line.contains("trap at start")),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|line| line.contains("restarting in 100 ms")),
        "{log:#?}"
    );
    assert_blinking(&device);
    assert_eq!(device.runtime.status(blink).unwrap().restarts, 0);
}
