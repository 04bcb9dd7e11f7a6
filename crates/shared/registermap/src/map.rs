//! The register map (`register_map.json` in the guardian app's package directory): its types,
//! and [`RegisterMap::parse`], which reports every problem of a document at once, each with its
//! JSON path (`points[3].address: 70000 is out of range 0..=65535`). Schema: `docs/guardian.md`.

use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde_json::{Map, Value as Json};

use crate::codec;
use crate::name::PointName;
use crate::strict;

/// The one schema version this crate reads.
pub const SCHEMA_VERSION: u64 = 1;
/// The most points one map may list.
pub const MAX_POINTS: usize = 1024;
/// The longest unit string (`°C`, `kWh`, `m3/h`).
pub const MAX_UNIT_CHARS: usize = 16;
/// Poll periods, in milliseconds.
pub const POLL_MS_RANGE: (u32, u32) = (50, 86_400_000);
/// Response timeouts, in milliseconds.
pub const TIMEOUT_MS_RANGE: (u32, u32) = (10, 60_000);
/// The most retries after a timeout.
pub const MAX_RETRIES: u8 = 10;
/// The serial line speeds an RTU transport may name.
pub const BAUD_RATES: [u32; 8] = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200];

/// A validated register map.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterMap {
    pub transport: Transport,
    /// The Modbus unit (slave) ID: 1..=247 on RTU, 0..=255 on TCP.
    pub unit_id: u8,
    /// How long to wait for each response.
    pub timeout_ms: u32,
    /// How many times a request that timed out is sent again before the points read
    /// [`crate::Quality::CommError`].
    pub retries: u8,
    pub points: Vec<Point>,
}

/// How the guardian reaches the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Modbus TCP to `host:port` (an address on the private interface the manifest grants).
    Tcp { host: String, port: u16 },
    /// Modbus RTU on a UART the manifest grants (8 data bits, as the Modbus serial line
    /// specification requires).
    Rtu {
        uart: String,
        baud_rate: u32,
        parity: Parity,
        stop_bits: StopBits,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopBits {
    One,
    Two,
}

/// The four Modbus object tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectType {
    Coil,
    DiscreteInput,
    HoldingRegister,
    InputRegister,
}

impl ObjectType {
    const NAMES: [(&'static str, ObjectType); 4] = [
        ("coil", ObjectType::Coil),
        ("discrete_input", ObjectType::DiscreteInput),
        ("holding_register", ObjectType::HoldingRegister),
        ("input_register", ObjectType::InputRegister),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Coil => "coil",
            ObjectType::DiscreteInput => "discrete_input",
            ObjectType::HoldingRegister => "holding_register",
            ObjectType::InputRegister => "input_register",
        }
    }

    /// Coils and discrete inputs hold bits; the register tables hold 16-bit words.
    pub fn is_bit(self) -> bool {
        matches!(self, ObjectType::Coil | ObjectType::DiscreteInput)
    }

    /// Only coils and holding registers can be written.
    pub fn is_writable(self) -> bool {
        matches!(self, ObjectType::Coil | ObjectType::HoldingRegister)
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a point's registers are read as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Bool,
    U16,
    I16,
    U32,
    I32,
    F32,
}

impl DataType {
    const NAMES: [(&'static str, DataType); 6] = [
        ("bool", DataType::Bool),
        ("u16", DataType::U16),
        ("i16", DataType::I16),
        ("u32", DataType::U32),
        ("i32", DataType::I32),
        ("f32", DataType::F32),
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, data_type)| *data_type == self)
            .map_or("?", |(name, _)| name)
    }

    /// How many 16-bit registers (or bits, for bit tables) one value takes.
    pub fn width(self) -> u16 {
        match self {
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
        }
    }
}

/// Which register of a 32-bit value comes first. The bytes within each register are always
/// big-endian (Modbus's own rule); the order of the two registers is not standardised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordOrder {
    /// The high 16 bits at the lower address (Modicon's order, the default).
    HighFirst,
    /// The low 16 bits at the lower address ("word swapped").
    LowFirst,
}

