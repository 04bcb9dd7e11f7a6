//! One JSON document into a `serde_json::Value`, refusing what serde_json would quietly accept:
//! a key given twice in one object (serde_json keeps the last, so two readers could disagree on
//! which register is polled) and data after the document.

use alloc::borrow::ToOwned;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The largest register map accepted, in bytes.
pub const MAX_MAP_BYTES: usize = 256 * 1024;
/// How deep arrays and objects may nest (a map needs 4).
const MAX_DEPTH: u32 = 8;

/// Parses `bytes`; the error is serde_json's message with its line and column.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() > MAX_MAP_BYTES {
        return Err(alloc::format!(
            "the document is {} bytes, more than the {MAX_MAP_BYTES} allowed",
            bytes.len()
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = Depth(MAX_DEPTH)
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    value.map_err(|error| error.to_string())
}

/// A visitor that knows how many more levels of nesting it may enter.
#[derive(Clone, Copy)]
struct Depth(u32);

impl Depth {
    fn inner<E: serde::de::Error>(self) -> Result<Depth, E> {
        self.0
            .checked_sub(1)
            .map(Depth)
            .ok_or_else(|| E::custom(alloc::format!("nested deeper than {MAX_DEPTH} levels")))
    }
}

impl<'de> DeserializeSeed<'de> for Depth {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Depth {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Value, E> {
        Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut object = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            let value = entries.next_value_seed(inner)?;
            if object.contains_key(&key) {
                return Err(A::Error::custom(alloc::format!(
                    "key \"{key}\" appears twice"
                )));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}
