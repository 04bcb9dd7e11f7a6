//! The guardian's uplink (`apps/guardian-uplink`, driven by `apps/test-guests/uplink-probe`
//! with synthetic readings) against a real Mosquitto that requires a client certificate from the
//! tenant CA; the device makes the TLS connection, the app never holds the key. Subscribers on
//! the broker's plain loopback listener see what a cloud consumer sees: JSON batches; Sparkplug
//! B payloads, decoded by an independent implementation (protoc and Python's protobuf,
//! `tests/interop/sparkplug_decode.py`); batches spooled through a broker outage and
//! delivered in order; the oldest dropped and the drop reported when the quota fills; write
//! requests acknowledged; and the guardian app itself, installed from a verified image, bridging
//! a pymodbus simulator with every batch signed by the device (attested provenance,
//! docs/provenance.md), accepted by the cloud's verifier and refused when tampered with.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::broker::{Reaped, device_with_certificate, start_broker_with};
use common::pki::{SigningServices, TENANT, pki};
use common::{Device, device_with, manifest_with, wait_until, wasm};
use ferro_e2e::modbus::Simulator;
use ferro_e2e::mosquitto::Mosquitto;
use ferro_provenance::{
    ExpectedProvenance, ProvenanceError, TenantAnchors, VerifiedBatch, verify_batch,
};
use ferro_runtime::{AppId, InstallOptions, PackageFiles};
use serde_json::Value as Json;
use uuid::Uuid;

const DEVICE: &str = "guardian-1";
/// The image ID of the guardian's verified image (what its signed batches name).
const GUARDIAN_IMAGE: Uuid = Uuid::from_u128(0x9a4d_0000_0000_4000_8000_0000_0000_0019);
const BOOT: Uuid = Uuid::from_u128(0xb007_0000_0000_4000_8000_0000_0000_0019);

/// A subscriber with a persistent session (so that a restart of the broker, which saves it,
/// loses nothing queued for it), printing `TOPIC PAYLOAD` lines (the payload in hex when `hex`).
struct Subscriber {
    _process: Reaped,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Subscriber {
    fn start(broker: &Mosquitto, plain_port: u16, topic: &str, hex: bool) -> Subscriber {
        let id = format!("sub-{}-{}", std::process::id(), topic.len());
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &plain_port.to_string()])
            .args(["-i", &id, "-c", "-q", "1", "-t", topic])
            .args(["-F", if hex { "%t %x" } else { "%t %p" }])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (apt-get install mosquitto-clients)");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        broker.wait_for_log(&format!("{id} 1 {topic}"), Duration::from_secs(10));
        Subscriber {
            _process: Reaped(child),
            lines,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// The payloads received on topics ending with `suffix`.
    fn payloads(&self, suffix: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter_map(|line| {
                let (topic, payload) = line.split_once(' ')?;
                topic.ends_with(suffix).then(|| payload.to_owned())
            })
            .collect()
    }

    /// Waits until `probe` holds for the payloads on `suffix`.
    fn wait(&self, suffix: &str, what: &str, probe: impl Fn(&[String]) -> bool) -> Vec<String> {
        wait_until(Duration::from_secs(60), || {
            let payloads = self.payloads(suffix);
            probe(&payloads).then_some(payloads)
        })
        .unwrap_or_else(|| panic!("{what}: received {:#?}", self.lines()))
    }
}

struct Setup {
    broker: Mosquitto,
    plain_port: u16,
    device: Device,
    app: AppId,
    /// The tenant CA (the cloud's trust anchor of signed batches) and the app's component ID.
    tenant_ca_pem: String,
    component: Uuid,
    _dir: tempfile::TempDir,
}

/// A broker with persistence, and the probe publishing in `format` every `interval_ms` with
/// `storage_kb` KiB of mutable storage.
fn setup(
    format: &str,
    interval_ms: u64,
    storage_kb: u64,
    before_install: impl FnOnce(&Mosquitto, u16) -> Vec<Subscriber>,
) -> (Setup, Vec<Subscriber>) {
    let format = format.to_owned();
    setup_app(
        "uplink-probe",
        move |json, tls_port| {
            json["CmdArgs"] = serde_json::json!([
                "127.0.0.1",
                tls_port.to_string(),
                format,
                DEVICE,
                interval_ms.to_string()
            ]);
            json["Capabilities"]["MutableStorage"]["SizeKB"] = storage_kb.into();
        },
        |_| PackageFiles::default(),
        None,
        before_install,
    )
}

/// A broker with persistence and app `name` installed with its manifest edited by `edit`
/// (given the broker's TLS port) and the package files `files` makes from the manifest; with
/// `image`, installed as the verified image of that ID on a device that signs its batches.
fn setup_app(
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value, u16),
    files: impl FnOnce(&ferro_manifest::ResolvedManifest) -> PackageFiles,
    image: Option<Uuid>,
    before_install: impl FnOnce(&Mosquitto, u16) -> Vec<Subscriber>,
) -> (Setup, Vec<Subscriber>) {
    let pki = pki();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    std::fs::create_dir(&db).expect("db dir");
    {
        use std::os::unix::fs::PermissionsExt;
        // Mosquitto started as root writes its database as user `mosquitto`.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let extra = format!(
        "persistence true\npersistence_location {}/\nautosave_interval 1\n",
        db.display()
    );
    let (broker, tls_port, plain_port) = start_broker_with(dir.path(), &pki, &extra);
    let subscribers = before_install(&broker, plain_port);
    let device = match image {
        Some(_) => {
            let services = std::sync::Arc::new(SigningServices::new(&pki, BOOT));
            device_with(move |runtime| runtime.services = services)
        }
        None => device_with_certificate(&pki),
    };
    let manifest = manifest_with(name, |json| edit(json, tls_port));
    let options = InstallOptions {
        package_files: files(&manifest),
        image_id: image,
        ..InstallOptions::default()
    };
    let app = device
        .runtime
        .install(&wasm(name), &manifest, options)
        .unwrap_or_else(|error| panic!("install {name}: {error}"));
    (
        Setup {
            broker,
            plain_port,
            device,
            app,
            tenant_ca_pem: pki.tenant_ca_pem.clone(),
            component: manifest.component_id(),
            _dir: dir,
        },
        subscribers,
    )
}