/// What a writable point may be set to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Writable {
    /// A coil or a `bool` register: either value.
    Bool,
    /// A number within `min..=max` (engineering units), each representable in the data type.
    Bounds { min: f64, max: f64 },
}

/// One point: a value in one of the machine's tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: PointName,
    pub object: ObjectType,
    /// The protocol address (0-based, as on the wire: register 40001 is holding register 0).
    pub address: u16,
    pub data_type: DataType,
    pub word_order: WordOrder,
    /// Engineering value = raw value × scale + offset.
    pub scale: f64,
    pub offset: f64,
    pub unit: Option<String>,
    pub poll_ms: u32,
    /// A new value is handed on only when it differs from the last one handed on by more than
    /// this (0: any change).
    pub deadband: f64,
    pub writable: Option<Writable>,
}

impl Point {
    /// The last address the point occupies.
    pub fn last_address(&self) -> u32 {
        u32::from(self.address) + u32::from(self.data_type.width()) - 1
    }

    /// Whether values are integers (no scaling on an integer type): see [`crate::Value`].
    pub fn is_integer(&self) -> bool {
        !matches!(self.data_type, DataType::Bool | DataType::F32)
            && self.scale == 1.0
            && self.offset == 0.0
    }
}

/// What the app's manifest grants, for the check that the map's transport is reachable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Hosts (names or addresses) the app may connect to.
    pub hosts: Vec<String>,
    /// UARTs (manifest values after `$NAME` resolution, `ISU0`).
    pub uarts: Vec<String>,
}

/// Why a manifest's grants cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the app manifest is not JSON: {0}")]
pub struct ManifestJsonError(String);

impl Grants {
    /// What a resolved `app_manifest.json` (the one an image package carries, `$NAME`s
    /// resolved) grants: its `AllowedConnections` and `Uart` entries as written. The CLI's
    /// pack-time check and the app's check at start read them through this one function.
    pub fn from_manifest_json(bytes: &[u8]) -> Result<Grants, ManifestJsonError> {
        let json: Json = serde_json::from_slice(bytes)
            .map_err(|error| ManifestJsonError(alloc::string::ToString::to_string(&error)))?;
        let strings = |key: &str| -> Vec<String> {
            json.get("Capabilities")
                .and_then(|capabilities| capabilities.get(key))
                .and_then(Json::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(Json::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Grants {
            hosts: strings("AllowedConnections"),
            uarts: strings("Uart"),
        })
    }
}

/// What kind of problem a [`MapIssue`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueKind {
    /// Not JSON, or not one document.
    Syntax,
    /// A required field is absent.
    Missing,
    /// A field this schema does not have.
    Unknown,
    /// A value of the wrong JSON type or an unknown name.
    Invalid,
    /// A number outside its range, or a value the data type cannot represent.
    OutOfRange,
    /// A point name used twice.
    Duplicate,
    /// Two points share a register or bit.
    Overlap,
    /// A combination the object type does not allow (a writable input register, a scaled bool).
    NotAllowed,
    /// The manifest does not grant the transport.
    NotGranted,
}

/// One problem of a register map: where (a JSON path, `(document)` for the whole) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapIssue {
    pub path: String,
    pub kind: IssueKind,
    pub message: String,
}

impl fmt::Display for MapIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem of a register map, in document order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the register map has {} error(s): {}", .0.len(), Listed(.0))]
pub struct MapErrors(pub Vec<MapIssue>);

