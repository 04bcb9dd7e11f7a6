//! The signed metadata: a deterministic CBOR map with unsigned integer keys.

use std::fmt;
use std::str::FromStr;

use ferro_cbor::{CborError, Value, uint};
use uuid::Uuid;

use crate::archive::validate_tar_path;
use crate::error::MetadataError;

/// Upper bound on any payload (4 GiB).
pub const MAX_PAYLOAD_SIZE: u64 = 4 * 1024 * 1024 * 1024;
/// Upper bound on a board configuration payload (64 KiB).
pub const MAX_BOARD_CONFIG_SIZE: u64 = 64 * 1024;
/// Upper bound on the embedded app manifest (64 KiB).
pub const MAX_MANIFEST_LEN: usize = 64 * 1024;
/// Upper bound on the image name (bytes of UTF-8).
pub const MAX_NAME_LEN: usize = 128;

/// The fixed component ID of the Ferrosphere OS bundle.
pub const OS_COMPONENT_ID: Uuid = Uuid::from_u128(0xf3a5_0000_0000_4000_8000_0000_0000_0001);
/// The fixed component ID of the board configuration.
pub const BOARD_CONFIG_COMPONENT_ID: Uuid =
    Uuid::from_u128(0xf3a5_0000_0000_4000_8000_0000_0000_0002);

// Metadata map keys (docs/image-format.md, section "Metadata").
const K_TYPE: u64 = 1;
const K_COMPONENT_ID: u64 = 2;
const K_IMAGE_ID: u64 = 3;
const K_NAME: u64 = 4;
const K_VERSION: u64 = 5;
const K_SECURITY_VERSION: u64 = 6;
const K_TARGET_RUNTIME_VERSION: u64 = 7;
const K_DEBUG: u64 = 8;
const K_PAYLOAD_SIZE: u64 = 9;
const K_PAYLOAD_SHA256: u64 = 10;
const K_ENTRY_POINT: u64 = 11;
const K_APP_MANIFEST: u64 = 12;
const K_MAX: u64 = 12;

/// What an image is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageType {
    /// A high-level (WebAssembly component) application.
    App,
    /// A real-time (Cortex-M4 ELF) application.
    RtApp,
    /// The OS bundle (`ferro-device` and its files).
    Os,
    /// A board configuration.
    BoardConfig,
}

impl ImageType {
    /// The CBOR code.
    pub const fn code(self) -> u64 {
        match self {
            ImageType::App => 1,
            ImageType::RtApp => 2,
            ImageType::Os => 3,
            ImageType::BoardConfig => 4,
        }
    }

    /// The type with this CBOR code.
    pub fn from_code(code: u64) -> Option<ImageType> {
        match code {
            1 => Some(ImageType::App),
            2 => Some(ImageType::RtApp),
            3 => Some(ImageType::Os),
            4 => Some(ImageType::BoardConfig),
            _ => None,
        }
    }

    /// Whether this type carries an app manifest and entry point.
    pub const fn is_app(self) -> bool {
        matches!(self, ImageType::App | ImageType::RtApp)
    }
}

impl fmt::Display for ImageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageType::App => "app",
            ImageType::RtApp => "rt-app",
            ImageType::Os => "os",
            ImageType::BoardConfig => "board-config",
        })
    }
}

/// A `major.minor.patch` version, ordered numerically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl Version {
    /// A version.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for Version {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut it = s.split('.');
        let mut next = || -> Result<u32, &'static str> {
            let part = it.next().ok_or("expected major.minor.patch")?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err("version parts must be decimal numbers");
            }
            part.parse().map_err(|_| "version part out of range")
        };
        let v = Version::new(next()?, next()?, next()?);
        if it.next().is_some() {
            return Err("expected major.minor.patch");
        }
        Ok(v)
    }
}

/// The app-specific metadata of app and rt-app images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppMetadata {
    /// The manifest's `EntryPoint`, e.g. `/bin/app` (stored in the payload as `bin/app`).
    pub entry_point: String,
    /// The resolved `app_manifest.json`, byte for byte.
    pub manifest_json: Vec<u8>,
}

impl AppMetadata {
    /// The entry point's path inside the payload archive (leading `/` removed).
    pub fn entry_point_tar_path(&self) -> &str {
        self.entry_point
            .strip_prefix('/')
            .unwrap_or(&self.entry_point)
    }
}

