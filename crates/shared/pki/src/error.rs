//! Typed errors. None carries key material; inputs are echoed only as bounded, sanitised
//! prefixes or as public identifiers (key names, device IDs, tenant IDs, key IDs).

use std::path::PathBuf;

use ferro_signing::{DeviceId, KeyError, KeyId, SignError};
use uuid::Uuid;

use crate::keystore::KeyName;

/// A key store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// The key name is not valid (see [`KeyName`]).
    #[error("invalid key name {name:?}: {reason}")]
    InvalidKeyName {
        /// A bounded, sanitised prefix of the name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// [`crate::KeyStore::create`] found the name taken.
    #[error("key {0} already exists")]
    AlreadyExists(KeyName),
    /// No key of that name.
    #[error("no key named {0}")]
    NotFound(KeyName),
    /// Loading or saving the key failed (permissions, corrupt file, I/O).
    #[error("key {name}: {source}")]
    Key {
        /// The key.
        name: KeyName,
        /// The cause (never contains key bytes).
        #[source]
        source: KeyError,
    },
    /// The store's directory is accessible by group or others.
    #[error(
        "key store directory {path} has mode {mode:03o}; it must be accessible by its owner only \
         (run `chmod 700 {path}`)"
    )]
    InsecureDirectory {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The store's path exists but is not a directory.
    #[error("key store path {0} is not a directory")]
    NotADirectory(PathBuf),
    /// A file system operation on the store failed.
    #[error("key store {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A remote backend (KMS, HSM) failed.
    #[error("key store backend: {0}")]
    Backend(String),
}

/// Issuing or reading a certificate failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The key store failed.
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    /// The signer failed (e.g. an HSM was unreachable).
    #[error("signing the certificate failed: {0}")]
    Sign(#[from] SignError),
    /// rcgen refused the parameters or failed to encode.
    #[error("certificate encoding failed: {0}")]
    Encoding(String),
    /// The issued certificate did not verify with the issuer's public key (a faulty signer;
    /// nothing was returned).
    #[error("the issued certificate does not verify with the issuer key {0}")]
    SelfCheckFailed(KeyId),
    /// A DNS name or IP address for the service certificate is not valid.
    #[error("invalid service name {name:?}: {reason}")]
    InvalidServiceName {
        /// A bounded, sanitised prefix.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A proof-of-possession verification code is not valid.
    #[error("invalid verification code: {0}")]
    InvalidVerificationCode(&'static str),
    /// The validity period is empty or cannot be represented.
    #[error("invalid validity: {0}")]
    InvalidValidity(&'static str),
    /// The issuing CA is not valid at the requested start time.
    #[error("CA {serial} is not valid at {at} (valid {not_before} to {not_after})")]
    CaNotValid {
        /// The CA's serial (hex).
        serial: String,
        /// The requested start.
        at: time::OffsetDateTime,
        /// The CA's notBefore.
        not_before: time::OffsetDateTime,
        /// The CA's notAfter.
        not_after: time::OffsetDateTime,
    },
    /// The key in the key store is not the key in the CA certificate.
    #[error("key {0} does not match the public key of its CA certificate")]
    CaKeyMismatch(KeyName),
    /// The device key's SHA-512 is not the device ID the certificate would name.
    #[error("the device key does not belong to device {0}")]
    DeviceKeyMismatch(Box<DeviceId>),
    /// The CA belongs to another tenant than the certificate would name.
    #[error("the CA belongs to tenant {ca_tenant}, not to tenant {requested}")]
    TenantMismatch {
        /// The CA's tenant.
        ca_tenant: Uuid,
        /// The tenant asked for.
        requested: Uuid,
    },
    /// A certificate could not be parsed, or is not what it was expected to be.
    #[error("not a valid {expected} certificate: {reason}")]
    InvalidCertificate {
        /// What it should have been.
        expected: &'static str,
        /// Why it is not.
        reason: &'static str,
    },
}