struct Listed<'a>(&'a [MapIssue]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, issue) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl RegisterMap {
    /// Parses and checks a register map. With `grants`, the transport must be one the
    /// manifest grants (the pack-time check and the app's check at start both pass them).
    pub fn parse(bytes: &[u8], grants: Option<&Grants>) -> Result<RegisterMap, MapErrors> {
        let json = strict::parse(bytes).map_err(|message| {
            MapErrors(alloc::vec![MapIssue {
                path: "(document)".to_owned(),
                kind: IssueKind::Syntax,
                message,
            }])
        })?;
        let mut issues = Issues::default();
        let map = read_map(&json, grants, &mut issues);
        match map {
            Some(map) if issues.0.is_empty() => Ok(map),
            _ => {
                if issues.0.is_empty() {
                    issues.push(
                        "(document)",
                        IssueKind::Invalid,
                        "not a register map".to_owned(),
                    );
                }
                Err(MapErrors(issues.0))
            }
        }
    }

    /// The point named `name`.
    pub fn point(&self, name: &PointName) -> Option<&Point> {
        self.points.iter().find(|point| &point.name == name)
    }
}

#[derive(Default)]
struct Issues(Vec<MapIssue>);

impl Issues {
    fn push(&mut self, path: &str, kind: IssueKind, message: String) {
        self.0.push(MapIssue {
            path: path.to_owned(),
            kind,
            message,
        });
    }
}

fn type_name(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// One JSON object being read: fields are taken by name, and whatever is left at the end is
/// reported as unknown.
struct Object<'a> {
    path: String,
    fields: &'a Map<String, Json>,
    taken: Vec<&'static str>,
}

impl<'a> Object<'a> {
    fn new(value: &'a Json, path: &str, issues: &mut Issues) -> Option<Object<'a>> {
        match value {
            Json::Object(fields) => Some(Object {
                path: path.to_owned(),
                fields,
                taken: Vec::new(),
            }),
            other => {
                issues.push(
                    path,
                    IssueKind::Invalid,
                    format!("must be an object, not {}", type_name(other)),
                );
                None
            }
        }
    }

    fn field_path(&self, key: &str) -> String {
        if self.path == "(document)" {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn optional(&mut self, key: &'static str) -> Option<(&'a Json, String)> {
        self.taken.push(key);
        self.fields
            .get(key)
            .map(|value| (value, self.field_path(key)))
    }

    fn required(&mut self, key: &'static str, issues: &mut Issues) -> Option<(&'a Json, String)> {
        let found = self.optional(key);
        if found.is_none() {
            issues.push(
                &self.field_path(key),
                IssueKind::Missing,
                "is required".to_owned(),
            );
        }
        found
    }

    fn finish(self, issues: &mut Issues) {
        for key in self.fields.keys() {
            if !self.taken.contains(&key.as_str()) {
                issues.push(
                    &self.field_path(key),
                    IssueKind::Unknown,
                    "is not a field of this object".to_owned(),
                );
            }
        }
    }
}

/// An integer within `min..=max`.
fn integer(value: &Json, path: &str, min: i64, max: i64, issues: &mut Issues) -> Option<i64> {
    let number = match value {
        Json::Number(number) => number,
        other => {
            issues.push(
                path,
                IssueKind::Invalid,
                format!("must be an integer, not {}", type_name(other)),
            );
            return None;
        }
    };
    let in_range = number.as_i64().filter(|n| (min..=max).contains(n));
    if in_range.is_none() {
        let kind = if number.is_f64() {
            IssueKind::Invalid
        } else {
            IssueKind::OutOfRange
        };
        let message = if number.is_f64() {
            format!("{number} is not an integer")
        } else {
            format!("{number} is out of range {min}..={max}")
        };
        issues.push(path, kind, message);
    }
    in_range
}

/// A finite number.
fn number(value: &Json, path: &str, issues: &mut Issues) -> Option<f64> {
    match value.as_f64() {
        Some(number) if number.is_finite() => Some(number),
        _ => {
            issues.push(
                path,
                IssueKind::Invalid,
                format!("must be a number, not {}", type_name(value)),
            );
            None
        }
    }
}

fn string<'a>(value: &'a Json, path: &str, issues: &mut Issues) -> Option<&'a str> {
    match value {
        Json::String(text) => Some(text),
        other => {
            issues.push(
                path,
                IssueKind::Invalid,
                format!("must be a string, not {}", type_name(other)),
            );
            None
        }
    }
}

/// One of a fixed set of names.
fn named<T: Copy>(value: &Json, path: &str, names: &[(&str, T)], issues: &mut Issues) -> Option<T> {
    let text = string(value, path, issues)?;
    let found = names
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, item)| *item);
    if found.is_none() {
        let expected: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
        issues.push(
            path,
            IssueKind::Invalid,
            format!("\"{text}\" is not one of {}", expected.join(", ")),
        );
    }
    found
}

