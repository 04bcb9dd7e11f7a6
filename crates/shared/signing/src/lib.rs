//! `ferro-signing` owns Ferrosphere's signing keys and its one signature envelope: a
//! purpose-bound, tagged COSE_Sign1 (RFC 9052) with ECDSA P-256 / SHA-256 (ES256). It defines key
//! identifiers (`kid` = SHA-256 of the DER SubjectPublicKeyInfo), the [`Signer`] trait a software or
//! TPM-backed root of trust implements, the registry of signing [`Purpose`]s (carried as the COSE
//! content type so a signature made for one purpose never verifies as another), and the strict
//! verifier [`verify1`] whose only success value is a [`VerifiedPayload`].
//!
//! This crate must not depend on any other Ferrosphere crate but the foundation `ferro-files`
//! (key files are written through its atomic write): it is the bottom of the trust stack. It
//! must not hand-write cryptography, CBOR or COSE (it uses `ring` for ECDSA and SHA-2, the one
//! P-256 implementation of the boot TCB, `pem-rfc7468` and `coset`; DER only as the fixed prefix
//! of a P-256 SubjectPublicKeyInfo), and must never print secret key material in `Debug`,
//! `Display` or errors. Reproducible RFC 6979 signatures are `ferro-rfc6979`'s, outside the TCB.

mod cose;
mod digest;
mod error;
mod keys;
mod purpose;
mod signer;

pub use cose::{
    HeaderValue, HeaderedEnvelope, MAX_ENVELOPE_LEN, TrustedKeys, UnverifiedEnvelope,
    VerifiedPayload, parse_unverified, parse_with_headers, sign1, sign1_with_headers, verify1,
};
pub use digest::Sha256;
pub use error::{DeviceIdError, KeyError, SignError, VerifyError};
pub use keys::{DeviceId, KeyId, PublicKey, SoftwareSigningKey};
pub use purpose::Purpose;
pub use signer::{Signature, Signer};
