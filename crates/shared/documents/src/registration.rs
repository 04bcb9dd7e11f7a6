//! Device registration records (docs/design.md §3.1; format in `docs/identity-documents.md`).
//! Made at manufacturing by `ferro-device provision`, signed by the device key the record
//! contains (proof of possession), uploaded by the manufacturer.

use ciborium::value::Value;
use ferro_signing::{
    DeviceId, PublicKey, Purpose, Signer, TrustedKeys, VerifyError, parse_unverified, sign1,
    verify1,
};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::cbor;
use crate::error::DocumentError;

/// The largest registration record envelope accepted (16 KiB).
pub const MAX_REGISTRATION_RECORD_LEN: usize = 16 * 1024;
/// The largest TPM endorsement key certificate (4 KiB).
pub const MAX_EK_CERTIFICATE_LEN: usize = 4096;
/// The largest device public key SubjectPublicKeyInfo (a P-256 SPKI is 91 bytes).
const MAX_SPKI_LEN: usize = 256;
/// Version 1: no attestation key (software records, and TPM records made before version 2).
const FORMAT_VERSION_1: u64 = 1;
/// Version 2: version 1 plus field 8, the TPM attestation key (required in version 2).
const FORMAT_VERSION_2: u64 = 2;

const K_VERSION: u64 = 1;
const K_DEVICE_ID: u64 = 2;
const K_DEVICE_KEY: u64 = 3;
const K_ROOT_OF_TRUST: u64 = 4;
const K_EK_CERT: u64 = 5;
const K_MANUFACTURING_STATE: u64 = 6;
const K_CREATED_AT: u64 = 7;
const K_ATTESTATION_KEY: u64 = 8;
const K_MAX: u64 = 8;

/// Where the device key lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RootOfTrust {
    /// A software root of trust (virtual devices, development).
    Software,
    /// A TPM 2.0.
    Tpm,
}

impl RootOfTrust {
    /// The CBOR code.
    pub const fn code(self) -> u64 {
        match self {
            RootOfTrust::Software => 1,
            RootOfTrust::Tpm => 2,
        }
    }

    /// The kind with this CBOR code.
    pub fn from_code(code: u64) -> Option<RootOfTrust> {
        match code {
            1 => Some(RootOfTrust::Software),
            2 => Some(RootOfTrust::Tpm),
            _ => None,
        }
    }

    /// `software` or `tpm`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RootOfTrust::Software => "software",
            RootOfTrust::Tpm => "tpm",
        }
    }
}

/// Manufacturing state; it only moves forward (the derived order is that order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ManufacturingState {
    /// Nothing done yet.
    Blank,
    /// Module manufacturing finished.
    Module1Complete,
    /// Device manufacturing finished (ready to ship).
    DeviceComplete,
}

impl ManufacturingState {
    /// The CBOR code.
    pub const fn code(self) -> u64 {
        match self {
            ManufacturingState::Blank => 0,
            ManufacturingState::Module1Complete => 1,
            ManufacturingState::DeviceComplete => 2,
        }
    }

    /// The state with this CBOR code.
    pub fn from_code(code: u64) -> Option<ManufacturingState> {
        match code {
            0 => Some(ManufacturingState::Blank),
            1 => Some(ManufacturingState::Module1Complete),
            2 => Some(ManufacturingState::DeviceComplete),
            _ => None,
        }
    }

    /// Azure Sphere's name (`Blank`, `Module1Complete`, `DeviceComplete`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ManufacturingState::Blank => "Blank",
            ManufacturingState::Module1Complete => "Module1Complete",
            ManufacturingState::DeviceComplete => "DeviceComplete",
        }
    }
}

