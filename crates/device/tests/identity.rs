//! The data directory's privacy and its binding to its own root of trust, on software devices
//! provisioned in process with a test platform (no service): docs/device.md, "Data directory".

use std::path::Path;

use ferro_device::provision::{ProvisionOptions, provision};
use ferro_device::{DataDir, DeviceConfig, DeviceContext, DeviceError, Slot};
use ferro_image::{PackOptions, pack_os};
use ferro_pki::{KeyList, PlatformKeyRole, issue_platform_root_certificate};
use ferro_signing::SoftwareSigningKey;

/// A test platform: root certificate PEM, signed key list, factory OS bundle.
struct Platform {
    root_pem: std::path::PathBuf,
    key_list: Vec<u8>,
    os_image: std::path::PathBuf,
}

fn platform(work: &Path) -> Platform {
    let root = SoftwareSigningKey::generate();
    let os_key = SoftwareSigningKey::generate();
    let now = ferro_pki::time::OffsetDateTime::now_utc();
    let cert = issue_platform_root_certificate(&root, now).expect("root cert");
    let root_pem = work.join("root.pem");
    std::fs::write(&root_pem, cert.pem()).expect("write");
    let key_list = KeyList {
        version: 1,
        issued_at: now,
        keys: [
            (
                PlatformKeyRole::OsRelease,
                vec![os_key.public_key().clone()],
            ),
            (
                PlatformKeyRole::Capability,
                vec![os_key.public_key().clone()],
            ),
        ]
        .into_iter()
        .collect(),
    }
    .sign(&root)
    .expect("sign");
    let os_dir = work.join("os");
    std::fs::create_dir_all(os_dir.join("bin")).expect("mkdir");
    std::fs::write(os_dir.join("bin/ferro-device"), b"#!/bin/sh\n").expect("write");
    let os_image = work.join("os.imagepackage");
    pack_os(&os_dir, &PackOptions::default(), &os_key, &os_image).expect("pack");
    Platform {
        root_pem,
        key_list,
        os_image,
    }
}

fn provision_software(platform: &Platform, dir: &Path) -> DataDir {
    let dd = DataDir::new(dir);
    let opts = ProvisionOptions {
        data_dir: dd.clone(),
        service_url: "https://ferro.invalid".to_string(),
        platform_root_pem: platform.root_pem.clone(),
        os_image: platform.os_image.clone(),
        config: DeviceConfig::Software,
    };
    let key_list = platform.key_list.clone();
    provision(&opts, move |_, _| Ok(key_list)).expect("provision");
    dd
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
    let p = platform(work.path());
    let dd = provision_software(&p, &work.path().join("device"));
    for dir in [
        dd.root().to_path_buf(),
        dd.root().join("slots"),
        dd.slot_dir(Slot::A),
        dd.slot_dir(Slot::B),
        dd.slot_root(Slot::A),
    ] {
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
    let p = platform(work.path());
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
    for dir in [
        dd.root().to_path_buf(),
        dd.root().join("slots"),
        dd.slot_dir(Slot::A),
        dd.slot_dir(Slot::B),
        certs.clone(),
    ] {
        chmod(&dir, 0o755);
    }
    chmod(&certs.join("device-cert.pem"), 0o644);
    chmod(&certs.join("tenant-ca-chain.pem"), 0o664);

    DeviceContext::open(&dd).expect("open");

    for dir in [
        dd.root().to_path_buf(),
        dd.root().join("slots"),
        dd.slot_dir(Slot::A),
        dd.slot_dir(Slot::B),
        certs.clone(),
    ] {
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
    let p = platform(work.path());
    let mine = provision_software(&p, &work.path().join("mine"));
    let other = provision_software(&p, &work.path().join("other"));
    let my_id = DeviceContext::open(&mine).expect("open").device_id();
    let other_id = DeviceContext::open(&other).expect("open").device_id();
    assert_ne!(my_id, other_id);

    // Same platform (anchors, key list) but the other device's root of trust.
    std::fs::remove_dir_all(mine.rot_dir()).expect("rm");
    copy_dir(&other.rot_dir(), &mine.rot_dir());
    match DeviceContext::open(&mine) {
        Err(DeviceError::IdentityMismatch {
            registered,
            root_of_trust,
        }) => {
            assert_eq!(*registered, my_id);
            assert_eq!(*root_of_trust, other_id);
        }
        other => panic!("expected IdentityMismatch, got {other:?}"),
    }
    let message = DeviceContext::open(&mine).expect_err("refused").to_string();
    assert!(message.contains(&my_id.to_string()), "{message}");
    assert!(message.contains("refusing"), "{message}");
    // The loader refuses it too (it opens the same context).
    assert!(ferro_device::boot::plan_boot(&mine, 3).is_err());

    // A missing or forged registration record is refused as well (fail closed).
    std::fs::write(mine.registration(), b"not a record").expect("write");
    assert!(matches!(
        DeviceContext::open(&mine),
        Err(DeviceError::Document { .. })
    ));
    std::fs::remove_file(mine.registration()).expect("rm");
    assert!(DeviceContext::open(&mine).is_err());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}
