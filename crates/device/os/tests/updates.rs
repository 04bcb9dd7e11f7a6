//! Over-the-air updates end to end, with the real binaries against a real ferro-service: a
//! claimed virtual device takes its group's deployment at boot, an app update after
//! `update-now`, an OS update through the A/B slots and ferro-boot, and falls back from a broken
//! OS bundle, reporting why.
//!
//! Needs `cargo build --workspace` first (as crates/tools/e2e).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::{VirtualDevice, s};
use ferro_device::ferro_trust::{RootOfTrust, SoftwareRootOfTrust};
use ferro_e2e::User;
use ferro_image::Version;
use serde_json::Value;

const GROUP: &str = "Updater/Field Test OS Evaluation";
const COMPONENT: &str = "4f1d3a5e-8b2c-4d6e-9a7f-0c1b2d3e4f50";

fn upload_app(admin: &User, work: &Path, version: &str, sv: u32) -> String {
    common::upload_app(
        admin,
        work,
        COMPONENT,
        version,
        sv,
        format!("app {version}").as_bytes(),
    )
}

fn status(admin: &User, device_id: &str) -> Value {
    admin.json(&["device", "show-deployment-status", "--device", device_id])
}

/// Polls the deployment status until `pred` holds (the device supervised meanwhile).
fn wait_status(
    admin: &User,
    dev: &mut VirtualDevice,
    device_id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        dev.supervise();
        let st = status(admin, device_id);
        if pred(&st) {
            return st;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; status {st}\ndevice log:\n{}",
                dev.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The device runs its target set (it reports `Installed` after a switch, `UpToDate` after a
/// later check).
fn done(st: &Value) -> bool {
    st["state"] == "Installed" || st["state"] == "UpToDate"
}

fn installed_version(st: &Value, kind: &str) -> Option<String> {
    st["installed"]
        .as_array()?
        .iter()
        .find(|i| i["kind"] == kind)
        .and_then(|i| i["version"].as_str())
        .map(str::to_string)
}

#[test]
fn deployments_update_apps_and_os_and_a_broken_os_falls_back() {
    let work = tempfile::tempdir().expect("tempdir");
    let work = work.path();
    let (service, admin) = common::service_with_tenant("Update Tenant", "Updater");

    // Factory OS 1.0.0 (security version 1), published to Retail (so RetailEval too): the group
    // below follows RetailEval, so it is also the group's OS target.
    let factory = common::publish_factory_os(&admin, work, Version::new(1, 0, 0), 1);
    let v1 = upload_app(&admin, work, "1.0.0", 1);
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
    admin.json(&[
        "device",
        "update",
        "--device",
        &dev.device_id,
        "--device-group",
        GROUP,
    ]);
    let device_id = dev.device_id.clone();

    // Boot: attest, check, install the deployed app, attest with it, confirm.
    dev.boot(&[]);
    let st = wait_status(&admin, &mut dev, &device_id, "app 1.0.0", |st| {
        done(st) && installed_version(st, "App").as_deref() == Some("1.0.0")
    });
    assert_eq!(
        installed_version(&st, "Os").as_deref(),
        Some("1.0.0"),
        "{st}"
    );
    let targeted = admin.json(&["device", "image", "list-targeted", "--device", &device_id]);
    assert!(targeted.to_string().contains(&v1), "{targeted}");

    // App 2.0.0 (security version 2): deploy, press update-now, and the device installs it.
    let v2 = upload_app(&admin, work, "2.0.0", 2);
    admin.json(&[
        "device-group",
        "deployment",
        "create",
        "--device-group",
        GROUP,
        "--images",
        &v2,
    ]);
    let pressed = Instant::now();
    admin.json(&["device-group", "update-now", "--device-group", GROUP]);
    wait_status(&admin, &mut dev, &device_id, "app 2.0.0", |st| {
        done(st) && installed_version(st, "App").as_deref() == Some("2.0.0")
    });
    eprintln!("update-now to app 2.0.0 installed: {:?}", pressed.elapsed());
    let installed: Value = serde_json::from_slice(
        &fs::read(dev.dir.join("apps/installed.json")).expect("installed.json"),
    )
    .expect("json");
    assert_eq!(installed["apps"][0]["version"], "2.0.0", "{installed}");

    // OS 1.1.0 (security version 3): staged in slot b, switched through ferro-boot.
    let os2 = common::publish_os(&admin, work, "os2", Version::new(1, 1, 0), 3, None);
    admin.json(&["device-group", "update-now", "--device-group", GROUP]);
    wait_status(&admin, &mut dev, &device_id, "OS 1.1.0", |st| {
        done(st) && installed_version(st, "Os").as_deref() == Some("1.1.0")
    });
    let ready = dev.wait_ready();
    assert_eq!(ready["bootedSlot"], "b", "{ready}");
    assert_eq!(ready["attestation"], "Trusted", "{ready}");
    let boot_state: Value =
        serde_json::from_slice(&fs::read(dev.dir.join("boot.json")).expect("boot.json"))
            .expect("json");
    assert_eq!(boot_state["active"], "b", "{boot_state}");
    // The app survived the OS switch.
    let st = status(&admin, &device_id);
    assert_eq!(
        installed_version(&st, "App").as_deref(),
        Some("2.0.0"),
        "{st}"
    );
    let _ = os2;

    // A broken OS 1.2.0 (its ferro-device exits at once): three boot attempts, then ferro-boot
    // abandons it, the device runs 1.1.0 again and reports why. Floors stay where they were.
    common::publish_os(
        &admin,
        work,
        "os3",
        Version::new(1, 2, 0),
        4,
        Some("#!/bin/sh\nexit 1\n"),
    );
    admin.json(&["device-group", "update-now", "--device-group", GROUP]);
    let st = wait_status(&admin, &mut dev, &device_id, "the failed OS report", |st| {
        st["state"] == "Failed"
            && st["detail"]
                .as_str()
                .is_some_and(|d| d.contains("fell back"))
    });
    assert!(
        dev.restarts >= 3,
        "the watchdog restarted {} times",
        dev.restarts
    );
    assert_eq!(
        installed_version(&st, "Os").as_deref(),
        Some("1.1.0"),
        "{st}"
    );
    assert_eq!(
        installed_version(&st, "App").as_deref(),
        Some("2.0.0"),
        "{st}"
    );
    let ready = dev.wait_ready();
    assert_eq!(ready["bootedSlot"], "b", "{ready}");
    dev.stop();
    let rot = SoftwareRootOfTrust::open(dev.dir.join("rot")).expect("rot");
    assert_eq!(rot.counter("os-security-version").expect("counter"), 3);
    assert_eq!(
        rot.counter(
            &uuid::Uuid::parse_str(COMPONENT)
                .expect("uuid")
                .simple()
                .to_string()
        )
        .expect("counter"),
        2
    );
    // The failure is in the tenant's error report.
    let csv = admin.run(&[
        "tenant",
        "download-error-report",
        "--destination",
        s(&work.join("errors.csv")),
    ]);
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let report = fs::read_to_string(work.join("errors.csv")).expect("report");
    assert!(report.contains("UpdateFailed"), "{report}");
}