/// The content of a registration record. The device ID is not a field: it is always derived
/// from `device_key` (and checked against the encoded one when reading).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationRecord {
    /// The device public key (its SHA-512 is the device ID).
    pub device_key: PublicKey,
    /// The root of trust holding the device key.
    pub root_of_trust: RootOfTrust,
    /// The TPM endorsement key certificate (DER), only with [`RootOfTrust::Tpm`].
    pub tpm_ek_certificate: Option<Vec<u8>>,
    /// The manufacturing state at the time of the record.
    pub manufacturing_state: ManufacturingState,
    /// When the record was made (whole seconds; fractions are dropped).
    pub created_at: OffsetDateTime,
    /// The TPM's attestation key (the restricted signing key whose TPM2_Quotes the service
    /// accepts for this device), only with [`RootOfTrust::Tpm`]. `Some` makes the record format
    /// version 2; `None` keeps version 1 (a TPM record without it cannot attest: the service
    /// fails closed).
    pub tpm_attestation_key: Option<PublicKey>,
}

impl RegistrationRecord {
    /// The device ID: SHA-512 of the device key's SubjectPublicKeyInfo.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::from_public_key(&self.device_key)
    }

    /// The format version this record is written in: 2 with an attestation key, else 1.
    pub fn format_version(&self) -> u64 {
        if self.tpm_attestation_key.is_some() {
            FORMAT_VERSION_2
        } else {
            FORMAT_VERSION_1
        }
    }

    fn validate(&self) -> Result<(), DocumentError> {
        match (&self.tpm_attestation_key, self.root_of_trust) {
            (Some(_), RootOfTrust::Software) => {
                return Err(DocumentError::InvalidField {
                    field: "tpm_attestation_key",
                    reason: "only a TPM root of trust has an attestation key",
                });
            }
            // The device key is unrestricted (it signs whatever it is given, so it could sign a
            // forged TPMS_ATTEST): it can never be the attestation key.
            (Some(ak), RootOfTrust::Tpm) if ak.to_spki_der() == self.device_key.to_spki_der() => {
                return Err(DocumentError::InvalidField {
                    field: "tpm_attestation_key",
                    reason: "the attestation key must not be the device key",
                });
            }
            _ => {}
        }
        match (&self.tpm_ek_certificate, self.root_of_trust) {
            (Some(_), RootOfTrust::Software) => Err(DocumentError::InvalidField {
                field: "tpm_ek_certificate",
                reason: "only a TPM root of trust has an EK certificate",
            }),
            (Some(cert), RootOfTrust::Tpm) => check_ek_certificate(cert),
            (None, _) => Ok(()),
        }
    }

    /// The deterministic CBOR payload (`docs/identity-documents.md`).
    pub fn to_cbor(&self) -> Result<Vec<u8>, DocumentError> {
        self.validate()?;
        let mut map = vec![
            (cbor::uint(K_VERSION), cbor::uint(self.format_version())),
            (
                cbor::uint(K_DEVICE_ID),
                Value::Bytes(self.device_id().as_bytes().to_vec()),
            ),
            (
                cbor::uint(K_DEVICE_KEY),
                Value::Bytes(self.device_key.to_spki_der()),
            ),
            (
                cbor::uint(K_ROOT_OF_TRUST),
                cbor::uint(self.root_of_trust.code()),
            ),
        ];
        if let Some(ek) = &self.tpm_ek_certificate {
            map.push((cbor::uint(K_EK_CERT), Value::Bytes(ek.clone())));
        }
        map.push((
            cbor::uint(K_MANUFACTURING_STATE),
            cbor::uint(self.manufacturing_state.code()),
        ));
        map.push((
            cbor::uint(K_CREATED_AT),
            cbor::uint(cbor::secs_from_time(self.created_at, "created_at")?),
        ));
        if let Some(ak) = &self.tpm_attestation_key {
            map.push((
                cbor::uint(K_ATTESTATION_KEY),
                Value::Bytes(ak.to_spki_der()),
            ));
        }
        cbor::encode(&Value::Map(map))
    }

    /// Decode a payload: strict (known keys, types, lengths, canonical form) and checks that the
    /// encoded device ID is the SHA-512 of the encoded key ([`DocumentError::DeviceIdMismatch`]).
    /// Versions 1 and 2 are read; field 8 exists only in (and is required by) version 2.
    /// Not a signature check: use [`verify_registration_record`].
    pub fn from_cbor(bytes: &[u8]) -> Result<RegistrationRecord, DocumentError> {
        let mut f = cbor::decode_map(bytes, MAX_REGISTRATION_RECORD_LEN, K_MAX)?;
        let version = cbor::check_version_in(&mut f, &[FORMAT_VERSION_1, FORMAT_VERSION_2])?;
        let ak = cbor::take(&mut f, K_ATTESTATION_KEY);
        let tpm_attestation_key = match (version, ak) {
            (FORMAT_VERSION_1, None) => None,
            (FORMAT_VERSION_1, Some(_)) => {
                return Err(DocumentError::UnknownKey(K_ATTESTATION_KEY.to_string()));
            }
            (_, None) => return Err(DocumentError::MissingField("tpm_attestation_key")),
            (_, Some(v)) => {
                let spki = cbor::as_bytes(v, "tpm_attestation_key", 1, MAX_SPKI_LEN)?;
                Some(
                    PublicKey::from_spki_der(&spki).map_err(|_| DocumentError::InvalidField {
                        field: "tpm_attestation_key",
                        reason: "not a P-256 SubjectPublicKeyInfo",
                    })?,
                )
            }
        };
        let claimed = cbor::as_bytes(
            cbor::required(&mut f, K_DEVICE_ID, "device_id")?,
            "device_id",
            64,
            64,
        )?;
        let claimed = DeviceId::from_slice(&claimed).ok_or(DocumentError::InvalidField {
            field: "device_id",
            reason: "not 64 bytes",
        })?;
        let spki = cbor::as_bytes(
            cbor::required(&mut f, K_DEVICE_KEY, "device_key")?,
            "device_key",
            1,
            MAX_SPKI_LEN,
        )?;
        let device_key =
            PublicKey::from_spki_der(&spki).map_err(|_| DocumentError::InvalidField {
                field: "device_key",
                reason: "not a P-256 SubjectPublicKeyInfo",
            })?;
        let rot = cbor::as_uint(
            cbor::required(&mut f, K_ROOT_OF_TRUST, "root_of_trust")?,
            "root_of_trust",
        )?;
        let root_of_trust = RootOfTrust::from_code(rot).ok_or(DocumentError::InvalidField {
            field: "root_of_trust",
            reason: "unknown root-of-trust kind",
        })?;
        let tpm_ek_certificate = cbor::take(&mut f, K_EK_CERT)
            .map(|v| cbor::as_bytes(v, "tpm_ek_certificate", 1, MAX_EK_CERTIFICATE_LEN))
            .transpose()?;
        let state = cbor::as_uint(
            cbor::required(&mut f, K_MANUFACTURING_STATE, "manufacturing_state")?,
            "manufacturing_state",
        )?;
        let manufacturing_state =
            ManufacturingState::from_code(state).ok_or(DocumentError::InvalidField {
                field: "manufacturing_state",
                reason: "unknown manufacturing state",
            })?;
        let created_at = cbor::as_time(
            cbor::required(&mut f, K_CREATED_AT, "created_at")?,
            "created_at",
        )?;
        let computed = DeviceId::from_public_key(&device_key);
        if !bool::from(computed.as_bytes().ct_eq(claimed.as_bytes())) {
            return Err(DocumentError::DeviceIdMismatch {
                claimed: Box::new(claimed),
            });
        }
        let record = RegistrationRecord {
            device_key,
            root_of_trust,
            tpm_ek_certificate,
            manufacturing_state,
            created_at,
            tpm_attestation_key,
        };
        cbor::check_canonical(bytes, &record.to_cbor()?)?;
        Ok(record)
    }

    /// Sign the record with the device key (`signer` must hold `device_key`, else
    /// [`DocumentError::WrongSigner`]). Returns the tagged COSE_Sign1
    /// ([`Purpose::RegistrationRecord`], empty external AAD).
    pub fn sign(&self, signer: &dyn Signer) -> Result<Vec<u8>, DocumentError> {
        if signer.key_id() != self.device_key.key_id() {
            return Err(DocumentError::WrongSigner(signer.key_id()));
        }
        let payload = self.to_cbor()?;
        Ok(sign1(signer, Purpose::RegistrationRecord, &payload, &[])?)
    }
}

