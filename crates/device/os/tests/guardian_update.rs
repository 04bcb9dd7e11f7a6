//! A register map update deployed from the cloud, end to end (docs/guardian.md, "Updating the
//! map"): the real `ferro-service`, `ferro`, `ferro-boot` and `ferro-device`, the guardian app,
//! a pymodbus machine (`tests/interop/modbus_sim.py`) and Mosquitto requiring the tenant CA.
//! The guardian 1.0.0, deployed to the device's group, bridges the machine's `supply_temp` to
//! the broker over TLS with the device certificate; then 1.1.0, whose `register_map.json` has a
//! new point (`return_temp`), is deployed and `update-now` pressed: the device installs it
//! (the app restarts, the device process does not) and the new point appears in MQTT.
//!
//! Needs `cargo build --workspace`, the apps (`cargo build --manifest-path apps/Cargo.toml
//! --workspace --release --target wasm32-wasip2`), Mosquitto, mosquitto-clients, openssl and
//! pymodbus (`FERRO_PYTHON`); scripts/test.sh provides them.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{VirtualDevice, s};
use ferro_e2e::User;
use ferro_e2e::modbus::Simulator;
use ferro_e2e::mosquitto::Mosquitto;
use ferro_image::Version;
use ferro_provenance::{ExpectedProvenance, TenantAnchors, verify_batch};
use serde_json::{Value, json};
use uuid::Uuid;

const GROUP: &str = "Guardian/Field Test OS Evaluation";
/// `apps/guardian/app_manifest.json`'s.
const COMPONENT: &str = "5b0f3c2e-7a41-4d6e-9c8b-1f2e3d4c5b6a";
const CLIENT: &str = "guardian-e2e";

/// Runs `openssl` with `args`; panics with its output when it fails.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The broker as the demo runs it: a platform service, so its certificate is issued under the
/// platform root (which devices trust); its TLS listener accepts only clients with a
/// certificate of the tenant's CA, its plain loopback listener is the test's own.
/// Returns the broker and its (TLS, plain) ports.
fn start_broker(service: &ferro_e2e::Service, admin: &User, dir: &Path) -> (Mosquitto, u16, u16) {
    let chain = dir.join("tenant-ca-chain.pem");
    let out = admin.run(&[
        "ca-certificate",
        "download-chain",
        "--destination",
        s(&chain),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (key, csr, cert, ext) = (
        dir.join("broker.key"),
        dir.join("broker.csr"),
        dir.join("broker.pem"),
        dir.join("ext.cnf"),
    );
    fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext.cnf");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        s(&key),
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        s(&key),
        "-subj",
        "/CN=127.0.0.1",
        "-out",
        s(&csr),
    ]);
    let root_key = service.data_dir.path().join("data/keys/platform/root.pem");
    openssl(&[
        "x509",
        "-req",
        "-in",
        s(&csr),
        "-days",
        "1",
        "-out",
        s(&cert),
        "-CA",
        s(&service.platform_root_pem()),
        "-CAkey",
        s(&root_key),
        "-CAcreateserial",
        "-CAserial",
        s(&dir.join("serial")),
        "-extfile",
        s(&ext),
    ]);
    let d = dir.display();
    let broker = Mosquitto::start(dir, 2, |ports| {
        format!(
            "allow_anonymous true\npersistence false\nlog_type all\n\
             listener {} 127.0.0.1\n\
             listener {} 127.0.0.1\nrequire_certificate true\n\
             cafile {d}/tenant-ca-chain.pem\ncertfile {d}/broker.pem\nkeyfile {d}/broker.key\n",
            ports[0], ports[1]
        )
    });
    let (plain, tls) = (broker.ports[0], broker.ports[1]);
    (broker, tls, plain)
}

