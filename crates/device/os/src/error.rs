//! Typed errors of the device layer. None carries key material.

use std::path::PathBuf;

/// A device operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The app manager could not be set up.
    #[error("apps: {0}")]
    Apps(String),
    /// Attestation could not be set up (service URL, platform root, certificate store).
    #[error("attestation: {0}")]
    Attestation(String),
    /// A root-of-trust operation failed.
    #[error("root of trust: {0}")]
    Trust(#[from] ferro_trust::TrustError),
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
    /// The root of trust already holds trust anchors (write-once): it was provisioned before,
    /// for another data directory.
    #[error(
        "{rot} already holds trust anchors: it was provisioned before (for another data \
         directory), and anchors are write-once; provision on a fresh TPM (with swtpm: a new \
         --tpmstate directory) or run the device from the data directory it was provisioned \
         with ({data_dir} was left as it was)"
    )]
    RootOfTrustAlreadyProvisioned {
        /// Which root of trust.
        rot: String,
        /// The data directory provisioning was asked to create.
        data_dir: PathBuf,
    },
    /// The data directory is already provisioned.
    #[error("{0} is already provisioned (refusing to provision it again)")]
    AlreadyProvisioned(PathBuf),
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
    /// Restarting into ferro-boot (a platform reboot, a virtual TPM's power cycle) failed.
    #[error("restart: {0}")]
    Restart(String),
    /// The boot TCB's part (data directory, trust loading, OS bundles, slots) failed.
    #[error(transparent)]
    Boot(#[from] ferro_boot::BootError),
    /// An update step failed.
    #[error("update: {0}")]
    Update(#[from] ferro_update::UpdateError),
}

impl DeviceError {
    /// A file operation failed: the boot TCB's [`ferro_boot::BootError::Io`], so a path error
    /// reads the same from the loader and from the OS.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DeviceError {
        let io = ferro_boot::BootError::io(path);
        move |source| DeviceError::Boot(io(source))
    }

    /// A file is malformed ([`ferro_boot::BootError::Malformed`]).
    pub(crate) fn malformed(path: impl Into<PathBuf>, reason: impl ToString) -> DeviceError {
        DeviceError::Boot(ferro_boot::BootError::malformed(path, reason))
    }
}
