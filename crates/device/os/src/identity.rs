//! The device's identity and trust material: root of trust, trust anchors, platform root
//! certificate and the platform key list, loaded and cross-checked into a [`DeviceContext`].

use std::sync::Arc;

use ferro_boot::DeviceTrust;
use ferro_pki::{
    Certificate, ManufacturingState, RegistrationRecord, VerifiedKeyList,
    verify_certificate_signature,
};
use ferro_signing::{DeviceId, PublicKey};
use ferro_trust::{MeasurementEvent, RootOfTrust, RootOfTrustKind, TrustAnchors};
use sha2::{Digest, Sha256};

use crate::DeviceError;
use crate::layout::{DataDir, DeviceConfig, MANUFACTURING_COUNTER, read_bounded, write_atomic};

pub use ferro_boot::trust::{
    KEY_LIST_COUNTER, check_registered_identity, open_rot, verify_key_list_bytes,
};

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
    /// Load and cross-check a provisioned device as the boot loader does
    /// ([`ferro_boot::DeviceTrust::open`]: root of trust, anchors, the registration record
    /// against the root of trust's keys, key list), then the platform root certificate (same
    /// key as anchored, self-signed), which the OS needs for TLS and stage 0 never reads.
    ///
    /// A data directory booted on a root of trust other than its own (another TPM, another
    /// device's `rot/`) is refused with [`ferro_boot::BootError::IdentityMismatch`] instead of
    /// running under a device ID its registration and certificate do not match.
    pub fn open(data_dir: &DataDir) -> Result<DeviceContext, DeviceError> {
        let DeviceTrust {
            data_dir,
            config,
            rot,
            anchors,
            root_key,
            key_list,
        } = DeviceTrust::open(data_dir)?;
        let pem_path = data_dir.platform_root();
        let platform_root = PlatformRoot::from_pem(&read_bounded(&pem_path, MAX_PEM_LEN)?)?;
        if platform_root.public_key != root_key {
            return Err(DeviceError::PlatformRoot(format!(
                "{} does not hold the anchored platform root key",
                pem_path.display()
            )));
        }
        Ok(DeviceContext {
            service_url: anchors.service_url.clone(),
            data_dir,
            config,
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
    // TPM: the EK certificate its manufacturer stored in NV, if any. One that is not one DER
    // X.509 certificate (or too large) is left out rather than making the device
    // unprovisionable: nothing relies on it yet.
    let tpm_ek_certificate = rot
        .ek_certificate()?
        .filter(|der| ferro_pki::check_ek_certificate(der).is_ok());
    let record = RegistrationRecord {
        device_key: rot.public_key(),
        root_of_trust: match rot.kind() {
            RootOfTrustKind::Software => ferro_pki::RootOfTrust::Software,
            RootOfTrustKind::Tpm => ferro_pki::RootOfTrust::Tpm,
        },
        tpm_ek_certificate,
        manufacturing_state: state,
        created_at: ferro_pki::time::OffsetDateTime::now_utc(),
        // TPM: the attestation key (a primary key, the same at every boot), which the service
        // will require on every quote; this makes the record format version 2.
        tpm_attestation_key: rot.attestation_key(),
    };
    let signed =
        record
            .sign(rot.device_key().as_ref())
            .map_err(|source| DeviceError::Document {
                what: "registration record",
                source,
            })?;
    write_atomic(&data_dir.registration(), &signed)?;
    Ok(())
}