fn json(text: &str) -> Json {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The batch numbers of JSON batches, in the order received, without the repeats QoS 1 allows
/// (a batch sent again after a reconnect because its PUBACK was lost).
fn batch_numbers(payloads: &[String]) -> Vec<u64> {
    let mut numbers: Vec<u64> = Vec::new();
    for payload in payloads {
        let n = json(payload)["batch"].as_u64().expect("batch number");
        if !numbers.contains(&n) {
            numbers.push(n);
        }
    }
    numbers
}

fn publish(plain_port: u16, topic: &str, payload: &[u8]) {
    let mut child = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &plain_port.to_string()])
        .args(["-q", "1", "-t", topic, "-s"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(payload)
        .expect("payload");
    assert!(child.wait().expect("mosquitto_pub").success());
}

#[test]
fn json_batches_arrive_with_quality_and_units_and_commands_are_acknowledged() {
    let (setup, subscribers) = setup("json", 100, 64, |broker, port| {
        vec![Subscriber::start(
            broker,
            port,
            &format!("ferro/guardian/{DEVICE}/#"),
            false,
        )]
    });
    let sub = &subscribers[0];
    let batches = sub.wait("/telemetry", "four batches", |p| p.len() >= 4);
    let first = json(&batches[0]);
    assert_eq!(first["device"], DEVICE);
    assert_eq!(first["batch"], 0);
    let points = first["points"].as_array().expect("points");
    let names: Vec<&str> = points.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["counter", "flag", "temp", "pressure"]);
    assert_eq!(points[0]["value"], 0);
    assert_eq!(points[0]["quality"], "good");
    assert_eq!(points[2]["unit"], "degC");
    assert!(points[2]["timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    // The fourth round's pressure is a Modbus exception 2, without a value.
    let fourth = json(&batches[3]);
    assert_eq!(
        fourth["points"][3]["quality"],
        serde_json::json!({"modbus_exception": 2})
    );
    assert_eq!(fourth["points"][3]["value"], Json::Null);

    let commands = format!("ferro/guardian/{DEVICE}/commands");
    publish(
        setup.plain_port,
        &commands,
        br#"{"id":"w1","point":"setpoint","value":42}"#,
    );
    publish(
        setup.plain_port,
        &commands,
        br#"{"id":"w2","point":"setpoint","value":420}"#,
    );
    publish(
        setup.plain_port,
        &commands,
        br#"{"id":"w3","point":"set point!","value":1}"#,
    );
    let acks = sub.wait("/acks", "three acknowledgements", |p| p.len() >= 3);
    let acks: Vec<Json> = acks.iter().map(|a| json(a)).collect();
    // A malformed command is answered when it arrives; a write request when the app took it.
    let ack = |id: &str| {
        acks.iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no acknowledgement of {id}: {acks:?}"))
    };
    assert_eq!(
        ack("w1"),
        &serde_json::json!({"id": "w1", "outcome": "written"})
    );
    assert_eq!(ack("w2")["outcome"]["refused"]["reason"], "out_of_bounds");
    assert!(
        ack("w3")["error"]
            .as_str()
            .unwrap()
            .contains("malformed write request"),
        "{acks:?}"
    );
    setup.device.wait_for_log(
        setup.app,
        "command refused: malformed",
        Duration::from_secs(10),
    );
}

/// The probe publishing JSON every 100 ms with `storage_kb` KiB of storage, and a subscriber
/// to its telemetry.
fn telemetry_setup(storage_kb: u64) -> (Setup, Subscriber) {
    let (setup, mut subscribers) = setup("json", 100, storage_kb, |broker, port| {
        let topic = format!("ferro/guardian/{DEVICE}/telemetry");
        vec![Subscriber::start(broker, port, &topic, false)]
    });
    (setup, subscribers.remove(0))
}

#[test]
fn a_broker_outage_loses_nothing_within_the_quota_and_delivers_in_order() {
    let (mut setup, sub) = telemetry_setup(64);
    let sub = &sub;
    sub.wait("/telemetry", "three batches", |p| p.len() >= 3);
    setup.broker.stop();
    setup
        .device
        .wait_for_log(setup.app, "broker unreachable", Duration::from_secs(10));
    // About 20 batches while the broker is down.
    std::thread::sleep(Duration::from_secs(2));
    setup.broker.restart();
    let before = batch_numbers(&sub.payloads("/telemetry")).len() as u64;
    let payloads = sub.wait("/telemetry", "the spooled batches and more", |p| {
        batch_numbers(p).len() as u64 >= before + 25
    });
    let numbers = batch_numbers(&payloads);
    let expected: Vec<u64> = (0..numbers.len() as u64).collect();
    assert_eq!(numbers, expected, "every batch, in order, none lost");
    assert!(payloads.iter().all(|p| json(p)["dropped"] == 0));
}

#[test]
fn a_full_spool_drops_the_oldest_and_reports_the_count() {
    // 4 KiB of storage hold about eight batches; a 3 s outage makes about 30.
    let (mut setup, sub) = telemetry_setup(4);
    let sub = &sub;
    sub.wait("/telemetry", "two batches", |p| p.len() >= 2);
    setup.broker.stop();
    setup.device.wait_for_log(
        setup.app,
        "guardian: spool full: dropped",
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_secs(1));
    setup.broker.restart();
    let payloads = sub.wait("/telemetry", "a batch reporting the drop", |p| {
        p.iter()
            .any(|b| json(b)["dropped"].as_u64().unwrap_or(0) > 0)
    });
    let numbers = batch_numbers(&payloads);
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "in order: {numbers:?}"
    );
    // Five more batches after the spool was emptied: the last one's count is every drop.
    let seen = numbers.len();
    let payloads = sub.wait("/telemetry", "five more batches", |p| {
        batch_numbers(p).len() >= seen + 5
    });
    let numbers = batch_numbers(&payloads);
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "in order: {numbers:?}"
    );
    assert!(
        numbers[seen - 1..].windows(2).all(|w| w[1] == w[0] + 1),
        "no gap after the outage: {numbers:?}"
    );
    let last = payloads.last().map(|b| json(b)).expect("a batch");
    let reported = last["dropped"].as_u64().expect("dropped");
    let missing = last["batch"].as_u64().unwrap() + 1 - numbers.len() as u64;
    assert!(reported > 0);
    assert_eq!(
        missing, reported,
        "the batches missing are the ones reported dropped: {numbers:?}"
    );
    setup.device.wait_for_log(
        setup.app,
        &format!("({reported} in all)"),
        Duration::from_secs(5),
    );
}

