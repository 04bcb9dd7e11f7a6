//! Device ownership documents (`docs/identity-documents.md`): which tenant owns a device and the
//! tenant's image and metadata keys, signed by the platform tenant endorsement key of the key
//! list. A device learns from it whose target sets and production images to accept; without it
//! a device trusts no tenant key at all.

use ciborium::value::Value;
use ferro_signing::{DeviceId, KeyId, PublicKey, Purpose, Signer, TrustedKeys, sign1, verify1};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::cbor;
use crate::error::DocumentError;

/// The largest ownership document accepted (8 KiB).
pub const MAX_OWNERSHIP_LEN: usize = 8 * 1024;
/// The most keys of one kind (image, metadata) an ownership document lists (rotation overlap).
pub const MAX_TENANT_KEYS: usize = 4;
/// Version 1: fields 1 to 6 (a device that never changed tenant).
const FORMAT_VERSION_1: u64 = 1;
/// Version 2: version 1 plus field 7, the ownership epoch (required, at least 1).
const FORMAT_VERSION_2: u64 = 2;

const K_VERSION: u64 = 1;
const K_DEVICE_ID: u64 = 2;
const K_TENANT_ID: u64 = 3;
const K_ISSUED_AT: u64 = 4;
const K_IMAGE_KEYS: u64 = 5;
const K_METADATA_KEYS: u64 = 6;
const K_OWNERSHIP_EPOCH: u64 = 7;
const K_MAX: u64 = 7;

/// An ownership document's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceOwnership {
    /// The device.
    pub device_id: DeviceId,
    /// The tenant that claimed it.
    pub tenant_id: Uuid,
    /// When it was issued (whole seconds); a device keeps the newest it verified.
    pub issued_at: OffsetDateTime,
    /// Keys whose production signature on app and board-configuration images the device accepts
    /// (1 to [`MAX_TENANT_KEYS`], sorted by key ID in the encoding).
    pub image_keys: Vec<PublicKey>,
    /// Keys whose signature on target sets the device accepts (1 to [`MAX_TENANT_KEYS`]).
    pub metadata_keys: Vec<PublicKey>,
    /// How many times the device has changed tenant (transfer or reassignment) before this
    /// document: 0 is written as format version 1 (byte for byte as before), anything else as
    /// version 2 with field 7. A device accepts a document of another tenant than the one it
    /// holds only with a greater epoch, and never one with a smaller epoch.
    pub ownership_epoch: u64,
}

fn encode_keys(keys: &[PublicKey], field: &'static str) -> Result<Value, DocumentError> {
    if keys.is_empty() || keys.len() > MAX_TENANT_KEYS {
        return Err(DocumentError::InvalidField {
            field,
            reason: "lists 1 to 4 keys",
        });
    }
    let mut sorted: Vec<&PublicKey> = keys.iter().collect();
    sorted.sort_by_key(|k| k.key_id());
    if !sorted
        .windows(2)
        .all(|w| matches!(w, [a, b] if a.key_id() != b.key_id()))
    {
        return Err(DocumentError::InvalidField {
            field,
            reason: "a key is listed twice",
        });
    }
    Ok(Value::Array(
        sorted
            .into_iter()
            .map(|k| Value::Bytes(k.to_spki_der()))
            .collect(),
    ))
}

fn decode_keys(v: Value, field: &'static str) -> Result<Vec<PublicKey>, DocumentError> {
    cbor::as_array(v, field, 1, MAX_TENANT_KEYS)?
        .into_iter()
        .map(|k| {
            let der = cbor::as_bytes(k, field, 1, 256)?;
            PublicKey::from_spki_der(&der).map_err(|_| DocumentError::InvalidField {
                field,
                reason: "not an ECDSA P-256 SubjectPublicKeyInfo",
            })
        })
        .collect()
}

pub(crate) fn uuid_value(id: Uuid) -> Value {
    Value::Bytes(id.as_bytes().to_vec())
}

pub(crate) fn as_uuid(v: Value, field: &'static str) -> Result<Uuid, DocumentError> {
    let b = cbor::as_bytes(v, field, 16, 16)?;
    Uuid::from_slice(&b).map_err(|_| DocumentError::InvalidField {
        field,
        reason: "not a 16-byte UUID",
    })
}

pub(crate) fn as_device_id(v: Value, field: &'static str) -> Result<DeviceId, DocumentError> {
    let id = cbor::as_bytes(v, field, 64, 64)?;
    DeviceId::from_slice(&id).ok_or(DocumentError::InvalidField {
        field,
        reason: "not 64 bytes",
    })
}

impl DeviceOwnership {
    /// The deterministic CBOR payload.
    pub fn to_cbor(&self) -> Result<Vec<u8>, DocumentError> {
        let version = if self.ownership_epoch == 0 {
            FORMAT_VERSION_1
        } else {
            FORMAT_VERSION_2
        };
        let mut map = vec![
            (cbor::uint(K_VERSION), cbor::uint(version)),
            (
                cbor::uint(K_DEVICE_ID),
                Value::Bytes(self.device_id.as_bytes().to_vec()),
            ),
            (cbor::uint(K_TENANT_ID), uuid_value(self.tenant_id)),
            (
                cbor::uint(K_ISSUED_AT),
                cbor::uint(cbor::secs_from_time(self.issued_at, "issued_at")?),
            ),
            (
                cbor::uint(K_IMAGE_KEYS),
                encode_keys(&self.image_keys, "image_keys")?,
            ),
            (
                cbor::uint(K_METADATA_KEYS),
                encode_keys(&self.metadata_keys, "metadata_keys")?,
            ),
        ];
        if self.ownership_epoch > 0 {
            map.push((
                cbor::uint(K_OWNERSHIP_EPOCH),
                cbor::uint(self.ownership_epoch),
            ));
        }
        cbor::encode(&Value::Map(map))
    }

