//! Crash injection (issue 5, "Proof"): the device is killed at every crash point of an update
//! that changes the OS, a high-level app and its real-time partner app (download, verification, staging, the transaction, the
//! OS switch through ferro-boot, the app switch, confirmation), restarted, and must come up
//! running a complete set and attesting, with the app pair both old or both new at every crash
//! point (one deployment holds both; the app store switches them in one rename); after recovery it must have converged on the new set
//! with its floors raised. Crash points are `ferro_update::crash::point` calls: with
//! `FERRO_CRASH_AT=N` the N-th aborts the process (no destructors, no flushing: a power cut
//! after the last completed system call), numbered across the re-exec of ferro-boot.
//!
//! By default every point outside the bulk download is crashed and 24 of the 64 KiB download
//! blocks, spread over the download; `FERRO_CRASH_ALL=1` crashes every point. Needs `cargo build --workspace` first.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::{VirtualDevice, s};
use ferro_device::ferro_trust::{RootOfTrust, SoftwareRootOfTrust};
use ferro_e2e::User;
use ferro_image::Version;
use serde_json::Value;

const GROUP: &str = "Crash/Field Test OS Evaluation";
const COMPONENT: &str = "7a0c4e2b-1d3f-4b5a-8c6d-9e0f1a2b3c4d";
/// The real-time partner (rt-echo) deployed with the app.
const RT_COMPONENT: &str = "7a0c4e2b-1d3f-4b5a-8c6d-00000000e2c0";

fn upload_app(admin: &User, work: &Path, version: &str, sv: u32) -> String {
    // Big enough to span several download blocks.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    common::upload_app(admin, work, COMPONENT, version, sv, &body)
}

/// Packs and uploads version `version` of the real-time partner (apps/rt's rt-echo).
fn upload_rt(admin: &User, work: &Path, version: &str, sv: u32) -> String {
    let elf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../apps/rt/target/thumbv7em-none-eabihf/release/rt-echo");
    let elf = fs::read(&elf).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the RT apps first: (cd apps/rt && cargo build --release)",
            elf.display()
        )
    });
    let manifest = serde_json::json!({
        "SchemaVersion": 1, "Name": "rt-partner", "ComponentId": RT_COMPONENT,
        "EntryPoint": "/bin/app", "CmdArgs": [], "ApplicationType": "RealTimeCapable",
        "Capabilities": {"AllowedApplicationConnections": [COMPONENT]},
    });
    let package = common::pack_app(
        admin,
        work,
        &format!("rt-{version}"),
        &manifest,
        &elf,
        version,
        sv,
    );
    common::upload(admin, &package)
}

