//! Real-time apps in the app manager, end to end on a virtual device (the real `ferro-service`,
//! `ferro`, `ferro-boot` and `ferro-device`): rt-app packages sideloaded in development mode are
//! verified, measured and admitted to a real-time core of the board (the virtual chip's `IO0`
//! and `IO1`), with their peripherals in the one ownership table. A peripheral another app holds
//! and a board whose cores are all busy are refused at install, naming the apps involved, and
//! change nothing; a new version keeps its core; a freed core goes to the next app; after a
//! restart the device attests `Trusted` and the apps hold the same cores.
//!
//! Needs `cargo build --workspace` first (scripts/test.sh does it).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::{VirtualDevice, s};
use ferro_e2e::User;
use ferro_image::Version;
use serde_json::{Value, json};

const ALPHA: &str = "a1000000-0000-4000-8000-0000000000a1";
const BRAVO: &str = "b2000000-0000-4000-8000-0000000000b2";
const CHARLIE: &str = "c3000000-0000-4000-8000-0000000000c3";
const DELTA: &str = "d4000000-0000-4000-8000-0000000000d4";

/// Packs an rt-app `name` of `component` granting `capabilities`, test-signed by the user's key.
/// Its entry point is a stand-in for an ELF image (the core host checks ELF images; admission
/// to a core does not run it).
fn pack_rt(
    user: &User,
    work: &Path,
    name: &str,
    component: &str,
    version: &str,
    capabilities: Value,
) -> PathBuf {
    let dir = work.join(format!("rt-{name}-{version}"));
    fs::create_dir_all(dir.join("bin")).expect("mkdir");
    let manifest = json!({
        "SchemaVersion": 1,
        "Name": name,
        "ComponentId": component,
        "EntryPoint": "/bin/app",
        "CmdArgs": [],
        "ApplicationType": "RealTimeCapable",
        "Capabilities": capabilities,
    });
    fs::write(
        dir.join("app_manifest.json"),
        serde_json::to_vec(&manifest).expect("json"),
    )
    .expect("manifest");
    fs::write(dir.join("bin/app"), format!("\x7fELF {name} {version}")).expect("image");
    let package = work.join(format!("rt-{name}-{version}.imagepackage"));
    user.json(&[
        "image-package",
        "pack-application",
        "--package-directory",
        s(&dir),
        "--destination",
        s(&package),
        "--version",
        version,
    ]);
    package
}

fn attached(user: &User, dir: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--device-dir", s(dir)]);
    user.json(&all)
}

fn attached_fails(user: &User, dir: &Path, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--device-dir", s(dir)]);
    user.fails(&all)
}

fn sideload(user: &User, dir: &Path, package: &Path) -> Value {
    attached(
        user,
        dir,
        &["device", "sideload", "deploy", "--image-package", s(package)],
    )
}

fn sideload_fails(user: &User, dir: &Path, package: &Path) -> String {
    attached_fails(
        user,
        dir,
        &["device", "sideload", "deploy", "--image-package", s(package)],
    )
}

fn status(user: &User, dir: &Path, component: &str) -> Value {
    attached(
        user,
        dir,
        &["device", "app", "show-status", "--component-id", component],
    )
}