/// The EK certificate must be one DER structure (a SEQUENCE, nothing after it) of at most
/// [`MAX_EK_CERTIFICATE_LEN`] bytes. That it is an X.509 certificate is checked by
/// `ferro_pki::check_ek_certificate` where records are made (provisioning) and accepted (the
/// service): this crate is in the boot TCB, which parses no X.509.
fn check_ek_certificate(bytes: &[u8]) -> Result<(), DocumentError> {
    use der::{Decode, Tagged};
    if bytes.len() > MAX_EK_CERTIFICATE_LEN {
        return Err(DocumentError::InvalidField {
            field: "tpm_ek_certificate",
            reason: "longer than 4096 bytes",
        });
    }
    match der::AnyRef::from_der(bytes) {
        Ok(any) if any.tag() == der::Tag::Sequence => Ok(()),
        _ => Err(DocumentError::InvalidField {
            field: "tpm_ek_certificate",
            reason: "not one DER X.509 certificate",
        }),
    }
}

/// A registration record whose signature verified with the device key it contains and whose
/// device ID is that key's SHA-512. Only [`verify_registration_record`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRegistration {
    device_id: DeviceId,
    record: RegistrationRecord,
}

impl VerifiedRegistration {
    /// The device ID (= SHA-512 of the device key).
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The verified record.
    pub fn record(&self) -> &RegistrationRecord {
        &self.record
    }