fn python() -> String {
    std::env::var("FERRO_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn proto() -> PathBuf {
    common::repo_root().join("apps/guardian-uplink/proto/sparkplug_b.proto")
}

fn decoder() -> PathBuf {
    common::repo_root().join("tests/interop/sparkplug_decode.py")
}

/// Decodes `TOPIC HEX` lines with the independent decoder.
fn decode_sparkplug(lines: &[String]) -> Vec<Json> {
    let mut child = Command::new(python())
        .arg(decoder())
        .arg(proto())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python (scripts/test.sh makes the venv with grpcio-tools and protobuf)");
    let input = lines.join("\n");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("decoder");
    assert!(
        output.status.success(),
        "decoder failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(json)
        .collect()
}

fn metric<'a>(payload: &'a Json, name: &str) -> &'a Json {
    payload["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("no metric {name} in {payload}"))
}

fn property<'a>(metric: &'a Json, key: &str) -> &'a Json {
    let keys = metric["properties"]["keys"].as_array().expect("keys");
    let at = keys
        .iter()
        .position(|k| k == key)
        .unwrap_or_else(|| panic!("no property {key} in {metric}"));
    &metric["properties"]["values"][at]
}

#[test]
fn sparkplug_b_birth_data_death_and_commands_decode_with_an_independent_decoder() {
    let (mut setup, subscribers) = setup("sparkplug", 100, 64, |broker, port| {
        vec![
            Subscriber::start(broker, port, "spBv1.0/#", true),
            Subscriber::start(
                broker,
                port,
                &format!("ferro/guardian/{DEVICE}/acks"),
                false,
            ),
        ]
    });
    let (sub, acks) = (&subscribers[0], &subscribers[1]);
    sub.wait("/NDATA/guardian-1", "four NDATA", |p| p.len() >= 4);
    let decoded = decode_sparkplug(&sub.lines());
    let birth = decoded
        .iter()
        .find(|d| d["topic"] == "spBv1.0/ferrosphere/NBIRTH/guardian-1")
        .expect("NBIRTH")["payload"]
        .clone();
    assert_eq!(birth["seq"], "0");
    let bd_seq = metric(&birth, "bdSeq")["long_value"].clone();
    assert_eq!(
        metric(&birth, "Node Control/Rebirth")["boolean_value"],
        false
    );
    assert_eq!(metric(&birth, "temp")["datatype"], 10, "Double");
    assert_eq!(metric(&birth, "flag")["datatype"], 11, "Boolean");
    assert_eq!(
        property(metric(&birth, "temp"), "unit")["string_value"],
        "degC"
    );

    let data: Vec<&Json> = decoded
        .iter()
        .filter(|d| d["topic"] == "spBv1.0/ferrosphere/NDATA/guardian-1")
        .map(|d| &d["payload"])
        .collect();
    let seqs: Vec<u64> = data
        .iter()
        .map(|d| d["seq"].as_str().expect("seq").parse().unwrap())
        .collect();
    assert_eq!(&seqs[..4], &[1, 2, 3, 4], "seq follows NBIRTH's 0");
    assert_eq!(metric(data[0], "counter")["double_value"], 0.0);
    assert_eq!(metric(data[0], "flag")["boolean_value"], true);
    assert_eq!(
        property(metric(data[0], "counter"), "Quality")["int_value"],
        192
    );
    assert!(
        metric(data[0], "counter")["timestamp"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 1_700_000_000_000
    );
    let exception = metric(data[3], "pressure");
    assert_eq!(exception["is_null"], true);
    assert_eq!(property(exception, "Quality")["int_value"], 12);
    assert_eq!(property(exception, "ModbusException")["int_value"], 2);

    // NCMD: a write (acknowledged on the ack topic) and a rebirth request.
    let ncmd = Command::new(python())
        .arg(decoder())
        .arg(proto())
        .args(["--ncmd", "setpoint=55", "Node Control/Rebirth=true"])
        .output()
        .expect("encode NCMD");
    assert!(
        ncmd.status.success(),
        "{}",
        String::from_utf8_lossy(&ncmd.stderr)
    );
    let hex = String::from_utf8(ncmd.stdout).expect("utf-8");
    let bytes = unhex(hex.trim());
    publish(
        setup.plain_port,
        "spBv1.0/ferrosphere/NCMD/guardian-1",
        &bytes,
    );
    let acked = acks.wait("/acks", "the NCMD write acknowledged", |p| !p.is_empty());
    let ack = json(&acked[0]);
    assert_eq!(ack["id"], "ncmd:1:setpoint");
    assert_eq!(ack["outcome"], "written");
    sub.wait("/NBIRTH/guardian-1", "a second NBIRTH", |p| p.len() >= 2);

    // NDEATH: the will, published by the broker when the device's connection ends without
    // DISCONNECT (the app stopped), with the bdSeq of its NBIRTH.
    setup.device.runtime.stop(setup.app).expect("stop the app");
    sub.wait("/NDEATH/guardian-1", "NDEATH", |p| !p.is_empty());
    let decoded = decode_sparkplug(&sub.lines());
    let death = decoded
        .iter()
        .find(|d| d["topic"] == "spBv1.0/ferrosphere/NDEATH/guardian-1")
        .expect("NDEATH");
    assert_eq!(metric(&death["payload"], "bdSeq")["long_value"], bd_seq);
    let bd_seq: u64 = bd_seq.as_str().expect("bdSeq").parse().expect("number");

    // The app starts again: bdSeq goes on from the app's storage (Sparkplug B 3.0: one more for
    // every CONNECT), it does not start over.
    let births = |lines: &[String]| -> Vec<u64> {
        decode_sparkplug(lines)
            .iter()
            .filter(|d| d["topic"] == "spBv1.0/ferrosphere/NBIRTH/guardian-1")
            .map(|d| {
                let n = &metric(&d["payload"], "bdSeq")["long_value"];
                n.as_str().expect("bdSeq").parse().expect("number")
            })
            .collect()
    };
    let before = births(&sub.lines()).len();
    setup
        .device
        .runtime
        .start(setup.app)
        .expect("start the app");
    sub.wait("/NBIRTH/guardian-1", "an NBIRTH after the restart", |p| {
        p.len() > before
    });
    assert_eq!(births(&sub.lines()).last(), Some(&(bd_seq + 1)));

    // A broker outage: what was read while the uplink was disconnected comes afterwards with
    // is_historical, what was read while it was connected without.
    let ndata_before = sub.payloads("/NDATA/guardian-1").len();
    setup.broker.stop();
    std::thread::sleep(Duration::from_secs(1));
    setup.broker.restart();
    // (The NBIRTH after the reconnect is QoS 0: the broker does not keep it for a subscriber
    // that is not back yet.)
    sub.wait("/NDATA/guardian-1", "NDATA after the outage", |p| {
        p.len() >= ndata_before + 20
    });
    let historical: Vec<bool> = decode_sparkplug(&sub.lines())
        .iter()
        .filter(|d| d["topic"] == "spBv1.0/ferrosphere/NDATA/guardian-1")
        .skip(ndata_before)
        .map(|d| metric(&d["payload"], "counter")["is_historical"] == true)
        .collect();
    assert!(historical.contains(&true), "{historical:?}");
    assert_eq!(historical.last(), Some(&false), "{historical:?}");
    // Historical ones come first (stored while disconnected, sent in order), then live ones.
    let first_live = historical.iter().position(|h| !h).expect("a live one");
    assert!(
        historical[first_live..].iter().all(|h| !h),
        "{historical:?}"
    );
}

/// Bytes from the hex `mosquitto_sub -F %x` prints.
fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
        .collect()
}