fn read_map(json: &Json, grants: Option<&Grants>, issues: &mut Issues) -> Option<RegisterMap> {
    let mut root = Object::new(json, "(document)", issues)?;
    if let Some((value, path)) = root.required("schemaVersion", issues) {
        let version = integer(value, &path, 0, i64::from(u32::MAX), issues);
        if version.is_some_and(|version| version != SCHEMA_VERSION as i64) {
            issues.push(
                &path,
                IssueKind::OutOfRange,
                format!(
                    "version {} is not {SCHEMA_VERSION}, the one this guardian reads",
                    version.unwrap_or(0)
                ),
            );
        }
    }
    let transport = root
        .required("transport", issues)
        .and_then(|(value, path)| read_transport(value, &path, issues));
    if let (Some(transport), Some(grants)) = (&transport, grants) {
        check_grants(transport, grants, issues);
    }
    // RTU's unit IDs are 1..=247 (0 is broadcast, which no slave answers), also when the
    // transport has other errors.
    let rtu = json.pointer("/transport/type").and_then(Json::as_str) == Some("rtu");
    let unit_max = if rtu { (1, 247) } else { (0, 255) };
    let unit_id = root
        .required("unitId", issues)
        .and_then(|(value, path)| integer(value, &path, unit_max.0, unit_max.1, issues));
    let timeout_ms = match root.optional("timeoutMs") {
        Some((value, path)) => integer(
            value,
            &path,
            TIMEOUT_MS_RANGE.0.into(),
            TIMEOUT_MS_RANGE.1.into(),
            issues,
        ),
        None => Some(1000),
    };
    let retries = match root.optional("retries") {
        Some((value, path)) => integer(value, &path, 0, MAX_RETRIES.into(), issues),
        None => Some(2),
    };
    let points = root
        .required("points", issues)
        .and_then(|(value, path)| read_points(value, &path, issues));
    root.finish(issues);
    Some(RegisterMap {
        transport: transport?,
        unit_id: u8::try_from(unit_id?).ok()?,
        timeout_ms: u32::try_from(timeout_ms?).ok()?,
        retries: u8::try_from(retries?).ok()?,
        points: points?,
    })
}

