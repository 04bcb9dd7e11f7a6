//! Typed errors. None of them carries secret material.

use std::path::PathBuf;

use crate::keys::KeyId;
use crate::purpose::Purpose;

/// Loading, parsing or storing keys failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A private key file is readable or writable by group or others.
    #[error(
        "key file {path} has mode {mode:03o}, so other users may read the private key; \
         run `chmod 600 {path}` (and check who may have copied it)"
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The private key is not a PKCS#8 P-256 key (the key bytes are not echoed).
    #[error("not a PKCS#8 PEM ECDSA P-256 private key")]
    InvalidPrivateKey,
    /// The public key is not a P-256 SubjectPublicKeyInfo.
    #[error("not a P-256 SubjectPublicKeyInfo public key ({0})")]
    InvalidPublicKey(&'static str),
}

/// A device ID string was refused (see [`crate::DeviceId`]).
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceIdError {
    /// Not 128 characters long.
    #[error("a device ID is 128 hexadecimal characters, not {0}")]
    WrongLength(usize),
    /// A character other than `0-9`, `a-f`, `A-F`.
    #[error("a device ID may contain only hexadecimal characters (0-9, a-f)")]
    NotHex,
}

/// Producing a signature failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The signer (e.g. a TPM) reported a failure.
    #[error("signer failed: {0}")]
    Signer(String),
    /// The signer returned a signature that does not verify with its own public key
    /// (a faulty or misconfigured signer; nothing was emitted).
    #[error("the signer produced a signature that does not verify with its public key {0}")]
    SelfCheckFailed(KeyId),
    /// COSE encoding failed.
    #[error("COSE encoding failed: {0}")]
    Encoding(String),
}

/// A COSE_Sign1 envelope was refused. Each variant names one reason, so callers, tests and logs
/// can tell them apart (see [`VerifyError::code`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The envelope is longer than [`crate::MAX_ENVELOPE_LEN`].
    #[error("COSE_Sign1 is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a well-formed tagged COSE_Sign1.
    #[error("malformed COSE_Sign1: {0}")]
    Malformed(String),
    /// Well-formed but not in the one canonical (deterministic) encoding.
    #[error("COSE_Sign1 is not canonically encoded")]
    NonCanonical,
    /// The protected header lacks `alg` or names an algorithm other than ES256.
    #[error("protected header must name algorithm ES256 (-7)")]
    WrongAlgorithm,
    /// The protected header lacks a 32-byte `kid`.
    #[error("protected header must carry a 32-byte kid")]
    MissingKid,
    /// The protected header lacks a text content type (the purpose).
    #[error("protected header must carry the purpose as a text content type")]
    MissingPurpose,
    /// The content type is not one of Ferrosphere's purposes.
    #[error("unknown purpose (content type) {0:?}")]
    UnknownPurpose(String),
    /// The envelope was signed for another purpose.
    #[error("signed for purpose {found}, expected {expected}")]
    WrongPurpose {
        /// What the caller wanted.
        expected: Purpose,
        /// What the envelope says.
        found: Purpose,
    },
    /// The protected header carries parameters other than alg, content type and kid.
    #[error("protected header carries an unsupported parameter ({0})")]
    UnexpectedHeaderParameter(&'static str),
    /// A parameter the purpose requires is missing from the protected header.
    #[error("protected header lacks parameter {0}")]
    MissingHeaderParameter(i64),
    /// A parameter of the purpose has a value of the wrong CBOR type.
    #[error("protected header parameter {0} has a value of the wrong type")]
    BadHeaderValue(i64),
    /// The unprotected header is not empty.
    #[error("unprotected header must be empty")]
    UnprotectedHeaderNotEmpty,
    /// The payload is detached (nil); Ferrosphere envelopes always embed it.
    #[error("payload is detached; an embedded payload is required")]
    DetachedPayload,
    /// The signing key is not among the trusted keys.
    #[error("signed by key {0}, which is not trusted here")]
    UnknownKey(KeyId),
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
}

impl VerifyError {
    /// A stable, machine-readable code for this error (for logs, tests and test vectors).
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::TooLarge { .. } => "envelope-too-large",
            VerifyError::Malformed(_) => "malformed",
            VerifyError::NonCanonical => "non-canonical",
            VerifyError::WrongAlgorithm => "wrong-algorithm",
            VerifyError::MissingKid => "missing-kid",
            VerifyError::MissingPurpose => "missing-purpose",
            VerifyError::UnknownPurpose(_) => "unknown-purpose",
            VerifyError::WrongPurpose { .. } => "wrong-purpose",
            VerifyError::UnexpectedHeaderParameter(_) => "unexpected-header-parameter",
            VerifyError::MissingHeaderParameter(_) => "missing-header-parameter",
            VerifyError::BadHeaderValue(_) => "bad-header-value",
            VerifyError::UnprotectedHeaderNotEmpty => "unprotected-header-not-empty",
            VerifyError::DetachedPayload => "detached-payload",
            VerifyError::UnknownKey(_) => "unknown-key",
            VerifyError::BadSignature => "bad-signature",
        }
    }
}
