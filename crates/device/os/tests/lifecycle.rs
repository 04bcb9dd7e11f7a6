//! The device life cycle against a real ferro-service, with the real binaries: provision with
//! an OS release the service re-signed, identity, manufacturing state, ferro-boot verifying,
//! measuring and running ferro-device, and the attacks the loader must refuse.
//!
//! Needs `ferro-service`, `ferro` and `ferro-boot` built (`cargo build --workspace`, as for
//! crates/tools/e2e).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferro_device::ferro_trust::{RootOfTrust, SoftwareRootOfTrust};
use ferro_device::run::replay_json;
mod common;

use common::{copy_dir, s};
use ferro_e2e::{Service, User, binary};
use ferro_image::{OS_COMPONENT_ID, Version};
use ferro_pki::{KeyList, ManufacturingState, PlatformKeyRole, verify_registration_record};
use ferro_signing::{DeviceId, SoftwareSigningKey};
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

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh copy of the provisioned device (a software RoT directory copies like a disk image).
fn clone_device(golden: &Path, work: &Path, name: &str) -> PathBuf {
    let dir = work.join(name);
    copy_dir(golden, &dir);
    dir
}

fn boot(dir: &Path) -> Child {
    Command::new(binary("ferro-boot"))
        .args(["--data-dir", s(dir)])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferro-boot")
}

