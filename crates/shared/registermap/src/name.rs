//! Point names: the key of a point in readings, write requests and telemetry topics.

use alloc::string::{String, ToString};
use core::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The longest point name.
pub const MAX_POINT_NAME_CHARS: usize = 64;

/// A point's name: 1 to 64 characters of ASCII letters, digits, `_`, `-` and `.`, starting with
/// a letter (so it is safe in an MQTT topic level, a Sparkplug metric name and a log line).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PointName(String);

/// Why a string is not a [`PointName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointNameError {
    #[error("a point name must not be empty")]
    Empty,
    #[error("a point name has at most {MAX_POINT_NAME_CHARS} characters")]
    TooLong,
    #[error("a point name starts with an ASCII letter")]
    BadStart,
    #[error("a point name holds only ASCII letters, digits, '_', '-' and '.'")]
    BadCharacter,
}

impl PointName {
    pub fn new(name: &str) -> Result<Self, PointNameError> {
        let first = name.chars().next().ok_or(PointNameError::Empty)?;
        if name.len() > MAX_POINT_NAME_CHARS {
            return Err(PointNameError::TooLong);
        }
        if !first.is_ascii_alphabetic() {
            return Err(PointNameError::BadStart);
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(PointNameError::BadCharacter);
        }
        Ok(PointName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PointName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::str::FromStr for PointName {
    type Err = PointNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PointName::new(s)
    }
}

impl<'de> Deserialize<'de> for PointName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        PointName::new(&s).map_err(serde::de::Error::custom)
    }
}