/// The guardian's package directory `work/<name>`: its manifest (broker, device ID, tenant)
/// and `map`; packed as `version`, test-signed by the admin, uploaded; returns the image ID.
fn upload_guardian(
    admin: &User,
    work: &Path,
    (tenant, tls_port): (&str, u16),
    version: &str,
    map: &Value,
) -> String {
    let app_dir = ferro_e2e::artifacts::app_dir("guardian");
    let mut manifest: Value =
        serde_json::from_slice(&fs::read(app_dir.join("app_manifest.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["ComponentId"], COMPONENT);
    manifest["CmdArgs"] = json!([
        "--broker",
        format!("127.0.0.1:{tls_port}"),
        "--device",
        CLIENT
    ]);
    manifest["Capabilities"]["DeviceAuthentication"] = tenant.into();
    let dir = work.join(format!("guardian-{version}"));
    fs::create_dir_all(dir.join("bin")).expect("mkdir");
    fs::write(
        dir.join("app_manifest.json"),
        serde_json::to_vec_pretty(&manifest).expect("json"),
    )
    .expect("manifest");
    fs::write(
        dir.join("register_map.json"),
        serde_json::to_vec_pretty(map).expect("json"),
    )
    .expect("register map");
    fs::copy(
        ferro_e2e::artifacts::wasm_app("guardian"),
        dir.join("bin/guardian"),
    )
    .expect("guardian.wasm");
    // `$SAMPLE_UART` (the guardian's RTU line) resolves through the sample appliance.
    let hardware = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../hardware/ferro_vboard");
    let package = work.join(format!("guardian-{version}.imagepackage"));
    admin.json(&[
        "image-package",
        "pack-application",
        "--package-directory",
        s(&dir),
        "--destination",
        s(&package),
        "--hardware-definitions",
        s(&hardware),
        "--target-definition-filename",
        "sample_appliance.json",
        "--version",
        version,
    ]);
    common::upload(admin, &package)
}

/// The register map: the machine's input registers from `points` (name, address).
fn map(machine_port: u16, points: &[(&str, u16)]) -> Value {
    let points: Vec<Value> = points
        .iter()
        .map(|(name, address)| {
            json!({"name": name, "object": "input_register", "address": address, "type": "i16",
                   "scale": 0.1, "unit": "degC", "pollMs": 200})
        })
        .collect();
    json!({
        "schemaVersion": 1,
        "transport": {"type": "tcp", "host": "127.0.0.1", "port": machine_port},
        "unitId": 1, "timeoutMs": 500, "retries": 1,
        "points": points,
    })
}

/// `mosquitto_sub` on the guardian's telemetry: the batches received, parsed.
/// The cloud side: every telemetry batch the broker delivers, each a COSE_Sign1 by the device
/// key (docs/provenance.md), verified against the tenant's CA chain and the images deployed so
/// far before its JSON is looked at (a batch that does not verify fails the test).
struct Subscriber {
    _child: Reaped,
    batches: Arc<Mutex<Vec<Vec<u8>>>>,
    anchors: TenantAnchors,
    images: Mutex<BTreeSet<Uuid>>,
    /// The JSON of the batches verified so far (each batch is verified once, when first read).
    verified: Mutex<Vec<Value>>,
}

/// Kills and reaps a child process this test started.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Subscriber {
    fn start(broker: &Mosquitto, plain_port: u16, tenant_chain: &Path) -> Subscriber {
        let topic = format!("ferro/guardian/{CLIENT}/telemetry");
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &plain_port.to_string()])
            .args([
                "-i",
                "guardian-e2e-sub",
                "-q",
                "1",
                "-t",
                &topic,
                "-F",
                "%x",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (apt-get install mosquitto-clients)");
        let stdout = child.stdout.take().expect("stdout");
        let batches = Arc::new(Mutex::new(Vec::new()));
        let sink = batches.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let batch = hex::decode(line.trim())
                    .unwrap_or_else(|e| panic!("mosquitto_sub -F %x printed {line:?}: {e}"));
                sink.lock().expect("batches").push(batch);
            }
        });
        broker.wait_for_log(
            &format!("guardian-e2e-sub 1 {topic}"),
            Duration::from_secs(10),
        );
        let pem = fs::read_to_string(tenant_chain).expect("tenant CA chain");
        Subscriber {
            _child: Reaped(child),
            batches,
            anchors: TenantAnchors::from_pem(&pem).expect("tenant CA chain"),
            images: Mutex::new(BTreeSet::new()),
            verified: Mutex::new(Vec::new()),
        }
    }

    /// Batches signed while this image ran are accepted from now on.
    fn expect_image(&self, image_id: &str) {
        let id = image_id.parse().expect("image ID");
        self.images.lock().expect("images").insert(id);
    }

    /// The JSON of every batch so far, each verified (against the images expected when it is
    /// first read) before its JSON is looked at.
    fn batches(&self) -> Vec<Value> {
        let expected = ExpectedProvenance {
            image_ids: self.images.lock().expect("images").clone(),
            component_id: Some(COMPONENT.parse().expect("uuid")),
            device_ids: None,
            allow_development: false,
        };
        let now = time::OffsetDateTime::now_utc();
        let raw = self.batches.lock().expect("batches");
        let mut verified = self.verified.lock().expect("verified");
        for (n, batch) in raw.iter().enumerate().skip(verified.len()) {
            let batch = verify_batch(batch, &self.anchors, now, &expected)
                .unwrap_or_else(|e| panic!("batch {n} refused ({}): {e}", e.code()));
            verified.push(serde_json::from_slice(batch.payload()).expect("a JSON batch"));
        }
        verified.clone()
    }
}

/// The value of point `name` in `batch`, when it is there and good.
fn good(batch: &Value, name: &str) -> Option<f64> {
    batch["points"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name && p["quality"] == "good")?["value"]
        .as_f64()
}