/// Verifies a signed batch as the cloud does: the tenant's CA, the guardian's image ID and
/// component.
fn verify(setup: &Setup, batch: &[u8], image: Uuid) -> Result<VerifiedBatch, ProvenanceError> {
    let anchors = TenantAnchors::from_pem(&setup.tenant_ca_pem).expect("anchors");
    let expected = ExpectedProvenance {
        image_ids: [image].into(),
        component_id: Some(setup.component),
        device_ids: None,
        allow_development: false,
    };
    verify_batch(
        batch,
        &anchors,
        ferro_pki::time::OffsetDateTime::now_utc(),
        &expected,
    )
}

/// The guardian polling the simulator's `supply_temp` (input register 0, scale 0.1) and
/// `setpoint` (holding register 100, writable 5..=25) every 100 ms, publishing in `format`,
/// installed from its verified image on a device that signs its batches.
fn guardian_setup(
    machine: &Simulator,
    format: &str,
    subscribe: &'static [&'static str],
) -> (Setup, Vec<Subscriber>) {
    let map = serde_json::json!({
        "schemaVersion": 1,
        "transport": {"type": "tcp", "host": "127.0.0.1", "port": machine.port.expect("port")},
        "unitId": 1,
        "timeoutMs": 200,
        "retries": 1,
        "points": [
            {"name": "supply_temp", "object": "input_register", "address": 0, "type": "i16",
             "scale": 0.1, "unit": "degC", "pollMs": 100},
            {"name": "setpoint", "object": "holding_register", "address": 100, "type": "i16",
             "scale": 0.1, "pollMs": 100, "writable": {"min": 5, "max": 25}}
        ]
    });
    let format = format.to_owned();
    setup_app(
        "guardian",
        |json, tls_port| {
            json["CmdArgs"] = serde_json::json!([
                "--broker",
                format!("127.0.0.1:{tls_port}"),
                "--device",
                DEVICE,
                "--format",
                format
            ]);
            json["Capabilities"]["DeviceAuthentication"] = TENANT.into();
            json["Capabilities"]["MutableStorage"] = serde_json::json!({"SizeKB": 64});
        },
        |manifest| {
            PackageFiles::new([
                (
                    "register_map.json".to_owned(),
                    serde_json::to_vec(&map).expect("json"),
                ),
                ("app_manifest.json".to_owned(), manifest.json_bytes()),
            ])
            .expect("package files")
        },
        Some(GUARDIAN_IMAGE),
        |broker, port| {
            subscribe
                .iter()
                .map(|topic| {
                    let topic = topic.replace("{DEVICE}", DEVICE);
                    // Telemetry is binary (COSE, protobuf): in hex.
                    let hex = !topic.ends_with("/acks");
                    Subscriber::start(broker, port, &topic, hex)
                })
                .collect()
        },
    )
}

