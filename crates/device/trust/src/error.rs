//! Typed errors. None carries key material.

use std::path::PathBuf;

/// A root-of-trust operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// Reading or writing a file of the software root of trust failed.
    #[error("root of trust file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The device key could not be loaded or created.
    #[error("device key: {0}")]
    Key(#[from] ferro_signing::KeyError),
    /// Signing with the device key failed.
    #[error("device key signing: {0}")]
    Sign(#[from] ferro_signing::SignError),
    /// A sealed file (counters, trust anchors) does not verify with the device key or is
    /// malformed: it was edited, corrupted or copied from another device.
    #[error("sealed file {path} was tampered with or corrupted ({reason})")]
    Tampered {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: &'static str,
    },
    /// A counter would go down.
    #[error("counter {name} is at {current}; refusing to set it to the lower value {requested}")]
    CounterRollback {
        /// The counter.
        name: String,
        /// Its value.
        current: u64,
        /// The refused value.
        requested: u64,
    },
    /// A TPM counter cannot jump this far in one call (each step is one NV increment).
    #[error("counter {name}: a step of {step} is more than the limit of {max} per call")]
    CounterStepTooLarge {
        /// The counter.
        name: String,
        /// The requested step.
        step: u64,
        /// The limit.
        max: u64,
    },
    /// A counter name outside `[a-z0-9._-]{1,32}`.
    #[error("invalid counter name {0:?}: use 1 to 32 characters of a-z, 0-9, '.', '_', '-'")]
    InvalidCounterName(String),
    /// The trust anchors were written before; they are immutable.
    #[error("trust anchors are already written and cannot be changed")]
    AnchorsAlreadyWritten,
    /// Invalid trust anchors (empty, too long).
    #[error("invalid trust anchors: {0}")]
    InvalidAnchors(&'static str),
    /// An invalid measurement event.
    #[error("invalid measurement event: {0}")]
    InvalidEvent(&'static str),
    /// This boot's measurement log is full.
    #[error("the measurement log is full ({0} entries)")]
    LogFull(usize),
    /// Too many random bytes requested.
    #[error("at most {max} random bytes per call, not {requested}")]
    RandomTooLong {
        /// Requested.
        requested: usize,
        /// Limit.
        max: usize,
    },
    /// The operating system's random generator failed.
    #[error("random generator failed")]
    Random,
    /// A nonce outside 8..=64 bytes.
    #[error("a nonce must be 8 to 64 bytes, not {0}")]
    InvalidNonce(usize),
    /// Encoding evidence failed.
    #[error("encoding failed: {0}")]
    Encoding(String),
    /// The TPM (or the TSS) reported an error.
    #[error("TPM: {0}")]
    Tpm(String),
    /// The TPM cannot be reached through the configured TCTI (nothing listens, no device, no
    /// permission).
    #[error(
        "cannot reach the TPM through TCTI {tcti:?}: {reason} (is the TPM, or swtpm, running \
         there? see docs/virtual-device-swtpm.md)"
    )]
    TpmUnreachable {
        /// The TCTI configuration string.
        tcti: String,
        /// What failed.
        reason: String,
    },
    /// The TPM returned something this crate does not accept.
    #[error("unexpected TPM response: {0}")]
    TpmUnexpected(&'static str),
}