/// The signed description of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageMetadata {
    /// Image type.
    pub image_type: ImageType,
    /// Component ID (stable across versions).
    pub component_id: Uuid,
    /// Image ID (unique per packed image).
    pub image_id: Uuid,
    /// Human-readable name.
    pub name: String,
    /// Version.
    pub version: Version,
    /// Anti-rollback security version.
    pub security_version: u32,
    /// Minimum OS runtime version the image needs.
    pub target_runtime_version: u32,
    /// Debug build (only for development devices).
    pub debug: bool,
    /// Exact payload length.
    pub payload_size: u64,
    /// SHA-256 of the payload.
    pub payload_sha256: [u8; 32],
    /// Present exactly for app and rt-app images.
    pub app: Option<AppMetadata>,
}

impl ImageMetadata {
    /// Check every field against the format's rules (also done by [`Self::to_cbor`] and
    /// [`Self::from_cbor`]).
    pub fn validate(&self) -> Result<(), MetadataError> {
        if self.name.is_empty() {
            return Err(MetadataError::Invalid {
                field: "name",
                reason: "empty",
            });
        }
        if self.name.len() > MAX_NAME_LEN {
            return Err(MetadataError::TooLong {
                field: "name",
                len: self.name.len() as u64,
                max: MAX_NAME_LEN as u64,
            });
        }
        if self.name.chars().any(char::is_control) {
            return Err(MetadataError::Invalid {
                field: "name",
                reason: "contains control characters",
            });
        }
        let max_payload = match self.image_type {
            ImageType::BoardConfig => MAX_BOARD_CONFIG_SIZE,
            _ => MAX_PAYLOAD_SIZE,
        };
        if self.payload_size > max_payload {
            return Err(MetadataError::TooLong {
                field: "payload_size",
                len: self.payload_size,
                max: max_payload,
            });
        }
        match self.image_type {
            ImageType::Os if self.component_id != OS_COMPONENT_ID => {
                return Err(MetadataError::Invalid {
                    field: "component_id",
                    reason: "an OS image must use the OS component ID",
                });
            }
            ImageType::BoardConfig if self.component_id != BOARD_CONFIG_COMPONENT_ID => {
                return Err(MetadataError::Invalid {
                    field: "component_id",
                    reason: "a board-config image must use the board-config component ID",
                });
            }
            ImageType::App | ImageType::RtApp
                if self.component_id.is_nil()
                    || self.component_id == OS_COMPONENT_ID
                    || self.component_id == BOARD_CONFIG_COMPONENT_ID =>
            {
                return Err(MetadataError::Invalid {
                    field: "component_id",
                    reason: "reserved component ID",
                });
            }
            _ => {}
        }
        if self.image_id.is_nil() {
            return Err(MetadataError::Invalid {
                field: "image_id",
                reason: "nil UUID",
            });
        }
        match (&self.app, self.image_type.is_app()) {
            (None, true) => return Err(MetadataError::MissingField("app_manifest")),
            (Some(_), false) => {
                return Err(MetadataError::Invalid {
                    field: "app_manifest",
                    reason: "only app and rt-app images carry a manifest",
                });
            }
            (Some(app), true) => self.validate_app(app)?,
            (None, false) => {}
        }
        Ok(())
    }

