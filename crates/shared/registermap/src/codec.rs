//! Between Modbus registers and engineering values: decoding (registers or a bit to a
//! [`Value`], scaled) and encoding (a requested [`Value`] to registers or a bit, bounds and type
//! checked). Bytes within a register are big-endian (Modbus); a 32-bit value's two registers
//! are in the point's [`WordOrder`].

use alloc::vec::Vec;
use core::fmt;

use crate::map::{DataType, Point, WordOrder, Writable};
use crate::reading::{Refusal, Value, ValueKind};

/// What a point's raw value is on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoded {
    /// A coil.
    Bit(bool),
    /// One or two holding registers, in address order.
    Registers(Vec<u16>),
}

/// The raw range of a data type, for "cannot be represented" messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawRange {
    pub data_type: DataType,
    pub min: f64,
    pub max: f64,
}

impl fmt::Display for RawRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "its raw value must be within {}..={} for {}",
            self.min,
            self.max,
            self.data_type.as_str()
        )
    }
}

fn raw_range(data_type: DataType) -> RawRange {
    let (min, max) = match data_type {
        DataType::Bool => (0.0, 1.0),
        DataType::U16 => (0.0, f64::from(u16::MAX)),
        DataType::I16 => (f64::from(i16::MIN), f64::from(i16::MAX)),
        DataType::U32 => (0.0, f64::from(u32::MAX)),
        DataType::I32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
        DataType::F32 => (f64::from(f32::MIN), f64::from(f32::MAX)),
    };
    RawRange {
        data_type,
        min,
        max,
    }
}

/// The raw value that `engineering` scales from (`(engineering - offset) / scale`, rounded to
/// the nearest integer for integer types), or the range it falls outside.
pub fn raw_for(
    data_type: DataType,
    scale: f64,
    offset: f64,
    engineering: f64,
) -> Result<f64, RawRange> {
    let range = raw_range(data_type);
    let mut raw = (engineering - offset) / scale;
    if data_type != DataType::F32 {
        raw = round(raw);
    }
    if raw.is_finite() && raw >= range.min && raw <= range.max {
        Ok(raw)
    } else {
        Err(range)
    }
}

/// Rounds half away from zero (core has no `f64::round` without std).
fn round(x: f64) -> f64 {
    // |x| < 2^52 for every raw integer range here; larger values are out of range anyway.
    if x.is_nan() || x.abs() >= 4_503_599_627_370_496.0 {
        return x;
    }
    let truncated = (x as i64) as f64;
    let fraction = x - truncated;
    if fraction >= 0.5 {
        truncated + 1.0
    } else if fraction <= -0.5 {
        truncated - 1.0
    } else {
        truncated
    }
}

fn join(point: &Point, registers: [u16; 2]) -> u32 {
    let (high, low) = match point.word_order {
        WordOrder::HighFirst => (registers[0], registers[1]),
        WordOrder::LowFirst => (registers[1], registers[0]),
    };
    (u32::from(high) << 16) | u32::from(low)
}

fn split(point: &Point, word: u32) -> Vec<u16> {
    let (high, low) = ((word >> 16) as u16, word as u16);
    match point.word_order {
        WordOrder::HighFirst => alloc::vec![high, low],
        WordOrder::LowFirst => alloc::vec![low, high],
    }
}

/// A bit's value (coil or discrete input).
pub fn decode_bit(bit: bool) -> Value {
    Value::Bool(bit)
}

/// The value of `point` from its registers (`point.data_type.width()` of them, in address
/// order). `None` when fewer registers were given.
pub fn decode_registers(point: &Point, registers: &[u16]) -> Option<Value> {
    let first = *registers.first()?;
    let raw: f64 = match point.data_type {
        DataType::Bool => return Some(Value::Bool(first != 0)),
        DataType::U16 => f64::from(first),
        DataType::I16 => f64::from(first as i16),
        DataType::U32 => f64::from(join(point, [first, *registers.get(1)?])),
        DataType::I32 => f64::from(join(point, [first, *registers.get(1)?]) as i32),
        DataType::F32 => f64::from(f32::from_bits(join(point, [first, *registers.get(1)?]))),
    };
    Some(if point.is_integer() {
        // Exact: every 16- and 32-bit integer is an f64 and an i64.
        Value::Int(raw as i64)
    } else {
        Value::Float(raw * point.scale + point.offset)
    })
}

/// What to send to write `value` to `point`, or why not: the point must be writable, the value
/// of its kind (a boolean for bool points, a number otherwise) and within its bounds.
pub fn encode(point: &Point, value: Value) -> Result<Encoded, Refusal> {
    let writable = point.writable.ok_or_else(|| Refusal::NotWritable {
        point: point.name.clone(),
    })?;
    let wrong_type = |expected| Refusal::WrongType {
        point: point.name.clone(),
        value,
        expected,
    };
    let (min, max) = match writable {
        Writable::Bool => {
            let Value::Bool(bit) = value else {
                return Err(wrong_type(ValueKind::Bool));
            };
            return Ok(if point.object.is_bit() {
                Encoded::Bit(bit)
            } else {
                Encoded::Registers(alloc::vec![u16::from(bit)])
            });
        }
        Writable::Bounds { min, max } => (min, max),
    };
    let number = match value {
        Value::Bool(_) => return Err(wrong_type(ValueKind::Number)),
        Value::Int(_) | Value::Float(_) => value.as_f64(),
    };
    let out_of_bounds = || Refusal::OutOfBounds {
        point: point.name.clone(),
        value,
        min,
        max,
    };
    if !number.is_finite() || number < min || number > max {
        return Err(out_of_bounds());
    }
    let raw =
        raw_for(point.data_type, point.scale, point.offset, number).map_err(|_| out_of_bounds())?;
    Ok(Encoded::Registers(match point.data_type {
        DataType::Bool => alloc::vec![u16::from(raw != 0.0)],
        DataType::U16 => alloc::vec![raw as u16],
        DataType::I16 => alloc::vec![(raw as i16) as u16],
        DataType::U32 => split(point, raw as u32),
        DataType::I32 => split(point, (raw as i32) as u32),
        DataType::F32 => split(point, (raw as f32).to_bits()),
    }))
}
