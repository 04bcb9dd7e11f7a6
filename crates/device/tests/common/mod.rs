//! Shared by the device's end-to-end tests: an OS release of the real `ferro-device` binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferro_e2e::User;
use ferro_image::{PackOptions, Version, pack_os};
use ferro_signing::SoftwareSigningKey;

pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// What [`publish_factory_os`] made.
// Each test binary compiles this module and reads a different subset of the fields.
#[allow(dead_code)]
pub struct FactoryOs {
    /// The downloaded release (signed by the platform OS release key): the factory OS image.
    pub factory: PathBuf,
    /// The package as the build key signed it (not trusted by devices).
    pub built: PathBuf,
    /// The packed ferro-device binary.
    pub bin: PathBuf,
    /// The release's image ID.
    pub release_id: String,
}

/// Packs the real ferro-device (stripped, to keep the tests fast) as an OS bundle under a fresh
/// build key, registers that key, publishes the bundle to RetailEval (the service re-signs it
/// with the platform OS release key) and downloads the release into `work`. Returns the
/// downloaded package, the factory OS image a device is provisioned with.
pub fn publish_factory_os(
    admin: &User,
    work: &Path,
    version: Version,
    security_version: u32,
) -> FactoryOs {
    let os_dir = work.join("os");
    fs::create_dir_all(os_dir.join("bin")).expect("mkdir");
    let bin = os_dir.join("bin/ferro-device");
    fs::copy(env!("CARGO_BIN_EXE_ferro-device"), &bin).expect("copy binary");
    let _ = Command::new("strip").arg(&bin).status();
    let build_key = SoftwareSigningKey::generate();
    let build_pub = work.join("build.pub.pem");
    fs::write(&build_pub, build_key.public_key().to_pem()).expect("write");
    let built = work.join("os-built.imagepackage");
    let options = PackOptions {
        version,
        security_version,
        ..PackOptions::default()
    };
    pack_os(&os_dir, &options, &build_key, &built).expect("pack_os");
    admin.json(&["os-release", "key", "add", "--public-key", s(&build_pub)]);
    let release = admin.json(&[
        "os-release",
        "publish",
        "--image",
        s(&built),
        "--feed",
        "RetailEval",
    ]);
    let release_id = release["imageId"].as_str().expect("imageId").to_string();
    let factory = work.join("os-release.imagepackage");
    let out = admin.run(&[
        "os-release",
        "download",
        "--image",
        &release_id,
        "--destination",
        s(&factory),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    FactoryOs {
        factory,
        built,
        bin,
        release_id,
    }
}