fn read_transport(value: &Json, path: &str, issues: &mut Issues) -> Option<Transport> {
    let mut object = Object::new(value, path, issues)?;
    let kind = object
        .required("type", issues)
        .and_then(|(value, path)| named(value, &path, &[("tcp", true), ("rtu", false)], issues));
    let transport = match kind {
        Some(true) => {
            let host = object.required("host", issues).and_then(|(value, path)| {
                let host = string(value, &path, issues)?;
                if host.is_empty() || host.len() > 253 || host.chars().any(|c| c.is_whitespace()) {
                    issues.push(
                        &path,
                        IssueKind::Invalid,
                        "must be a host name or an address (1 to 253 characters, no spaces)"
                            .to_owned(),
                    );
                    return None;
                }
                Some(host.to_owned())
            });
            let port = match object.optional("port") {
                Some((value, path)) => integer(value, &path, 1, 65535, issues),
                None => Some(502),
            };
            Some(Transport::Tcp {
                host: host?,
                port: u16::try_from(port?).ok()?,
            })
        }
        Some(false) => {
            let uart = object.required("uart", issues).and_then(|(value, path)| {
                let uart = string(value, &path, issues)?;
                if uart.is_empty() || uart.len() > 64 {
                    issues.push(&path, IssueKind::Invalid, "must name a UART".to_owned());
                    return None;
                }
                Some(uart.to_owned())
            });
            let baud_rate = object
                .required("baudRate", issues)
                .and_then(|(value, path)| {
                    let rate = integer(value, &path, 0, i64::from(u32::MAX), issues)?;
                    let rate = u32::try_from(rate).ok()?;
                    if !BAUD_RATES.contains(&rate) {
                        issues.push(
                            &path,
                            IssueKind::OutOfRange,
                            format!("{rate} is not one of {BAUD_RATES:?}"),
                        );
                        return None;
                    }
                    Some(rate)
                });
            let parity = match object.optional("parity") {
                Some((value, path)) => named(
                    value,
                    &path,
                    &[
                        ("none", Parity::None),
                        ("even", Parity::Even),
                        ("odd", Parity::Odd),
                    ],
                    issues,
                ),
                None => Some(Parity::Even),
            };
            let stop_bits = match object.optional("stopBits") {
                Some((value, path)) => integer(value, &path, 1, 2, issues).map(|bits| {
                    if bits == 1 {
                        StopBits::One
                    } else {
                        StopBits::Two
                    }
                }),
                None => Some(StopBits::One),
            };
            Some(Transport::Rtu {
                uart: uart?,
                baud_rate: baud_rate?,
                parity: parity?,
                stop_bits: stop_bits?,
            })
        }
        None => None,
    };
    object.finish(issues);
    transport
}

fn read_points(value: &Json, path: &str, issues: &mut Issues) -> Option<Vec<Point>> {
    let Json::Array(items) = value else {
        issues.push(
            path,
            IssueKind::Invalid,
            format!("must be an array, not {}", type_name(value)),
        );
        return None;
    };
    if items.is_empty() || items.len() > MAX_POINTS {
        issues.push(
            path,
            IssueKind::OutOfRange,
            format!("must list 1 to {MAX_POINTS} points, not {}", items.len()),
        );
        return None;
    }
    let mut points = Vec::new();
    for (index, item) in items.iter().enumerate() {
        if let Some(point) = read_point(item, &format!("{path}[{index}]"), issues) {
            points.push((index, point));
        }
    }
    // Names and overlaps among the points that parsed, so they are reported with the rest.
    check_points(&points, issues);
    (points.len() == items.len()).then(|| points.into_iter().map(|(_, point)| point).collect())
}

