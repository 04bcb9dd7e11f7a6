//! The telemetry sample end to end: the app reads the virtual board's I2C temperature sensor and
//! publishes JSON over MQTT to a real Mosquitto broker that requires a client certificate from
//! the tenant CA; the device (not the app) holds the key. A subscriber on a plain loopback
//! listener of the same broker receives the message.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::broker::{Reaped, device_with_certificate, start_broker};
use common::pki::{Services, TENANT, pki};
use common::{device_with, manifest_with, wasm};
use ferro_runtime::InstallOptions;

#[test]
fn telemetry_publishes_the_temperature_over_mqtt_with_the_device_certificate() {
    let pki = pki();
    let broker_dir = tempfile::tempdir().expect("tempdir");
    let (broker, tls_port, plain_port) = start_broker(broker_dir.path(), &pki);
    let mut subscriber = Reaped(
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &plain_port.to_string()])
            .args(["-t", "ferro/telemetry", "-C", "1", "-W", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (apt-get install mosquitto-clients)"),
    );
    // The subscription reaches the broker before the first publish (the broker logs it).
    broker.wait_for_log(" 0 ferro/telemetry", Duration::from_secs(10));

    let device = device_with_certificate(&pki);
    device.board.set_temperature_millicelsius(24_250);
    let manifest = manifest_with("telemetry", |json| {
        json["CmdArgs"] =
            serde_json::json!(["127.0.0.1", tls_port.to_string(), "200", "ferro/telemetry"]);
    });
    let app = device
        .runtime
        .install(&wasm("telemetry"), &manifest, InstallOptions::default())
        .expect("install telemetry");
    device.wait_for_log(app, "telemetry: first sample", Duration::from_secs(30));

    let mut received = String::new();
    let mut stdout = subscriber.0.stdout.take().expect("stdout");
    stdout
        .read_to_string(&mut received)
        .expect("subscriber output");
    assert!(
        received.starts_with("{\"temperature_c\":24.25,\"sample\":"),
        "received {received:?}; app log {:#?}",
        device.log_texts(app)
    );
    assert_eq!(device.runtime.status(app).unwrap().restarts, 0);
}

#[test]
fn a_broker_that_requires_another_ca_refuses_the_device() {
    let pki = pki();
    let other = common::pki::pki();
    let broker_dir = tempfile::tempdir().expect("tempdir");
    // The broker trusts `other`'s tenant CA, not the device's.
    let (_broker, tls_port, _) = start_broker(broker_dir.path(), &other);
    let tenant = TENANT.parse().expect("uuid");
    // The device trusts `other`'s platform root (the broker's server certificate), and presents
    // its own device certificate.
    let config = Arc::new(
        ferro_tls::client_config(
            std::slice::from_ref(&other.platform_root),
            Some((pki.device_chain.clone(), pki.device_key.clone())),
        )
        .expect("client config"),
    );
    let device = device_with(move |runtime| {
        runtime.services = Arc::new(Services {
            config: Some(config),
            tenant,
        });
    });
    let manifest = manifest_with("telemetry", |json| {
        json["CmdArgs"] =
            serde_json::json!(["127.0.0.1", tls_port.to_string(), "200", "ferro/telemetry"]);
    });
    let app = device
        .runtime
        .install(&wasm("telemetry"), &manifest, InstallOptions::default())
        .expect("install telemetry");
    let line = device.wait_for_log(app, "telemetry: ", Duration::from_secs(30));
    assert!(!line.contains("first sample"), "{line}");
    assert!(!line.contains("connected"), "{line}");
}
