//! The device's identity and trust material: root of trust, trust anchors, platform root
//! certificate and the platform key list, loaded and cross-checked into a [`DeviceContext`].

use std::sync::Arc;

use ferro_pki::{
    Certificate, DocumentError, MAX_KEY_LIST_LEN, ManufacturingState, RegistrationRecord,
    VerifiedKeyList, verify_certificate_signature, verify_key_list, verify_registration_record,
};
use ferro_signing::{DeviceId, PublicKey};
use ferro_trust::{MeasurementEvent, RootOfTrust, RootOfTrustKind, TrustAnchors};
use sha2::{Digest, Sha256};

use crate::DeviceError;
use crate::layout::{DataDir, DeviceConfig, MANUFACTURING_COUNTER, read_bounded, write_atomic};

/// The counter holding the lowest key list version the device accepts (key list rollback).
pub const KEY_LIST_COUNTER: &str = "key-list-version";
/// Largest platform root PEM file read.
const MAX_PEM_LEN: u64 = 64 * 1024;

/// The platform root certificate and its public key (the key is what the device anchors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformRoot {
    /// The certificate, DER (the TLS trust anchor for the service).
    pub certificate_der: Vec<u8>,
    /// Its subject public key (the anchored key).
    pub public_key: PublicKey,
}

impl PlatformRoot {
    /// Parse a PEM file holding exactly one self-signed P-256 certificate.
    pub fn from_pem(text: &[u8]) -> Result<PlatformRoot, DeviceError> {
        let bad = |m: &str| DeviceError::PlatformRoot(m.to_string());
        let blocks = pem::parse_many(text).map_err(|e| bad(&format!("not PEM: {e}")))?;
        let [block] = blocks.as_slice() else {
            return Err(bad("expected exactly one PEM block"));
        };
        if block.tag() != "CERTIFICATE" {
            return Err(bad("the PEM block is not a CERTIFICATE"));
        }
        let der = block.contents().to_vec();
        let cert = Certificate::from_der(&der).map_err(|e| bad(&e.to_string()))?;
        let public_key = PublicKey::from_spki_der(cert.subject_public_key_info())
            .map_err(|e| bad(&format!("not an ECDSA P-256 key: {e}")))?;
        verify_certificate_signature(&der, &public_key)
            .map_err(|_| bad("not self-signed by its own key (not a root certificate)"))?;
        Ok(PlatformRoot {
            certificate_der: der,
            public_key,
        })
    }

    /// SHA-256 of the certificate, upper-case colon-separated hex (as `ferro-service init`
    /// prints it).
    pub fn fingerprint(&self) -> String {
        colon_hex(&Sha256::digest(&self.certificate_der))
    }
}

/// Upper-case colon-separated hex.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Open the root of trust the device was provisioned with.
pub fn open_rot(
    data_dir: &DataDir,
    config: &DeviceConfig,
) -> Result<Arc<dyn RootOfTrust>, DeviceError> {
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
        DeviceConfig::Tpm { .. } => Err(DeviceError::Unsupported(
            "this build has no TPM support (build with --features tpm)".to_string(),
        )),
    }
}

/// Verify key list bytes under the anchored root and against the rollback counter.
pub fn verify_key_list_bytes(
    bytes: &[u8],
    root: &PublicKey,
    rot: &dyn RootOfTrust,
) -> Result<VerifiedKeyList, DeviceError> {
    let list = verify_key_list(bytes, root).map_err(|source| DeviceError::Document {
        what: "platform key list (not signed by the anchored platform root?)",
        source,
    })?;
    let floor = rot.counter(KEY_LIST_COUNTER)?;
    if list.version() < floor {
        return Err(DeviceError::Document {
            what: "platform key list",
            source: DocumentError::InvalidField {
                field: "version",
                reason: "older than the key list the device already accepted (rollback)",
            },
        });
    }
    Ok(list)
}

/// Everything a provisioned device runs on. `crates/device/attest` (and every later device service)
/// gets this from `ferro-device run`.
#[derive(Clone, Debug)]
pub struct DeviceContext {
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
    /// The platform root certificate (its key equals `root_key`, checked at load).
    pub platform_root: PlatformRoot,
    /// The platform key list, verified under `root_key`.
    pub key_list: VerifiedKeyList,
    /// The security service's base URL (from the anchors).
    pub service_url: String,
}

