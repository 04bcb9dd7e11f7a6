//! High-level apps on a real virtual device, end to end: the real `ferro-service`, `ferro`,
//! `ferro-boot` and `ferro-device` with the sample apps built for `wasm32-wasip2`.
//!
//! A cloud deployment runs on the device; sideloading is refused until development mode and then
//! only for a developer key the capability names and a package that verifies; blink is
//! sideloaded and its LED follows the button pressed through the local device API; a crashing app
//! is contained, backs off and its crashes reach the tenant's error report; the device restarts,
//! attests `Trusted` with its sideloaded apps and runs them again; leaving development mode
//! removes them.
//!
//! Needs `cargo build --workspace` and the apps (`cargo build --manifest-path apps/Cargo.toml
//! --workspace --release --target wasm32-wasip2`) first; scripts/test.sh does both.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::{VirtualDevice, attached, attached_fails, s};
use ferro_e2e::User;
use ferro_image::Version;
use serde_json::Value;

const GROUP: &str = "Appliance/Field Test OS Evaluation";
const BLINK: &str = "d7a8d1a6-6f0b-4b8e-9a59-2f2c1b0c4e01";
const TRAP: &str = "0f1e2d3c-0008-4a5b-8c7d-000000000008";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// Packs the sample app `name` (its manifest and built component) against the sample
/// appliance, signed by `signing_key` or the user's test-signing key.
fn pack(
    user: &User,
    work: &Path,
    name: &str,
    version: &str,
    signing_key: Option<&Path>,
) -> PathBuf {
    // Sample apps and the hostile test guests live apart (apps/samples, apps/test-guests).
    let manifest_path = ferro_e2e::artifacts::app_dir(name).join("app_manifest.json");
    let manifest: Value =
        serde_json::from_slice(&fs::read(&manifest_path).expect("manifest")).expect("json");
    let entry = manifest["EntryPoint"].as_str().expect("EntryPoint");
    let dir = work.join(format!("pkg-{name}-{version}"));
    let entry_path = dir.join(entry.trim_start_matches('/'));
    fs::create_dir_all(entry_path.parent().expect("parent")).expect("mkdir");
    fs::copy(&manifest_path, dir.join("app_manifest.json")).expect("copy manifest");
    // Missing or older than its sources fails, naming the command that builds the apps.
    let wasm = ferro_e2e::artifacts::wasm_app(name);
    fs::copy(&wasm, &entry_path).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
    let package = work.join(format!("{name}-{version}.imagepackage"));
    let hardware = repo().join("hardware/ferro_vboard");
    let mut args = vec![
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
    ];
    if let Some(key) = signing_key {
        args.extend(["--signing-key", s(key)]);
    }
    user.json(&args);
    package
}

