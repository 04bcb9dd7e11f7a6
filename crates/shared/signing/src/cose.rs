//! Purpose-bound COSE_Sign1: [`sign1`], [`verify1`] and [`parse_unverified`].
//!
//! The profile (stricter than RFC 9052 allows, so every envelope has exactly one encoding):
//! tag 18; protected header = exactly `{1: -7, 3: <purpose content type>, 4: <32-byte kid>}` in
//! deterministic CBOR; unprotected header = `{}`; payload embedded; signature = 64 bytes `r || s`.

use std::collections::BTreeMap;

use coset::cbor::value::Value;
use coset::iana;
use coset::{
    ContentType, CoseSign1, CoseSign1Builder, HeaderBuilder, ProtectedHeader,
    RegisteredLabelWithPrivate, TaggedCborSerializable,
};

use crate::error::{SignError, VerifyError};
use crate::keys::{KeyId, PublicKey};
use crate::purpose::Purpose;
use crate::signer::Signer;

/// The largest envelope [`verify1`] and [`parse_unverified`] look at (1 MiB). Callers with
/// tighter limits (e.g. image packages) check theirs first.
pub const MAX_ENVELOPE_LEN: usize = 1024 * 1024;

/// The set of public keys a verifier trusts, looked up by key ID.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<KeyId, PublicKey>,
}

impl TrustedKeys {
    /// An empty set (trusts nothing).
    pub fn new() -> TrustedKeys {
        TrustedKeys::default()
    }

    /// Add a key; returns false if it was already present.
    pub fn insert(&mut self, key: PublicKey) -> bool {
        self.keys.insert(key.key_id(), key).is_none()
    }

    /// The key with this ID, if trusted.
    pub fn get(&self, kid: &KeyId) -> Option<&PublicKey> {
        self.keys.get(kid)
    }

    /// Whether a key with this ID is trusted.
    pub fn contains(&self, kid: &KeyId) -> bool {
        self.keys.contains_key(kid)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The trusted key IDs, in order.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.keys()
    }
}

impl FromIterator<PublicKey> for TrustedKeys {
    fn from_iter<I: IntoIterator<Item = PublicKey>>(iter: I) -> Self {
        let mut t = TrustedKeys::new();
        for k in iter {
            t.insert(k);
        }
        t
    }
}

/// A payload whose signature verified with a trusted key, for the expected purpose. Only
/// [`verify1`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedPayload {
    payload: Vec<u8>,
    kid: KeyId,
    purpose: Purpose,
}

impl VerifiedPayload {
    /// The verified payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// The key that signed it (a member of the trusted set).
    pub fn key_id(&self) -> KeyId {
        self.kid
    }
    /// The purpose it was signed for (equal to the expected purpose).
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }
    /// The payload, consumed.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }
}

/// Header information and payload of an envelope that has NOT been verified: for display only
/// (`show`, diagnostics). Nothing in it may be trusted.
#[derive(Debug, Clone)]
pub struct UnverifiedEnvelope {
    /// The claimed signer.
    pub claimed_kid: KeyId,
    /// The claimed purpose.
    pub claimed_purpose: Purpose,
    /// The unverified payload.
    pub unverified_payload: Vec<u8>,
}

fn protected_header(signer_kid: KeyId, purpose: Purpose) -> coset::Header {
    HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .content_type(purpose.content_type().to_string())
        .key_id(signer_kid.0.to_vec())
        .build()
}

/// Sign `payload` for `purpose` with `signer`, binding `external_aad`; returns the tagged
/// COSE_Sign1 bytes. The signature is checked against the signer's public key before it is
/// returned (a faulty signer yields [`SignError::SelfCheckFailed`], never a bad envelope),
/// unless the signer says it needs no such check ([`Signer::needs_self_check`]).
pub fn sign1(
    signer: &dyn Signer,
    purpose: Purpose,
    payload: &[u8],
    external_aad: &[u8],
) -> Result<Vec<u8>, SignError> {
    let public = signer.public_key().clone();
    let sign1 = CoseSign1Builder::new()
        .protected(protected_header(public.key_id(), purpose))
        .payload(payload.to_vec())
        .try_create_signature(external_aad, |tbs| {
            signer.sign(tbs).map(|s| s.as_bytes().to_vec())
        })?
        .build();
    if signer.needs_self_check()
        && !public.verify_signature(&sign1.tbs_data(external_aad), &sign1.signature)
    {
        return Err(SignError::SelfCheckFailed(public.key_id()));
    }
    sign1
        .to_tagged_vec()
        .map_err(|e| SignError::Encoding(e.to_string()))
}