    fn validate_app(&self, app: &AppMetadata) -> Result<(), MetadataError> {
        if !app.entry_point.starts_with('/') {
            return Err(MetadataError::Invalid {
                field: "entry_point",
                reason: "must be an absolute path in the package, like /bin/app",
            });
        }
        if validate_tar_path(app.entry_point_tar_path()).is_err() {
            return Err(MetadataError::Invalid {
                field: "entry_point",
                reason: "not a normalized path",
            });
        }
        if app.entry_point_tar_path() == "app_manifest.json" {
            return Err(MetadataError::Invalid {
                field: "entry_point",
                reason: "the entry point cannot be the manifest",
            });
        }
        if app.manifest_json.len() > MAX_MANIFEST_LEN {
            return Err(MetadataError::TooLong {
                field: "app_manifest",
                len: app.manifest_json.len() as u64,
                max: MAX_MANIFEST_LEN as u64,
            });
        }
        // The manifest must agree with the metadata on the fields both carry.
        let json: serde_json::Value =
            serde_json::from_slice(&app.manifest_json).map_err(|_| MetadataError::Invalid {
                field: "app_manifest",
                reason: "not JSON",
            })?;
        let obj = json.as_object().ok_or(MetadataError::Invalid {
            field: "app_manifest",
            reason: "not a JSON object",
        })?;
        let text = |k: &'static str| obj.get(k).and_then(serde_json::Value::as_str);
        if text("Name") != Some(self.name.as_str()) {
            return Err(MetadataError::ManifestInconsistent { field: "Name" });
        }
        if text("EntryPoint") != Some(app.entry_point.as_str()) {
            return Err(MetadataError::ManifestInconsistent {
                field: "EntryPoint",
            });
        }
        let cid = text("ComponentId").and_then(|s| Uuid::parse_str(s).ok());
        if cid != Some(self.component_id) {
            return Err(MetadataError::ManifestInconsistent {
                field: "ComponentId",
            });
        }
        let real_time = text("ApplicationType") == Some("RealTimeCapable");
        if real_time != (self.image_type == ImageType::RtApp) {
            return Err(MetadataError::ManifestInconsistent {
                field: "ApplicationType",
            });
        }
        Ok(())
    }

    /// The deterministic CBOR encoding (RFC 8949 section 4.2.1: shortest forms, definite
    /// lengths, keys in ascending order).
    pub fn to_cbor(&self) -> Result<Vec<u8>, MetadataError> {
        self.validate()?;
        let mut map = vec![
            (uint(K_TYPE), uint(self.image_type.code())),
            (
                uint(K_COMPONENT_ID),
                Value::Bytes(self.component_id.as_bytes().to_vec()),
            ),
            (
                uint(K_IMAGE_ID),
                Value::Bytes(self.image_id.as_bytes().to_vec()),
            ),
            (uint(K_NAME), Value::Text(self.name.clone())),
            (
                uint(K_VERSION),
                Value::Array(vec![
                    uint(self.version.major.into()),
                    uint(self.version.minor.into()),
                    uint(self.version.patch.into()),
                ]),
            ),
            (uint(K_SECURITY_VERSION), uint(self.security_version.into())),
            (
                uint(K_TARGET_RUNTIME_VERSION),
                uint(self.target_runtime_version.into()),
            ),
            (uint(K_DEBUG), Value::Bool(self.debug)),
            (uint(K_PAYLOAD_SIZE), uint(self.payload_size)),
            (
                uint(K_PAYLOAD_SHA256),
                Value::Bytes(self.payload_sha256.to_vec()),
            ),
        ];
        if let Some(app) = &self.app {
            map.push((uint(K_ENTRY_POINT), Value::Text(app.entry_point.clone())));
            map.push((
                uint(K_APP_MANIFEST),
                Value::Bytes(app.manifest_json.clone()),
            ));
        }
        ferro_cbor::encode(&Value::Map(map)).map_err(metadata_error)
    }

