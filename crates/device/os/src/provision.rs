//! `ferro-device provision`: create the device identity and install the factory OS bundle.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use ferro_pki::{MAX_KEY_LIST_LEN, ManufacturingState};
use ferro_signing::DeviceId;
use ferro_trust::TrustAnchors;

use crate::DeviceError;
use crate::identity::{
    KEY_LIST_COUNTER, PlatformRoot, open_rot, verify_key_list_bytes, write_registration,
};
use crate::layout::{
    BootState, DataDir, DeviceConfig, OS_FLOOR_COUNTER, Slot, create_private_dir, read_bounded,
    write_atomic, write_json,
};
use crate::os::verify_os_package;

/// What provisioning needs.
#[derive(Clone, Debug)]
pub struct ProvisionOptions {
    /// The data directory (created if missing; must not be provisioned).
    pub data_dir: DataDir,
    /// The security service's base URL (anchored).
    pub service_url: String,
    /// The platform root certificate, PEM.
    pub platform_root_pem: PathBuf,
    /// The factory OS bundle (signed by a platform OS release key).
    pub os_image: PathBuf,
    /// The root of trust to use.
    pub config: DeviceConfig,
}

/// Provision a device. `fetch_key_list(service_url, platform_root)` returns the key list bytes
/// (over TLS trusting only the platform root); they are verified here under the root key.
///
/// Everything that can fail for reasons outside the device (key list, OS bundle) is checked
/// **before** the trust anchors are written, because with a TPM they can never be rewritten.
pub fn provision(
    opts: &ProvisionOptions,
    fetch_key_list: impl FnOnce(&str, &PlatformRoot) -> Result<Vec<u8>, DeviceError>,
) -> Result<DeviceId, DeviceError> {
    let dd = &opts.data_dir;
    if dd.is_provisioned() || fs::symlink_metadata(dd.boot_state()).is_ok() {
        return Err(DeviceError::AlreadyProvisioned(dd.root().to_path_buf()));
    }
    let platform_root = PlatformRoot::from_pem(&read_bounded(&opts.platform_root_pem, 64 * 1024)?)?;
    let anchors = TrustAnchors {
        platform_root: platform_root.public_key.to_spki_der(),
        service_url: opts.service_url.clone(),
    };
    anchors.encode()?; // size and emptiness, before anything is written
    let before = Snapshot::take(dd.root());
    let result = provision_into(opts, platform_root, anchors, fetch_key_list);
    if result.is_err() {
        // A failed provisioning leaves the data directory as it found it.
        before.restore(dd.root());
    }
    result
}

/// The steps of [`provision`] that write into the data directory.
fn provision_into(
    opts: &ProvisionOptions,
    platform_root: PlatformRoot,
    anchors: TrustAnchors,
    fetch_key_list: impl FnOnce(&str, &PlatformRoot) -> Result<Vec<u8>, DeviceError>,
) -> Result<DeviceId, DeviceError> {
    let dd = &opts.data_dir;
    create_private_dir(dd.root())?;
    let rot = open_rot(dd, &opts.config)?;
    if rot.read_trust_anchors()?.is_some() {
        return Err(DeviceError::RootOfTrustAlreadyProvisioned {
            rot: opts.config.describe(dd),
            data_dir: dd.root().to_path_buf(),
        });
    }

    let key_list_bytes = fetch_key_list(&opts.service_url, &platform_root)?;
    if key_list_bytes.len() > MAX_KEY_LIST_LEN {
        return Err(DeviceError::Service("key list too large".to_string()));
    }
    let key_list = verify_key_list_bytes(&key_list_bytes, &platform_root.public_key, rot.as_ref())?;

    let floor = rot.counter(crate::layout::OS_FLOOR_COUNTER)?;
    create_private_dir(&dd.slot_dir(Slot::A))?;
    // Copy first, then verify the copy: the package kept for re-verification at every boot is
    // exactly the one verified here.
    let package = fs::read(&opts.os_image).map_err(DeviceError::io(&opts.os_image))?;
    write_atomic(&dd.slot_package(Slot::A), &package)?;
    drop(package);
    let image = match verify_os_package(
        &dd.slot_package(Slot::A),
        &key_list,
        floor,
        Some(&dd.slot_root(Slot::A)),
    ) {
        Ok(image) => image,
        Err(e) => {
            let _ = fs::remove_file(dd.slot_package(Slot::A));
            return Err(e.into());
        }
    };

    rot.write_trust_anchors(&anchors)?;
    write_atomic(
        &dd.platform_root(),
        pem::encode(&pem::Pem::new(
            "CERTIFICATE",
            platform_root.certificate_der.clone(),
        ))
        .as_bytes(),
    )?;
    write_atomic(&dd.key_list(), &key_list_bytes)?;
    rot.advance_counter(KEY_LIST_COUNTER, key_list.version())?;
    rot.advance_counter(
        OS_FLOOR_COUNTER,
        u64::from(image.metadata().security_version),
    )?;
    create_private_dir(&dd.slot_dir(Slot::B))?;
    dd.write_boot_state(&BootState {
        active: Slot::A,
        pending: None,
        last_good: None,
    })?;
    let state = crate::identity::manufacturing_state(rot.as_ref())?;
    debug_assert!(state >= ManufacturingState::Blank);
    write_registration(dd, rot.as_ref(), state)?;
    write_json(&dd.config(), &opts.config)?;
    Ok(rot.device_id())
}

/// Which entries of a data directory existed before provisioning (`None`: not the directory
/// itself either), so that a failed provisioning removes exactly what it created.
struct Snapshot(Option<HashSet<OsString>>);

impl Snapshot {
    fn take(root: &Path) -> Snapshot {
        Snapshot(
            fs::read_dir(root)
                .ok()
                .map(|entries| entries.flatten().map(|e| e.file_name()).collect()),
        )
    }

    /// Best effort: remove what was created since [`Snapshot::take`].
    fn restore(&self, root: &Path) {
        let Some(existing) = &self.0 else {
            let _ = fs::remove_dir_all(root);
            return;
        };
        for entry in fs::read_dir(root).into_iter().flatten().flatten() {
            if existing.contains(&entry.file_name()) {
                continue;
            }
            let path = entry.path();
            let _ = match entry.file_type() {
                Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
                _ => fs::remove_file(&path),
            };
        }
    }
}
