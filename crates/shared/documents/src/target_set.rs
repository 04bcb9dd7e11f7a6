//! Update target sets (docs/design.md §3.5; `docs/updates.md`): what one device should run,
//! with a version that only grows and an expiry, signed by its tenant's metadata key. A device
//! verifies one against the metadata keys of its [`VerifiedOwnership`] and keeps the highest
//! version it accepted.

use ciborium::value::Value;
use ferro_signing::{DeviceId, KeyId, Purpose, Signer, sign1, verify1};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::cbor;
use crate::error::DocumentError;
use crate::ownership::{VerifiedOwnership, as_device_id, as_uuid, uuid_value};

/// The largest target set accepted (64 KiB).
pub const MAX_TARGET_SET_LEN: usize = 64 * 1024;
/// The most images one target set names (an OS bundle, a board configuration and apps).
pub const MAX_TARGET_IMAGES: usize = 64;
const FORMAT_VERSION: u64 = 1;

const K_VERSION: u64 = 1;
const K_DEVICE_ID: u64 = 2;
const K_TENANT_ID: u64 = 3;
const K_DEVICE_GROUP_ID: u64 = 4;
const K_SET_VERSION: u64 = 5;
const K_ISSUED_AT: u64 = 6;
const K_EXPIRES_AT: u64 = 7;
const K_MANAGE_APPS: u64 = 8;
const K_IMAGES: u64 = 9;
const K_MAX: u64 = 9;
const IMAGE_FIELDS: usize = 8;

/// What kind of image a target names (codes as in the image package format).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetKind {
    /// A high-level application.
    App,
    /// A real-time application.
    RtApp,
    /// The OS bundle.
    Os,
    /// A board configuration.
    BoardConfig,
}

impl TargetKind {
    const ALL: [TargetKind; 4] = [
        TargetKind::App,
        TargetKind::RtApp,
        TargetKind::Os,
        TargetKind::BoardConfig,
    ];

    /// The CBOR code.
    pub const fn code(self) -> u64 {
        match self {
            TargetKind::App => 1,
            TargetKind::RtApp => 2,
            TargetKind::Os => 3,
            TargetKind::BoardConfig => 4,
        }
    }

    /// Azure Sphere's name (`App`, `RtApp`, `Os`, `BoardConfig`).
    pub const fn as_str(self) -> &'static str {
        match self {
            TargetKind::App => "App",
            TargetKind::RtApp => "RtApp",
            TargetKind::Os => "Os",
            TargetKind::BoardConfig => "BoardConfig",
        }
    }

    fn from_code(code: u64) -> Option<TargetKind> {
        TargetKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// One image a device should run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetImage {
    /// Its component (one image per component in a set).
    pub component_id: Uuid,
    /// The image ID in its signed metadata.
    pub image_id: Uuid,
    /// Its kind.
    pub kind: TargetKind,
    /// Its version text (`major.minor.patch`), for display and reports.
    pub version: String,
    /// Its security version (the device refuses one below the component's floor).
    pub security_version: u32,
    /// SHA-256 of the whole package file: the download address and the first check.
    pub package_sha256: [u8; 32],
    /// The package's size in bytes (the device reserves space and bounds the download).
    pub package_size: u64,
    /// SHA-256 of the payload, as in the signed metadata.
    pub payload_sha256: [u8; 32],
}

/// A target set's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSet {
    /// The one device it is for.
    pub device_id: DeviceId,
    /// The device's tenant.
    pub tenant_id: Uuid,
    /// The device group it was computed from (none: the device is in no group).
    pub device_group_id: Option<Uuid>,
    /// Grows whenever the content changes (>= 1); a device refuses a lower one.
    pub version: u64,
    /// The service's time when it was signed (the device's notion of "now" for the expiry).
    pub issued_at: OffsetDateTime,
    /// After this the set is refused (freeze attack: an old set replayed forever).
    pub expires_at: OffsetDateTime,
    /// False under `No3rdPartyAppUpdates`: the device keeps the apps it has and the set names only
    /// the OS (and board configuration).
    pub manage_apps: bool,
    /// The images, sorted by component ID, one per component.
    pub images: Vec<TargetImage>,
}

