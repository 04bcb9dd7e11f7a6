//! Install, run, stop and restart well-behaved apps; what is linked when.

mod common;

use std::time::Duration;

use common::{device, manifest, manifest_with, wasm};
use ferro_runtime::{AppState, ErrorKind, InstallError, InstallOptions};

#[test]
fn hello_logs_and_restarts_after_exit() {
    common::init_tracing();
    let device = device();
    let mut events = device.runtime.subscribe_events();
    let app = device.install("hello");
    device.wait_for_log(
        app,
        "Hello from a Ferrosphere high-level app",
        Duration::from_secs(30),
    );
    let event = events
        .next_timeout(Duration::from_secs(30))
        .expect("exit event");
    assert_eq!(event.app, app);
    assert_eq!(event.kind, ErrorKind::Exited { code: 0 });
    assert_eq!(event.restart_in, Some(Duration::from_millis(50)));
    // It runs again after the backoff.
    let again = events
        .next_timeout(Duration::from_secs(30))
        .expect("second exit");
    assert_eq!(again.restart_in, Some(Duration::from_millis(100)));
    let status = device.runtime.status(app).unwrap();
    assert!(status.restarts >= 2);
    device.runtime.stop(app).unwrap();
    assert_eq!(device.runtime.status(app).unwrap().state, AppState::Stopped);
}