    /// Decode and validate metadata; refuses unknown keys, duplicates and any encoding other
    /// than the deterministic one.
    pub fn from_cbor(bytes: &[u8]) -> Result<ImageMetadata, MetadataError> {
        let value = ferro_cbor::decode(bytes).map_err(metadata_error)?;
        let mut fields = ferro_cbor::Fields::from_map(value, K_MAX).map_err(metadata_error)?;
        let mut take = |k: u64| fields.take(k);

        let image_type = ImageType::from_code(get_uint(take(K_TYPE), "image_type")?).ok_or(
            MetadataError::Invalid {
                field: "image_type",
                reason: "unknown image type",
            },
        )?;
        let component_id = get_uuid(take(K_COMPONENT_ID), "component_id")?;
        let image_id = get_uuid(take(K_IMAGE_ID), "image_id")?;
        let name = get_text(take(K_NAME), "name", MAX_NAME_LEN)?;
        let version = match take(K_VERSION) {
            None => return Err(MetadataError::MissingField("version")),
            Some(Value::Array(parts)) => match <[Value; 3]>::try_from(parts) {
                Ok([a, b, c]) => Version::new(
                    get_u32(Some(a), "version")?,
                    get_u32(Some(b), "version")?,
                    get_u32(Some(c), "version")?,
                ),
                Err(_) => return Err(MetadataError::WrongType("version")),
            },
            Some(_) => return Err(MetadataError::WrongType("version")),
        };
        let security_version = get_u32(take(K_SECURITY_VERSION), "security_version")?;
        let target_runtime_version =
            get_u32(take(K_TARGET_RUNTIME_VERSION), "target_runtime_version")?;
        let debug = match take(K_DEBUG) {
            Some(Value::Bool(b)) => b,
            None => return Err(MetadataError::MissingField("debug")),
            Some(_) => return Err(MetadataError::WrongType("debug")),
        };
        let payload_size = get_uint(take(K_PAYLOAD_SIZE), "payload_size")?;
        let payload_sha256 =
            <[u8; 32]>::try_from(get_bytes(take(K_PAYLOAD_SHA256), "payload_sha256", 32)?)
                .map_err(|_| MetadataError::WrongType("payload_sha256"))?;
        let entry_point = take(K_ENTRY_POINT);
        let manifest = take(K_APP_MANIFEST);
        let app = match (entry_point, manifest) {
            (None, None) => None,
            (Some(e), Some(m)) => Some(AppMetadata {
                entry_point: get_text(Some(e), "entry_point", crate::MAX_TAR_PATH_LEN + 1)?,
                manifest_json: get_bytes(Some(m), "app_manifest", MAX_MANIFEST_LEN)?,
            }),
            (None, Some(_)) => return Err(MetadataError::MissingField("entry_point")),
            (Some(_), None) => return Err(MetadataError::MissingField("app_manifest")),
        };
        let md = ImageMetadata {
            image_type,
            component_id,
            image_id,
            name,
            version,
            security_version,
            target_runtime_version,
            debug,
            payload_size,
            payload_sha256,
            app,
        };
        md.validate()?;
        ferro_cbor::check_canonical(bytes, &md.to_cbor()?).map_err(metadata_error)?;
        Ok(md)
    }
}

/// The metadata's error for a refusal by the strict CBOR rules (`ferro-cbor`).
fn metadata_error(e: CborError) -> MetadataError {
    match e {
        CborError::NotAMap => MetadataError::NotAMap,
        CborError::NonCanonical => MetadataError::NonCanonical,
        CborError::UnknownKey(key) => MetadataError::UnknownKey(key),
        CborError::DuplicateKey(key) => MetadataError::DuplicateKey(key),
        CborError::Malformed(reason) | CborError::Encode(reason) => {
            MetadataError::Malformed(reason)
        }
        other => MetadataError::Malformed(other.to_string()),
    }
}

fn get_uint(v: Option<Value>, field: &'static str) -> Result<u64, MetadataError> {
    match v {
        None => Err(MetadataError::MissingField(field)),
        Some(Value::Integer(i)) => u64::try_from(i).map_err(|_| MetadataError::WrongType(field)),
        Some(_) => Err(MetadataError::WrongType(field)),
    }
}

fn get_u32(v: Option<Value>, field: &'static str) -> Result<u32, MetadataError> {
    u32::try_from(get_uint(v, field)?).map_err(|_| MetadataError::WrongType(field))
}

fn get_bytes(v: Option<Value>, field: &'static str, max: usize) -> Result<Vec<u8>, MetadataError> {
    match v {
        None => Err(MetadataError::MissingField(field)),
        Some(Value::Bytes(b)) if b.len() > max => Err(MetadataError::TooLong {
            field,
            len: b.len() as u64,
            max: max as u64,
        }),
        Some(Value::Bytes(b)) => Ok(b),
        Some(_) => Err(MetadataError::WrongType(field)),
    }
}

fn get_text(v: Option<Value>, field: &'static str, max: usize) -> Result<String, MetadataError> {
    match v {
        None => Err(MetadataError::MissingField(field)),
        Some(Value::Text(t)) if t.len() > max => Err(MetadataError::TooLong {
            field,
            len: t.len() as u64,
            max: max as u64,
        }),
        Some(Value::Text(t)) => Ok(t),
        Some(_) => Err(MetadataError::WrongType(field)),
    }
}

fn get_uuid(v: Option<Value>, field: &'static str) -> Result<Uuid, MetadataError> {
    let b = get_bytes(v, field, 16)?;
    Uuid::from_slice(&b).map_err(|_| MetadataError::WrongType(field))
}
