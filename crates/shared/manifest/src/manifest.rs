//! `app_manifest.json`: parsing (all problems at once), typed access and canonical JSON.

use std::ops::Deref;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::capabilities::{
    Capabilities, PeripheralForm, PeripheralKind, Resolved, Unresolved, allowed_for_real_time,
    expect_guid, expect_integer, expect_string, parse_capabilities, real_time_only,
};
use crate::error::{IssueCode, ManifestErrors, ManifestIssue};
use crate::json::{self, show, type_name};

/// Largest manifest accepted, checked before parsing. Real manifests are well under 4 KiB.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;
/// Deepest JSON nesting accepted; a valid manifest needs 4 (root, Capabilities, MutableStorage, SizeKB).
pub const MAX_JSON_DEPTH: usize = 8;
/// The only `SchemaVersion` Azure Sphere defines.
pub const SUPPORTED_SCHEMA_VERSION: u64 = 1;
/// Longest app `Name`.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest `EntryPoint`.
pub const MAX_ENTRY_POINT_CHARS: usize = 256;
/// Most `CmdArgs` entries.
pub const MAX_CMD_ARGS: usize = 64;
/// Longest single `CmdArgs` entry.
pub const MAX_CMD_ARG_CHARS: usize = 1024;
/// `MallocVersion` values Azure Sphere defines (1: default allocator, 2: mallocng).
pub const MALLOC_VERSIONS: std::ops::RangeInclusive<u64> = 1..=2;
/// Watchdog periods a real-time app's manifest (`WatchdogPeriodMs`) or a board's
/// `RealTimeCore` peripheral may set, in milliseconds: long enough for a core to boot and kick
/// (100 ms), short enough that a hung core is seen within a minute.
pub const WATCHDOG_PERIOD_MS: std::ops::RangeInclusive<u32> = 100..=60_000;

/// Collects issues while walking a document.
#[derive(Debug, Default)]
pub(crate) struct IssueSink {
    issues: Vec<ManifestIssue>,
}

impl IssueSink {
    pub(crate) fn push(&mut self, path: &str, code: IssueCode, message: impl Into<String>) {
        self.issues.push(ManifestIssue {
            path: path.to_owned(),
            code,
            message: message.into(),
        });
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, ManifestErrors> {
        if self.issues.is_empty() {
            Ok(value)
        } else {
            Err(ManifestErrors::new(self.issues))
        }
    }
}

/// `ApplicationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplicationType {
    /// A high-level app (WebAssembly on Ferrosphere).
    Default,
    /// A real-time app (Cortex-M4 ELF).
    RealTimeCapable,
}

impl ApplicationType {
    /// The manifest string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "Default",
            Self::RealTimeCapable => "RealTimeCapable",
        }
    }
}

/// A parsed, schema-valid app manifest. `F` says whether peripherals may still be `$NAME`
/// references ([`Unresolved`], from [`AppManifest::parse`]) or not ([`Resolved`], only inside a
/// [`ResolvedManifest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppManifest<F: PeripheralForm = Unresolved> {
    pub(crate) name: String,
    pub(crate) component_id: Uuid,
    pub(crate) entry_point: String,
    pub(crate) cmd_args: Vec<String>,
    pub(crate) application_type: ApplicationType,
    pub(crate) malloc_version: Option<u8>,
    pub(crate) watchdog_period_ms: Option<u32>,
    pub(crate) capabilities: Capabilities<F>,
}

impl<F: PeripheralForm> AppManifest<F> {
    /// `Name`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// `ComponentId`.
    pub fn component_id(&self) -> Uuid {
        self.component_id
    }
    /// `EntryPoint`: an absolute path inside the image.
    pub fn entry_point(&self) -> &str {
        &self.entry_point
    }
    /// `CmdArgs`.
    pub fn cmd_args(&self) -> &[String] {
        &self.cmd_args
    }
    /// `ApplicationType`.
    pub fn application_type(&self) -> ApplicationType {
        self.application_type
    }
    /// Whether this is a real-time app.
    pub fn is_real_time(&self) -> bool {
        self.application_type == ApplicationType::RealTimeCapable
    }
    /// `MallocVersion`, if present.
    pub fn malloc_version(&self) -> Option<u8> {
        self.malloc_version
    }
    /// `WatchdogPeriodMs` (Ferrosphere extension, real-time apps only), if present: the
    /// period within which the app must kick its core's watchdog.
    pub fn watchdog_period_ms(&self) -> Option<u32> {
        self.watchdog_period_ms
    }
    /// The granted capabilities.
    pub fn capabilities(&self) -> &Capabilities<F> {
        &self.capabilities
    }
}