/// Waits for run/ready.json; panics with the boot's output if the process exits first.
fn wait_ready(child: &mut Child, dir: &Path) -> Value {
    let ready = dir.join("run/ready.json");
    let deadline = Instant::now() + Duration::from_secs(60);
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
            panic!("boot exited ({status}) before ready:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("device not ready within 60 s");
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
    panic!("ferro-device did not stop on SIGTERM");
}

/// Runs ferro-boot expecting it to refuse; returns its standard error.
fn boot_refused(dir: &Path) -> String {
    let out = Command::new(binary("ferro-boot"))
        .args(["--data-dir", s(dir)])
        .output()
        .expect("run ferro-boot");
    let err = failed(&out);
    assert!(err.contains("refusing to boot"), "{err}");
    assert!(!dir.join("run/ready.json").exists());
    err
}

#[test]
fn provision_identity_boot_and_attacks() {
    let work = tempfile::tempdir().expect("tempdir");
    let work = work.path();
    let service = Service::start(&[]);
    let admin = User::new();
    admin.login_as_admin(&service, "a long enough passphrase");

    // An OS release of the real ferro-device, the factory OS image.
    let common::FactoryOs {
        factory,
        built,
        bin,
        ..
    } = common::publish_factory_os(&admin, work, Version::new(1, 2, 0), 2);

    let root_pem = service.platform_root_pem();
    let provision = |dir: &Path, image: &Path| {
        device(&[
            "provision",
            "--data-dir",
            s(dir),
            "--service",
            &service.url,
            "--platform-root",
            s(&root_pem),
            "--os-image",
            s(image),
            "--output",
            "json",
        ])
    };

    // A bundle signed by a key that is not in the key list (the build key) is refused, and
    // nothing is provisioned.
    let refused_dir = work.join("refused");
    let err = failed(&provision(&refused_dir, &built));
    assert!(
        err.contains("os-built.imagepackage") || err.contains("image package"),
        "{err}"
    );
    assert!(!refused_dir.join("device.json").exists());

    // Provision.
    let golden = work.join("golden");
    let shown = ok_json(&provision(&golden, &factory));
    let rot = SoftwareRootOfTrust::open(golden.join("rot")).expect("rot");
    let expected_id = DeviceId::from_public_key(&rot.public_key()).to_string();
    drop(rot);
    assert_eq!(shown["deviceId"], expected_id.as_str());
    assert_eq!(shown["manufacturingState"], "Blank");
    assert_eq!(shown["activeSlot"], "a");
    assert_eq!(shown["osVersion"], "1.2.0");
    assert_eq!(shown["osSecurityVersionFloor"], 2);
    assert_eq!(shown["serviceUrl"], service.url.as_str());
    if let Some(fp) = &service.root_fingerprint {
        assert_eq!(shown["platformRootFingerprint"], fp.as_str());
    }
    let shown = ok_json(&device(&[
        "show-identity",
        "--data-dir",
        s(&golden),
        "--output",
        "json",
    ]));
    assert_eq!(shown["deviceId"], expected_id.as_str());
    assert_eq!(shown["rootOfTrust"], "software");
    let table = device(&["show-identity", "--data-dir", s(&golden)]);
    assert!(String::from_utf8_lossy(&table.stdout).contains(&expected_id));

    // The registration record verifies and names the device.
    let reg =
        verify_registration_record(&fs::read(golden.join("registration.cose")).expect("read"))
            .expect("registration record verifies");
    assert_eq!(reg.device_id().to_string(), expected_id);
    assert_eq!(reg.record().manufacturing_state, ManufacturingState::Blank);

    // Provisioning twice is refused.
    let err = failed(&provision(&golden, &factory));
    assert!(err.contains("already provisioned"), "{err}");

    // Manufacturing state moves forward only; the record is re-signed each time.
    let update = |state: &str| {
        device(&[
            "manufacturing-state",
            "update",
            "--data-dir",
            s(&golden),
            "--state",
            state,
            "--output",
            "json",
        ])
    };
    ok_json(&update("Module1Complete"));
    let reg =
        verify_registration_record(&fs::read(golden.join("registration.cose")).expect("read"))
            .expect("verifies");
    assert_eq!(
        reg.record().manufacturing_state,
        ManufacturingState::Module1Complete
    );
    ok_json(&update("DeviceComplete"));
    let err = failed(&update("Module1Complete"));
    assert!(err.contains("only moves forward"), "{err}");
    let reg =
        verify_registration_record(&fs::read(golden.join("registration.cose")).expect("read"))
            .expect("verifies");
    assert_eq!(
        reg.record().manufacturing_state,
        ManufacturingState::DeviceComplete
    );
    let shown = ok_json(&device(&[
        "show-identity",
        "--data-dir",
        s(&golden),
        "--output",
        "json",
    ]));
    assert_eq!(shown["manufacturingState"], "DeviceComplete");

    // Boot, with the unpacked bin/ferro-device replaced by an attacker's script: the loader
    // re-unpacks the verified package, so the genuine binary runs and the script never does.
    let genuine = fs::read(&bin).expect("read");
    let dev = clone_device(&golden, work, "boot-ok");
    let marker = work.join("pwned");
    let evil = dev.join("slots/a/root/bin/ferro-device");
    fs::write(&evil, format!("#!/bin/sh\ntouch {}\n", s(&marker))).expect("write");
    let mut child = boot(&dev);
    let ready = wait_ready(&mut child, &dev);
    assert_eq!(ready["bootedSlot"], "a");
    assert_eq!(ready["deviceId"], expected_id.as_str());
    assert_eq!(ready["replays"], true);
    let log: Vec<ferro_device::os::EventJson> =
        serde_json::from_value(ready["log"].clone()).expect("log");
    assert_eq!(log.len(), 1, "{ready}");
    assert_eq!(log[0].component_id, OS_COMPONENT_ID);
    assert_eq!(log[0].version, "1.2.0");
    let replayed = replay_json(&log).expect("replay");
    assert_eq!(
        hex::encode(replayed),
        ready["pcrValue"].as_str().expect("pcr")
    );
    stop(child);
    assert!(!marker.exists(), "the tampered binary ran");
    assert_eq!(fs::read(&evil).expect("read"), genuine);
    let state: Value =
        serde_json::from_slice(&fs::read(dev.join("boot.json")).expect("read")).expect("json");
    assert_eq!(
        state["lastGood"].as_str().or(state["last_good"].as_str()),
        Some("a")
    );

    // A tampered package in the active slot is not run; a valid slot b is booted instead and
    // the failure is recorded for the device to report.
    let dev = clone_device(&golden, work, "fallback");
    fs::copy(
        dev.join("slots/a/os.imagepackage"),
        dev.join("slots/b/os.imagepackage"),
    )
    .expect("copy");
    tamper_payload(&dev.join("slots/a/os.imagepackage"));
    let mut child = boot(&dev);
    let ready = wait_ready(&mut child, &dev);
    assert_eq!(ready["bootedSlot"], "b");
    stop(child);
    let failures = fs::read_to_string(dev.join("boot-failures.json")).expect("failures");
    assert!(
        failures.contains("\"a\"") && failures.contains("SHA-256"),
        "{failures}"
    );

    // ... and without a valid other slot the boot fails with the reason.
    let dev = clone_device(&golden, work, "tampered");
    tamper_payload(&dev.join("slots/a/os.imagepackage"));
    let err = boot_refused(&dev);
    assert!(err.contains("slot a") && err.contains("SHA-256"), "{err}");

    // A bundle signed by a key not in the key list is refused.
    let dev = clone_device(&golden, work, "untrusted");
    fs::copy(&built, dev.join("slots/a/os.imagepackage")).expect("copy");
    let err = boot_refused(&dev);
    assert!(err.contains("slot a"), "{err}");

    // A bundle below the anti-rollback floor is refused.
    let dev = clone_device(&golden, work, "rollback");
    SoftwareRootOfTrust::open(dev.join("rot"))
        .expect("rot")
        .advance_counter("os-security-version", 3)
        .expect("advance");
    let err = boot_refused(&dev);
    assert!(err.contains("anti-rollback floor"), "{err}");

    // A key list not signed by the anchored root is refused.
    let dev = clone_device(&golden, work, "keylist");
    let impostor = SoftwareSigningKey::generate();
    let forged = KeyList {
        version: 99,
        issued_at: ferro_pki::time::OffsetDateTime::now_utc(),
        keys: [
            (
                PlatformKeyRole::OsRelease,
                vec![impostor.public_key().clone()],
            ),
            (
                PlatformKeyRole::Capability,
                vec![impostor.public_key().clone()],
            ),
        ]
        .into_iter()
        .collect(),
    }
    .sign(&impostor)
    .expect("sign");
    fs::write(dev.join("key-list.cose"), forged).expect("write");
    let err = boot_refused(&dev);
    assert!(err.contains("key list"), "{err}");
    let err = failed(&device(&["show-identity", "--data-dir", s(&dev)]));
    assert!(err.contains("key list"), "{err}");
}

/// Flip one byte in the last 1 KiB of a package (inside the tar payload's file data or
/// padding): the signature still verifies, the payload digest does not.
fn tamper_payload(path: &Path) {
    let mut bytes = fs::read(path).expect("read");
    let len = bytes.len();
    let i = len - 2000;
    bytes[i] ^= 0x55;
    fs::write(path, bytes).expect("write");
}
