//! Purpose-bound COSE_Sign1: [`sign1`], [`verify1`] and [`parse_unverified`].
//!
//! The profile (stricter than RFC 9052 allows, so every envelope has exactly one encoding):
//! tag 18; protected header = exactly `{1: -7, 3: <purpose content type>, 4: <32-byte kid>}` in
//! deterministic CBOR; unprotected header = `{}`; payload embedded; signature = 64 bytes `r || s`.
//!
//! A purpose may extend the protected header with parameters of its own
//! ([`sign1_with_headers`], [`parse_with_headers`]): exactly the labels it names, in the order it
//! names them, after the three above, each a byte string, an unsigned integer, a boolean or an
//! array of byte strings. Nothing else is accepted.

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

/// The value of a purpose's own protected header parameter (see [`sign1_with_headers`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderValue {
    /// A CBOR unsigned integer.
    Uint(u64),
    /// A CBOR byte string.
    Bytes(Vec<u8>),
    /// A CBOR boolean.
    Bool(bool),
    /// A CBOR array of byte strings (e.g. an `x5chain` of several certificates, RFC 9360).
    BytesArray(Vec<Vec<u8>>),
}

impl HeaderValue {
    fn to_cbor(&self) -> Value {
        match self {
            HeaderValue::Uint(n) => Value::Integer((*n).into()),
            HeaderValue::Bytes(b) => Value::Bytes(b.clone()),
            HeaderValue::Bool(b) => Value::Bool(*b),
            HeaderValue::BytesArray(items) => {
                Value::Array(items.iter().cloned().map(Value::Bytes).collect())
            }
        }
    }

