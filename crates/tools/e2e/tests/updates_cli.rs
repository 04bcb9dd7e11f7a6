//! The management side of over-the-air updates through the real CLI and service: what a device
//! is targeted with (`ferro device image list-targeted`), its update status (`ferro device
//! show-deployment-status`), and update-now for a device group (by name or ID) and a device.

use std::path::{Path, PathBuf};

use ferro_e2e::{Service, User};
use ferro_pki::time::OffsetDateTime;
use ferro_pki::{ManufacturingState, RegistrationRecord, RootOfTrust};
use ferro_signing::{DeviceId, SoftwareSigningKey};

const PASSWORD: &str = "correct horse battery staple";
const GROUP: &str = "Coffee Maker/Field Test";

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// Registers and claims a fresh software device through the CLI; returns its ID.
fn claimed_device(admin: &User, dir: &Path) -> String {
    let key = SoftwareSigningKey::generate();
    let record = RegistrationRecord {
        device_key: key.public_key().clone(),
        root_of_trust: RootOfTrust::Software,
        tpm_ek_certificate: None,
        manufacturing_state: ManufacturingState::DeviceComplete,
        created_at: OffsetDateTime::now_utc(),
        tpm_attestation_key: None,
    };
    let id = DeviceId::from_public_key(key.public_key()).to_string();
    let path = dir.join(format!("{id}.registration"));
    std::fs::write(&path, record.sign(&key).expect("sign")).expect("write");
    let registered = admin.json(&["manufacturing", "register", "--file", s(&path)]);
    let code = registered[0]["claimCode"].as_str().expect("claim code");
    let claimed = admin.json(&["device", "claim", "--device", &id, "--claim-code", code]);
    assert_eq!(claimed["claimed"], 1, "{claimed}");
    id
}

/// Packs the hello app with the developer's test key, trusts that key, uploads the package;
/// returns the image ID.
fn uploaded_image(admin: &User, work: &Path) -> String {
    let dir = work.join("approot");
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
    std::fs::copy(
        repo_root().join("apps/samples/hello/app_manifest.json"),
        dir.join("app_manifest.json"),
    )
    .expect("manifest");
    std::fs::write(dir.join("bin/app"), b"\0asm\x0d\0\x01\0 stand-in component").expect("entry");
    let package = work.join("hello.imagepackage");
    admin.json(&[
        "image-package",
        "pack-application",
        "--package-directory",
        s(&dir),
        "--destination",
        s(&package),
        "--hardware-definitions",
        s(&repo_root().join("hardware/ferro_vboard")),
        "--target-definition-filename",
        "sample_appliance.json",
    ]);
    admin.json(&["developer-key", "add"]);
    let image = admin.json(&["image", "add", "--image", s(&package)]);
    image["id"].as_str().expect("image id").to_string()
}