impl AppManifest<Unresolved> {
    /// Parses and schema-validates `app_manifest.json` bytes, reporting every problem at once.
    /// `$NAME` references are kept; call [`AppManifest::resolve`] next.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestErrors> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestErrors::single(
                "",
                IssueCode::TooLarge,
                format!(
                    "manifest is {} bytes; at most {MAX_MANIFEST_BYTES} allowed",
                    bytes.len()
                ),
            ));
        }
        let document = json::parse_strict(bytes).map_err(|error| {
            ManifestErrors::single(
                "",
                IssueCode::InvalidJson,
                format!(
                    "not valid JSON: {} at line {} column {}",
                    error.message, error.line, error.column
                ),
            )
        })?;
        if json::depth(&document) > MAX_JSON_DEPTH {
            return Err(ManifestErrors::single(
                "",
                IssueCode::TooDeep,
                format!("JSON nests deeper than {MAX_JSON_DEPTH} levels"),
            ));
        }
        Self::from_value(&document)
    }

    fn from_value(document: &Value) -> Result<Self, ManifestErrors> {
        let mut sink = IssueSink::default();
        let Some(root) = document.as_object() else {
            return Err(ManifestErrors::single(
                "",
                IssueCode::WrongType,
                format!(
                    "the manifest is {}: expected a JSON object",
                    type_name(document)
                ),
            ));
        };
        let mut schema_version_seen = false;
        let mut name = None;
        let mut component_id = None;
        let mut entry_point = None;
        let mut cmd_args = Vec::new();
        let mut application_type = None;
        let mut malloc_version = None;
        let mut watchdog_period_ms = None;
        let mut capabilities = Capabilities::default();
        for (key, value) in root {
            let path = key.as_str();
            match path {
                "SchemaVersion" => {
                    schema_version_seen = true;
                    let version = expect_integer(value, path, &mut sink, "1");
                    if version.is_some_and(|version| version != i128::from(SUPPORTED_SCHEMA_VERSION)) {
                        let message = format!("SchemaVersion {} is not supported: allowed {SUPPORTED_SCHEMA_VERSION}", show(value));
                        sink.push(path, IssueCode::OutOfRange, message);
                    }
                }
                "Name" => name = parse_name(value, path, &mut sink),
                "ComponentId" => component_id = expect_guid(value, path, &mut sink),
                "EntryPoint" => entry_point = parse_entry_point(value, path, &mut sink),
                "CmdArgs" => cmd_args = parse_cmd_args(value, path, &mut sink),
                "ApplicationType" => {
                    let text = expect_string(value, path, &mut sink, "\"Default\" or \"RealTimeCapable\"");
                    application_type = match text {
                        Some("Default") => Some(ApplicationType::Default),
                        Some("RealTimeCapable") => Some(ApplicationType::RealTimeCapable),
                        Some(_) => {
                            sink.push(path, IssueCode::InvalidValue, format!("{} is not an application type: allowed \"Default\", \"RealTimeCapable\"", show(value)));
                            None
                        }
                        None => None,
                    };
                }
                "MallocVersion" => {
                    if let Some(version) = expect_integer(value, path, &mut sink, "1 or 2") {
                        match u8::try_from(version) {
                            Ok(small) if MALLOC_VERSIONS.contains(&u64::from(small)) => malloc_version = Some(small),
                            _ => sink.push(path, IssueCode::OutOfRange, format!("MallocVersion {version} is not allowed: allowed 1..=2")),
                        }
                    }
                }
                "WatchdogPeriodMs" => {
                    let (low, high) = (WATCHDOG_PERIOD_MS.start(), WATCHDOG_PERIOD_MS.end());
                    if let Some(period) = expect_integer(value, path, &mut sink, "whole milliseconds") {
                        match u32::try_from(period) {
                            Ok(ms) if WATCHDOG_PERIOD_MS.contains(&ms) => watchdog_period_ms = Some(ms),
                            _ => sink.push(path, IssueCode::OutOfRange, format!("WatchdogPeriodMs {period} is not allowed: allowed {low}..={high} milliseconds")),
                        }
                    }
                }
                "Capabilities" => match value.as_object() {
                    Some(object) => capabilities = parse_capabilities(object, &mut sink),
                    None => sink.push(path, IssueCode::WrongType, format!("{} is {}: expected an object", show(value), type_name(value))),
                },
                other => sink.push(other, IssueCode::UnknownField, format!("`{other}` is not an app manifest field (allowed: SchemaVersion, Name, ComponentId, EntryPoint, CmdArgs, ApplicationType, MallocVersion, WatchdogPeriodMs, Capabilities; names are case-sensitive)")),
            }
        }
        for (present, field, what) in [
            (schema_version_seen, "SchemaVersion", "1"),
            (root.contains_key("Name"), "Name", "the app's name"),
            (root.contains_key("ComponentId"), "ComponentId", "a GUID"),
            (
                root.contains_key("EntryPoint"),
                "EntryPoint",
                "an absolute path such as \"/bin/app\"",
            ),
            (
                root.contains_key("ApplicationType"),
                "ApplicationType",
                "\"Default\" or \"RealTimeCapable\"",
            ),
        ] {
            if !present {
                sink.push(
                    field,
                    IssueCode::MissingField,
                    format!("{field} is required: {what}"),
                );
            }
        }
        if let Some(kind) = application_type {
            check_application_type(kind, &capabilities, &mut sink);
            if kind == ApplicationType::Default && root.contains_key("WatchdogPeriodMs") {
                sink.push(
                    "WatchdogPeriodMs",
                    IssueCode::NotForHighLevel,
                    "WatchdogPeriodMs is available only to RealTimeCapable apps (a real-time core's watchdog)",
                );
            }
        }
        let manifest = match (name, component_id, entry_point, application_type) {
            (Some(name), Some(component_id), Some(entry_point), Some(application_type)) => {
                Some(Self {
                    name,
                    component_id,
                    entry_point,
                    cmd_args,
                    application_type,
                    malloc_version,
                    watchdog_period_ms,
                    capabilities,
                })
            }
            _ => None,
        };
        sink.into_result(manifest)
            .and_then(|manifest| manifest.ok_or_else(unreachable_empty))
    }
}