fn read_point(value: &Json, path: &str, issues: &mut Issues) -> Option<Point> {
    let mut object = Object::new(value, path, issues)?;
    let name = object.required("name", issues).and_then(|(value, path)| {
        let text = string(value, &path, issues)?;
        PointName::new(text)
            .map_err(|error| issues.push(&path, IssueKind::Invalid, format!("\"{text}\": {error}")))
            .ok()
    });
    let object_type = object
        .required("object", issues)
        .and_then(|(value, path)| named(value, &path, &ObjectType::NAMES, issues));
    let address = object
        .required("address", issues)
        .and_then(|(value, path)| integer(value, &path, 0, 65535, issues));
    let data_type = match object.optional("type") {
        Some((value, path)) => named(value, &path, &DataType::NAMES, issues).map(|t| (t, path)),
        None if object_type.is_some_and(ObjectType::is_bit) => {
            Some((DataType::Bool, object.field_path("type")))
        }
        None => {
            issues.push(
                &object.field_path("type"),
                IssueKind::Missing,
                "is required for registers".to_owned(),
            );
            None
        }
    };
    if let (Some(object_type), Some((data_type, type_path))) = (object_type, &data_type)
        && object_type.is_bit()
        && *data_type != DataType::Bool
    {
        issues.push(
            type_path,
            IssueKind::NotAllowed,
            format!("{object_type} points hold one bit: their type is bool"),
        );
    }
    let data_type = data_type.map(|(data_type, _)| data_type);
    let wide = data_type.map(|t| t.width() == 2);
    let word_order = match object.optional("wordOrder") {
        Some((value, path)) => {
            let order = named(
                value,
                &path,
                &[
                    ("high_first", WordOrder::HighFirst),
                    ("low_first", WordOrder::LowFirst),
                ],
                issues,
            );
            if wide == Some(false) {
                issues.push(
                    &path,
                    IssueKind::NotAllowed,
                    "applies to 32-bit types (u32, i32, f32) only".to_owned(),
                );
            }
            order
        }
        None => Some(WordOrder::HighFirst),
    };
    if let (Some(65535), Some(true)) = (address, wide) {
        issues.push(
            &object.field_path("address"),
            IssueKind::OutOfRange,
            "a 32-bit value at 65535 would run past the last address (65535)".to_owned(),
        );
    }
    let is_bool = data_type.map(|t| t == DataType::Bool);
    let numeric_only = |object: &mut Object<'_>, key: &'static str, issues: &mut Issues| {
        let (value, path) = object.optional(key)?;
        if is_bool == Some(true) {
            issues.push(
                &path,
                IssueKind::NotAllowed,
                "does not apply to bool points".to_owned(),
            );
            return None;
        }
        number(value, &path, issues).map(|n| (n, path))
    };
    let scale = match numeric_only(&mut object, "scale", issues) {
        Some((0.0, path)) => {
            issues.push(&path, IssueKind::OutOfRange, "must not be 0".to_owned());
            None
        }
        Some((scale, _)) => Some(scale),
        None => Some(1.0),
    };
    let offset = numeric_only(&mut object, "offset", issues).map_or(0.0, |(n, _)| n);
    let deadband = match numeric_only(&mut object, "deadband", issues) {
        Some((deadband, path)) if deadband < 0.0 => {
            issues.push(
                &path,
                IssueKind::OutOfRange,
                "must not be negative".to_owned(),
            );
            None
        }
        Some((deadband, _)) => Some(deadband),
        None => Some(0.0),
    };
    let unit = match object.optional("unit") {
        Some((value, path)) => match string(value, &path, issues) {
            Some(unit)
                if unit.chars().count() > MAX_UNIT_CHARS || unit.chars().any(char::is_control) =>
            {
                issues.push(
                    &path,
                    IssueKind::Invalid,
                    format!("a unit has at most {MAX_UNIT_CHARS} printable characters"),
                );
                None
            }
            Some(unit) => Some(Some(unit.to_owned())),
            None => None,
        },
        None => Some(None),
    };
    let poll_ms = match object.optional("pollMs") {
        Some((value, path)) => integer(
            value,
            &path,
            POLL_MS_RANGE.0.into(),
            POLL_MS_RANGE.1.into(),
            issues,
        ),
        None => Some(1000),
    };
    let writable = match object.optional("writable") {
        None => Some(None),
        Some((value, path)) => {
            read_writable(value, &path, object_type, data_type, scale, offset, issues)
        }
    };
    object.finish(issues);
    Some(Point {
        name: name?,
        object: object_type?,
        address: u16::try_from(address?).ok()?,
        data_type: data_type?,
        word_order: word_order?,
        scale: scale?,
        offset,
        unit: unit?,
        poll_ms: u32::try_from(poll_ms?).ok()?,
        deadband: deadband?,
        writable: writable?,
    })
}

