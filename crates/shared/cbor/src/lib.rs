//! `ferro-cbor` owns the one set of CBOR rules every Ferrosphere signed document follows
//! (image metadata, identity documents, target sets, ownership documents, attestation evidence,
//! the root of trust's sealed files):
//!
//! - **Deterministic encoding** (RFC 8949 section 4.2.1): shortest forms and definite lengths,
//!   which ciborium writes, and map keys in ascending order, which each document builds.
//! - **Strict decoding**: one item, bounded in size and nesting ([`decode`], [`MAX_DEPTH`]); maps
//!   of known unsigned integer keys with no duplicates ([`Fields`]); and, after a document is
//!   decoded, its re-encoding must be exactly the bytes received ([`check_canonical`]), which
//!   refuses longer-than-needed forms, indefinite lengths, unsorted keys and trailing bytes, so
//!   every accepted document has exactly one encoding.
//!
//! Errors are typed ([`CborError`]); each document maps them into its own error, keeping its
//! own wording. It is built on `ciborium` (no hand-written CBOR) and depends on no Ferrosphere
//! crate: signing, image, PKI, the root of trust and the boot TCB all link it, so it must stay
//! small (no I/O, no crypto, no async).

pub use ciborium::value::{Integer, Value};

/// The deepest nesting [`decode`] accepts. Ferrosphere's documents nest a few levels (a map of
/// arrays of maps); anything deeper is refused before it can cost stack.
pub const MAX_DEPTH: usize = 16;

/// Why CBOR bytes were refused (or a value could not be encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CborError {
    /// Longer than the document's limit (checked before decoding).
    #[error("{len} bytes, more than the {max} allowed")]
    TooLarge {
        /// The length received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not one well-formed CBOR item within [`MAX_DEPTH`] (ciborium's reason).
    #[error("not CBOR: {0}")]
    Malformed(String),
    /// The item is not a map where a map is required.
    #[error("not a map")]
    NotAMap,
    /// A map key that is not an unsigned integer the document defines (described for the
    /// error message, at most 32 characters of a text key).
    #[error("unknown key {0}")]
    UnknownKey(String),
    /// A map key given twice.
    #[error("duplicate key {0}")]
    DuplicateKey(u64),
    /// Valid CBOR, but not the one deterministic encoding of what it holds.
    #[error(
        "not in the deterministic encoding (shortest forms, ascending keys, no trailing bytes)"
    )]
    NonCanonical,
    /// Encoding failed (ciborium's reason).
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// An unsigned integer value.
pub fn uint(v: u64) -> Value {
    Value::Integer(Integer::from(v))
}

/// A signed integer value.
pub fn int(v: i64) -> Value {
    Value::Integer(Integer::from(v))
}

/// Encode `v` (deterministic, given maps built in ascending key order).
pub fn encode(v: &Value) -> Result<Vec<u8>, CborError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).map_err(|e| CborError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decode one item of at most [`MAX_DEPTH`] levels. Trailing bytes are not refused here: the
/// caller's [`check_canonical`] refuses them.
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    ciborium::de::from_reader_with_recursion_limit(bytes, MAX_DEPTH)
        .map_err(|e| CborError::Malformed(e.to_string()))
}

/// [`decode`] after refusing more than `max_len` bytes.
pub fn decode_bounded(bytes: &[u8], max_len: usize) -> Result<Value, CborError> {
    if bytes.len() > max_len {
        return Err(CborError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    decode(bytes)
}

/// Refuse `bytes` unless they are exactly `canonical`, the re-encoding of what was decoded.
pub fn check_canonical(bytes: &[u8], canonical: &[u8]) -> Result<(), CborError> {
    if bytes != canonical {
        return Err(CborError::NonCanonical);
    }
    Ok(())
}

/// The fields of a map whose keys are the unsigned integers `1..=max_key`, each at most once:
/// taken out one by one as the document reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields {
    slots: Vec<Option<Value>>,
}

impl Fields {
    /// The fields of `value`, which must be a map with keys in `1..=max_key` and no key twice.
    pub fn from_map(value: Value, max_key: u64) -> Result<Fields, CborError> {
        let Value::Map(entries) = value else {
            return Err(CborError::NotAMap);
        };
        let mut slots = vec![None; usize::try_from(max_key).unwrap_or(0).saturating_add(1)];
        for (k, v) in entries {
            let key = match &k {
                Value::Integer(i) => u64::try_from(*i).ok().filter(|k| (1..=max_key).contains(k)),
                _ => None,
            }
            .ok_or_else(|| CborError::UnknownKey(describe_key(&k)))?;
            let slot = slots
                .get_mut(usize::try_from(key).unwrap_or(usize::MAX))
                .ok_or_else(|| CborError::UnknownKey(key.to_string()))?;
            if slot.is_some() {
                return Err(CborError::DuplicateKey(key));
            }
            *slot = Some(v);
        }
        Ok(Fields { slots })
    }

    /// Take field `key` out (`None` if absent or already taken).
    pub fn take(&mut self, key: u64) -> Option<Value> {
        self.slots
            .get_mut(usize::try_from(key).unwrap_or(usize::MAX))
            .and_then(Option::take)
    }
}

/// A map key as an error message shows it: the integer, or at most 32 characters of a text key.
pub fn describe_key(k: &Value) -> String {
    match k {
        Value::Integer(i) => i128::from(*i).to_string(),
        Value::Text(t) => format!("{:?}", t.chars().take(32).collect::<String>()),
        _ => "(not an integer)".to_string(),
    }
}

/// The value as an unsigned 64-bit integer.
pub fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Integer(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

/// The value as an integer.
pub fn as_i128(v: &Value) -> Option<i128> {
    match v {
        Value::Integer(i) => Some(i128::from(*i)),
        _ => None,
    }
}

/// The value as a byte string.
pub fn as_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Bytes(b) => Some(b),
        _ => None,
    }
}

/// The value as a text string.
pub fn as_text(v: &Value) -> Option<&str> {
    match v {
        Value::Text(t) => Some(t),
        _ => None,
    }
}

/// The entries of a map whose keys are integers (negative ones too), in input order; `None` if
/// `v` is not such a map. Order and uniqueness are left to [`check_canonical`].
pub fn int_map(v: &Value) -> Option<Vec<(i128, &Value)>> {
    match v {
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| as_i128(k).map(|k| (k, v)))
            .collect(),
        _ => None,
    }
}

/// The value of `key` in an [`int_map`].
pub fn get<'a>(map: &[(i128, &'a Value)], key: i128) -> Option<&'a Value> {
    map.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}