impl DeviceContext {
    /// Load and cross-check a provisioned device: root of trust, anchors, platform root
    /// certificate (same key as anchored, self-signed), key list (signed by the anchored root,
    /// not older than the accepted one).
    ///
    /// The registration record must name the root of trust's device key (and, with a TPM, its
    /// attestation key): a data directory booted on a root of trust other than its own
    /// (another TPM, another device's `rot/`) is refused with [`DeviceError::IdentityMismatch`]
    /// instead of running under a device ID its registration and certificate do not match.
    /// Permissions a data directory of an older version left too open are tightened first
    /// ([`crate::layout::tighten_permissions`]).
    pub fn open(data_dir: &DataDir) -> Result<DeviceContext, DeviceError> {
        let config = data_dir.read_config()?;
        crate::layout::tighten_permissions(data_dir)?;
        let rot = open_rot(data_dir, &config)?;
        let anchors = rot
            .read_trust_anchors()?
            .ok_or_else(|| DeviceError::NotProvisioned(data_dir.root().to_path_buf()))?;
        check_registered_identity(data_dir, rot.as_ref())?;
        let root_key = PublicKey::from_spki_der(&anchors.platform_root).map_err(|e| {
            DeviceError::PlatformRoot(format!("anchored platform root is not a P-256 key: {e}"))
        })?;
        let pem_path = data_dir.platform_root();
        let platform_root = PlatformRoot::from_pem(&read_bounded(&pem_path, MAX_PEM_LEN)?)?;
        if platform_root.public_key != root_key {
            return Err(DeviceError::PlatformRoot(format!(
                "{} does not hold the anchored platform root key",
                pem_path.display()
            )));
        }
        let kl_path = data_dir.key_list();
        let key_list = verify_key_list_bytes(
            &read_bounded(&kl_path, MAX_KEY_LIST_LEN as u64)?,
            &root_key,
            rot.as_ref(),
        )?;
        Ok(DeviceContext {
            data_dir: data_dir.clone(),
            config,
            service_url: anchors.service_url.clone(),
            rot,
            anchors,
            root_key,
            platform_root,
            key_list,
        })
    }

    /// The device ID.
    pub fn device_id(&self) -> DeviceId {
        self.rot.device_id()
    }

    /// The manufacturing state (from its root-of-trust counter).
    pub fn manufacturing_state(&self) -> Result<ManufacturingState, DeviceError> {
        manufacturing_state(self.rot.as_ref())
    }

    /// Move the manufacturing state forward (equal is a no-op; backwards is
    /// [`DeviceError::ManufacturingStateBackwards`]) and re-sign `registration.cose`.
    pub fn set_manufacturing_state(&self, state: ManufacturingState) -> Result<(), DeviceError> {
        let current = self.manufacturing_state()?;
        if state < current {
            return Err(DeviceError::ManufacturingStateBackwards {
                current: current.as_str(),
                requested: state.as_str(),
            });
        }
        self.rot
            .advance_counter(MANUFACTURING_COUNTER, state.code())?;
        write_registration(&self.data_dir, self.rot.as_ref(), state)
    }

    /// Extend a measurement into the root of trust.
    pub fn measure(&self, event: &MeasurementEvent) -> Result<(), DeviceError> {
        self.rot.extend_measurement(event)?;
        Ok(())
    }
}

/// Refuse a root of trust whose device key (or TPM attestation key) is not the one this data
/// directory's registration record names.
pub fn check_registered_identity(
    data_dir: &DataDir,
    rot: &dyn RootOfTrust,
) -> Result<(), DeviceError> {
    let path = data_dir.registration();
    let bytes = read_bounded(&path, ferro_pki::MAX_REGISTRATION_RECORD_LEN as u64)?;
    let registered =
        verify_registration_record(&bytes).map_err(|source| DeviceError::Document {
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
    Err(DeviceError::IdentityMismatch {
        registered: Box::new(registered.device_id()),
        root_of_trust: Box::new(rot.device_id()),
    })
}

/// The manufacturing state held in the root of trust.
pub fn manufacturing_state(rot: &dyn RootOfTrust) -> Result<ManufacturingState, DeviceError> {
    let code = rot.counter(MANUFACTURING_COUNTER)?;
    ManufacturingState::from_code(code).ok_or_else(|| {
        DeviceError::Unsupported(format!("unknown manufacturing state counter value {code}"))
    })
}

/// Write `registration.cose`: the registration record with `state`, signed by the device key.
pub fn write_registration(
    data_dir: &DataDir,
    rot: &dyn RootOfTrust,
    state: ManufacturingState,
) -> Result<(), DeviceError> {
    let mut record = RegistrationRecord {
        device_key: rot.public_key(),
        root_of_trust: match rot.kind() {
            RootOfTrustKind::Software => ferro_pki::RootOfTrust::Software,
            RootOfTrustKind::Tpm => ferro_pki::RootOfTrust::Tpm,
        },
        // TPM: the EK certificate its manufacturer stored in NV, if any.
        tpm_ek_certificate: rot.ek_certificate()?,
        manufacturing_state: state,
        created_at: ferro_pki::time::OffsetDateTime::now_utc(),
        // TPM: the attestation key (a primary key, the same at every boot), which the service
        // will require on every quote; this makes the record format version 2.
        tpm_attestation_key: rot.attestation_key(),
    };
    let signed = match record.sign(rot.device_key().as_ref()) {
        // An EK certificate that is not one DER X.509 certificate (or too large) is left out
        // rather than making the device unprovisionable: nothing relies on it yet.
        Err(DocumentError::InvalidField {
            field: "tpm_ek_certificate",
            ..
        }) => {
            record.tpm_ek_certificate = None;
            record.sign(rot.device_key().as_ref())
        }
        other => other,
    }
    .map_err(|source| DeviceError::Document {
        what: "registration record",
        source,
    })?;
    write_atomic(&data_dir.registration(), &signed)
}