/// As [`attached`], but Null when the command fails (for polling while the device changes).
fn try_attached(user: &User, dir: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--device-dir", s(dir), "--output", "json"]);
    let out = user.run(&all);
    if !out.status.success() {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Runs a command that prints nothing on success and checks that it succeeded.
fn attached_ok(user: &User, dir: &Path, args: &[&str]) {
    let mut all = args.to_vec();
    all.extend(["--device-dir", s(dir)]);
    let out = user.run(&all);
    assert!(
        out.status.success(),
        "ferro {} failed: {}",
        all.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `probe` until `pred` holds, supervising the device.
fn wait_for(
    dev: &mut VirtualDevice,
    what: &str,
    mut probe: impl FnMut() -> Value,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        dev.supervise();
        let value = probe();
        if pred(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: last {value}\ndevice log:\n{}",
            dev.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn led(board: &Value, name: &str) -> bool {
    board["leds"]
        .as_array()
        .expect("leds")
        .iter()
        .find(|l| {
            l["names"]
                .as_array()
                .expect("names")
                .iter()
                .any(|n| n == name)
        })
        .unwrap_or_else(|| panic!("no LED {name} in {board}"))["active"]
        .as_bool()
        .expect("active")
}

/// Waits until app `component` is Running (`what` says why, for the timeout message).
fn wait_running(admin: &User, dev: &mut VirtualDevice, dir: &Path, component: &str, what: &str) {
    wait_for(
        dev,
        what,
        || {
            try_attached(
                admin,
                dir,
                &["device", "app", "show-status", "--component-id", component],
            )
        },
        |v| app_state(v) == "Running",
    );
}

fn app_state(status: &Value) -> &str {
    status["state"].as_str().unwrap_or_default()
}

#[test]
fn apps_run_sideload_is_gated_and_failures_are_reported() {
    let work = tempfile::tempdir().expect("tempdir");
    let work = work.path();
    let (service, admin) = common::service_with_tenant("Apps Tenant", "Appliance");

    let factory = common::publish_factory_os(&admin, work, Version::new(1, 0, 0), 1);
    // The cloud deployment: blink, re-signed by the service for production.
    let cloud_blink = pack(&admin, work, "blink", "1.0.0", None);
    let cloud_blink_id = admin.json(&["image", "add", "--image", s(&cloud_blink)])["id"]
        .as_str()
        .expect("id")
        .to_string();
    admin.json(&[
        "device-group",
        "deployment",
        "create",
        "--device-group",
        GROUP,
        "--images",
        &cloud_blink_id,
    ]);
    let mut dev = VirtualDevice::provision_and_claim(&service, &admin, work, &factory.factory);
    admin.json(&[
        "device",
        "update",
        "--device",
        &dev.device_id,
        "--device-group",
        GROUP,
    ]);
    let dir = dev.dir.clone();
    dev.boot(&[("FERRO_EVENT_UPLOAD_SECS", "10")]);
    let ready = dev.wait_ready();
    assert_eq!(ready["attestation"], "Trusted", "{}", dev.log_tail());

    let shown = attached(&admin, &dir, &["device", "show-attached"]);
    assert_eq!(shown["deviceId"], dev.device_id.as_str());
    assert_eq!(shown["board"], "Sample appliance on the Ferro vboard");
    assert_eq!(shown["development"]["enabled"], false);

    // The cloud app runs: installed by the update agent, verified, measured, started; the
    // button pressed through the local device API toggles its green LED.
    wait_running(
        &admin,
        &mut dev,
        &dir,
        BLINK,
        "blink to run from the cloud deployment",
    );
    let images = attached(&admin, &dir, &["device", "image", "list-installed"]);
    assert_eq!(source_of(&images, BLINK), Some("Cloud".into()), "{images}");
    press_and_see_toggle(&admin, &mut dev, &dir);
    let logs = admin.run(&[
        "device",
        "app",
        "logs",
        "--component-id",
        BLINK,
        "--device-dir",
        s(&dir),
    ]);
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("blink"),
        "{logs:?}"
    );

    // Sideloading before development mode: refused, and the message says what to do.
    let blink = pack(&admin, work, "blink", "1.1.0", None);
    let refused = attached_fails(
        &admin,
        &dir,
        &["device", "sideload", "deploy", "--image-package", s(&blink)],
    );
    assert!(refused.contains("enable-development"), "{refused}");

    let mode = attached(&admin, &dir, &["device", "enable-development"]);
    assert_eq!(mode["enabled"], true, "{mode}");
    assert_eq!(mode["developerKeys"].as_array().expect("keys").len(), 1);

    local_api_refuses_bad_input(&dir);

    // A key the capability does not name: refused.
    let stranger_key = work.join("stranger.pem");
    let stranger = ferro_signing::SoftwareSigningKey::load_or_create(&stranger_key).expect("key");
    let stranger_pub = work.join("stranger.pub.pem");
    fs::write(&stranger_pub, stranger.public_key().to_pem()).expect("write pub");
    let foreign = pack(&admin, work, "blink", "9.0.0", Some(&stranger_key));
    let refused = attached_fails(
        &admin,
        &dir,
        &[
            "device",
            "sideload",
            "deploy",
            "--image-package",
            s(&foreign),
            "--public-key",
            s(&stranger_pub),
        ],
    );
    assert!(refused.contains("is not one this device"), "{refused}");
    // A package with one byte flipped: refused.
    let mut bytes = fs::read(&blink).expect("read");
    let at = bytes.len() - 100;
    bytes[at] ^= 0x01;
    let tampered = work.join("tampered.imagepackage");
    fs::write(&tampered, bytes).expect("write");
    let refused = attached_fails(
        &admin,
        &dir,
        &[
            "device",
            "sideload",
            "deploy",
            "--image-package",
            s(&tampered),
        ],
    );
    assert!(refused.contains("did not verify"), "{refused}");
    // An app whose LED the running blink owns: refused, and blink keeps running.
    let hello = pack(&admin, work, "hello", "1.0.0", None);
    let refused = attached_fails(
        &admin,
        &dir,
        &["device", "sideload", "deploy", "--image-package", s(&hello)],
    );
    assert!(refused.contains("belongs to app"), "{refused}");
    // Nothing of those changed the device.
    let images = attached(&admin, &dir, &["device", "image", "list-installed"]);
    assert_eq!(
        images["images"].as_array().expect("images").len(),
        1,
        "{images}"
    );
    assert_eq!(source_of(&images, BLINK), Some("Cloud".into()), "{images}");
    let status = attached(
        &admin,
        &dir,
        &["device", "app", "show-status", "--component-id", BLINK],
    );
    assert_eq!(app_state(&status), "Running", "{status}");

    // Blink 1.1.0, test-signed, sideloaded in place of the cloud one.
    let result = attached(
        &admin,
        &dir,
        &["device", "sideload", "deploy", "--image-package", s(&blink)],
    );
    assert_eq!(result["componentId"], BLINK);
    assert!(result["replacedImageId"].is_string(), "{result}");
    wait_running(&admin, &mut dev, &dir, BLINK, "the sideloaded blink to run");
    let images = attached(&admin, &dir, &["device", "image", "list-installed"]);
    assert_eq!(
        source_of(&images, BLINK),
        Some("Sideloaded".into()),
        "{images}"
    );
    press_and_see_toggle(&admin, &mut dev, &dir);
    follow_sees_a_new_line(&admin, &mut dev, &dir);
    let memory = attached(
        &admin,
        &dir,
        &[
            "device",
            "app",
            "show-memory-stats",
            "--component-id",
            BLINK,
        ],
    );
    assert!(
        memory["limitBytes"].as_u64().expect("limit")
            >= memory["currentBytes"].as_u64().expect("current")
    );
    let unknown = attached_fails(
        &admin,
        &dir,
        &[
            "device",
            "app",
            "start",
            "--component-id",
            "00000000-0000-4000-8000-000000000000",
        ],
    );
    assert!(unknown.contains("no app with component ID"), "{unknown}");

    // A guest that traps at start: contained (blink keeps running), backing off, and its
    // crashes reach the error report within seconds.
    let trap = pack(&admin, work, "hostile-trap", "1.0.0", None);
    attached(
        &admin,
        &dir,
        &["device", "sideload", "deploy", "--image-package", s(&trap)],
    );
    wait_for(
        &mut dev,
        "the trapping app to back off",
        || {
            try_attached(
                &admin,
                &dir,
                &["device", "app", "show-status", "--component-id", TRAP],
            )
        },
        |v| app_state(v) == "BackingOff" || v["restarts"].as_u64().unwrap_or(0) > 0,
    );
    let report = work.join("errors.csv");
    wait_for(
        &mut dev,
        "the crash in the error report",
        || {
            let _ = admin.run(&[
                "tenant",
                "download-error-report",
                "--destination",
                s(&report),
            ]);
            Value::String(fs::read_to_string(&report).unwrap_or_default())
        },
        |v| {
            v.as_str()
                .is_some_and(|t| t.contains("AppCrash") && t.contains(TRAP))
        },
    );
    let status = attached(
        &admin,
        &dir,
        &["device", "app", "show-status", "--component-id", BLINK],
    );
    assert_eq!(app_state(&status), "Running", "{status}");

    // Restart: the device attests Trusted with its sideloaded (test-signed) apps, which the
    // appDevelopment capability allows, and runs them again. (ferro-boot re-executes in place:
    // same process, so watch ready.json go and come back.)
    let again = restart(&admin, &mut dev, &dir);
    assert_eq!(again["attestation"], "Trusted", "{again}");
    wait_running(
        &admin,
        &mut dev,
        &dir,
        BLINK,
        "blink to run after the restart",
    );

    // Deleting the sideloaded apps brings the cloud blink back; a cloud app cannot be deleted.
    attached_ok(
        &admin,
        &dir,
        &["device", "sideload", "delete", "--component-id", TRAP],
    );
    attached_ok(
        &admin,
        &dir,
        &["device", "sideload", "delete", "--component-id", BLINK],
    );
    let images = attached(&admin, &dir, &["device", "image", "list-installed"]);
    assert_eq!(source_of(&images, BLINK), Some("Cloud".into()), "{images}");
    let refused = attached_fails(
        &admin,
        &dir,
        &["device", "sideload", "delete", "--component-id", BLINK],
    );
    assert!(refused.contains("deployed from the cloud"), "{refused}");

    // The tenant revokes the appDevelopment capability at the service while the device stays
    // in development mode (it still holds the file) and runs no test-signed app: its evidence
    // says debugging is enabled, which the service no longer allows. Untrusted at the restart.
    admin.json(&[
        "device",
        "capability",
        "revoke",
        "--type",
        "appDevelopment",
        "--device",
        &dev.device_id,
    ]);
    let revoked = restart(&admin, &mut dev, &dir);
    assert_eq!(revoked["attestation"], "Untrusted", "{revoked}");
    assert!(
        revoked.to_string().contains("debug_without_capability"),
        "{revoked}"
    );

    // Leaving development mode: no capability; the cloud app stays.
    attached(
        &admin,
        &dir,
        &["device", "sideload", "deploy", "--image-package", s(&blink)],
    );
    let mode = attached(&admin, &dir, &["device", "disable-development"]);
    assert_eq!(mode["enabled"], false);
    let images = attached(&admin, &dir, &["device", "image", "list-installed"]);
    assert_eq!(
        images["images"].as_array().expect("images").len(),
        1,
        "{images}"
    );
    assert_eq!(source_of(&images, BLINK), Some("Cloud".into()), "{images}");
    // Out of development mode it states debugging disabled, and is Trusted again.
    let again = restart(&admin, &mut dev, &dir);
    assert_eq!(again["attestation"], "Trusted", "{again}");
    dev.stop();
}

/// `ferro device app logs --follow` prints the kept lines, then new ones as they come: a button
/// press appears while the command runs.
fn follow_sees_a_new_line(admin: &User, dev: &mut VirtualDevice, dir: &Path) {
    use std::io::BufRead;
    let mut follow = std::process::Command::new(ferro_e2e::binary("ferro"))
        .args([
            "device",
            "app",
            "logs",
            "--follow",
            "--component-id",
            BLINK,
            "--device-dir",
            s(dir),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ferro device app logs --follow");
    let stdout = follow.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The kept lines first.
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a kept line");
    assert!(first.contains("blink"), "{first}");
    while rx.recv_timeout(Duration::from_millis(500)).is_ok() {}
    press_and_see_toggle(admin, dev, dir);
    let new = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a new line while following");
    assert!(new.contains("button pressed"), "{new}");
    let _ = follow.kill();
    let _ = follow.wait();
}

/// Malformed requests to the local device API: each a specific JSON error, nothing changed.
fn local_api_refuses_bad_input(dir: &Path) {
    use ferro_client::{ClientError, LocalDevice, Method};
    let device = LocalDevice::connect(&dir.join("run/device-api.sock")).expect("client");
    // Malformed requests on purpose: the raw requests, not the typed methods.
    let api = device.raw();
    let code = |r: Result<Value, ClientError>| match r {
        Err(ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    };
    let button = "/v1/board/buttons/SAMPLE_BUTTON_1";
    let put = |path: &str, body: &[u8]| {
        api.send_bytes::<Value>(Method::PUT, path, "application/json", &[], body.to_vec())
    };
    // Bodies are read as the service reads them (ferro_wire::parse_json_body).
    assert_eq!(code(put(button, b"{")), (400, "malformed_json".into()));
    assert_eq!(
        code(put(button, br#"{"pressed":"yes"}"#)),
        (422, "invalid_body".into())
    );
    assert_eq!(
        code(put(button, br#"{"pressed":true,"x":1}"#)),
        (400, "unknown_field".into())
    );
    assert_eq!(
        code(put("/v1/board/buttons/NO_SUCH", br#"{"pressed":true}"#)),
        (404, "not_found".into())
    );
    assert_eq!(
        code(put("/v1/board/temperature", &vec![b' '; 100_000])),
        (413, "payload_too_large".into())
    );
    assert_eq!(
        code(api.get("/v1/apps/not-a-guid")),
        (400, "invalid_id".into())
    );
    assert_eq!(
        code(api.get(&format!("/v1/apps/{BLINK}/logs?follow=maybe"))),
        (400, "invalid_query".into())
    );
    assert_eq!(
        code(api.get("/v1/no/such/route")),
        (404, "not_found".into())
    );
    assert_eq!(
        code(api.send_bytes(
            Method::PUT,
            "/v1/capability",
            "application/cose",
            &[],
            b"garbage".to_vec()
        )),
        (422, "invalid_body".into())
    );
    assert_eq!(
        code(api.send_bytes(
            Method::POST,
            "/v1/sideload",
            "application/octet-stream",
            &[],
            b"x".to_vec()
        )),
        (422, "invalid_body".into()),
        "no developer key header"
    );
    // Over the limit: refused from its Content-Length, before the body is read. The server
    // answers 413 and closes the connection, so a client still writing the 33 MiB may see the
    // connection closed under it (EPIPE/ECONNRESET) before it reads the answer; either way
    // nothing is installed (checked below).
    match api.send_bytes::<Value>(
        Method::POST,
        "/v1/sideload",
        "application/octet-stream",
        &[("ferro-developer-key", "AAAA")],
        vec![0u8; 33 * 1024 * 1024],
    ) {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (413, "payload_too_large"));
        }
        Err(ClientError::Transport { reason, .. })
            if reason.contains("Broken pipe") || reason.contains("reset") => {}
        other => panic!("an oversized sideload must be refused, got {other:?}"),
    }
    // Development mode is still on, nothing was installed.
    let mode: Value = api.get("/v1/device").expect("device");
    assert_eq!(mode["development"]["enabled"], true);
    let images: Value = api.get("/v1/images").expect("images");
    assert_eq!(
        images["images"].as_array().expect("images").len(),
        1,
        "{images}"
    );
}

fn source_of(images: &Value, component: &str) -> Option<String> {
    images["images"]
        .as_array()?
        .iter()
        .find(|i| i["componentId"] == component)
        .and_then(|i| i["source"].as_str())
        .map(str::to_string)
}

/// Press SAMPLE_BUTTON_1 through the local device API and wait for blink to toggle the green LED.
fn press_and_see_toggle(admin: &User, dev: &mut VirtualDevice, dir: &Path) {
    let before = led(
        &attached(admin, dir, &["device", "board", "show"]),
        "SAMPLE_RGBLED_GREEN",
    );
    attached(
        admin,
        dir,
        &[
            "device",
            "board",
            "press-button",
            "--button",
            "SAMPLE_BUTTON_1",
            "--hold-ms",
            "300",
        ],
    );
    wait_for(
        dev,
        "the green LED to toggle",
        || attached(admin, dir, &["device", "board", "show"]),
        |b| led(b, "SAMPLE_RGBLED_GREEN") != before,
    );
}

/// Restart the attached device through its local API and wait until it is ready again (it goes
/// down first: ferro-boot re-executes in place, so watch ready.json go and come back); its
/// ready.json.
fn restart(admin: &User, dev: &mut VirtualDevice, dir: &Path) -> Value {
    attached_fails_or_ok(admin, dir, &["device", "restart"]);
    wait_for(
        dev,
        "the device to go down",
        || Value::Bool(dir.join("run/ready.json").exists()),
        |v| v == &Value::Bool(false),
    );
    dev.wait_ready()
}

/// `ferro device restart` answers before the device goes away; either outcome of the CLI call is
/// fine as long as the device restarts (checked by the caller).
fn attached_fails_or_ok(user: &User, dir: &Path, args: &[&str]) {
    let mut all = args.to_vec();
    all.extend(["--device-dir", s(dir)]);
    let _ = user.run(&all);
}

const DEFERRAL: &str = "3c0e7a52-1d4b-4f6a-8e2c-5b7d9f1a3e60";

fn upload(admin: &User, package: &Path) -> String {
    admin.json(&["image", "add", "--image", s(package)])["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// An app with SoftwareUpdateDeferral holds an app update back while its job runs (the device
/// reports `Deferred` with the time), and lets it go when the job ends (button 2): the new
/// version is then installed and running.
#[test]
fn an_app_defers_an_update_until_its_job_is_done() {
    let work = tempfile::tempdir().expect("tempdir");
    let work = work.path();
    let (service, admin) = common::service_with_tenant("Deferral Tenant", "Appliance");
    let factory = common::publish_factory_os(&admin, work, Version::new(1, 0, 0), 1);
    let deferral = upload(
        &admin,
        &pack(&admin, work, "update-deferral", "1.0.0", None),
    );
    let blink1 = upload(&admin, &pack(&admin, work, "blink", "1.0.0", None));
    let deploy = |images: &[&str]| {
        let mut args = vec![
            "device-group",
            "deployment",
            "create",
            "--device-group",
            GROUP,
        ];
        for image in images {
            args.extend(["--images", image]);
        }
        admin.json(&args);
    };
    deploy(&[&deferral, &blink1]);
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
    let dir = dev.dir.clone();
    dev.boot(&[("FERRO_UPDATE_NOTICE_SECS", "2")]);
    dev.wait_ready();
    let status =
        |admin: &User| admin.json(&["device", "show-deployment-status", "--device", &device_id]);
    let blink_version = |st: &Value| {
        st["installed"].as_array().and_then(|i| {
            i.iter()
                .find(|i| i["componentId"] == BLINK)
                .and_then(|i| i["version"].as_str().map(str::to_string))
        })
    };
    // The first deployment: nothing could defer it yet.
    wait_for(
        &mut dev,
        "the first deployment",
        || status(&admin),
        |st| blink_version(st).as_deref() == Some("1.0.0"),
    );
    wait_running(&admin, &mut dev, &dir, DEFERRAL, "the deferring app to run");

    // Blink 2.0.0: the app is told, defers it by 30 minutes, and the device says so.
    let blink2 = upload(&admin, &pack(&admin, work, "blink", "2.0.0", None));
    deploy(&[&deferral, &blink2]);
    admin.json(&["device", "update-now", "--device", &device_id]);
    // (First the notice period is reported, then the app's deferral.)
    let minutes_ahead = |st: &Value| {
        st["deferredUntil"]
            .as_str()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|until| (until - time::OffsetDateTime::now_utc()).whole_minutes())
    };
    let deferred = wait_for(
        &mut dev,
        "the update to be deferred by the app",
        || status(&admin),
        |st| st["state"] == "Deferred" && minutes_ahead(st).is_some_and(|m| m >= 25),
    );
    assert!(
        minutes_ahead(&deferred).is_some_and(|m| m <= 30),
        "{deferred}"
    );
    // The agent reports `Deferred` after it decided, in place of staging anything (the report
    // names the app's 30 minutes, not the notice period), and checks again only when the
    // deferral ends or is withdrawn (below): that same report still lists blink 1.0.0.
    assert_eq!(
        blink_version(&deferred).as_deref(),
        Some("1.0.0"),
        "{deferred}"
    );

    // The job ends: the app withdraws its deferral and the update goes ahead at once.
    attached(
        &admin,
        &dir,
        &[
            "device",
            "board",
            "press-button",
            "--button",
            "SAMPLE_BUTTON_2",
            "--hold-ms",
            "300",
        ],
    );
    wait_for(
        &mut dev,
        "blink 2.0.0 after the job",
        || status(&admin),
        |st| blink_version(st).as_deref() == Some("2.0.0"),
    );
    let logs = admin.run(&[
        "device",
        "app",
        "logs",
        "--component-id",
        DEFERRAL,
        "--device-dir",
        s(&dir),
    ]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(
        text.contains("deferred by 30 min") && text.contains("may proceed"),
        "{text}"
    );
    dev.stop();
}
