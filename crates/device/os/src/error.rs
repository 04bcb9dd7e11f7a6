//! Typed errors of the device layer. None carries key material.

use std::path::PathBuf;

/// A device operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// Reading or writing a file of the data directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The app manager could not be set up.
    #[error("apps: {0}")]
    Apps(String),
    /// Attestation could not be set up (service URL, platform root, certificate store).
    #[error("attestation: {0}")]
    Attestation(String),
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
        source: ferro_pki::DocumentError,
    },
    /// The platform root certificate is unusable or does not match the anchored key.
    #[error("platform root certificate: {0}")]
    PlatformRoot(String),
    /// The data directory is already provisioned.
    #[error("{0} is already provisioned (refusing to provision it again)")]
    AlreadyProvisioned(PathBuf),
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
    /// The data directory is not provisioned (or incompletely).
    #[error("{0} is not a provisioned device data directory (run `ferro-device provision`)")]
    NotProvisioned(PathBuf),
    /// A file of the data directory is malformed.
    #[error("{path}: malformed ({reason})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The OS bundle is not acceptable although its signature verified.
    #[error("OS bundle refused: {0}")]
    BundleRefused(String),
    /// Manufacturing state only moves forward.
    #[error("manufacturing state is {current}; it only moves forward, refusing {requested}")]
    ManufacturingStateBackwards {
        /// The current state.
        current: &'static str,
        /// The refused state.
        requested: &'static str,
    },
    /// Talking to the security service failed.
    #[error("security service: {0}")]
    Service(String),
    /// The service refused the device certificate on a device route (401): the device moved to
    /// another tenant, or its tenant blocked it. The agent attests again.
    #[error(
        "security service: the device certificate was refused on {0} (the device may have moved \
         to another tenant); attesting again"
    )]
    CertificateRefused(&'static str),
    /// The root of trust kind is not available in this build.
    #[error("{0}")]
    Unsupported(String),
    /// No slot holds a bundle that verifies.
    #[error("no bootable OS slot: {0}")]
    NoBootableSlot(String),
    /// An update step failed.
    #[error("update: {0}")]
    Update(#[from] ferro_update::UpdateError),
}

impl DeviceError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DeviceError {
        let path = path.into();
        move |source| DeviceError::Io { path, source }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, reason: impl ToString) -> DeviceError {
        DeviceError::Malformed {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
