//! `ferro-rfc6979` makes reproducible ECDSA P-256 signatures: RFC 6979 derives the nonce from
//! the key and the message, so the same key and bytes always give the same signature and signed
//! artifacts are byte-stable (the golden test vectors, `ferro image-package pack-*`).
//!
//! It runs on a developer's machine and in tests only. `ferro-signing` signs with `ring`
//! (hedged nonces, about ten times faster), which cannot make RFC 6979 signatures, so this is
//! the one place RustCrypto's `p256` signs, kept out of `ferro-signing` so that the boot TCB,
//! the device and the service link one P-256 implementation. A deterministic nonce repeated
//! under an injected fault can expose the key, so every signature is checked before release
//! ([`Signer::needs_self_check`] keeps its default, and `ferro_signing::sign1` verifies it).
//!
//! Depends on `ferro-signing` only; must not be a normal dependency of anything that runs on a
//! device or in the service.

use std::fmt;

use ferro_signing::{PublicKey, SignError, Signature, Signer, SoftwareSigningKey};
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::DecodePrivateKey as _;

/// A [`SoftwareSigningKey`] that signs deterministically (RFC 6979 nonce, SHA-256): the same key
/// and message always give the same signature. About ten times slower than the key's own
/// [`Signer::sign`]; for documents and packages, not for request paths.
#[derive(Clone)]
pub struct DeterministicSigner {
    /// `None` if `p256` could not read the key as the same P-256 key (never for a key
    /// `ferro-signing` accepted; then every signature fails rather than being made with another key).
    key: Option<SigningKey>,
    public: PublicKey,
}

impl DeterministicSigner {
    /// `key`, signing deterministically.
    pub fn new(key: &SoftwareSigningKey) -> DeterministicSigner {
        let public = key.public_key().clone();
        let key = key
            .to_pkcs8_pem()
            .ok()
            .and_then(|pem| SigningKey::from_pkcs8_pem(&pem).ok())
            .filter(|k| {
                k.verifying_key().to_encoded_point(false).as_bytes()
                    == public.to_sec1_uncompressed().as_slice()
            });
        DeterministicSigner { key, public }
    }
}

impl fmt::Debug for DeterministicSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeterministicSigner")
            .field("kid", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

impl Signer for DeterministicSigner {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        let key = self.key.as_ref().ok_or_else(|| {
            SignError::Signer("the key cannot be read as the same P-256 key for RFC 6979".into())
        })?;
        let sig: p256::ecdsa::Signature = key
            .try_sign(message)
            .map_err(|_| SignError::Signer("ECDSA signing failed".into()))?;
        Ok(Signature(sig.to_bytes().into()))
    }
}

/// `key.deterministic()`: the key, signing with RFC 6979 nonces (see [`DeterministicSigner`]).
pub trait Deterministic {
    /// This key, signing deterministically.
    fn deterministic(&self) -> DeterministicSigner;
}

impl Deterministic for SoftwareSigningKey {
    fn deterministic(&self) -> DeterministicSigner {
        DeterministicSigner::new(self)
    }
}