    fn from_cbor(value: &Value) -> Option<HeaderValue> {
        match value {
            Value::Integer(n) => u64::try_from(*n).ok().map(HeaderValue::Uint),
            Value::Bytes(b) => Some(HeaderValue::Bytes(b.clone())),
            Value::Bool(b) => Some(HeaderValue::Bool(*b)),
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::Bytes(b) => Some(b.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(HeaderValue::BytesArray),
            _ => None,
        }
    }
}

fn protected_header(
    signer_kid: KeyId,
    purpose: Purpose,
    extra: &[(i64, HeaderValue)],
) -> coset::Header {
    let mut builder = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .content_type(purpose.content_type().to_string())
        .key_id(signer_kid.0.to_vec());
    for (label, value) in extra {
        builder = builder.value(*label, value.to_cbor());
    }
    builder.build()
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
    sign1_with_headers(signer, purpose, &[], payload, external_aad)
}

/// [`sign1`] with the purpose's own protected header parameters after alg, content type and
/// kid, in the order given (a verifier names the same labels in the same order to
/// [`parse_with_headers`]). Labels 1 to 7 (COSE's own common parameters) are refused.
pub fn sign1_with_headers(
    signer: &dyn Signer,
    purpose: Purpose,
    extra: &[(i64, HeaderValue)],
    payload: &[u8],
    external_aad: &[u8],
) -> Result<Vec<u8>, SignError> {
    if let Some((label, _)) = extra.iter().find(|(label, _)| (1..=7).contains(label)) {
        return Err(SignError::Encoding(format!(
            "header label {label} is one of COSE's common parameters"
        )));
    }
    let public = signer.public_key().clone();
    let sign1 = CoseSign1Builder::new()
        .protected(protected_header(public.key_id(), purpose, extra))
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
    headers: Vec<(i64, HeaderValue)>,
}

fn parse_checked(bytes: &[u8]) -> Result<Checked, VerifyError> {
    parse_checked_with(bytes, None, &[])
}

/// The envelope's own parameters: exactly `labels`, in that order, each of a [`HeaderValue`]
/// type.
fn extra_headers(
    rest: &[(coset::Label, Value)],
    labels: &[i64],
) -> Result<Vec<(i64, HeaderValue)>, VerifyError> {
    let mut headers = Vec::with_capacity(labels.len());
    for (i, (label, value)) in rest.iter().enumerate() {
        let coset::Label::Int(label) = label else {
            return Err(VerifyError::UnexpectedHeaderParameter("text label"));
        };
        if labels.get(i) != Some(label) {
            return Err(if labels.contains(label) {
                VerifyError::NonCanonical
            } else {
                VerifyError::UnexpectedHeaderParameter("other label")
            });
        }
        let value = HeaderValue::from_cbor(value).ok_or(VerifyError::BadHeaderValue(*label))?;
        headers.push((*label, value));
    }
    if let Some(missing) = labels.get(rest.len()) {
        return Err(VerifyError::MissingHeaderParameter(*missing));
    }
    Ok(headers)
}

/// `expected`: the purpose the caller wants, checked before the purpose's own parameters (so an
/// envelope of another purpose is refused as such, not for lacking them).
fn parse_checked_with(
    bytes: &[u8],
    expected: Option<Purpose>,
    labels: &[i64],
) -> Result<Checked, VerifyError> {
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
    if let Some(expected) = expected
        && purpose != expected
    {
        return Err(VerifyError::WrongPurpose {
            expected,
            found: purpose,
        });
    }
    if !h.crit.is_empty() {
        return Err(VerifyError::UnexpectedHeaderParameter("crit"));
    }
    if !h.iv.is_empty() || !h.partial_iv.is_empty() {
        return Err(VerifyError::UnexpectedHeaderParameter("iv"));
    }
    if !h.counter_signatures.is_empty() {
        return Err(VerifyError::UnexpectedHeaderParameter("counter signature"));
    }
    let headers = extra_headers(&h.rest, labels)?;
    if sign1.payload.is_none() {
        return Err(VerifyError::DetachedPayload);
    }
    Ok(Checked {
        sign1,
        kid,
        purpose,
        headers,
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
        headers: _,
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

/// An envelope whose purpose has its own protected header parameters, structurally checked
/// (the strict profile, the expected purpose, exactly the expected labels) but NOT verified:
/// the caller reads the headers to find the key (e.g. a certificate in them), then
/// [`HeaderedEnvelope::verify`] checks the signature. Only [`parse_with_headers`] makes one.
#[derive(Debug, Clone)]
pub struct HeaderedEnvelope {
    sign1: CoseSign1,
    kid: KeyId,
    purpose: Purpose,
    headers: Vec<(i64, HeaderValue)>,
}

impl HeaderedEnvelope {
    /// The claimed signer (not verified).
    pub fn claimed_kid(&self) -> KeyId {
        self.kid
    }

    /// The value of the purpose's own parameter `label` (not verified).
    pub fn header(&self, label: i64) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, value)| value)
    }

    /// Verify the ES256 signature with `key`, whose key ID must be the envelope's `kid`
    /// ([`VerifyError::UnknownKey`] otherwise), binding `external_aad`.
    pub fn verify(
        self,
        key: &PublicKey,
        external_aad: &[u8],
    ) -> Result<VerifiedPayload, VerifyError> {
        if key.key_id() != self.kid {
            return Err(VerifyError::UnknownKey(self.kid));
        }
        if self.sign1.signature.len() != 64 {
            return Err(VerifyError::BadSignature);
        }
        let tbs = self.sign1.tbs_data(external_aad);
        if !key.verify_signature(&tbs, &self.sign1.signature) {
            return Err(VerifyError::BadSignature);
        }
        Ok(VerifiedPayload {
            payload: self.sign1.payload.unwrap_or_default(),
            kid: self.kid,
            purpose: self.purpose,
        })
    }
}

/// Parse an envelope made by [`sign1_with_headers`]: the strict profile, `expected_purpose`,
/// and exactly the parameters `labels` in that order after alg, content type and kid.
pub fn parse_with_headers(
    bytes: &[u8],
    expected_purpose: Purpose,
    labels: &[i64],
) -> Result<HeaderedEnvelope, VerifyError> {
    let Checked {
        sign1,
        kid,
        purpose,
        headers,
    } = parse_checked_with(bytes, Some(expected_purpose), labels)?;
    Ok(HeaderedEnvelope {
        sign1,
        kid,
        purpose,
        headers,
    })
}