    /// The record, consumed.
    pub fn into_record(self) -> RegistrationRecord {
        self.record
    }
}

/// Verify a signed registration record: strict COSE profile with
/// [`Purpose::RegistrationRecord`]; the signing key must be the record's own device key
/// ([`DocumentError::NotSignedByDeviceKey`] otherwise); signature; strict payload; device ID =
/// SHA-512 of the key ([`DocumentError::DeviceIdMismatch`]).
///
/// This proves possession of the device key, not that the device is genuine: whether to accept
/// a record (manufacturer's credentials, TPM EK chain) is the service's decision.
pub fn verify_registration_record(bytes: &[u8]) -> Result<VerifiedRegistration, DocumentError> {
    if bytes.len() > MAX_REGISTRATION_RECORD_LEN {
        return Err(DocumentError::TooLarge {
            len: bytes.len(),
            max: MAX_REGISTRATION_RECORD_LEN,
        });
    }
    let unverified = parse_unverified(bytes)?;
    if unverified.claimed_purpose != Purpose::RegistrationRecord {
        return Err(VerifyError::WrongPurpose {
            expected: Purpose::RegistrationRecord,
            found: unverified.claimed_purpose,
        }
        .into());
    }
    // Only to learn which key must have signed; nothing from it is returned.
    let claimed = RegistrationRecord::from_cbor(&unverified.unverified_payload)?;
    let device_kid = claimed.device_key.key_id();
    if unverified.claimed_kid != device_kid {
        return Err(DocumentError::NotSignedByDeviceKey {
            signed_by: unverified.claimed_kid,
            device_key: device_kid,
        });
    }
    let trusted: TrustedKeys = [claimed.device_key].into_iter().collect();
    let verified = verify1(bytes, Purpose::RegistrationRecord, &trusted, &[])?;
    let record = RegistrationRecord::from_cbor(verified.payload())?;
    Ok(VerifiedRegistration {
        device_id: record.device_id(),
        record,
    })
}
