//! Typed errors of the boot TCB. None carries key material.

use std::path::PathBuf;

/// A stage-0 operation (or a data-directory operation the OS shares with it) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootError {
    /// Reading or writing a file of the data directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file of the data directory is malformed.
    #[error("{path}: malformed ({reason})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A root-of-trust operation failed.
    #[error("root of trust: {0}")]
    Trust(#[from] ferro_trust::TrustError),
    /// An image package did not verify (or could not be read).
    #[error("image package {path}: {source}")]
    Image {
        /// The package.
        path: PathBuf,
        /// Why.
        #[source]
        source: ferro_image::ImageError,
    },
    /// A signed identity document (key list, registration record) failed.
    #[error("{what}: {source}")]
    Document {
        /// Which document.
        what: &'static str,
        /// Why.
        #[source]
        source: ferro_documents::DocumentError,
    },
    /// The anchored platform root key is unusable.
    #[error("platform root certificate: {0}")]
    PlatformRoot(String),
    /// The root of trust is not the one the data directory was provisioned with.
    #[error(
        "this data directory belongs to device {registered}, but its root of trust holds the key \
         of device {root_of_trust} (was the data directory moved to another TPM, or its rot/ \
         replaced?); refusing to run as a device the registration record and certificate do \
         not name: put the data directory back with its own root of trust, or provision this \
         one with a fresh data directory"
    )]
    IdentityMismatch {
        /// The device the registration record names (boxed: device IDs are 64 bytes).
        registered: Box<ferro_signing::DeviceId>,
        /// The device whose key the root of trust holds.
        root_of_trust: Box<ferro_signing::DeviceId>,
    },
    /// The data directory is provisioned, but the root of trust `device.json` names holds no
    /// trust anchors: it is not the one the device was provisioned on (another TPM, a cleared
    /// one, a replaced `rot/`).
    #[error(
        "{data_dir} was provisioned, but its root of trust ({rot}) holds no trust anchors, so it \
         does not hold this device's key (another TPM, or one cleared since?): point device.json \
         at the root of trust this device was provisioned on, or provision a fresh data \
         directory on this one (`ferro-device provision`)"
    )]
    RootOfTrustNotProvisioned {
        /// The data directory.
        data_dir: PathBuf,
        /// Which root of trust ([`crate::DeviceConfig::describe`]).
        rot: String,
    },
    /// The data directory is not provisioned (or incompletely).
    #[error("{0} is not a provisioned device data directory (run `ferro-device provision`)")]
    NotProvisioned(PathBuf),
    /// The OS bundle is not acceptable although its signature verified.
    #[error("OS bundle refused: {0}")]
    BundleRefused(String),
    /// The root of trust kind is not available in this build.
    #[error("{0}")]
    Unsupported(String),
    /// No slot holds a bundle that verifies.
    #[error("no bootable OS slot: {0}")]
    NoBootableSlot(String),
}

impl BootError {
    /// `Io` for `path`, as a `map_err` argument.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BootError {
        let path = path.into();
        move |source| BootError::Io { path, source }
    }

    /// `Malformed` for `path`.
    pub fn malformed(path: impl Into<PathBuf>, reason: impl ToString) -> BootError {
        BootError::Malformed {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
