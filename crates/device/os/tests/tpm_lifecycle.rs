//! A TPM device (swtpm started by the test on loopback) through the real binaries and a real
//! ferro-service: `ferro-device provision --rot tpm`, registration (RootOfTrust::Tpm record) and
//! claim through the `ferro` CLI, `ferro-boot` verifying, measuring into the TPM and running
//! ferro-device, which attests with a TPM quote and is Trusted with a device certificate.
//!
//! Needs `ferro-service` and `ferro` built, and `ferro-boot` built with TPM support:
//! `cargo build --workspace && cargo build -p ferro-boot --features tpm`, then
//! `cargo test -p ferro-device --features tpm --test tpm_lifecycle`.
#![cfg(feature = "tpm")]

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::s;
use ferro_e2e::{Service, User, binary};
use ferro_image::{OS_COMPONENT_ID, Version};
use ferro_pki::{RootOfTrust as RegisteredRot, verify_registration_record};
use ferro_test_swtpm::Swtpm;
use serde_json::Value;

fn device(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferro-device"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run ferro-device")
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// Waits for run/ready.json; panics with the boot's output if the process exits first.
fn wait_ready(child: &mut Child, dir: &Path) -> Value {
    let ready = dir.join("run/ready.json");
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Ok(bytes) = fs::read(&ready)
            && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
        {
            return v;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!(
                "boot exited ({status}) before ready (is ferro-boot built with \
                 `cargo build -p ferro-boot --features tpm`?):\n{err}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("device not ready within 90 s");
}

fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(
                status.success(),
                "ferro-device exited with {status} on SIGTERM"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("ferro-device did not stop on SIGTERM");
}

#[test]
fn tpm_device_boots_and_attests_trusted() {
    let work = tempfile::tempdir().expect("tempdir");
    let work = work.path();
    let tpm = Swtpm::start();
    let service = Service::start(&[]);
    let admin = User::new();
    admin.login_as_admin(&service, "a long enough passphrase");
    admin.json(&["tenant", "create", "--name", "Contoso"]);

    // An OS release of the real ferro-device, the factory OS image.
    let common::FactoryOs {
        factory,
        release_id,
        ..
    } = common::publish_factory_os(&admin, work, Version::new(1, 3, 0), 1);

    // Provision with the TPM as root of trust.
    let dd = work.join("device");
    let tcti = tpm.tcti();
    let shown = ok_json(&device(&[
        "provision",
        "--data-dir",
        s(&dd),
        "--service",
        &service.url,
        "--platform-root",
        s(&service.platform_root_pem()),
        "--os-image",
        s(&factory),
        "--rot",
        "tpm",
        "--tpm",
        &tcti,
        "--output",
        "json",
    ]));
    let device_id = shown["deviceId"].as_str().expect("deviceId").to_string();
    assert!(!dd.join("rot").exists(), "no software RoT files with a TPM");
    let shown = ok_json(&device(&[
        "show-identity",
        "--data-dir",
        s(&dd),
        "--output",
        "json",
    ]));
    assert_eq!(shown["rootOfTrust"], "tpm", "{shown}");
    ok_json(&device(&[
        "manufacturing-state",
        "update",
        "--data-dir",
        s(&dd),
        "--state",
        "DeviceComplete",
        "--output",
        "json",
    ]));
    let registration = dd.join("registration.cose");
    let reg = verify_registration_record(&fs::read(&registration).expect("read"))
        .expect("registration record verifies");
    assert_eq!(reg.device_id().to_string(), device_id);
    assert_eq!(reg.record().root_of_trust, RegisteredRot::Tpm);
    // Format version 2: the TPM's attestation key, which the service will require on quotes.
    assert!(reg.record().tpm_attestation_key.is_some());

    // Manufacturing registers the record; the tenant claims the device.
    let registered = admin.json(&["manufacturing", "register", "--file", s(&registration)]);
    let code = registered[0]["claimCode"].as_str().expect("claim code");
    let claimed = admin.json(&[
        "device",
        "claim",
        "--device",
        &device_id,
        "--claim-code",
        code,
    ]);
    assert_eq!(claimed["claimed"], 1, "{claimed}");

    // Boot: ferro-boot verifies and measures the OS into the TPM, then runs ferro-device, which
    // attests with a TPM quote over the measurement register.
    let mut child = Command::new(binary("ferro-boot"))
        .args(["--data-dir", s(&dd)])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferro-boot");
    let ready = wait_ready(&mut child, &dd);
    stop(child);
    assert_eq!(ready["deviceId"], device_id.as_str(), "{ready}");
    assert_eq!(ready["bootedSlot"], "a", "{ready}");
    assert_eq!(ready["replays"], true, "{ready}");
    let log: Vec<ferro_device::os::EventJson> =
        serde_json::from_value(ready["log"].clone()).expect("log");
    assert_eq!(log.len(), 1, "{ready}");
    assert_eq!(log[0].component_id, OS_COMPONENT_ID);
    assert_eq!(log[0].image_id.to_string(), release_id, "{ready}");
    assert_eq!(ready["attestation"], "Trusted", "{ready}");
    assert_eq!(ready["attestationReasons"], serde_json::json!([]));
    assert!(ready["certificateNotAfter"].is_string(), "{ready}");
    let certs = ferro_device::DataDir::new(dd.clone()).certificates();
    let pem = fs::read_to_string(certs.join("device-cert.pem")).expect("device certificate");
    assert!(pem.contains("BEGIN CERTIFICATE"), "{pem}");

    // The registered attestation key outlives the process and the TPM's boot. The certificate
    // is removed each time so that the device must attest again.
    let boot_again = |dd: &Path| {
        // (Absent after an Untrusted boot.)
        let _ = fs::remove_file(certs.join("device-cert.pem"));
        let mut child = Command::new(binary("ferro-boot"))
            .args(["--data-dir", s(dd)])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ferro-boot");
        let ready = wait_ready(&mut child, dd);
        stop(child);
        ready
    };
    // 1. ferro-boot restarted (a new process) on the same running TPM: PCR 15 still holds the
    //    first boot's OS measurement, so the log now has two. That is no boot the service can
    //    vouch for (the first OS ran, and could act, before the second was measured): Untrusted
    //    until the platform (and with it the TPM) resets (docs/trust.md, "What a quote proves").
    let ready = boot_again(&dd);
    assert_eq!(ready["replays"], true, "{ready}");
    assert_eq!(ready["attestation"], "Untrusted", "{ready}");
    assert_eq!(
        ready["attestationReasons"],
        serde_json::json!(["multiple_os_measurements"]),
        "{ready}"
    );
    // 2. The TPM reboots (a new swtpm on the same state; PCRs back to zero, /run emptied as a
    //    tmpfs would be). It listens on another port: point the device's configuration at it.
    let tpm = tpm.reboot();
    fs::remove_dir_all(dd.join("run")).expect("clear run/");
    ferro_device::layout::write_json(
        &ferro_device::DataDir::new(dd.clone()).config(),
        &ferro_device::DeviceConfig::Tpm { tcti: tpm.tcti() },
    )
    .expect("write config");
    let ready = boot_again(&dd);
    assert_eq!(ready["replays"], true, "{ready}");
    let log: Vec<ferro_device::os::EventJson> =
        serde_json::from_value(ready["log"].clone()).expect("log");
    assert_eq!(log.len(), 1, "a new TPM boot starts a new log: {ready}");
    assert_eq!(ready["attestation"], "Trusted", "{ready}");
}

/// An OS switch on a TPM device is a platform reboot (docs/updates.md, "Switching the OS"): the
/// update agent power-cycles the (virtual) TPM before ferro-boot starts the new slot, so the TPM
/// holds only the new OS's measurement and the device attests Trusted at once, with exactly one
/// OS measurement. A re-exec without the reset (what the software root of trust does) leaves the
/// old OS's measurement in the PCR: Untrusted, `multiple_os_measurements`.
#[test]
fn a_tpm_os_switch_reboots_the_platform_and_attests_trusted() {
    const GROUP: &str = "Coffee Maker/Field Test OS Evaluation";
    let work = tempfile::tempdir().expect("tempdir");
    let work = work.path();
    let tpm = Swtpm::start();
    let (service, admin) = common::service_with_tenant("Contoso", "Coffee Maker");
    let factory = common::publish_factory_os(&admin, work, Version::new(1, 0, 0), 1);
    let tcti = tpm.tcti();
    let mut dev = common::VirtualDevice::provision_and_claim_with(
        &service,
        &admin,
        work,
        &factory.factory,
        &["--rot", "tpm", "--tpm", &tcti],
    );
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
    assert_eq!(ready["attestation"], "Trusted", "{ready}");
    assert_eq!(ready["bootedSlot"], "a", "{ready}");

    // OS 1.1.0 in the group's feed: staged in slot b, switched through a platform reboot.
    let os2 = common::publish_os(&admin, work, "os2", Version::new(1, 1, 0), 2, None);
    admin.json(&["device-group", "update-now", "--device-group", GROUP]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let ready = loop {
        dev.supervise();
        if let Ok(bytes) = fs::read(dev.dir.join("run/ready.json"))
            && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
            && v["bootedSlot"] == "b"
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the device did not boot slot b within 120 s:\n{}",
            dev.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log: Vec<ferro_device::os::EventJson> =
        serde_json::from_value(ready["log"].clone()).expect("log");
    assert_eq!(log.len(), 1, "one OS measurement after the switch: {ready}");
    assert_eq!(log[0].component_id, OS_COMPONENT_ID);
    assert_eq!(log[0].image_id.to_string(), os2, "{ready}");
    assert_eq!(ready["replays"], true, "{ready}");
    assert_eq!(ready["attestation"], "Trusted", "{ready}");
    assert_eq!(
        ready["attestationReasons"],
        serde_json::json!([]),
        "{ready}"
    );
    let shown = admin.json(&["device", "show", "--device", &device_id]);
    assert_eq!(shown["lastAttestationResult"], "Trusted", "{shown}");
    assert!(
        dev.log_tail().contains("virtual TPM power-cycled"),
        "{}",
        dev.log_tail()
    );
    dev.stop();
}