/// Required fields missing always produce an issue, so this is never returned in practice; it
/// exists so that no code path can panic.
fn unreachable_empty() -> ManifestErrors {
    ManifestErrors::single("", IssueCode::MissingField, "manifest is incomplete")
}

fn check_application_type<F: PeripheralForm>(
    kind: ApplicationType,
    capabilities: &Capabilities<F>,
    sink: &mut IssueSink,
) {
    for key in capabilities.granted_keys() {
        let path = format!("Capabilities.{key}");
        match kind {
            ApplicationType::RealTimeCapable if !allowed_for_real_time(key) => sink.push(
                &path,
                IssueCode::NotForRealTime,
                format!("{key} is not available to RealTimeCapable apps (they may use only peripherals and AllowedApplicationConnections)"),
            ),
            ApplicationType::Default if real_time_only(key) => sink.push(
                &path,
                IssueCode::NotForHighLevel,
                format!("{key} is available only to RealTimeCapable apps"),
            ),
            _ => {}
        }
    }
}

fn parse_name(value: &Value, path: &str, sink: &mut IssueSink) -> Option<String> {
    let text = expect_string(value, path, sink, "the app's name")?;
    let valid_chars = text
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.' | b' '));
    if text.is_empty()
        || text.len() > MAX_NAME_CHARS
        || !valid_chars
        || text.starts_with(' ')
        || text.ends_with(' ')
    {
        sink.push(path, IssueCode::InvalidValue, format!("{} is not allowed: expected 1..={MAX_NAME_CHARS} of letters, digits, `_`, `-`, `.`, inner spaces", show(value)));
        return None;
    }
    Some(text.to_owned())
}

fn parse_entry_point(value: &Value, path: &str, sink: &mut IssueSink) -> Option<String> {
    let text = expect_string(value, path, sink, "an absolute path such as \"/bin/app\"")?;
    let components_ok = text.strip_prefix('/').is_some_and(|relative| {
        relative
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
    });
    let chars_ok = text
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'/' | b'_' | b'-' | b'.'));
    if !components_ok || !chars_ok || text.len() > MAX_ENTRY_POINT_CHARS {
        sink.push(path, IssueCode::InvalidValue, format!("{} is not allowed: expected an absolute path like \"/bin/app\" (letters, digits, `_`, `-`, `.`; no empty, `.` or `..` components; at most {MAX_ENTRY_POINT_CHARS} characters)", show(value)));
        return None;
    }
    Some(text.to_owned())
}

fn parse_cmd_args(value: &Value, path: &str, sink: &mut IssueSink) -> Vec<String> {
    let Some(items) = value.as_array() else {
        sink.push(
            path,
            IssueCode::WrongType,
            format!(
                "{} is {}: expected an array of strings",
                show(value),
                type_name(value)
            ),
        );
        return Vec::new();
    };
    if items.len() > MAX_CMD_ARGS {
        sink.push(
            path,
            IssueCode::OutOfRange,
            format!("{} arguments: at most {MAX_CMD_ARGS} allowed", items.len()),
        );
        return Vec::new();
    }
    let mut args = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{index}]");
        let Some(text) = expect_string(item, &item_path, sink, "an argument") else {
            continue;
        };
        if text.len() > MAX_CMD_ARG_CHARS || text.contains('\0') {
            sink.push(
                &item_path,
                IssueCode::InvalidValue,
                format!("argument is not allowed: at most {MAX_CMD_ARG_CHARS} bytes and no NUL"),
            );
            continue;
        }
        args.push(text.to_owned());
    }
    args
}

