//! The data directory's privacy and its binding to its own root of trust, on software devices
//! provisioned in process with a test platform (no service): docs/device.md, "Data directory".

#[allow(dead_code)] // only `copy_dir` is used here
mod common;
mod platform;

use std::path::{Path, PathBuf};

use ferro_device::{BootError, DataDir, DeviceConfig, DeviceContext, DeviceError, Slot};
use platform::Platform;

fn provision_software(platform: &Platform, dir: &Path) -> DataDir {
    platform.provision(dir, DeviceConfig::Software)
}

/// The directories docs/device.md promises 0700.
fn private_dirs(dd: &DataDir) -> Vec<PathBuf> {
    vec![
        dd.root().to_path_buf(),
        dd.root().join("slots"),
        dd.slot_dir(Slot::A),
        dd.slot_dir(Slot::B),
    ]
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Provisioning makes every directory it creates 0700, `slots/` included (it used to be
/// created by `create_dir_all` with the umask's 0755), and every file 0600.
#[cfg(unix)]
#[test]
fn provisioning_creates_private_directories_and_files() {
    let work = tempfile::tempdir().expect("tempdir");
    let p = Platform::generate(work.path());
    let dd = provision_software(&p, &work.path().join("device"));
    for dir in private_dirs(&dd).into_iter().chain([dd.slot_root(Slot::A)]) {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for file in [
        dd.config(),
        dd.boot_state(),
        dd.registration(),
        dd.key_list(),
        dd.platform_root(),
        dd.slot_package(Slot::A),
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

/// A data directory an older version left with 0755 `slots/` and `certs/` and 0644
/// certificates is tightened when the device opens it; symbolic links are not followed.
#[cfg(unix)]
#[test]
fn opening_tightens_a_data_directory_left_too_open() {
    let work = tempfile::tempdir().expect("tempdir");
    let p = Platform::generate(work.path());
    let dd = provision_software(&p, &work.path().join("device"));
    let certs = dd.certificates();
    std::fs::create_dir_all(&certs).expect("mkdir");
    std::fs::write(certs.join("device-cert.pem"), "cert").expect("write");
    std::fs::write(certs.join("tenant-ca-chain.pem"), "chain").expect("write");
    // Something outside the data directory a link in certs/ points at: never chmod-ed.
    let outside = work.path().join("outside.txt");
    std::fs::write(&outside, "not the device's").expect("write");
    chmod(&outside, 0o644);
    std::os::unix::fs::symlink(&outside, certs.join("link.pem")).expect("symlink");
    for dir in private_dirs(&dd).into_iter().chain([certs.clone()]) {
        chmod(&dir, 0o755);
    }
    chmod(&certs.join("device-cert.pem"), 0o644);
    chmod(&certs.join("tenant-ca-chain.pem"), 0o664);

    DeviceContext::open(&dd).expect("open");

    for dir in private_dirs(&dd).into_iter().chain([certs.clone()]) {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    assert_eq!(mode(&certs.join("device-cert.pem")), 0o600);
    assert_eq!(mode(&certs.join("tenant-ca-chain.pem")), 0o600);
    assert_eq!(mode(&outside), 0o644, "a link's target is left alone");
}

/// A data directory whose `rot/` was replaced by another device's (the software counterpart
/// of booting on another TPM) is refused when opened, naming both devices, instead of running
/// as a device its registration record and certificate do not name.
#[test]
fn a_data_directory_with_another_devices_root_of_trust_is_refused() {
    let work = tempfile::tempdir().expect("tempdir");
    let p = Platform::generate(work.path());
    let mine = provision_software(&p, &work.path().join("mine"));
    let other = provision_software(&p, &work.path().join("other"));
    let my_id = DeviceContext::open(&mine).expect("open").device_id();
    let other_id = DeviceContext::open(&other).expect("open").device_id();
    assert_ne!(my_id, other_id);

    // Same platform (anchors, key list) but the other device's root of trust.
    std::fs::remove_dir_all(mine.rot_dir()).expect("rm");
    common::copy_dir(&other.rot_dir(), &mine.rot_dir());
    match DeviceContext::open(&mine) {
        Err(DeviceError::Boot(BootError::IdentityMismatch {
            registered,
            root_of_trust,
        })) => {
            assert_eq!(*registered, my_id);
            assert_eq!(*root_of_trust, other_id);
        }
        other => panic!("expected IdentityMismatch, got {other:?}"),
    }
    let message = DeviceContext::open(&mine).expect_err("refused").to_string();
    assert!(message.contains(&my_id.to_string()), "{message}");
    assert!(message.contains("refusing"), "{message}");
    // The loader refuses it too (it opens the same context).
    assert!(ferro_boot::plan_boot(&mine, 3).is_err());

    // A missing or forged registration record is refused as well (fail closed).
    std::fs::write(mine.registration(), b"not a record").expect("write");
    assert!(matches!(
        DeviceContext::open(&mine),
        Err(DeviceError::Boot(BootError::Document { .. }))
    ));
    std::fs::remove_file(mine.registration()).expect("rm");
    assert!(DeviceContext::open(&mine).is_err());
}
