//! The identity documents' reading of the strict CBOR rules (`ferro-cbor`): integer-keyed
//! maps, typed field extraction with this crate's error wording, and times as unsigned seconds
//! since the Unix epoch. Canonical form is enforced by each document re-encoding what it decoded
//! and comparing bytes ([`check_canonical`]).

use ferro_cbor::{CborError, Value};
use time::OffsetDateTime;

use crate::error::DocumentError;

pub(crate) use ferro_cbor::uint;

/// The latest time a document may carry (9999-12-31T23:59:59Z), as X.509 can express.
pub(crate) const MAX_TIMESTAMP: u64 = 253_402_300_799;

/// The identity documents' error for a refusal by the strict rules.
fn document_error(e: CborError) -> DocumentError {
    match e {
        CborError::TooLarge { len, max } => DocumentError::TooLarge { len, max },
        CborError::NotAMap => DocumentError::Malformed("not a map"),
        CborError::UnknownKey(key) => DocumentError::UnknownKey(key),
        CborError::DuplicateKey(key) => DocumentError::DuplicateKey(key),
        CborError::NonCanonical => DocumentError::Malformed(
            "not in the deterministic encoding (shortest forms, ascending keys, no trailing bytes)",
        ),
        CborError::Encode(_) => DocumentError::Malformed("cannot encode"),
        _ => DocumentError::Malformed("not CBOR"),
    }
}

pub(crate) fn encode(v: &Value) -> Result<Vec<u8>, DocumentError> {
    ferro_cbor::encode(v).map_err(document_error)
}

/// Decode a map with unsigned integer keys `1..=max_key` into slots indexed by key. Refuses
/// documents over `max_len`, non-maps, unknown keys and duplicates.
pub(crate) fn decode_map(
    bytes: &[u8],
    max_len: usize,
    max_key: u64,
) -> Result<ferro_cbor::Fields, DocumentError> {
    let value = ferro_cbor::decode_bounded(bytes, max_len).map_err(document_error)?;
    ferro_cbor::Fields::from_map(value, max_key).map_err(document_error)
}

/// Take field `key` out of the fields.
pub(crate) fn take(slots: &mut ferro_cbor::Fields, key: u64) -> Option<Value> {
    slots.take(key)
}

pub(crate) fn required(
    slots: &mut ferro_cbor::Fields,
    key: u64,
    field: &'static str,
) -> Result<Value, DocumentError> {
    take(slots, key).ok_or(DocumentError::MissingField(field))
}

pub(crate) fn as_uint(v: Value, field: &'static str) -> Result<u64, DocumentError> {
    match v {
        Value::Integer(i) => u64::try_from(i).map_err(|_| DocumentError::InvalidField {
            field,
            reason: "not an unsigned integer",
        }),
        _ => Err(DocumentError::InvalidField {
            field,
            reason: "not an unsigned integer",
        }),
    }
}

pub(crate) fn as_bytes(
    v: Value,
    field: &'static str,
    min: usize,
    max: usize,
) -> Result<Vec<u8>, DocumentError> {
    match v {
        Value::Bytes(b) if (min..=max).contains(&b.len()) => Ok(b),
        Value::Bytes(_) => Err(DocumentError::InvalidField {
            field,
            reason: "byte string of the wrong length",
        }),
        _ => Err(DocumentError::InvalidField {
            field,
            reason: "not a byte string",
        }),
    }
}

pub(crate) fn as_array(
    v: Value,
    field: &'static str,
    min: usize,
    max: usize,
) -> Result<Vec<Value>, DocumentError> {
    match v {
        Value::Array(a) if (min..=max).contains(&a.len()) => Ok(a),
        Value::Array(_) => Err(DocumentError::InvalidField {
            field,
            reason: "array of the wrong length",
        }),
        _ => Err(DocumentError::InvalidField {
            field,
            reason: "not an array",
        }),
    }
}

pub(crate) fn as_time(v: Value, field: &'static str) -> Result<OffsetDateTime, DocumentError> {
    let secs = as_uint(v, field)?;
    time_from_secs(secs).ok_or(DocumentError::InvalidField {
        field,
        reason: "time out of range",
    })
}

pub(crate) fn time_from_secs(secs: u64) -> Option<OffsetDateTime> {
    if secs > MAX_TIMESTAMP {
        return None;
    }
    OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()
}

/// Whole seconds since the epoch; times before 1970 or after 9999 are refused.
pub(crate) fn secs_from_time(t: OffsetDateTime, field: &'static str) -> Result<u64, DocumentError> {
    u64::try_from(t.unix_timestamp())
        .ok()
        .filter(|s| *s <= MAX_TIMESTAMP)
        .ok_or(DocumentError::InvalidField {
            field,
            reason: "time out of range (1970 to 9999)",
        })
}

/// Check format version field 1.
pub(crate) fn check_version(
    slots: &mut ferro_cbor::Fields,
    supported: u64,
) -> Result<(), DocumentError> {
    let v = as_uint(required(slots, 1, "format_version")?, "format_version")?;
    if v != supported {
        return Err(DocumentError::UnsupportedVersion(v));
    }
    Ok(())
}

/// Check format version field 1 against several supported versions; returns the version.
pub(crate) fn check_version_in(
    slots: &mut ferro_cbor::Fields,
    supported: &[u64],
) -> Result<u64, DocumentError> {
    let v = as_uint(required(slots, 1, "format_version")?, "format_version")?;
    if !supported.contains(&v) {
        return Err(DocumentError::UnsupportedVersion(v));
    }
    Ok(v)
}

/// Refuse `bytes` unless they are exactly `canonical` (the re-encoding of what was decoded).
pub(crate) fn check_canonical(bytes: &[u8], canonical: &[u8]) -> Result<(), DocumentError> {
    ferro_cbor::check_canonical(bytes, canonical).map_err(document_error)
}