fn encode_image(i: &TargetImage) -> Result<Value, DocumentError> {
    if i.version.is_empty() || i.version.len() > 32 {
        return Err(DocumentError::InvalidField {
            field: "images.version",
            reason: "1 to 32 characters",
        });
    }
    Ok(Value::Array(vec![
        uuid_value(i.component_id),
        uuid_value(i.image_id),
        cbor::uint(i.kind.code()),
        Value::Text(i.version.clone()),
        cbor::uint(u64::from(i.security_version)),
        Value::Bytes(i.package_sha256.to_vec()),
        cbor::uint(i.package_size),
        Value::Bytes(i.payload_sha256.to_vec()),
    ]))
}

fn digest(v: Value, field: &'static str) -> Result<[u8; 32], DocumentError> {
    let b = cbor::as_bytes(v, field, 32, 32)?;
    let mut d = [0u8; 32];
    d.copy_from_slice(&b);
    Ok(d)
}

fn decode_image(v: Value) -> Result<TargetImage, DocumentError> {
    let fields = cbor::as_array(v, "images", IMAGE_FIELDS, IMAGE_FIELDS)?;
    let [
        component,
        image,
        kind,
        version,
        security,
        package,
        size,
        payload,
    ]: [Value; IMAGE_FIELDS] = fields.try_into().map_err(|_| DocumentError::InvalidField {
        field: "images",
        reason: "an image is an array of 8 fields",
    })?;
    let Value::Text(version) = version else {
        return Err(DocumentError::InvalidField {
            field: "images.version",
            reason: "not text",
        });
    };
    Ok(TargetImage {
        component_id: as_uuid(component, "images.component_id")?,
        image_id: as_uuid(image, "images.image_id")?,
        kind: TargetKind::from_code(cbor::as_uint(kind, "images.kind")?).ok_or(
            DocumentError::InvalidField {
                field: "images.kind",
                reason: "unknown image kind",
            },
        )?,
        version,
        security_version: u32::try_from(cbor::as_uint(security, "images.security_version")?)
            .map_err(|_| DocumentError::InvalidField {
                field: "images.security_version",
                reason: "larger than 32 bits",
            })?,
        package_sha256: digest(package, "images.package_sha256")?,
        package_size: cbor::as_uint(size, "images.package_size")?,
        payload_sha256: digest(payload, "images.payload_sha256")?,
    })
}

impl TargetSet {
    /// The OS bundle the set names, if any.
    pub fn os(&self) -> Option<&TargetImage> {
        self.images.iter().find(|i| i.kind == TargetKind::Os)
    }

    /// The deterministic CBOR payload. Images must be sorted by component ID, one per component.
    pub fn to_cbor(&self) -> Result<Vec<u8>, DocumentError> {
        if self.version == 0 {
            return Err(DocumentError::InvalidField {
                field: "version",
                reason: "must be at least 1",
            });
        }
        if self.expires_at <= self.issued_at {
            return Err(DocumentError::InvalidField {
                field: "expires_at",
                reason: "must be after issued_at",
            });
        }
        if self.images.len() > MAX_TARGET_IMAGES {
            return Err(DocumentError::InvalidField {
                field: "images",
                reason: "at most 64 images",
            });
        }
        if !self
            .images
            .windows(2)
            .all(|w| matches!(w, [a, b] if a.component_id < b.component_id))
        {
            return Err(DocumentError::InvalidField {
                field: "images",
                reason: "must be sorted by component ID, one image per component",
            });
        }
        if self
            .images
            .iter()
            .filter(|i| i.kind == TargetKind::Os)
            .count()
            > 1
        {
            return Err(DocumentError::InvalidField {
                field: "images",
                reason: "at most one OS bundle",
            });
        }
        let mut map = vec![
            (cbor::uint(K_VERSION), cbor::uint(FORMAT_VERSION)),
            (
                cbor::uint(K_DEVICE_ID),
                Value::Bytes(self.device_id.as_bytes().to_vec()),
            ),
            (cbor::uint(K_TENANT_ID), uuid_value(self.tenant_id)),
        ];
        if let Some(g) = self.device_group_id {
            map.push((cbor::uint(K_DEVICE_GROUP_ID), uuid_value(g)));
        }
        map.extend([
            (cbor::uint(K_SET_VERSION), cbor::uint(self.version)),
            (
                cbor::uint(K_ISSUED_AT),
                cbor::uint(cbor::secs_from_time(self.issued_at, "issued_at")?),
            ),
            (
                cbor::uint(K_EXPIRES_AT),
                cbor::uint(cbor::secs_from_time(self.expires_at, "expires_at")?),
            ),
            (cbor::uint(K_MANAGE_APPS), Value::Bool(self.manage_apps)),
            (
                cbor::uint(K_IMAGES),
                Value::Array(
                    self.images
                        .iter()
                        .map(encode_image)
                        .collect::<Result<_, _>>()?,
                ),
            ),
        ]);
        cbor::encode(&Value::Map(map))
    }