#[test]
fn targeted_images_deployment_status_and_update_now() {
    let service = Service::start(&[]);
    let admin = User::new();
    admin.login_as_admin(&service, PASSWORD);
    admin.json(&["tenant", "create", "--name", "Contoso"]);
    admin.json(&["product", "create", "--name", "Coffee Maker"]);
    let work = tempfile::tempdir().expect("temp dir");
    let device = claimed_device(&admin, work.path());
    let idle = claimed_device(&admin, work.path());

    // Not in a group: Retail OS only (none published here), apps not managed.
    let targeted = admin.json(&["device", "image", "list-targeted", "--device", &device]);
    assert_eq!(targeted["deviceId"], device.as_str(), "{targeted}");
    assert_eq!(targeted["targetVersion"], 1);
    assert_eq!(targeted["manageApps"], false);
    assert_eq!(targeted["images"], serde_json::json!([]));

    // Into Field Test (UpdateAll) with a deployment: the app is targeted, the version grows.
    admin.json(&[
        "device",
        "update",
        "--device",
        &device,
        "--device-group",
        GROUP,
    ]);
    let image_id = uploaded_image(&admin, work.path());
    admin.json(&[
        "device-group",
        "deployment",
        "create",
        "--device-group",
        GROUP,
        "--images",
        &image_id,
    ]);
    let targeted = admin.json(&["device", "image", "list-targeted", "--device", &device]);
    assert_eq!(targeted["targetVersion"], 2, "{targeted}");
    assert_eq!(targeted["manageApps"], true);
    let images = targeted["images"].as_array().expect("images");
    assert_eq!(images.len(), 1, "{targeted}");
    assert_eq!(images[0]["imageId"], image_id.as_str());
    assert_eq!(images[0]["kind"], "App");
    assert_eq!(images[0]["packageSha256"].as_str().map(str::len), Some(64));
    assert!(targeted["expiresAt"].is_string());
    // The table lists the images and says the version on standard error.
    let output = admin.run(&["device", "image", "list-targeted", "--device", &device]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&image_id), "{stdout}");
    assert!(stdout.contains("Package SHA-256"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Target set version 2"), "{stderr}");

    // Deployment status: the version computed, nothing reported yet.
    let status = admin.json(&["device", "show-deployment-status", "--device", &device]);
    assert_eq!(status["deviceId"], device.as_str(), "{status}");
    assert_eq!(status["targetVersion"], 2);
    assert_eq!(status["state"], serde_json::Value::Null);
    let output = admin.run(&["device", "show-deployment-status", "--device", &device]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("(never reported)"), "{stdout}");
    let status = admin.json(&["device", "show-deployment-status", "--device", &idle]);
    assert_eq!(status["targetVersion"], serde_json::Value::Null, "{status}");

    // Update now: the group by PRODUCT/GROUP name and by ID, then one device.
    let by_name = admin.json(&["device-group", "update-now", "--device-group", GROUP]);
    assert_eq!(by_name["deviceCount"], 1, "{by_name}");
    let group_id = admin.json(&["device-group", "show", "--device-group", GROUP])["id"]
        .as_str()
        .expect("group id")
        .to_string();
    let by_id = admin.json(&["device-group", "update-now", "--device-group", &group_id]);
    assert_eq!(by_id["deviceCount"], 1);
    assert!(
        by_id["signal"].as_str() > by_name["signal"].as_str(),
        "signals are ordered: {by_name} {by_id}"
    );
    let one = admin.json(&["device", "update-now", "--device", &idle]);
    assert_eq!(one["deviceCount"], 1, "{one}");
    let output = admin.run(&["device-group", "update-now", "--device-group", GROUP]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("Devices told to check now"));

    // Unknown device or group.
    let stderr = admin.fails(&["device", "update-now", "--device", &"0".repeat(128)]);
    assert!(stderr.contains("not_found"), "{stderr}");
    let stderr = admin.fails(&[
        "device-group",
        "update-now",
        "--device-group",
        "Coffee Maker/No Such Group",
    ]);
    assert!(stderr.contains("no device group"), "{stderr}");
    // A malformed device ID is refused by the CLI itself, saying what a device ID is.
    let stderr = admin.fails(&["device", "show-deployment-status", "--device", "xyz"]);
    assert!(
        stderr.contains("a device ID is 128 hexadecimal characters"),
        "{stderr}"
    );
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn rollout_in_waves_show_pause_resume() {
    let service = Service::start(&[]);
    let admin = User::new();
    admin.login_as_admin(&service, PASSWORD);
    admin.json(&["tenant", "create", "--name", "Contoso"]);
    admin.json(&["product", "create", "--name", "Coffee Maker"]);
    let work = tempfile::tempdir().expect("temp dir");
    let device = claimed_device(&admin, work.path());
    admin.json(&[
        "device",
        "update",
        "--device",
        &device,
        "--device-group",
        GROUP,
    ]);
    let image_id = uploaded_image(&admin, work.path());
    let create = |waves: &str| {
        vec![
            "device-group",
            "deployment",
            "create",
            "--device-group",
            GROUP,
            "--images",
            &image_id,
            "--waves",
            waves,
            "--wave-wait-minutes",
            "60",
            "--max-failure-percent",
            "5",
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>()
    };

    // Bad waves: the service's specific refusal, and no deployment.
    let stderr = admin.fails(&args(&create("50,10,100")));
    assert!(stderr.contains("invalid_rollout"), "{stderr}");
    let stderr = admin.fails(&args(&create("10,50")));
    assert!(stderr.contains("must end at 100"), "{stderr}");
    let list = admin.json(&[
        "device-group",
        "deployment",
        "list",
        "--device-group",
        GROUP,
    ]);
    assert_eq!(list, serde_json::json!([]), "{list}");
    // --waves needs its wait and threshold.
    let stderr = admin.fails(&[
        "device-group",
        "deployment",
        "create",
        "--device-group",
        GROUP,
        "--images",
        &image_id,
        "--waves",
        "10,100",
    ]);
    assert!(stderr.contains("--wave-wait-minutes"), "{stderr}");

    let created = admin.json(&args(&create("10,50,100")));
    assert_eq!(
        created["rollout"],
        serde_json::json!({"waves": [10.0, 50.0, 100.0], "waveWaitSeconds": 3600,
            "maxFailurePercent": 5.0}),
        "{created}"
    );
    let deployment = created["id"].as_str().expect("id").to_string();
    // The group's current deployment by default.
    let shown = admin.json(&[
        "device-group",
        "deployment",
        "show-rollout",
        "--device-group",
        GROUP,
    ]);
    assert_eq!(shown["deploymentId"], deployment.as_str(), "{shown}");
    assert_eq!(shown["state"], "Rolling");
    assert_eq!(shown["currentWave"], 1);
    assert_eq!(shown["devicesInGroup"], 1);
    let output = admin.run(&[
        "device-group",
        "deployment",
        "show-rollout",
        "--device-group",
        GROUP,
    ]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("1 of 3 (10 % of the group)"), "{stdout}");
    assert!(stdout.contains("60 min"), "{stdout}");

    let rollout = |action: &str| {
        admin.json(&[
            "device-group",
            "deployment",
            action,
            "--device-group",
            GROUP,
            "--deployment",
            &deployment,
        ])
    };
    let paused = rollout("pause");
    assert_eq!(paused["state"], "Paused", "{paused}");
    assert_eq!(paused["pause"]["reason"], "Operator");
    let output = admin.run(&[
        "device-group",
        "deployment",
        "show-rollout",
        "--device-group",
        GROUP,
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("paused by an operator"), "{stdout}");
    let resumed = rollout("resume");
    assert_eq!(resumed["state"], "Rolling", "{resumed}");
    assert!(resumed["nextWaveAt"].is_string());

    // A deployment without waves supersedes it, and has no rollout of its own.
    admin.json(&[
        "device-group",
        "deployment",
        "create",
        "--device-group",
        GROUP,
        "--images",
        &image_id,
    ]);
    assert_eq!(rollout("show-rollout")["state"], "Superseded");
    let stderr = admin.fails(&[
        "device-group",
        "deployment",
        "show-rollout",
        "--device-group",
        GROUP,
    ]);
    assert!(stderr.contains("no_rollout"), "{stderr}");
    let stderr = admin.fails(&[
        "device-group",
        "deployment",
        "pause",
        "--device-group",
        GROUP,
        "--deployment",
        &deployment,
    ]);
    assert!(stderr.contains("rollout_not_active"), "{stderr}");
}
