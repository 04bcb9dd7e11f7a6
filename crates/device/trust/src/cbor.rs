//! Small helpers for the deterministic CBOR (RFC 8949 section 4.2.1) this crate writes and the
//! strict decoding it applies: decode to a `Value`, read fields, then re-encode and compare, so
//! every accepted document has exactly one encoding.

use ciborium::value::{Integer, Value};

pub(crate) fn uint(v: u64) -> Value {
    Value::Integer(Integer::from(v))
}

pub(crate) fn int(v: i64) -> Value {
    Value::Integer(Integer::from(v))
}

pub(crate) fn encode(v: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decode one CBOR item with a nesting limit; trailing bytes are refused by the callers'
/// re-encode check.
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, String> {
    ciborium::de::from_reader_with_recursion_limit(bytes, 16).map_err(|e| e.to_string())
}

pub(crate) fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Integer(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

pub(crate) fn as_i128(v: &Value) -> Option<i128> {
    match v {
        Value::Integer(i) => Some(i128::from(*i)),
        _ => None,
    }
}

pub(crate) fn as_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Bytes(b) => Some(b),
        _ => None,
    }
}

pub(crate) fn as_text(v: &Value) -> Option<&str> {
    match v {
        Value::Text(t) => Some(t),
        _ => None,
    }
}

/// The entries of a map whose keys are integers, in input order (the re-encode check enforces
/// ascending order and uniqueness).
pub(crate) fn int_map(v: &Value) -> Option<Vec<(i128, &Value)>> {
    match v {
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| as_i128(k).map(|k| (k, v)))
            .collect(),
        _ => None,
    }
}

pub(crate) fn get<'a>(map: &[(i128, &'a Value)], key: i128) -> Option<&'a Value> {
    map.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}