    /// Decode a payload strictly (no signature check; see [`verify_target_set`]).
    pub fn from_cbor(bytes: &[u8]) -> Result<TargetSet, DocumentError> {
        let mut f = cbor::decode_map(bytes, MAX_TARGET_SET_LEN, K_MAX)?;
        cbor::check_version(&mut f, FORMAT_VERSION)?;
        let manage_apps = match cbor::required(&mut f, K_MANAGE_APPS, "manage_apps")? {
            Value::Bool(b) => b,
            _ => {
                return Err(DocumentError::InvalidField {
                    field: "manage_apps",
                    reason: "not a boolean",
                });
            }
        };
        let set = TargetSet {
            device_id: as_device_id(
                cbor::required(&mut f, K_DEVICE_ID, "device_id")?,
                "device_id",
            )?,
            tenant_id: as_uuid(
                cbor::required(&mut f, K_TENANT_ID, "tenant_id")?,
                "tenant_id",
            )?,
            device_group_id: cbor::take(&mut f, K_DEVICE_GROUP_ID)
                .map(|v| as_uuid(v, "device_group_id"))
                .transpose()?,
            version: cbor::as_uint(cbor::required(&mut f, K_SET_VERSION, "version")?, "version")?,
            issued_at: cbor::as_time(
                cbor::required(&mut f, K_ISSUED_AT, "issued_at")?,
                "issued_at",
            )?,
            expires_at: cbor::as_time(
                cbor::required(&mut f, K_EXPIRES_AT, "expires_at")?,
                "expires_at",
            )?,
            manage_apps,
            images: cbor::as_array(
                cbor::required(&mut f, K_IMAGES, "images")?,
                "images",
                0,
                MAX_TARGET_IMAGES,
            )?
            .into_iter()
            .map(decode_image)
            .collect::<Result<_, _>>()?,
        };
        cbor::check_canonical(bytes, &set.to_cbor()?)?;
        Ok(set)
    }

    /// Sign with a tenant metadata key ([`Purpose::TargetSet`], empty external AAD).
    pub fn sign(&self, metadata_key: &dyn Signer) -> Result<Vec<u8>, DocumentError> {
        Ok(sign1(
            metadata_key,
            Purpose::TargetSet,
            &self.to_cbor()?,
            &[],
        )?)
    }
}

/// A target set whose signature, device and tenant checked out. Only [`verify_target_set`]
/// makes one; the freshness checks (version, expiry) are the device's policy on top.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTargetSet {
    set: TargetSet,
    signer: KeyId,
}

impl VerifiedTargetSet {
    /// The content.
    pub fn target_set(&self) -> &TargetSet {
        &self.set
    }

    /// The metadata key that signed it.
    pub fn signer(&self) -> KeyId {
        self.signer
    }
}

/// Verify a target set: strict COSE profile, [`Purpose::TargetSet`], signed by one of the owning
/// tenant's metadata keys, strict payload, for `expected_device` and for the tenant of
/// `ownership` (a set another tenant signed for this device is refused).
pub fn verify_target_set(
    bytes: &[u8],
    ownership: &VerifiedOwnership,
    expected_device: &DeviceId,
) -> Result<VerifiedTargetSet, DocumentError> {
    if bytes.len() > MAX_TARGET_SET_LEN {
        return Err(DocumentError::TooLarge {
            len: bytes.len(),
            max: MAX_TARGET_SET_LEN,
        });
    }
    let verified = verify1(bytes, Purpose::TargetSet, &ownership.metadata_keys(), &[])?;
    let set = TargetSet::from_cbor(verified.payload())?;
    if !bool::from(set.device_id.as_bytes().ct_eq(expected_device.as_bytes())) {
        return Err(DocumentError::WrongDevice {
            document: Purpose::TargetSet,
            expected: Box::new(*expected_device),
            found: Box::new(set.device_id),
        });
    }
    if set.tenant_id != ownership.tenant_id() {
        return Err(DocumentError::InvalidField {
            field: "tenant_id",
            reason: "the target set names another tenant than the device's owner",
        });
    }
    Ok(VerifiedTargetSet {
        set,
        signer: verified.key_id(),
    })
}