    /// Decode a payload strictly (no signature check; see [`verify_ownership`]).
    pub fn from_cbor(bytes: &[u8]) -> Result<DeviceOwnership, DocumentError> {
        let mut f = cbor::decode_map(bytes, MAX_OWNERSHIP_LEN, K_MAX)?;
        let version = cbor::check_version_in(&mut f, &[FORMAT_VERSION_1, FORMAT_VERSION_2])?;
        // Field 7 exists only in (and is required by) version 2, and is never 0 there: each
        // content has exactly one encoding.
        let ownership_epoch = match (version, cbor::take(&mut f, K_OWNERSHIP_EPOCH)) {
            (FORMAT_VERSION_1, None) => 0,
            (FORMAT_VERSION_1, Some(_)) => {
                return Err(DocumentError::UnknownKey(K_OWNERSHIP_EPOCH.to_string()));
            }
            (_, None) => return Err(DocumentError::MissingField("ownership_epoch")),
            (_, Some(v)) => match cbor::as_uint(v, "ownership_epoch")? {
                0 => {
                    return Err(DocumentError::InvalidField {
                        field: "ownership_epoch",
                        reason: "0 is written as format version 1",
                    });
                }
                n => n,
            },
        };
        let doc = DeviceOwnership {
            device_id: as_device_id(
                cbor::required(&mut f, K_DEVICE_ID, "device_id")?,
                "device_id",
            )?,
            tenant_id: as_uuid(
                cbor::required(&mut f, K_TENANT_ID, "tenant_id")?,
                "tenant_id",
            )?,
            issued_at: cbor::as_time(
                cbor::required(&mut f, K_ISSUED_AT, "issued_at")?,
                "issued_at",
            )?,
            image_keys: decode_keys(
                cbor::required(&mut f, K_IMAGE_KEYS, "image_keys")?,
                "image_keys",
            )?,
            metadata_keys: decode_keys(
                cbor::required(&mut f, K_METADATA_KEYS, "metadata_keys")?,
                "metadata_keys",
            )?,
            ownership_epoch,
        };
        cbor::check_canonical(bytes, &doc.to_cbor()?)?;
        Ok(doc)
    }

    /// Sign with the platform tenant endorsement key ([`Purpose::DeviceOwnership`]).
    pub fn sign(&self, endorsement_key: &dyn Signer) -> Result<Vec<u8>, DocumentError> {
        Ok(sign1(
            endorsement_key,
            Purpose::DeviceOwnership,
            &self.to_cbor()?,
            &[],
        )?)
    }
}

/// An ownership document that verified under a trusted endorsement key and names this device.
/// Only [`verify_ownership`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedOwnership {
    doc: DeviceOwnership,
    signer: KeyId,
}

impl VerifiedOwnership {
    /// The content.
    pub fn document(&self) -> &DeviceOwnership {
        &self.doc
    }

    /// The owning tenant.
    pub fn tenant_id(&self) -> Uuid {
        self.doc.tenant_id
    }

    /// The tenant image keys, as a trust set for image verification.
    pub fn image_keys(&self) -> TrustedKeys {
        self.doc.image_keys.iter().cloned().collect()
    }

    /// The tenant metadata keys, as a trust set for target set verification.
    pub fn metadata_keys(&self) -> TrustedKeys {
        self.doc.metadata_keys.iter().cloned().collect()
    }

    /// The endorsement key that signed it.
    pub fn signer(&self) -> KeyId {
        self.signer
    }
}

/// Verify an ownership document: strict COSE profile, [`Purpose::DeviceOwnership`], signed by one
/// of `trusted_endorsement_keys` (the key list's tenant endorsement keys), strict payload, and
/// bound to `expected_device`.
pub fn verify_ownership(
    bytes: &[u8],
    trusted_endorsement_keys: &TrustedKeys,
    expected_device: &DeviceId,
) -> Result<VerifiedOwnership, DocumentError> {
    if bytes.len() > MAX_OWNERSHIP_LEN {
        return Err(DocumentError::TooLarge {
            len: bytes.len(),
            max: MAX_OWNERSHIP_LEN,
        });
    }
    let verified = verify1(
        bytes,
        Purpose::DeviceOwnership,
        trusted_endorsement_keys,
        &[],
    )?;
    let doc = DeviceOwnership::from_cbor(verified.payload())?;
    if !bool::from(doc.device_id.as_bytes().ct_eq(expected_device.as_bytes())) {
        return Err(DocumentError::WrongDevice {
            document: Purpose::DeviceOwnership,
            expected: Box::new(*expected_device),
            found: Box::new(doc.device_id),
        });
    }
    Ok(VerifiedOwnership {
        doc,
        signer: verified.key_id(),
    })
}
