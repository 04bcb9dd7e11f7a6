//! What a provisioned device trusts, loaded and cross-checked at every boot: the root of trust
//! it was provisioned with, the write-once trust anchors in it, the registration record (which
//! must name the root of trust's keys) and the platform key list (signed by the anchored
//! platform root, not older than the one accepted before). `ferro-device` builds its
//! `DeviceContext` on this and adds the platform root certificate (TLS), which stage 0 never
//! reads.

use std::sync::Arc;

use ferro_documents::{
    DocumentError, MAX_KEY_LIST_LEN, MAX_REGISTRATION_RECORD_LEN, VerifiedKeyList, verify_key_list,
    verify_registration_record,
};
use ferro_signing::PublicKey;
use ferro_trust::{RootOfTrust, TrustAnchors};

use crate::BootError;
use crate::layout::{DataDir, DeviceConfig, read_bounded};

/// The counter holding the lowest key list version the device accepts (key list rollback).
pub const KEY_LIST_COUNTER: &str = "key-list-version";

/// Open the root of trust the device was provisioned with.
pub fn open_rot(
    data_dir: &DataDir,
    config: &DeviceConfig,
) -> Result<Arc<dyn RootOfTrust>, BootError> {
    match config {
        DeviceConfig::Software => Ok(Arc::new(ferro_trust::SoftwareRootOfTrust::open(
            data_dir.rot_dir(),
        )?)),
        #[cfg(feature = "tpm")]
        DeviceConfig::Tpm { tcti } => {
            crate::layout::create_private_dir(&data_dir.run_dir())?;
            Ok(Arc::new(ferro_trust::TpmRootOfTrust::open(
                &ferro_trust::TpmConfig {
                    tcti: tcti.clone(),
                    log_path: Some(data_dir.tpm_log()),
                },
            )?))
        }
        #[cfg(not(feature = "tpm"))]
        DeviceConfig::Tpm { .. } => Err(BootError::Unsupported(
            "this build has no TPM support (build with --features tpm)".to_string(),
        )),
    }
}

/// Verify key list bytes under the anchored root and against the rollback counter.
pub fn verify_key_list_bytes(
    bytes: &[u8],
    root: &PublicKey,
    rot: &dyn RootOfTrust,
) -> Result<VerifiedKeyList, BootError> {
    let list = verify_key_list(bytes, root).map_err(|source| BootError::Document {
        what: "platform key list (not signed by the anchored platform root?)",
        source,
    })?;
    let floor = rot.counter(KEY_LIST_COUNTER)?;
    if list.version() < floor {
        return Err(BootError::Document {
            what: "platform key list",
            source: DocumentError::InvalidField {
                field: "version",
                reason: "older than the key list the device already accepted (rollback)",
            },
        });
    }
    Ok(list)
}

/// A provisioned device's root of trust with what it anchors, cross-checked.
#[derive(Clone, Debug)]
pub struct DeviceTrust {
    /// The data directory.
    pub data_dir: DataDir,
    /// How the root of trust is reached.
    pub config: DeviceConfig,
    /// The root of trust (device key, measurements, counters, anchors).
    pub rot: Arc<dyn RootOfTrust>,
    /// The trust anchors read from the root of trust.
    pub anchors: TrustAnchors,
    /// The anchored platform root key.
    pub root_key: PublicKey,
    /// The platform key list, verified under `root_key`.
    pub key_list: VerifiedKeyList,
}

impl DeviceTrust {
    /// Load and cross-check a provisioned device: `device.json`, the root of trust, its
    /// anchors, the registration record against the root of trust's keys
    /// ([`check_registered_identity`]), the key list (signed by the anchored root, not older
    /// than the accepted one). Permissions a data directory of an older version left too open
    /// are tightened first ([`crate::layout::tighten_permissions`]).
    pub fn open(data_dir: &DataDir) -> Result<DeviceTrust, BootError> {
        let config = data_dir.read_config()?;
        crate::layout::tighten_permissions(data_dir)?;
        let rot = open_rot(data_dir, &config)?;
        let anchors =
            rot.read_trust_anchors()?
                .ok_or_else(|| BootError::RootOfTrustNotProvisioned {
                    data_dir: data_dir.root().to_path_buf(),
                    rot: config.describe(data_dir),
                })?;
        check_registered_identity(data_dir, rot.as_ref())?;
        let root_key = PublicKey::from_spki_der(&anchors.platform_root).map_err(|e| {
            BootError::PlatformRoot(format!("anchored platform root is not a P-256 key: {e}"))
        })?;
        let key_list = verify_key_list_bytes(
            &read_bounded(&data_dir.key_list(), MAX_KEY_LIST_LEN as u64)?,
            &root_key,
            rot.as_ref(),
        )?;
        Ok(DeviceTrust {
            data_dir: data_dir.clone(),
            config,
            rot,
            anchors,
            root_key,
            key_list,
        })
    }
}

/// Refuse a root of trust whose device key (or TPM attestation key) is not the one this data
/// directory's registration record names ([`BootError::IdentityMismatch`]).
pub fn check_registered_identity(
    data_dir: &DataDir,
    rot: &dyn RootOfTrust,
) -> Result<(), BootError> {
    let path = data_dir.registration();
    let bytes = read_bounded(&path, MAX_REGISTRATION_RECORD_LEN as u64)?;
    let registered = verify_registration_record(&bytes).map_err(|source| BootError::Document {
        what: "registration record (registration.cose)",
        source,
    })?;
    let record = registered.record();
    let key_matches = record.device_key == rot.public_key();
    let attestation_matches = match &record.tpm_attestation_key {
        Some(registered_ak) => rot.attestation_key().as_ref() == Some(registered_ak),
        None => true,
    };
    if key_matches && attestation_matches {
        return Ok(());
    }
    Err(BootError::IdentityMismatch {
        registered: Box::new(registered.device_id()),
        root_of_trust: Box::new(rot.device_id()),
    })
}
