//! What the guardian hands to its uplink and takes from it: readings out, write requests in,
//! acknowledgements out. Shared by the app's Modbus side and its publishing side (and by the
//! cloud-side tools that decode what was published), so one definition of each.
//!
//! JSON shapes (serde): a [`Value`] is a bare JSON boolean, integer or number; a [`Quality`] is
//! `"good"`, `"stale"`, `"comm_error"` or `{"modbus_exception": 2}`; a [`WriteOutcome`] is
//! `"written"`, `{"refused": {...}}` or `{"failed": ...}`.

use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Serialize};

pub use crate::name::PointName;

/// A point's value in engineering units (after scale and offset).
///
/// How a register's data type maps (`docs/guardian.md`, "Values"): `bool` (coils, discrete
/// inputs, and `bool` registers) is [`Value::Bool`]; `u16`, `i16`, `u32` and `i32` are
/// [`Value::Int`] when the point has no scaling (scale 1, offset 0: every one of them fits an
/// `i64` exactly, `u32` included), and [`Value::Float`] when it has; `f32` is always
/// [`Value::Float`] (widened to `f64` exactly, then scaled).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Value {
    /// The value as a number (`true` is 1), for bounds and deadband comparisons.
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Bool(b) => f64::from(u8::from(b)),
            // i64 -> f64 rounds above 2^53; register values are at most 32 bits wide.
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
        }
    }
}

/// How much a reading can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// Read from the machine at `timestamp_ms`.
    Good,
    /// Not refreshed for two poll periods: the value is the last good one.
    Stale,
    /// The machine did not answer (timeout after the map's retries, or a broken connection).
    CommError,
    /// The machine answered with a Modbus exception (its code: 1 illegal function, 2 illegal
    /// data address, 3 illegal data value, 4 server device failure, ...).
    ModbusException(u8),
}

/// One point's reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub point: PointName,
    /// The last value read; for a reading whose quality is not [`Quality::Good`], the last good
    /// value, or `None` when the point was never read.
    pub value: Option<Value>,
    /// When it was read (Unix time, milliseconds), or when the failure was seen.
    pub timestamp_ms: u64,
    pub quality: Quality,
}

/// A request to write one point, from the command source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteRequest {
    /// The requester's ID, echoed in the acknowledgement (at most [`MAX_REQUEST_ID_CHARS`]).
    pub id: String,
    pub point: PointName,
    /// In engineering units; the app applies the inverse of the point's scaling.
    pub value: Value,
}

/// The longest request ID an acknowledgement echoes; a longer one is refused.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// The answer to every [`WriteRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteAck {
    pub id: String,
    pub outcome: WriteOutcome,
}

/// What happened to a write request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOutcome {
    /// The machine accepted the write.
    Written,
    /// The guardian did not send it; nothing was written.
    Refused(Refusal),
    /// The guardian sent it and the machine did not accept it.
    Failed(WriteFailure),
}

/// Why a write request was refused before anything was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Refusal {
    #[error("no point named {point} in the register map")]
    UnknownPoint { point: PointName },
    #[error("point {point} is not writable")]
    NotWritable { point: PointName },
    #[error("{value} is outside the bounds of point {point} ({min}..={max})")]
    OutOfBounds {
        point: PointName,
        value: Value,
        min: f64,
        max: f64,
    },
    #[error("point {point} takes a {expected} value, not {value}")]
    WrongType {
        point: PointName,
        value: Value,
        expected: ValueKind,
    },
    #[error("the request ID is longer than {MAX_REQUEST_ID_CHARS} characters")]
    BadRequestId,
}

/// The kind of value a point takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    Bool,
    Number,
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueKind::Bool => "boolean",
            ValueKind::Number => "numeric",
        })
    }
}

/// Why a write that was sent did not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum WriteFailure {
    #[error("the machine answered Modbus exception {0}")]
    ModbusException(u8),
    #[error("the machine did not answer")]
    CommError,
}