/// The versions of the installed apps, by component (empty before the first install).
fn app_versions(dev: &VirtualDevice) -> Vec<(String, String)> {
    let Some(installed) = read_json(&dev.dir.join("apps/installed.json")) else {
        return Vec::new();
    };
    let mut versions: Vec<(String, String)> = installed["apps"]
        .as_array()
        .map(|apps| {
            apps.iter()
                .map(|a| {
                    (
                        a["componentId"].as_str().unwrap_or_default().to_string(),
                        a["version"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
}

/// The pair is whole: both apps, both at one version.
fn pair_consistent(dev: &VirtualDevice) -> Result<(), String> {
    let versions = app_versions(dev);
    let ok = versions.len() == 2 && versions[0].1 == versions[1].1;
    if ok {
        Ok(())
    } else {
        Err(format!("the app pair is not whole: {versions:?}"))
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// The device finished the update: no transaction, the new app installed, the new OS booted from
/// slot b and attested Trusted.
fn converged(dev: &VirtualDevice) -> Result<(), String> {
    if dev.dir.join("update/transaction.json").exists() {
        return Err("transaction in progress".into());
    }
    let versions = app_versions(dev);
    if versions.len() != 2 || versions.iter().any(|(_, v)| v != "2.0.0") {
        return Err(format!("apps: {versions:?}"));
    }
    let ready = read_json(&dev.dir.join("run/ready.json")).ok_or("not ready")?;
    if ready["bootedSlot"] != "b" || ready["attestation"] != "Trusted" {
        return Err(format!("ready: {ready}"));
    }
    Ok(())
}

fn wait_converged(dev: &mut VirtualDevice, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        dev.supervise();
        match converged(dev) {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => {
                panic!("{what}: not converged: {e}\n{}", dev.log_tail())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn a_crash_at_any_point_of_an_update_leaves_a_bootable_consistent_device() {
    let work = tempfile::tempdir().expect("tempdir");
    let work = work.path();
    let (service, admin) = common::service_with_tenant("Crash Tenant", "Crash");
    let factory = common::publish_factory_os(&admin, work, Version::new(1, 0, 0), 1);
    let v1 = upload_app(&admin, work, "1.0.0", 1);
    let rt1 = upload_rt(&admin, work, "1.0.0", 1);
    admin.json(&[
        "device-group",
        "deployment",
        "create",
        "--device-group",
        GROUP,
        "--images",
        &v1,
        &rt1,
    ]);
    let mut golden = VirtualDevice::provision_and_claim(&service, &admin, work, &factory.factory);
    admin.json(&[
        "device",
        "update",
        "--device",
        &golden.device_id,
        "--device-group",
        GROUP,
    ]);

    // The starting point: OS 1.0.0 and app 1.0.0 installed and confirmed.
    golden.boot(&[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let installed = |d: &VirtualDevice| {
        d.dir.join("apps/installed.json").exists()
            && !d.dir.join("update/transaction.json").exists()
    };
    while !installed(&golden) {
        assert!(Instant::now() < deadline, "{}", golden.log_tail());
        golden.supervise();
        std::thread::sleep(Duration::from_millis(50));
    }
    golden.stop();
    pair_consistent(&golden).expect("the first deployment");

    // The update: OS 1.1.0 (security version 2) and app 2.0.0 (security version 2).
    let v2 = upload_app(&admin, work, "2.0.0", 2);
    let rt2 = upload_rt(&admin, work, "2.0.0", 2);
    admin.json(&[
        "device-group",
        "deployment",
        "create",
        "--device-group",
        GROUP,
        "--images",
        &v2,
        &rt2,
    ]);
    common::publish_os(&admin, work, "os2", Version::new(1, 1, 0), 2, None);

    // Dry run: list the crash points the update passes.
    let dry_log = work.join("dry-run.points");
    let mut dry = golden.clone_to(&work.join("dry"), &work.join("dry.log"));
    dry.boot(&[("FERRO_CRASH_LOG", s(&dry_log))]);
    wait_converged(&mut dry, "dry run");
    dry.stop();
    let points: Vec<String> = fs::read_to_string(&dry_log)
        .expect("points")
        .lines()
        .map(|l| l.split_once(' ').map(|x| x.1).unwrap_or("").to_string())
        .collect();
    let total = points.len();
    assert!(
        points.iter().any(|p| p == "boot.pending-written"),
        "{points:?}"
    );
    assert!(
        points.iter().any(|p| p == "transaction.finished"),
        "{points:?}"
    );
    let all = std::env::var_os("FERRO_CRASH_ALL").is_some();
    // Download blocks are many alike points (one per 64 KiB, so their number follows the OS
    // bundle's size): by default 24 of them, spread over the download, plus the first.
    let blocks = points.iter().filter(|p| *p == "download.block").count();
    let step = (blocks / 24).max(1);
    let mut block = 0;
    let chosen: Vec<usize> = points
        .iter()
        .enumerate()
        .filter(|(_, label)| {
            if label.as_str() != "download.block" {
                return true;
            }
            block += 1;
            all || block % step == 1 || step == 1
        })
        .map(|(i, _)| i + 1)
        .collect();

    let started = Instant::now();
    let mut recovered_via_fallback = 0;
    for &n in &chosen {
        let dir = work.join("run");
        let log = work.join("run.log");
        let _ = fs::remove_file(&log);
        let points_log = work.join("run.points");
        let _ = fs::remove_file(&points_log);
        let mut dev = golden.clone_to(&dir, &log);
        dev.boot(&[
            ("FERRO_CRASH_AT", &n.to_string()),
            ("FERRO_CRASH_LOG", s(&points_log)),
        ]);
        assert!(
            dev.wait_exit(Duration::from_secs(120)),
            "point {n} ({}) was never reached:\n{}",
            points[n - 1],
            dev.log_tail()
        );
        let crashed_at = fs::read_to_string(&points_log).unwrap_or_default();
        assert_eq!(
            crashed_at.lines().count(),
            n,
            "crash point {n} not the one reached:\n{crashed_at}"
        );
        // Both old or both new, wherever the power was cut.
        if let Err(e) = pair_consistent(&dev) {
            panic!("point {n} ({}): {e}", points[n - 1]);
        }
        // Power back on, without crashes: it must boot, run a complete set, and finish.
        let _ = fs::remove_file(dir.join("run/ready.json"));
        dev.boot(&[]);
        let ready = dev.wait_ready();
        assert!(
            ready["attestation"] == "Trusted",
            "point {n} ({}): not trusted after restart: {ready}",
            points[n - 1]
        );
        if dev.restarts > 0 {
            recovered_via_fallback += 1;
        }
        wait_converged(&mut dev, &format!("point {n} ({})", points[n - 1]));
        dev.stop();
        let rot = SoftwareRootOfTrust::open(dir.join("rot")).expect("rot");
        assert_eq!(
            rot.counter("os-security-version").expect("os floor"),
            2,
            "point {n}"
        );
        assert_eq!(
            rot.counter(
                &uuid::Uuid::parse_str(COMPONENT)
                    .expect("uuid")
                    .simple()
                    .to_string()
            )
            .expect("app floor"),
            2,
            "point {n}"
        );
        assert_eq!(
            rot.counter(
                &uuid::Uuid::parse_str(RT_COMPONENT)
                    .expect("uuid")
                    .simple()
                    .to_string()
            )
            .expect("rt app floor"),
            2,
            "point {n}"
        );
    }
    eprintln!(
        "crash injection: {} of {total} crash points crashed and recovered ({} with a watchdog restart) in {:?}",
        chosen.len(),
        recovered_via_fallback,
        started.elapsed()
    );
}