#[test]
fn the_guardian_bridges_the_simulated_machine_to_the_broker_signs_every_batch_and_writes_commands_back()
 {
    let mut machine = Simulator::tcp();
    machine.set("ir", 0, &[215]); // 21.5 degC at scale 0.1
    let (setup, subscribers) = guardian_setup(
        &machine,
        "json",
        &[
            "ferro/guardian/{DEVICE}/telemetry",
            "ferro/guardian/{DEVICE}/acks",
        ],
    );
    let (telemetry, acks_sub) = (&subscribers[0], &subscribers[1]);
    // Every batch the broker got is a COSE_Sign1 that the cloud's verifier accepts; the
    // payload is used only from the verified batch.
    let verified = |payloads: &[String]| -> Vec<VerifiedBatch> {
        payloads
            .iter()
            .map(|hex| {
                verify(&setup, &unhex(hex), GUARDIAN_IMAGE)
                    .unwrap_or_else(|error| panic!("a batch refused: {error}"))
            })
            .collect()
    };
    let point = |batch: &VerifiedBatch, name: &str| -> Option<Json> {
        json(std::str::from_utf8(batch.payload()).expect("utf-8"))["points"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    };
    let reads = |value: f64| {
        move |payloads: &[String]| {
            verified(payloads).iter().any(|b| {
                point(b, "supply_temp")
                    .is_some_and(|p| p["value"] == value && p["quality"] == "good")
            })
        }
    };
    let batches = telemetry.wait("/telemetry", "supply_temp 21.5", reads(21.5));
    let first = verified(&batches)
        .iter()
        .find_map(|b| point(b, "supply_temp"))
        .expect("point");
    assert_eq!(first["unit"], "degC");
    // A change on the machine reaches the broker at the next poll.
    machine.set("ir", 0, &[230]);
    let batches = telemetry.wait("/telemetry", "supply_temp 23", reads(23.0));

    // What the verifier says of them: this app, this image, this boot, a growing sequence;
    // no batch unsigned.
    let verified = verified(&batches);
    for batch in &verified {
        assert_eq!(batch.component_id(), setup.component);
        assert_eq!(batch.image_id(), GUARDIAN_IMAGE);
        assert_eq!(batch.boot_id(), BOOT);
        assert!(!batch.development());
        let payload = json(std::str::from_utf8(batch.payload()).expect("utf-8"));
        assert_eq!(payload["device"], DEVICE);
        assert!(payload.get("unsigned").is_none(), "{payload}");
    }
    let sequences: Vec<u64> = verified.iter().map(VerifiedBatch::sequence).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    // Attacks: one byte of the payload changed, and the right bytes from another image.
    let original = unhex(&batches[0]);
    let needle = b"\"supply_temp\"";
    let at = original
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the JSON payload inside");
    let mut tampered = original.clone();
    tampered[at + 1] = b'S';
    assert!(matches!(
        verify(&setup, &tampered, GUARDIAN_IMAGE),
        Err(ProvenanceError::BadSignature)
    ));
    let other_image = Uuid::from_u128(0x0bad);
    assert!(matches!(
        verify(&setup, &original, other_image),
        Err(ProvenanceError::UnexpectedImage(_))
    ));

    let commands = format!("ferro/guardian/{DEVICE}/commands");
    publish(
        setup.plain_port,
        &commands,
        br#"{"id":"m1","point":"setpoint","value":21.5}"#,
    );
    publish(
        setup.plain_port,
        &commands,
        br#"{"id":"m2","point":"setpoint","value":40}"#,
    );
    let acks = acks_sub.wait("/acks", "two acknowledgements", |p| p.len() >= 2);
    let acks: Vec<Json> = acks.iter().map(|a| json(a)).collect();
    assert_eq!(
        acks[0],
        serde_json::json!({"id": "m1", "outcome": "written"})
    );
    assert_eq!(
        acks[1]["outcome"]["refused"]["reason"], "out_of_bounds",
        "{acks:?}"
    );
    assert_eq!(
        machine.get("hr", 100, 1),
        [215],
        "written with the inverse scaling; the refusal wrote nothing"
    );
    setup
        .device
        .wait_for_log(setup.app, "write m2 refused", Duration::from_secs(10));
}

#[test]
fn the_guardian_s_sparkplug_b_batches_carry_their_signature_as_a_metric_that_verifies() {
    let mut machine = Simulator::tcp();
    machine.set("ir", 0, &[215]);
    let (setup, subscribers) = guardian_setup(&machine, "sparkplug", &["spBv1.0/#"]);
    let sub = &subscribers[0];
    // A batch for each change on the machine.
    for (n, raw) in [215u16, 216, 217].into_iter().enumerate() {
        machine.set("ir", 0, &[raw]);
        sub.wait("/NDATA/guardian-1", "an NDATA per change", |p| p.len() > n);
    }
    let lines = sub.lines();
    // An independent decoder parses every payload (protoc, Python's protobuf).
    let decoded = decode_sparkplug(&lines);
    let birth = decoded
        .iter()
        .find(|d| d["topic"] == "spBv1.0/ferrosphere/NBIRTH/guardian-1")
        .expect("NBIRTH");
    assert_eq!(
        metric(&birth["payload"], "Guardian/Provenance")["datatype"],
        17,
        "declared as Bytes"
    );
    let data: Vec<(&String, &Json)> = lines
        .iter()
        .zip(&decoded)
        .filter(|(_, d)| d["topic"] == "spBv1.0/ferrosphere/NDATA/guardian-1")
        .map(|(line, d)| (line, &d["payload"]))
        .collect();
    assert!(data.len() >= 3);
    for (line, payload) in &data {
        let sent = unhex(line.split_once(' ').expect("topic and payload").1);
        let seal = unhex(
            metric(payload, "Guardian/Provenance")["bytes_value"]
                .as_str()
                .expect("hex"),
        );
        let verified = verify(&setup, &seal, GUARDIAN_IMAGE)
            .unwrap_or_else(|error| panic!("an NDATA refused: {error}"));
        assert_eq!(verified.image_id(), GUARDIAN_IMAGE);
        // The signed bytes are the NDATA as sent up to the provenance metric and seq.
        assert!(sent.starts_with(verified.payload()));
        let signed = decode_sparkplug(&[format!(
            "signed {}",
            verified
                .payload()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )]);
        let signed = &signed[0]["payload"];
        assert!(signed.get("seq").is_none(), "seq is outside the signature");
        let names = |p: &Json| -> Vec<Json> {
            p["metrics"]
                .as_array()
                .expect("metrics")
                .iter()
                .map(|m| m["name"].clone())
                .collect()
        };
        let mut outer = names(payload);
        assert_eq!(outer.pop(), Some(Json::from("Guardian/Provenance")));
        assert_eq!(names(signed), outer, "every other metric is signed");
        assert!(signed["metrics"][0]["double_value"].is_number(), "{signed}");
    }
    // Tampered: a byte of the signed NDATA inside the seal changed.
    let (_, payload) = data[0];
    let mut seal = unhex(
        metric(payload, "Guardian/Provenance")["bytes_value"]
            .as_str()
            .expect("hex"),
    );
    let needle = b"supply_temp";
    let at = seal
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the NDATA inside");
    seal[at] = b'S';
    assert!(matches!(
        verify(&setup, &seal, GUARDIAN_IMAGE),
        Err(ProvenanceError::BadSignature)
    ));
}