/// The components installed, sorted.
fn installed(user: &User, dir: &Path) -> Vec<String> {
    let images = attached(user, dir, &["device", "image", "list-installed"]);
    let mut ids: Vec<String> = images["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["componentId"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn real_time_apps_get_a_core_and_their_peripherals_or_a_refusal_naming_the_holder() {
    let work = tempfile::tempdir().expect("tempdir");
    let work = work.path();
    let (service, admin) = common::service_with_tenant("RT Tenant", "RtAppliance");
    let factory = common::publish_factory_os(&admin, work, Version::new(1, 0, 0), 1);
    let mut dev = VirtualDevice::provision_and_claim(&service, &admin, work, &factory.factory);
    let dir = dev.dir.clone();
    dev.boot(&[]);
    assert_eq!(dev.wait_ready()["attestation"], "Trusted");
    let mode = attached(&admin, &dir, &["device", "enable-development"]);
    assert_eq!(mode["enabled"], true, "{mode}");

    // alpha: the first core, with a GPIO and a UART.
    let alpha = pack_rt(
        &admin,
        work,
        "alpha",
        ALPHA,
        "1.0.0",
        json!({"Gpio": [12], "Uart": ["ISU1"]}),
    );
    let result = sideload(&admin, &dir, &alpha);
    assert_eq!(result["componentId"], ALPHA, "{result}");
    let shown = status(&admin, &dir, ALPHA);
    assert_eq!(shown["core"], "IO0", "{shown}");
    assert_eq!(shown["state"], "Stopped", "{shown}");
    let images = attached(&admin, &dir, &["device", "image", "list-installed"]);
    assert!(
        images["images"]
            .as_array()
            .expect("images")
            .iter()
            .any(|i| i["componentId"] == ALPHA && i["kind"] == "RtApp" && i["verified"] == true),
        "{images}"
    );

    // delta wants alpha's GPIO: refused at install, naming both apps; nothing changes.
    let delta = pack_rt(&admin, work, "delta", DELTA, "1.0.0", json!({"Gpio": [12]}));
    let refused = sideload_fails(&admin, &dir, &delta);
    assert!(
        refused.contains("GPIO 12") && refused.contains("\"alpha\"") && refused.contains("\"delta\""),
        "{refused}"
    );
    assert_eq!(installed(&admin, &dir), [ALPHA]);

    // bravo: the second core.
    let bravo = pack_rt(&admin, work, "bravo", BRAVO, "1.0.0", json!({"Gpio": [13]}));
    sideload(&admin, &dir, &bravo);
    assert_eq!(status(&admin, &dir, BRAVO)["core"], "IO1");

    // charlie: every core is busy; the refusal names each core's holder and what to do.
    let charlie = pack_rt(&admin, work, "charlie", CHARLIE, "1.0.0", json!({}));
    let refused = sideload_fails(&admin, &dir, &charlie);
    assert!(
        refused.contains("every real-time core of the board is busy")
            && refused.contains(&format!("IO0 is held by app \"alpha\" ({ALPHA})"))
            && refused.contains(&format!("IO1 is held by app \"bravo\" ({BRAVO})"))
            && refused.contains("delete it"),
        "{refused}"
    );
    assert_eq!(installed(&admin, &dir), [ALPHA, BRAVO]);

    // A new version of alpha keeps its core (and its peripherals: no conflict with itself).
    let alpha2 = pack_rt(
        &admin,
        work,
        "alpha",
        ALPHA,
        "1.1.0",
        json!({"Gpio": [12], "Uart": ["ISU1"]}),
    );
    let result = sideload(&admin, &dir, &alpha2);
    assert!(result["replacedImageId"].is_string(), "{result}");
    assert_eq!(status(&admin, &dir, ALPHA)["core"], "IO0");

    // A restart: verified and measured again, attested Trusted, the same cores.
    dev.stop();
    let _ = fs::remove_file(dir.join("run/ready.json"));
    dev.boot(&[]);
    assert_eq!(dev.wait_ready()["attestation"], "Trusted", "{}", dev.log_tail());
    let deadline = Instant::now() + Duration::from_secs(30);
    while installed(&admin, &dir).len() < 2 {
        assert!(Instant::now() < deadline, "{}", dev.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status(&admin, &dir, ALPHA)["core"], "IO0");
    assert_eq!(status(&admin, &dir, BRAVO)["core"], "IO1");

    // Deleting alpha frees IO0 and its GPIO: charlie gets the core, delta the GPIO... but
    // not both, as there is one free core.
    let out = admin.run(&[
        "device",
        "sideload",
        "delete",
        "--component-id",
        ALPHA,
        "--device-dir",
        s(&dir),
    ]);
    assert!(out.status.success(), "{out:?}");
    sideload(&admin, &dir, &charlie);
    assert_eq!(status(&admin, &dir, CHARLIE)["core"], "IO0");
    let refused = sideload_fails(&admin, &dir, &delta);
    assert!(refused.contains("every real-time core"), "{refused}");
    dev.stop();
}
