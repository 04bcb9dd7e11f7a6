//! Shared strict CBOR helpers for the identity documents: integer-keyed maps, typed field
//! extraction, and times as unsigned seconds since the Unix epoch. Canonical form is enforced by
//! each document re-encoding what it decoded and comparing bytes.

use ciborium::value::{Integer, Value};
use time::OffsetDateTime;

use crate::error::DocumentError;

/// The latest time a document may carry (9999-12-31T23:59:59Z), as X.509 can express.
pub(crate) const MAX_TIMESTAMP: u64 = 253_402_300_799;

pub(crate) fn uint(v: u64) -> Value {
    Value::Integer(Integer::from(v))
}

pub(crate) fn encode(v: &Value) -> Result<Vec<u8>, DocumentError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out)
        .map_err(|_| DocumentError::Malformed("cannot encode"))?;
    Ok(out)
}

fn describe_key(k: &Value) -> String {
    match k {
        Value::Integer(i) => i128::from(*i).to_string(),
        Value::Text(t) => format!("{:?}", t.chars().take(32).collect::<String>()),
        _ => "(not an integer)".to_string(),
    }
}

/// Decode a map with unsigned integer keys `1..=max_key` into slots indexed by key. Refuses
/// documents over `max_len`, non-maps, unknown keys and duplicates.
pub(crate) fn decode_map(
    bytes: &[u8],
    max_len: usize,
    max_key: u64,
) -> Result<Vec<Option<Value>>, DocumentError> {
    if bytes.len() > max_len {
        return Err(DocumentError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let value: Value =
        ciborium::de::from_reader(bytes).map_err(|_| DocumentError::Malformed("not CBOR"))?;
    let Value::Map(entries) = value else {
        return Err(DocumentError::Malformed("not a map"));
    };
    let mut slots: Vec<Option<Value>> = vec![None; usize::try_from(max_key).unwrap_or(0) + 1];
    for (k, v) in entries {
        let key = match &k {
            Value::Integer(i) => u64::try_from(*i).ok().filter(|k| (1..=max_key).contains(k)),
            _ => None,
        }
        .ok_or_else(|| DocumentError::UnknownKey(describe_key(&k)))?;
        let slot = slots
            .get_mut(usize::try_from(key).unwrap_or(usize::MAX))
            .ok_or_else(|| DocumentError::UnknownKey(key.to_string()))?;
        if slot.is_some() {
            return Err(DocumentError::DuplicateKey(key));
        }
        *slot = Some(v);
    }
    Ok(slots)
}

/// Take field `key` out of the slots.
pub(crate) fn take(slots: &mut [Option<Value>], key: u64) -> Option<Value> {
    slots
        .get_mut(usize::try_from(key).unwrap_or(usize::MAX))
        .and_then(Option::take)
}

pub(crate) fn required(
    slots: &mut [Option<Value>],
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
    slots: &mut [Option<Value>],
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
    slots: &mut [Option<Value>],
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
    if bytes != canonical {
        return Err(DocumentError::Malformed(
            "not in the deterministic encoding (shortest forms, ascending keys, no trailing bytes)",
        ));
    }
    Ok(())
}
