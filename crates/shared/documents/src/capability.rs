//! Device capability files (docs/design.md §2 and §5): signed by the platform capability key,
//! each bound to one device ID. Format in `docs/identity-documents.md`.

use ciborium::value::Value;
use ferro_signing::{DeviceId, KeyId, Purpose, Signer, TrustedKeys, sign1, verify1};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::cbor;
use crate::error::DocumentError;

/// The largest capability file accepted (8 KiB).
pub const MAX_CAPABILITY_FILE_LEN: usize = 8 * 1024;
/// The most developer keys one appDevelopment capability may list.
pub const MAX_DEVELOPER_KEYS: usize = 32;
const FORMAT_VERSION: u64 = 1;

const K_VERSION: u64 = 1;
const K_DEVICE_ID: u64 = 2;
const K_TYPE: u64 = 3;
const K_ISSUED_AT: u64 = 4;
const K_DEVELOPER_KEYS: u64 = 5;
const K_MAX: u64 = 5;

const TYPE_APP_DEVELOPMENT: u64 = 1;
const TYPE_FIELD_SERVICING: u64 = 2;

/// What a capability file grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// appDevelopment: debugging and sideloading, where test-signed images are accepted only if
    /// signed by one of these developer keys (1 to 32, kept sorted and unique). Going beyond
    /// Azure Sphere: no shared test key can sideload onto the device.
    AppDevelopment {
        /// Key IDs of the developer keys the device accepts test-signed images from.
        developer_keys: Vec<KeyId>,
    },
    /// fieldServicing: local device API operations for servicing, no sideloading.
    FieldServicing,
}

impl Capability {
    /// Azure Sphere's name (`AppDevelopment`, `FieldServicing`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Capability::AppDevelopment { .. } => "AppDevelopment",
            Capability::FieldServicing => "FieldServicing",
        }
    }
}

/// A capability file's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityFile {
    /// The one device it is for.
    pub device_id: DeviceId,
    /// What it grants.
    pub capability: Capability,
    /// When it was issued (whole seconds).
    pub issued_at: OffsetDateTime,
}

impl CapabilityFile {
    /// An appDevelopment capability; `developer_keys` are sorted and deduplicated.
    pub fn app_development(
        device_id: DeviceId,
        mut developer_keys: Vec<KeyId>,
        issued_at: OffsetDateTime,
    ) -> CapabilityFile {
        developer_keys.sort();
        developer_keys.dedup();
        CapabilityFile {
            device_id,
            capability: Capability::AppDevelopment { developer_keys },
            issued_at,
        }
    }

    /// The deterministic CBOR payload.
    pub fn to_cbor(&self) -> Result<Vec<u8>, DocumentError> {
        let mut map = vec![
            (cbor::uint(K_VERSION), cbor::uint(FORMAT_VERSION)),
            (
                cbor::uint(K_DEVICE_ID),
                Value::Bytes(self.device_id.as_bytes().to_vec()),
            ),
        ];
        let keys = match &self.capability {
            Capability::AppDevelopment { developer_keys } => {
                if developer_keys.is_empty() || developer_keys.len() > MAX_DEVELOPER_KEYS {
                    return Err(DocumentError::InvalidField {
                        field: "developer_keys",
                        reason: "an appDevelopment capability lists 1 to 32 developer keys",
                    });
                }
                if !developer_keys
                    .windows(2)
                    .all(|w| matches!(w, [a, b] if a < b))
                {
                    return Err(DocumentError::InvalidField {
                        field: "developer_keys",
                        reason: "must be sorted and unique",
                    });
                }
                map.push((cbor::uint(K_TYPE), cbor::uint(TYPE_APP_DEVELOPMENT)));
                Some(Value::Array(
                    developer_keys
                        .iter()
                        .map(|k| Value::Bytes(k.as_bytes().to_vec()))
                        .collect(),
                ))
            }
            Capability::FieldServicing => {
                map.push((cbor::uint(K_TYPE), cbor::uint(TYPE_FIELD_SERVICING)));
                None
            }
        };
        map.push((
            cbor::uint(K_ISSUED_AT),
            cbor::uint(cbor::secs_from_time(self.issued_at, "issued_at")?),
        ));
        if let Some(keys) = keys {
            map.push((cbor::uint(K_DEVELOPER_KEYS), keys));
        }
        cbor::encode(&Value::Map(map))
    }

