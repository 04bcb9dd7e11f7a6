//! The bridge between rcgen and [`ferro_signing::Signer`]: rcgen builds and encodes the
//! certificate, our signer (software key, HSM, TPM) produces the ECDSA signature. rcgen is built
//! without its own crypto backend, so no private key ever enters it.

use std::cell::RefCell;
use std::fmt;

use ferro_signing::{PublicKey, SignError, Signer};

/// An rcgen [`rcgen::SigningKey`] over any [`Signer`] (ECDSA P-256 with SHA-256).
///
/// `Signer::sign` returns the 64-byte `r || s` form COSE uses; X.509 wants the DER
/// `ECDSA-Sig-Value`, so the adapter converts with `p256`. If the signer fails, rcgen only sees
/// `RemoteKeyError`; the original error is kept and can be taken with
/// [`RcgenSigner::take_error`].
pub struct RcgenSigner<'a> {
    signer: &'a dyn Signer,
    sec1: Vec<u8>,
    error: RefCell<Option<SignError>>,
}

impl fmt::Debug for RcgenSigner<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcgenSigner")
            .field("kid", &self.signer.key_id())
            .finish_non_exhaustive()
    }
}

impl<'a> RcgenSigner<'a> {
    /// Wrap `signer`.
    pub fn new(signer: &'a dyn Signer) -> RcgenSigner<'a> {
        RcgenSigner {
            signer,
            sec1: signer.public_key().to_sec1_uncompressed(),
            error: RefCell::new(None),
        }
    }

    /// The error of the last failed signature, if any.
    pub fn take_error(&self) -> Option<SignError> {
        self.error.borrow_mut().take()
    }
}

impl rcgen::PublicKeyData for RcgenSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.sec1
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for RcgenSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let raw = match self.signer.sign(msg) {
            Ok(s) => s,
            Err(e) => {
                *self.error.borrow_mut() = Some(e);
                return Err(rcgen::Error::RemoteKeyError);
            }
        };
        let sig = p256::ecdsa::Signature::from_slice(raw.as_bytes()).map_err(|_| {
            *self.error.borrow_mut() = Some(SignError::Signer(
                "the signer returned an invalid ECDSA signature".into(),
            ));
            rcgen::Error::RemoteKeyError
        })?;
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

/// A subject public key for rcgen (the key a certificate certifies).
pub(crate) struct SubjectKey {
    sec1: Vec<u8>,
}

impl SubjectKey {
    pub(crate) fn new(key: &PublicKey) -> SubjectKey {
        SubjectKey {
            sec1: key.to_sec1_uncompressed(),
        }
    }
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.sec1
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}