fn read_writable(
    value: &Json,
    path: &str,
    object_type: Option<ObjectType>,
    data_type: Option<DataType>,
    scale: Option<f64>,
    offset: f64,
    issues: &mut Issues,
) -> Option<Option<Writable>> {
    if let Some(object_type) = object_type.filter(|t| !t.is_writable()) {
        issues.push(
            path,
            IssueKind::NotAllowed,
            format!(
                "{object_type} points cannot be written (only coil and holding_register points)"
            ),
        );
        return None;
    }
    match (value, data_type?) {
        (Json::Bool(false), _) => Some(None),
        (Json::Bool(true), DataType::Bool) => Some(Some(Writable::Bool)),
        (Json::Bool(true), _) => {
            issues.push(
                path,
                IssueKind::Missing,
                "a writable number needs its bounds: {\"min\": ..., \"max\": ...}".to_owned(),
            );
            None
        }
        (Json::Object(_), DataType::Bool) => {
            issues.push(
                path,
                IssueKind::NotAllowed,
                "a bool point is writable with true, it has no bounds".to_owned(),
            );
            None
        }
        (Json::Object(_), data_type) => {
            let mut bounds = Object::new(value, path, issues)?;
            let min = bounds
                .required("min", issues)
                .and_then(|(value, path)| number(value, &path, issues).map(|n| (n, path)));
            let max = bounds
                .required("max", issues)
                .and_then(|(value, path)| number(value, &path, issues).map(|n| (n, path)));
            bounds.finish(issues);
            let ((min, min_path), (max, max_path)) = (min?, max?);
            if min > max {
                issues.push(
                    path,
                    IssueKind::OutOfRange,
                    format!("min {min} is above max {max}"),
                );
                return None;
            }
            let scale = scale?;
            let mut representable = true;
            for (bound, bound_path) in [(min, &min_path), (max, &max_path)] {
                if let Err(range) = codec::raw_for(data_type, scale, offset, bound) {
                    issues.push(
                        bound_path,
                        IssueKind::OutOfRange,
                        format!("{bound} cannot be represented: {range}"),
                    );
                    representable = false;
                }
            }
            representable.then_some(Some(Writable::Bounds { min, max }))
        }
        (other, _) => {
            issues.push(
                path,
                IssueKind::Invalid,
                format!("must be a boolean or an object, not {}", type_name(other)),
            );
            None
        }
    }
}

/// Names used twice, and points of one table that share an address.
fn check_points(points: &[(usize, Point)], issues: &mut Issues) {
    let mut names: BTreeMap<&PointName, usize> = BTreeMap::new();
    for (index, point) in points.iter().map(|(index, point)| (*index, point)) {
        if let Some(first) = names.insert(&point.name, index) {
            names.insert(&point.name, first);
            issues.push(
                &format!("points[{index}].name"),
                IssueKind::Duplicate,
                format!("\"{}\" is already the name of points[{first}]", point.name),
            );
        }
    }
    let mut by_start: Vec<(ObjectType, u32, u32, usize)> = points
        .iter()
        .enumerate()
        .map(|(slot, (_, point))| {
            (
                point.object,
                u32::from(point.address),
                point.last_address(),
                slot,
            )
        })
        .collect();
    by_start.sort_unstable();
    // The point reaching furthest so far in the current table: a point starting at or before
    // its end overlaps it.
    let mut reach: Option<(ObjectType, u32, usize)> = None;
    for (object, start, end, index) in by_start {
        if let Some((table, furthest, holder)) = reach.filter(|(table, ..)| *table == object) {
            if start <= furthest {
                let (first, second) = (&points[holder.min(index)], &points[holder.max(index)]);
                issues.push(
                    &format!("points[{}].address", second.0),
                    IssueKind::Overlap,
                    format!(
                        "{object} {} overlaps points[{}] ({})",
                        second.1.address, first.0, first.1.name
                    ),
                );
            }
            if end > furthest {
                reach = Some((table, end, index));
            }
        } else {
            reach = Some((object, end, index));
        }
    }
}

fn check_grants(transport: &Transport, grants: &Grants, issues: &mut Issues) {
    match transport {
        Transport::Tcp { host, .. } => {
            if !grants
                .hosts
                .iter()
                .any(|granted| granted.eq_ignore_ascii_case(host))
            {
                issues.push(
                    "transport.host",
                    IssueKind::NotGranted,
                    format!("{host} is not a host the app's manifest lets it connect to"),
                );
            }
        }
        Transport::Rtu { uart, .. } => {
            if !grants.uarts.iter().any(|granted| granted == uart) {
                issues.push(
                    "transport.uart",
                    IssueKind::NotGranted,
                    format!("{uart} is not a UART the app's manifest grants"),
                );
            }
        }
    }
}
