//! Strict JSON reading shared by manifests and hardware definitions.
//!
//! serde_json silently keeps the last of two equal object keys; two tools reading the same file
//! could then disagree about what an app is granted. We reject duplicate keys instead.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why strict parsing failed, with serde_json's position.
pub(crate) struct JsonSyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses `bytes` as one JSON document, rejecting duplicate object keys and trailing data.
pub(crate) fn parse_strict(bytes: &[u8]) -> Result<Value, JsonSyntaxError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictValue::deserialize(&mut deserializer).and_then(|value| {
        deserializer.end()?;
        Ok(value.0)
    });
    parsed.map_err(|error| JsonSyntaxError {
        line: error.line(),
        column: error.column(),
        message: strip_position(&error.to_string()),
    })
}

/// serde_json appends " at line L column C"; we report position separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message.get(..index).unwrap_or(message).to_owned(),
        None => message.to_owned(),
    }
}

/// Nesting depth of a value (a scalar is 1), computed without recursion.
pub(crate) fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((current, level)) = stack.pop() {
        deepest = deepest.max(level);
        match current {
            Value::Array(items) => stack.extend(items.iter().map(|item| (item, level + 1))),
            Value::Object(map) => stack.extend(map.values().map(|item| (item, level + 1))),
            _ => {}
        }
    }
    deepest
}

/// Short human name of a JSON value's type, for error messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A compact, length-bounded rendering of an offending value for error messages.
pub(crate) fn show(value: &Value) -> String {
    const MAX_SHOWN_CHARS: usize = 80;
    let rendered = value.to_string();
    if rendered.chars().count() <= MAX_SHOWN_CHARS {
        rendered
    } else {
        let mut shortened: String = rendered.chars().take(MAX_SHOWN_CHARS).collect();
        shortened.push_str("...");
        shortened
    }
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let StrictValue(item) = access.next_value()?;
            map.insert(key, item);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicate_keys_with_position() {
        let Err(error) = parse_strict(
            br#"{"a": 1,
 "a": 2}"#,
        ) else {
            panic!("duplicate key accepted");
        };
        assert!(
            error.message.contains("duplicate key `a`"),
            "{}",
            error.message
        );
        assert_eq!(error.line, 2);
    }

    #[test]
    fn depth_counts_nesting() {
        let Ok(value) = parse_strict(br#"{"a": [[1]]}"#) else {
            panic!("valid JSON rejected")
        };
        assert_eq!(depth(&value), 4);
    }

    #[test]
    fn rejects_trailing_data() {
        assert!(parse_strict(b"{} {}").is_err());
    }
}