    /// Decode a payload strictly (no signature check; see [`verify_capability`]).
    pub fn from_cbor(bytes: &[u8]) -> Result<CapabilityFile, DocumentError> {
        let mut f = cbor::decode_map(bytes, MAX_CAPABILITY_FILE_LEN, K_MAX)?;
        cbor::check_version(&mut f, FORMAT_VERSION)?;
        let id = cbor::as_bytes(
            cbor::required(&mut f, K_DEVICE_ID, "device_id")?,
            "device_id",
            64,
            64,
        )?;
        let device_id = DeviceId::from_slice(&id).ok_or(DocumentError::InvalidField {
            field: "device_id",
            reason: "not 64 bytes",
        })?;
        let kind = cbor::as_uint(cbor::required(&mut f, K_TYPE, "type")?, "type")?;
        let issued_at = cbor::as_time(
            cbor::required(&mut f, K_ISSUED_AT, "issued_at")?,
            "issued_at",
        )?;
        let keys = cbor::take(&mut f, K_DEVELOPER_KEYS);
        let capability = match (kind, keys) {
            (TYPE_APP_DEVELOPMENT, Some(keys)) => {
                let keys = cbor::as_array(keys, "developer_keys", 1, MAX_DEVELOPER_KEYS)?;
                let developer_keys = keys
                    .into_iter()
                    .map(|k| {
                        let b = cbor::as_bytes(k, "developer_keys", 32, 32)?;
                        KeyId::from_slice(&b).ok_or(DocumentError::InvalidField {
                            field: "developer_keys",
                            reason: "a key ID is 32 bytes",
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Capability::AppDevelopment { developer_keys }
            }
            (TYPE_APP_DEVELOPMENT, None) => {
                return Err(DocumentError::MissingField("developer_keys"));
            }
            (TYPE_FIELD_SERVICING, None) => Capability::FieldServicing,
            (TYPE_FIELD_SERVICING, Some(_)) => {
                return Err(DocumentError::InvalidField {
                    field: "developer_keys",
                    reason: "only appDevelopment lists developer keys",
                });
            }
            _ => {
                return Err(DocumentError::InvalidField {
                    field: "type",
                    reason: "unknown capability type",
                });
            }
        };
        let file = CapabilityFile {
            device_id,
            capability,
            issued_at,
        };
        cbor::check_canonical(bytes, &file.to_cbor()?)?;
        Ok(file)
    }

    /// Sign with the platform capability key ([`Purpose::CapabilityFile`], empty external AAD).
    pub fn sign(&self, capability_key: &dyn Signer) -> Result<Vec<u8>, DocumentError> {
        let payload = self.to_cbor()?;
        Ok(sign1(
            capability_key,
            Purpose::CapabilityFile,
            &payload,
            &[],
        )?)
    }
}

/// A capability file that verified with a trusted capability key and names this device. Only
/// [`verify_capability`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCapability {
    file: CapabilityFile,
    signer: KeyId,
}

impl VerifiedCapability {
    /// The device (equal to the `expected_device` it was verified for).
    pub fn device_id(&self) -> DeviceId {
        self.file.device_id
    }

    /// What it grants.
    pub fn capability(&self) -> &Capability {
        &self.file.capability
    }

    /// When it was issued.
    pub fn issued_at(&self) -> OffsetDateTime {
        self.file.issued_at
    }

    /// The capability key that signed it.
    pub fn signer(&self) -> KeyId {
        self.signer
    }

    /// Whether a test-signed image signed by `key` may be accepted: only under appDevelopment,
    /// only for a listed developer key.
    pub fn allows_test_key(&self, key: &KeyId) -> bool {
        match &self.file.capability {
            Capability::AppDevelopment { developer_keys } => {
                developer_keys.iter().fold(false, |found, k| {
                    found | bool::from(k.as_bytes().ct_eq(key.as_bytes()))
                })
            }
            Capability::FieldServicing => false,
        }
    }
}

/// Verify a capability file: strict COSE profile, [`Purpose::CapabilityFile`], signed by one of
/// `trusted_capability_keys`, strict payload, and bound to `expected_device` (another device's
/// file is refused with [`DocumentError::WrongDevice`]).
pub fn verify_capability(
    bytes: &[u8],
    trusted_capability_keys: &TrustedKeys,
    expected_device: &DeviceId,
) -> Result<VerifiedCapability, DocumentError> {
    if bytes.len() > MAX_CAPABILITY_FILE_LEN {
        return Err(DocumentError::TooLarge {
            len: bytes.len(),
            max: MAX_CAPABILITY_FILE_LEN,
        });
    }
    let verified = verify1(bytes, Purpose::CapabilityFile, trusted_capability_keys, &[])?;
    let file = CapabilityFile::from_cbor(verified.payload())?;
    if !bool::from(file.device_id.as_bytes().ct_eq(expected_device.as_bytes())) {
        return Err(DocumentError::WrongDevice {
            document: Purpose::CapabilityFile,
            expected: Box::new(*expected_device),
            found: Box::new(file.device_id),
        });
    }
    Ok(VerifiedCapability {
        file,
        signer: verified.key_id(),
    })
}
