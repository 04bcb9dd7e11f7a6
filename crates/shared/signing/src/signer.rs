//! The [`Signer`] trait: anything that can produce an ES256 signature with a P-256 key.

use std::fmt;

use crate::error::SignError;
use crate::keys::{KeyId, PublicKey};

/// An ECDSA P-256 signature in the fixed 64-byte `r || s` form COSE uses (RFC 9053 section 2.1).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// The 64 bytes `r || s`, big-endian.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

/// A holder of a P-256 private key that signs messages with ECDSA over SHA-256.
///
/// `sign` receives the whole message (for COSE, the `Sig_structure`) and must hash it with SHA-256
/// itself. Implementations: [`crate::SoftwareSigningKey`] here; a TPM-backed root of trust later.
pub trait Signer {
    /// The public half of the signing key.
    fn public_key(&self) -> &PublicKey;

    /// The key identifier (SHA-256 of the SubjectPublicKeyInfo DER).
    fn key_id(&self) -> KeyId {
        self.public_key().key_id()
    }

    /// Sign `message` with ECDSA P-256 / SHA-256.
    fn sign(&self, message: &[u8]) -> Result<Signature, SignError>;

    /// Whether [`crate::sign1`] must verify this signer's signature before releasing it (the
    /// default, and what hardware signers and deterministic nonces need: a faulty device or a
    /// fault injected into a repeated deterministic computation must never yield a released bad
    /// signature, which for RFC 6979 can expose the key). Only a software signer with hedged
    /// nonces, where a fault cannot be repeated into a key-revealing pair, may say no.
    fn needs_self_check(&self) -> bool {
        true
    }
}