/// The parsed, structurally checked envelope (strict profile) before signature verification.
struct Checked {
    sign1: CoseSign1,
    kid: KeyId,
    purpose: Purpose,
}

fn parse_checked(bytes: &[u8]) -> Result<Checked, VerifyError> {
    if bytes.len() > MAX_ENVELOPE_LEN {
        return Err(VerifyError::TooLarge {
            len: bytes.len(),
            max: MAX_ENVELOPE_LEN,
        });
    }
    let sign1 =
        CoseSign1::from_tagged_slice(bytes).map_err(|e| VerifyError::Malformed(e.to_string()))?;

    // Canonical encoding: re-encode the parsed structure and compare with the input. coset keeps
    // the protected header's original bytes, so re-encode that separately from its parsed form.
    let reencoded = sign1
        .clone()
        .to_tagged_vec()
        .map_err(|e| VerifyError::Malformed(e.to_string()))?;
    if reencoded != bytes {
        return Err(VerifyError::NonCanonical);
    }
    let fresh_protected = ProtectedHeader {
        original_data: None,
        header: sign1.protected.header.clone(),
    }
    .cbor_bstr()
    .map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let original_protected = sign1.protected.original_data.clone().unwrap_or_default();
    match fresh_protected {
        Value::Bytes(fresh) if fresh == original_protected => {}
        _ => return Err(VerifyError::NonCanonical),
    }

    if !sign1.unprotected.is_empty() {
        return Err(VerifyError::UnprotectedHeaderNotEmpty);
    }
    let h = &sign1.protected.header;
    if h.alg != Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES256)) {
        return Err(VerifyError::WrongAlgorithm);
    }
    let kid = KeyId::from_slice(&h.key_id).ok_or(VerifyError::MissingKid)?;
    let purpose = match &h.content_type {
        Some(ContentType::Text(t)) => Purpose::from_content_type(t)
            .ok_or_else(|| VerifyError::UnknownPurpose(t.chars().take(80).collect::<String>()))?,
        _ => return Err(VerifyError::MissingPurpose),
    };
    if !h.crit.is_empty() {
        return Err(VerifyError::UnexpectedHeaderParameter("crit"));
    }
    if !h.iv.is_empty() || !h.partial_iv.is_empty() {
        return Err(VerifyError::UnexpectedHeaderParameter("iv"));
    }
    if !h.counter_signatures.is_empty() {
        return Err(VerifyError::UnexpectedHeaderParameter("counter signature"));
    }
    if !h.rest.is_empty() {
        return Err(VerifyError::UnexpectedHeaderParameter("other label"));
    }
    if sign1.payload.is_none() {
        return Err(VerifyError::DetachedPayload);
    }
    Ok(Checked {
        sign1,
        kid,
        purpose,
    })
}

/// Verify a tagged COSE_Sign1: strict profile and canonical encoding, the expected purpose, a
/// trusted `kid`, and the ES256 signature over the `Sig_structure` with `external_aad`.
/// Returns the payload only as a [`VerifiedPayload`].
pub fn verify1(
    bytes: &[u8],
    expected_purpose: Purpose,
    trusted: &TrustedKeys,
    external_aad: &[u8],
) -> Result<VerifiedPayload, VerifyError> {
    let Checked {
        sign1,
        kid,
        purpose,
    } = parse_checked(bytes)?;
    if purpose != expected_purpose {
        return Err(VerifyError::WrongPurpose {
            expected: expected_purpose,
            found: purpose,
        });
    }
    let key = trusted.get(&kid).ok_or(VerifyError::UnknownKey(kid))?;
    if sign1.signature.len() != 64 {
        return Err(VerifyError::BadSignature);
    }
    let tbs = sign1.tbs_data(external_aad);
    if !key.verify_signature(&tbs, &sign1.signature) {
        return Err(VerifyError::BadSignature);
    }
    Ok(VerifiedPayload {
        payload: sign1.payload.unwrap_or_default(),
        kid,
        purpose,
    })
}

/// Parse an envelope without verifying its signature, applying the same structural checks as
/// [`verify1`]. The result is for display only.
pub fn parse_unverified(bytes: &[u8]) -> Result<UnverifiedEnvelope, VerifyError> {
    let c = parse_checked(bytes)?;
    Ok(UnverifiedEnvelope {
        claimed_kid: c.kid,
        claimed_purpose: c.purpose,
        unverified_payload: c.sign1.payload.unwrap_or_default(),
    })
}