/// A manifest whose every peripheral is a concrete value checked against the target board (if
/// one was given). Only [`AppManifest::resolve`] and [`ResolvedManifest::parse`] build it, so
/// holding one proves the manifest is valid and reference-free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedManifest {
    pub(crate) manifest: AppManifest<Resolved>,
}

impl Deref for ResolvedManifest {
    type Target = AppManifest<Resolved>;

    fn deref(&self) -> &Self::Target {
        &self.manifest
    }
}

impl ResolvedManifest {
    /// Parses a manifest that must not contain `$NAME` references (e.g. one taken out of an
    /// image package) and checks it schema-level only.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestErrors> {
        AppManifest::parse(bytes)?.resolve(None)
    }

    /// The manifest as a JSON value in canonical form: Azure Sphere's key order, only granted
    /// capabilities, GUIDs lowercase, host names lowercase.
    pub fn to_json_value(&self) -> Value {
        let manifest = &self.manifest;
        let mut root = Map::new();
        root.insert(
            "SchemaVersion".into(),
            Value::from(SUPPORTED_SCHEMA_VERSION),
        );
        root.insert("Name".into(), Value::from(manifest.name.as_str()));
        root.insert(
            "ComponentId".into(),
            Value::from(manifest.component_id.to_string()),
        );
        root.insert(
            "EntryPoint".into(),
            Value::from(manifest.entry_point.as_str()),
        );
        root.insert("CmdArgs".into(), Value::from(manifest.cmd_args.clone()));
        root.insert(
            "Capabilities".into(),
            Value::Object(capabilities_json(&manifest.capabilities)),
        );
        root.insert(
            "ApplicationType".into(),
            Value::from(manifest.application_type.as_str()),
        );
        if let Some(version) = manifest.malloc_version {
            root.insert("MallocVersion".into(), Value::from(version));
        }
        if let Some(period) = manifest.watchdog_period_ms {
            root.insert("WatchdogPeriodMs".into(), Value::from(period));
        }
        Value::Object(root)
    }

    /// Canonical JSON bytes: pretty-printed (2-space indent), newline-terminated, deterministic.
    /// Re-parsing them yields an equal manifest. These are the bytes to put in an image package.
    pub fn json_bytes(&self) -> Vec<u8> {
        // Serialising a Value of strings, numbers, arrays and objects cannot fail.
        let mut bytes = serde_json::to_vec_pretty(&self.to_json_value()).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

fn capabilities_json(capabilities: &Capabilities<Resolved>) -> Map<String, Value> {
    let mut object = Map::new();
    let mut insert_list = |key: &str, values: Vec<Value>| {
        if !values.is_empty() {
            object.insert(key.to_owned(), Value::Array(values));
        }
    };
    insert_list(
        "AllowedConnections",
        capabilities
            .allowed_connections
            .iter()
            .map(|entry| Value::from(entry.to_string()))
            .collect(),
    );
    insert_list(
        "AllowedTcpServerPorts",
        capabilities
            .tcp_server_ports
            .iter()
            .map(|port| Value::from(*port))
            .collect(),
    );
    insert_list(
        "AllowedUdpServerPorts",
        capabilities
            .udp_server_ports
            .iter()
            .map(|port| Value::from(*port))
            .collect(),
    );
    insert_list(
        "AllowedApplicationConnections",
        capabilities
            .application_connections
            .iter()
            .map(|id| Value::from(id.to_string()))
            .collect(),
    );
    insert_list(
        "Gpio",
        capabilities
            .gpio
            .iter()
            .map(|gpio| Value::from(*gpio))
            .collect(),
    );
    for kind in PeripheralKind::ALL {
        if kind != PeripheralKind::Gpio {
            insert_list(
                kind.json_key(),
                capabilities
                    .named_peripherals(kind)
                    .iter()
                    .map(|id| Value::from(id.as_str()))
                    .collect(),
            );
        }
    }
    insert_list(
        "PowerControls",
        capabilities
            .power_controls
            .iter()
            .map(|control| Value::from(control.as_str()))
            .collect(),
    );
    if let Some(tenant) = capabilities.device_authentication {
        object.insert(
            "DeviceAuthentication".into(),
            Value::from(tenant.to_string()),
        );
    }
    if let Some(kib) = capabilities.mutable_storage_kib {
        let mut storage = Map::new();
        storage.insert("SizeKB".into(), Value::from(kib));
        object.insert("MutableStorage".into(), Value::Object(storage));
    }
    for flag in capabilities.flags.iter() {
        object.insert(flag.json_key().to_owned(), Value::Bool(true));
    }
    object
}