/// Waits (supervising the device) until a batch satisfies `probe`; the batches so far.
fn wait_batch(
    sub: &Subscriber,
    dev: &mut VirtualDevice,
    what: &str,
    probe: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        dev.supervise();
        let batches = sub.batches();
        if batches.iter().any(&probe) {
            return batches;
        }
        assert!(
            Instant::now() < deadline,
            "no batch with {what} within 120 s; received {batches:#?}\ndevice log:\n{}",
            dev.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The ferro-device process of the running device (`run/ready.json`).
fn device_pid(dev: &VirtualDevice) -> u64 {
    let ready: Value =
        serde_json::from_slice(&fs::read(dev.dir.join("run/ready.json")).expect("ready.json"))
            .expect("json");
    ready["pid"].as_u64().expect("pid")
}

fn installed_app_version(admin: &User, device_id: &str) -> Option<String> {
    let st = admin.json(&["device", "show-deployment-status", "--device", device_id]);
    st["installed"]
        .as_array()?
        .iter()
        .find(|i| i["componentId"] == COMPONENT)
        .and_then(|i| i["version"].as_str())
        .map(str::to_string)
}

#[test]
fn a_register_map_update_deployed_from_the_cloud_publishes_the_new_point_without_a_device_restart()
{
    let work = tempfile::tempdir().expect("tempdir");
    let work = work.path();
    let mut machine = Simulator::tcp();
    let machine_port = machine.port.expect("port");
    machine.set("ir", 0, &[215, 187]); // supply 21.5, return 18.7 degC at scale 0.1

    let (service, admin) = common::service_with_tenant("Guardian Tenant", "Guardian");
    let tenant = admin.json(&["tenant", "show-selected"])["id"]
        .as_str()
        .expect("tenant id")
        .to_string();
    let broker_dir = work.join("broker");
    fs::create_dir_all(&broker_dir).expect("mkdir");
    let (broker, tls_port, plain_port) = start_broker(&service, &admin, &broker_dir);
    let sub = Subscriber::start(&broker, plain_port, &broker_dir.join("tenant-ca-chain.pem"));

    // Guardian 1.0.0: one point.
    let factory = common::publish_factory_os(&admin, work, Version::new(1, 0, 0), 1);
    let v1 = upload_guardian(
        &admin,
        work,
        (&tenant, tls_port),
        "1.0.0",
        &map(machine_port, &[("supply_temp", 0)]),
    );
    sub.expect_image(&v1);
    admin.json(&[
        "device-group",
        "deployment",
        "create",
        "--device-group",
        GROUP,
        "--images",
        &v1,
    ]);
    let mut dev = VirtualDevice::provision_and_claim(&service, &admin, work, &factory.factory);
    let device_id = dev.device_id.clone();
    admin.json(&[
        "device",
        "update",
        "--device",
        &device_id,
        "--device-group",
        GROUP,
    ]);
    dev.boot(&[]);
    let ready = dev.wait_ready();
    assert_eq!(ready["attestation"], "Trusted", "{}", dev.log_tail());
    let before = wait_batch(&sub, &mut dev, "supply_temp 21.5", |b| {
        good(b, "supply_temp") == Some(21.5)
    });
    assert!(
        before.iter().all(|b| good(b, "return_temp").is_none()),
        "1.0.0's map has no return_temp: {before:#?}"
    );
    let pid = device_pid(&dev);

    // Guardian 1.1.0: the map gains return_temp; deployed, and update-now pressed.
    let v2 = upload_guardian(
        &admin,
        work,
        (&tenant, tls_port),
        "1.1.0",
        &map(machine_port, &[("supply_temp", 0), ("return_temp", 1)]),
    );
    sub.expect_image(&v2);
    admin.json(&[
        "device-group",
        "deployment",
        "create",
        "--device-group",
        GROUP,
        "--images",
        &v2,
    ]);
    admin.json(&["device-group", "update-now", "--device-group", GROUP]);
    let after = wait_batch(&sub, &mut dev, "return_temp 18.7", |b| {
        good(b, "return_temp") == Some(18.7)
    });
    let first_new = after
        .iter()
        .find(|b| good(b, "return_temp").is_some())
        .expect("the batch");
    assert_eq!(first_new["device"], CLIENT);
    // The update kept the app's mutable storage, so its spool: batch numbers go on.
    let last_old = before
        .iter()
        .filter_map(|b| b["batch"].as_u64())
        .max()
        .expect("batch numbers");
    assert!(
        first_new["batch"].as_u64().expect("batch") > last_old,
        "batch numbers start again after the update: {first_new} after {last_old}"
    );
    // The device reports the installed version after the switch.
    let deadline = Instant::now() + Duration::from_secs(60);
    while installed_app_version(&admin, &device_id).as_deref() != Some("1.1.0") {
        assert!(
            Instant::now() < deadline,
            "the device never reported 1.1.0:\n{}",
            dev.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A change on the machine reaches the broker through the new map's point.
    machine.set("ir", 1, &[201]);
    wait_batch(&sub, &mut dev, "return_temp 20.1", |b| {
        good(b, "return_temp") == Some(20.1)
    });

    // The app restarted with its new package; the device's process did not.
    assert_eq!(dev.restarts, 0, "the watchdog restarted the device");
    assert_eq!(device_pid(&dev), pid, "ferro-device restarted");
    assert!(
        dev.child
            .as_mut()
            .is_some_and(|child| child.try_wait().is_ok_and(|status| status.is_none())),
        "the device process ended:\n{}",
        dev.log_tail()
    );
    dev.stop();
}
