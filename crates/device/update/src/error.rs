//! The one error type of the crate: each refusal names what was refused and why.

use std::path::PathBuf;

/// Why an update step was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A state file is malformed.
    #[error("{path} is malformed: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The ownership document was refused.
    #[error("ownership document refused: {0}")]
    Ownership(ferro_pki::DocumentError),
    /// The ownership document names another tenant than the one the device already belongs to.
    #[error(
        "ownership document names tenant {found}, but this device belongs to tenant {pinned}; \
         a tenant change needs a newer ownership epoch (a transfer)"
    )]
    TenantChanged {
        /// The tenant recorded on the device.
        pinned: uuid::Uuid,
        /// The tenant in the new document.
        found: uuid::Uuid,
    },
    /// The key list has no tenant endorsement key (the device cannot trust any tenant key).
    #[error("the platform key list has no tenant endorsement key, so no target set can be trusted")]
    NoEndorsementKey,
    /// The target set was refused (signature, device, tenant, format).
    #[error("target set refused: {0}")]
    TargetSet(ferro_pki::DocumentError),
    /// The target set is older than one already accepted (rollback).
    #[error("target set version {offered} is below the version {accepted} already accepted")]
    Rollback {
        /// The version offered.
        offered: u64,
        /// The highest accepted.
        accepted: u64,
    },
    /// The target set expired (freeze).
    #[error("target set version {version} expired at {expires_at} (service time {now})")]
    Expired {
        /// Its version.
        version: u64,
        /// Its expiry.
        expires_at: time::OffsetDateTime,
        /// The device's notion of the service's time.
        now: time::OffsetDateTime,
    },
    /// The download sent more bytes than the target set says the package has.
    #[error("download of {sha256} is longer than the {expected} bytes the target set names")]
    TooLong {
        /// The package digest (hex).
        sha256: String,
        /// Its size in the target set.
        expected: u64,
    },
    /// The download ended before the package's size.
    #[error("download of {sha256} ended at {got} of {expected} bytes")]
    Truncated {
        /// The package digest (hex).
        sha256: String,
        /// Bytes received.
        got: u64,
        /// Its size in the target set.
        expected: u64,
    },
    /// The downloaded bytes do not hash to the digest the target set names.
    #[error("downloaded package does not match its SHA-256 {expected} (got {got}); discarded")]
    DigestMismatch {
        /// The expected digest (hex).
        expected: String,
        /// What the bytes hash to (hex).
        got: String,
    },
    /// Not enough free space for the downloads.
    #[error("{needed} bytes are needed for the downloads but only {available} are free")]
    NoSpace {
        /// Bytes needed (plus the reserve).
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// The package did not verify.
    #[error("package {image_id} refused: {source}")]
    Package {
        /// The image ID the target set names.
        image_id: uuid::Uuid,
        /// Why.
        source: ferro_image::ImageError,
    },
    /// The package verified but is not what the target set names.
    #[error("package {image_id} does not match its target entry: {reason}")]
    NotTheTarget {
        /// The image ID the target set names.
        image_id: uuid::Uuid,
        /// Which field differs.
        reason: String,
    },
    /// The package's security version is below its component's anti-rollback floor.
    #[error(
        "image {image_id} has security version {security_version}, below the floor {floor} of component {component_id}"
    )]
    BelowFloor {
        /// The image.
        image_id: uuid::Uuid,
        /// Its component.
        component_id: uuid::Uuid,
        /// Its security version.
        security_version: u32,
        /// The component's floor.
        floor: u64,
    },
    /// The root of trust failed (counters).
    #[error("root of trust: {0}")]
    Trust(#[from] ferro_trust::TrustError),
}

impl UpdateError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> UpdateError {
        let path = path.into();
        move |source| UpdateError::Io { path, source }
    }

    /// A malformed state file.
    pub fn malformed(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> UpdateError {
        UpdateError::Malformed {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
