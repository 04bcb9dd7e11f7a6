//! Typed errors of the signed identity documents. None carries key material; inputs are echoed
//! only as public identifiers (key IDs, device IDs).

use ferro_signing::{DeviceId, KeyId, Purpose, SignError, VerifyError};

/// A signed identity document (registration record, capability file, key list) was refused or
/// could not be made. Each refusal has its own variant (and [`DocumentError::code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// The COSE_Sign1 envelope was refused (profile, purpose, key, signature).
    #[error("signature envelope refused: {0}")]
    Envelope(#[from] VerifyError),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(#[from] SignError),
    /// The document is larger than its limit.
    #[error("document is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not well-formed CBOR, or not in the deterministic encoding.
    #[error("malformed CBOR: {0}")]
    Malformed(&'static str),
    /// A key that the format does not define.
    #[error("unknown key {0} in the document map")]
    UnknownKey(String),
    /// A key present twice.
    #[error("duplicate key {0} in the document map")]
    DuplicateKey(u64),
    /// A required field is missing.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A field has the wrong type, length or value.
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The document's format version is not one this code reads.
    #[error("unsupported document format version {0}")]
    UnsupportedVersion(u64),
    /// A registration record is signed by a key other than the device key it contains.
    #[error(
        "the registration record is signed by key {signed_by}, not by its device key {device_key}"
    )]
    NotSignedByDeviceKey {
        /// The kid in the envelope.
        signed_by: KeyId,
        /// The device key's kid.
        device_key: KeyId,
    },
    /// The device ID in a registration record is not the SHA-512 of its device key.
    #[error("device ID {claimed} is not the SHA-512 of the record's device key")]
    DeviceIdMismatch {
        /// The device ID the record claims.
        claimed: Box<DeviceId>,
    },
    /// A document (capability file, device ownership document, target set) was issued for
    /// another device.
    #[error("{} is for device {found}, not for this device {expected}", .document.noun())]
    WrongDevice {
        /// Which document: its signing purpose.
        document: Purpose,
        /// The device the caller is.
        expected: Box<DeviceId>,
        /// The device the file names.
        found: Box<DeviceId>,
    },
    /// The signer's key is not the key the document needs.
    #[error("the signer's key {0} cannot sign this document")]
    WrongSigner(KeyId),
}

impl DocumentError {
    /// A stable, machine-readable code (for logs, tests and test vectors).
    pub fn code(&self) -> &'static str {
        match self {
            DocumentError::Envelope(e) => e.code(),
            DocumentError::Sign(_) => "sign",
            DocumentError::TooLarge { .. } => "document-too-large",
            DocumentError::Malformed(_) => "document-malformed",
            DocumentError::UnknownKey(_) => "document-unknown-key",
            DocumentError::DuplicateKey(_) => "document-duplicate-key",
            DocumentError::MissingField(_) => "document-missing-field",
            DocumentError::InvalidField { .. } => "document-invalid-field",
            DocumentError::UnsupportedVersion(_) => "document-unsupported-version",
            DocumentError::NotSignedByDeviceKey { .. } => "not-signed-by-device-key",
            DocumentError::DeviceIdMismatch { .. } => "device-id-mismatch",
            DocumentError::WrongDevice { .. } => "wrong-device",
            DocumentError::WrongSigner(_) => "wrong-signer",
        }
    }
}
