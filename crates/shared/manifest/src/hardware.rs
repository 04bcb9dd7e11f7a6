//! Azure Sphere hardware definitions: load a file and its imports, validate the set, and look
//! peripherals up by name or by app manifest value.
//!
//! File access goes through [`DefinitionSource`] so the same loader runs on the filesystem
//! ([`FileSystemSource`]) and in memory ([`MemorySource`], used by tests and the fuzzer).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::capabilities::{is_peripheral_id, is_reference_name};
use crate::error::{HardwareDefinitionError, HardwareIssue};
use crate::json;

/// Largest hardware definition file accepted (the MT3620 chip file is about 20 KiB).
pub const MAX_HARDWARE_DEFINITION_BYTES: u64 = 1024 * 1024;
/// Deepest import chain accepted (Azure Sphere's samples use 3: sample -> board -> module -> chip).
pub const MAX_IMPORT_DEPTH: usize = 16;
/// Most distinct files in one imported set.
pub const MAX_DEFINITION_FILES: usize = 64;
/// Most peripherals in one imported set.
pub const MAX_PERIPHERALS: usize = 10_000;
/// Deepest JSON nesting accepted in a definition file (a valid one needs 4).
pub const MAX_DEFINITION_JSON_DEPTH: usize = 8;
/// `Metadata.Type` of every hardware definition.
pub const HARDWARE_DEFINITION_TYPE: &str = "Azure Sphere Hardware Definition";
/// The only `Metadata.Version` defined.
pub const HARDWARE_DEFINITION_VERSION: u64 = 1;

/// A peripheral `Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeripheralType {
    Gpio,
    Uart,
    I2cMaster,
    I2cSubordinate,
    SpiMaster,
    SpiSubordinate,
    Adc,
    Pwm,
    ExternalInterrupt,
    /// Ferrosphere extension: a network interface of the device reserved for one app (a legacy
    /// machine's private link, docs/guardian.md), with its Linux `Interface` and `Subnet`.
    PrivateNetwork,
    /// A plain integer constant for app code (channel numbers, chip selects); not a peripheral
    /// and never valid in an app manifest.
    Int,
    /// Ferrosphere extension: a real-time core of the chip (`AppManifestValue` `"IO0"`), where
    /// the device runs one real-time capable app. Never valid in an app manifest: the device
    /// assigns cores.
    RealTimeCore,
}

impl PeripheralType {
    const ALL: [Self; 12] = [
        Self::Gpio,
        Self::Uart,
        Self::I2cMaster,
        Self::I2cSubordinate,
        Self::SpiMaster,
        Self::SpiSubordinate,
        Self::Adc,
        Self::Pwm,
        Self::ExternalInterrupt,
        Self::PrivateNetwork,
        Self::Int,
        Self::RealTimeCore,
    ];

    /// The `Type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gpio => "Gpio",
            Self::Uart => "Uart",
            Self::I2cMaster => "I2cMaster",
            Self::I2cSubordinate => "I2cSubordinate",
            Self::SpiMaster => "SpiMaster",
            Self::SpiSubordinate => "SpiSubordinate",
            Self::Adc => "Adc",
            Self::Pwm => "Pwm",
            Self::ExternalInterrupt => "ExternalInterrupt",
            Self::PrivateNetwork => "PrivateNetwork",
            Self::Int => "int",
            Self::RealTimeCore => "RealTimeCore",
        }
    }

    /// Parses a `Type` string (case-sensitive, as Azure Sphere's tools are).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for PeripheralType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `AppManifestValue`: a GPIO number or a peripheral identifier such as `ISU0`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AppManifestValue {
    Number(u32),
    Text(String),
}

impl fmt::Display for AppManifestValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(number) => write!(f, "{number}"),
            Self::Text(text) => f.write_str(text),
        }
    }
}

/// One peripheral of a loaded set, with its Mapping chain already followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peripheral {
    /// `Name`.
    pub name: String,
    /// `Type`.
    pub peripheral_type: PeripheralType,
    /// `Mapping`, if this peripheral is an alias.
    pub mapping: Option<String>,
    /// `AppManifestValue` of the end of the Mapping chain; `None` for `int`.
    pub app_manifest_value: Option<AppManifestValue>,
    /// `MainCoreHeaderValue` of the end of the Mapping chain.
    pub main_core_header_value: Option<String>,
    /// For `int`: the parsed `MainCoreHeaderValue`.
    pub int_value: Option<i32>,
    /// Ferrosphere's `PinBlock` extension, taken from the end of the Mapping chain.
    pub pin_block: Option<String>,
    /// For `PrivateNetwork`: the Linux interface and its subnet (Ferrosphere's `Interface` and
    /// `Subnet` extension), taken from the end of the Mapping chain.
    pub private_network: Option<PrivateNetworkLink>,
    /// For `RealTimeCore`: the watchdog period of the apps on the core, in milliseconds
    /// (Ferrosphere's `WatchdogPeriodMs` extension, within [`crate::WATCHDOG_PERIOD_MS`]; an
    /// app's manifest may set its own), taken from the end of the Mapping chain.
    pub watchdog_period_ms: Option<u32>,
    /// `Comment`.
    pub comment: Option<String>,
    /// Key of the file that defines it (a canonical path for [`FileSystemSource`]).
    pub defined_in: String,
}

/// A file as a [`DefinitionSource`] returns it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Identity of the file: equal keys mean the same file (used for cycle detection and to load
    /// a file imported twice only once).
    pub key: String,
    /// Contents, at most [`MAX_HARDWARE_DEFINITION_BYTES`].
    pub bytes: Vec<u8>,
}

/// Where definition files come from.
pub trait DefinitionSource {
    /// Reads the top-level file (`importer` is `None`) or `import_path` as imported by the file
    /// whose key is `importer`.
    fn read(
        &self,
        importer: Option<&str>,
        import_path: &str,
    ) -> Result<SourceFile, HardwareDefinitionError>;
}

/// Reads files from disk. An import is looked up relative to the importing file's directory,
/// then in each search directory in order (`--hardware-definitions DIR ...`).
#[derive(Debug, Clone, Default)]
pub struct FileSystemSource {
    search_dirs: Vec<PathBuf>,
}

impl FileSystemSource {
    /// A source with extra search directories for imports.
    pub fn new(search_dirs: &[PathBuf]) -> Self {
        Self {
            search_dirs: search_dirs.to_vec(),
        }
    }

    fn read_file(path: &Path) -> Result<SourceFile, HardwareDefinitionError> {
        let read_error = |source| HardwareDefinitionError::Read {
            path: path.to_path_buf(),
            source,
        };
        let canonical = path.canonicalize().map_err(read_error)?;
        let file = std::fs::File::open(&canonical).map_err(read_error)?;
        let mut bytes = Vec::new();
        // Read one byte past the limit so an oversized (or growing) file is detected without
        // trusting metadata.
        file.take(MAX_HARDWARE_DEFINITION_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        let key = canonical.display().to_string();
        if bytes.len() as u64 > MAX_HARDWARE_DEFINITION_BYTES {
            return Err(HardwareDefinitionError::TooLarge {
                file: key,
                size: bytes.len() as u64,
                limit: MAX_HARDWARE_DEFINITION_BYTES,
            });
        }
        Ok(SourceFile { key, bytes })
    }
}

impl DefinitionSource for FileSystemSource {
    fn read(
        &self,
        importer: Option<&str>,
        import_path: &str,
    ) -> Result<SourceFile, HardwareDefinitionError> {
        let Some(importer) = importer else {
            return Self::read_file(Path::new(import_path));
        };
        let importer_dir = Path::new(importer).parent().unwrap_or(Path::new(""));
        let candidates: Vec<PathBuf> = std::iter::once(importer_dir.join(import_path))
            .chain(self.search_dirs.iter().map(|dir| dir.join(import_path)))
            .collect();
        match candidates.iter().find(|candidate| candidate.is_file()) {
            Some(found) => Self::read_file(found),
            None => Err(HardwareDefinitionError::MissingImport {
                importer: importer.to_owned(),
                import: import_path.to_owned(),
                tried: candidates
                    .iter()
                    .map(|candidate| candidate.display().to_string())
                    .collect(),
            }),
        }
    }
}

/// Files held in memory, keyed by `/`-separated path. Imports resolve relative to the
/// importer's directory, with `.` and `..` applied textually.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    files: BTreeMap<String, Vec<u8>>,
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a file.
    pub fn insert(&mut self, path: &str, bytes: impl Into<Vec<u8>>) {
        self.files.insert(normalize(path), bytes.into());
    }
}

fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

impl DefinitionSource for MemorySource {
    fn read(
        &self,
        importer: Option<&str>,
        import_path: &str,
    ) -> Result<SourceFile, HardwareDefinitionError> {
        let key = match importer {
            None => normalize(import_path),
            Some(importer) => {
                let dir = importer.rsplit_once('/').map_or("", |(dir, _)| dir);
                normalize(&format!("{dir}/{import_path}"))
            }
        };
        match self.files.get(&key) {
            Some(bytes) if bytes.len() as u64 > MAX_HARDWARE_DEFINITION_BYTES => {
                Err(HardwareDefinitionError::TooLarge {
                    file: key,
                    size: bytes.len() as u64,
                    limit: MAX_HARDWARE_DEFINITION_BYTES,
                })
            }
            Some(bytes) => Ok(SourceFile {
                key,
                bytes: bytes.clone(),
            }),
            None => match importer {
                Some(importer) => Err(HardwareDefinitionError::MissingImport {
                    importer: importer.to_owned(),
                    import: import_path.to_owned(),
                    tried: vec![key],
                }),
                None => Err(HardwareDefinitionError::Read {
                    path: PathBuf::from(key),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such file in memory source",
                    ),
                }),
            },
        }
    }
}

/// A loaded, validated hardware definition together with everything it imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardwareDefinition {
    name: String,
    source_key: String,
    header_top_content: Vec<String>,
    files: Vec<String>,
    peripherals: Vec<Peripheral>,
    by_name: BTreeMap<String, usize>,
    by_value: BTreeMap<(PeripheralType, AppManifestValue), usize>,
}

impl HardwareDefinition {
    /// Loads `path` and its imports from disk. Imports resolve relative to the importing file,
    /// then against each of `search_dirs`.
    pub fn load(path: &Path, search_dirs: &[PathBuf]) -> Result<Self, HardwareDefinitionError> {
        Self::load_from(
            &FileSystemSource::new(search_dirs),
            &path.display().to_string(),
        )
    }

    /// Loads the file `path` of `source` and its imports.
    pub fn load_from(
        source: &dyn DefinitionSource,
        path: &str,
    ) -> Result<Self, HardwareDefinitionError> {
        let mut loader = Loader {
            source,
            loaded: BTreeSet::new(),
            in_progress: Vec::new(),
            files: Vec::new(),
        };
        loader.visit(None, path)?;
        build(loader.files)
    }

    /// `Description.Name` of the top-level file.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Key (canonical path) of the top-level file.
    pub fn source_key(&self) -> &str {
        &self.source_key
    }
    /// `Description.MainCoreHeaderFileTopContent` of the top-level file.
    pub fn header_top_content(&self) -> &[String] {
        &self.header_top_content
    }
    /// Keys of all loaded files, imports before importers; the top-level file is last.
    pub fn files(&self) -> &[String] {
        &self.files
    }
    /// All peripherals of the set, in file order (imports first), each file in declared order.
    pub fn peripherals(&self) -> &[Peripheral] {
        &self.peripherals
    }
    /// Looks a peripheral up by `Name`.
    /// The board's private networks (`PrivateNetwork` peripherals that carry a value), by
    /// manifest value (`PRIVATE-NETWORK-0`): what the device gives the one app granted each.
    pub fn private_networks(&self) -> BTreeMap<String, PrivateNetworkLink> {
        self.peripherals
            .iter()
            .filter(|peripheral| peripheral.mapping.is_none())
            .filter_map(|peripheral| {
                match (&peripheral.app_manifest_value, &peripheral.private_network) {
                    (Some(AppManifestValue::Text(id)), Some(link)) => {
                        Some((id.clone(), link.clone()))
                    }
                    _ => None,
                }
            })
            .collect()
    }

    pub fn peripheral(&self, name: &str) -> Option<&Peripheral> {
        self.by_name
            .get(name)
            .and_then(|index| self.peripherals.get(*index))
    }
    /// The real-time cores of the set (`Type` `RealTimeCore`), by their `AppManifestValue`
    /// (`IO0`, `IO1`), each once, in declared order (imports first).
    pub fn real_time_cores(&self) -> Vec<String> {
        let mut cores: Vec<String> = Vec::new();
        for peripheral in &self.peripherals {
            if peripheral.peripheral_type == PeripheralType::RealTimeCore
                && let Some(AppManifestValue::Text(core)) = &peripheral.app_manifest_value
                && !cores.contains(core)
            {
                cores.push(core.clone());
            }
        }
        cores
    }

    /// The watchdog period the board sets for the apps on real-time core `core` (its
    /// `RealTimeCore` peripheral's `WatchdogPeriodMs`), if it sets one.
    pub fn core_watchdog_period_ms(&self, core: &str) -> Option<u32> {
        self.peripherals
            .iter()
            .filter(|peripheral| peripheral.peripheral_type == PeripheralType::RealTimeCore)
            .filter(|peripheral| {
                matches!(&peripheral.app_manifest_value, Some(AppManifestValue::Text(c)) if c == core)
            })
            .find_map(|peripheral| peripheral.watchdog_period_ms)
    }

    /// The peripheral that defines `value` for `peripheral_type` (the end of Mapping chains,
    /// usually the chip's entry), if the set has one.
    pub fn find_value(
        &self,
        peripheral_type: PeripheralType,
        value: &AppManifestValue,
    ) -> Option<&Peripheral> {
        self.by_value
            .get(&(peripheral_type, value.clone()))
            .and_then(|index| self.peripherals.get(*index))
    }
}

struct Loader<'a> {
    source: &'a dyn DefinitionSource,
    loaded: BTreeSet<String>,
    in_progress: Vec<String>,
    files: Vec<ParsedFile>,
}

impl Loader<'_> {
    fn visit(&mut self, importer: Option<&str>, path: &str) -> Result<(), HardwareDefinitionError> {
        let file = self.source.read(importer, path)?;
        if let Some(start) = self.in_progress.iter().position(|key| *key == file.key) {
            let mut cycle: Vec<String> = self.in_progress.get(start..).unwrap_or_default().to_vec();
            cycle.push(file.key);
            return Err(HardwareDefinitionError::ImportCycle { cycle });
        }
        if self.loaded.contains(&file.key) {
            return Ok(()); // imported twice through different paths (a diamond), not a cycle
        }
        if self.in_progress.len() >= MAX_IMPORT_DEPTH {
            let mut chain = self.in_progress.clone();
            chain.push(file.key);
            return Err(HardwareDefinitionError::ImportTooDeep {
                chain,
                limit: MAX_IMPORT_DEPTH,
            });
        }
        if self.loaded.len() >= MAX_DEFINITION_FILES {
            return Err(HardwareDefinitionError::TooMany {
                what: "files",
                limit: MAX_DEFINITION_FILES,
            });
        }
        let parsed = parse_file(&file.key, &file.bytes)?;
        self.in_progress.push(file.key.clone());
        for import in &parsed.imports {
            self.visit(Some(&file.key), import)?;
        }
        self.in_progress.pop();
        self.loaded.insert(file.key);
        self.files.push(parsed);
        Ok(())
    }
}

struct ParsedFile {
    key: String,
    name: String,
    header_top_content: Vec<String>,
    imports: Vec<String>,
    peripherals: Vec<RawPeripheral>,
}

struct RawPeripheral {
    name: String,
    peripheral_type: PeripheralType,
    mapping: Option<String>,
    app_manifest_value: Option<AppManifestValue>,
    main_core_header_value: Option<String>,
    pin_block: Option<String>,
    private_network: Option<PrivateNetworkLink>,
    watchdog_period_ms: Option<u32>,
    comment: Option<String>,
}

fn schema_error(file: &str, path: &str, message: impl Into<String>) -> HardwareDefinitionError {
    HardwareDefinitionError::Schema {
        file: file.to_owned(),
        path: path.to_owned(),
        message: message.into(),
    }
}

fn get_object<'v>(
    file: &str,
    path: &str,
    value: &'v Value,
) -> Result<&'v Map<String, Value>, HardwareDefinitionError> {
    value.as_object().ok_or_else(|| {
        schema_error(
            file,
            path,
            format!("expected an object, found {}", json::type_name(value)),
        )
    })
}

fn get_str<'v>(
    file: &str,
    path: &str,
    value: &'v Value,
) -> Result<&'v str, HardwareDefinitionError> {
    value.as_str().ok_or_else(|| {
        schema_error(
            file,
            path,
            format!("expected a string, found {}", json::type_name(value)),
        )
    })
}

fn get_array<'v>(
    file: &str,
    path: &str,
    value: &'v Value,
) -> Result<&'v [Value], HardwareDefinitionError> {
    value.as_array().map(Vec::as_slice).ok_or_else(|| {
        schema_error(
            file,
            path,
            format!("expected an array, found {}", json::type_name(value)),
        )
    })
}

fn reject_unknown_fields(
    file: &str,
    path: &str,
    object: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(), HardwareDefinitionError> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(unknown) => Err(schema_error(
            file,
            &format!("{path}.{unknown}"),
            format!("unknown field (allowed: {})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

fn parse_file(key: &str, bytes: &[u8]) -> Result<ParsedFile, HardwareDefinitionError> {
    if bytes.len() as u64 > MAX_HARDWARE_DEFINITION_BYTES {
        return Err(HardwareDefinitionError::TooLarge {
            file: key.to_owned(),
            size: bytes.len() as u64,
            limit: MAX_HARDWARE_DEFINITION_BYTES,
        });
    }
    let document =
        json::parse_strict(bytes).map_err(|error| HardwareDefinitionError::InvalidJson {
            file: key.to_owned(),
            line: error.line,
            column: error.column,
            message: error.message,
        })?;
    if json::depth(&document) > MAX_DEFINITION_JSON_DEPTH {
        return Err(schema_error(
            key,
            "",
            format!("JSON nests deeper than {MAX_DEFINITION_JSON_DEPTH} levels"),
        ));
    }
    let root = get_object(key, "(document)", &document)?;
    // `$schema` appears in editor-friendly copies of Azure Sphere definitions.
    reject_unknown_fields(
        key,
        "(document)",
        root,
        &[
            "$schema",
            "Metadata",
            "Description",
            "Imports",
            "Peripherals",
        ],
    )?;

    let metadata = get_object(
        key,
        "Metadata",
        root.get("Metadata")
            .ok_or_else(|| schema_error(key, "Metadata", "missing"))?,
    )?;
    reject_unknown_fields(key, "Metadata", metadata, &["Type", "Version"])?;
    let metadata_type = get_str(
        key,
        "Metadata.Type",
        metadata.get("Type").unwrap_or(&Value::Null),
    )?;
    if metadata_type != HARDWARE_DEFINITION_TYPE {
        return Err(schema_error(
            key,
            "Metadata.Type",
            format!("is {metadata_type:?}; expected {HARDWARE_DEFINITION_TYPE:?}"),
        ));
    }
    if metadata.get("Version").and_then(Value::as_u64) != Some(HARDWARE_DEFINITION_VERSION) {
        return Err(schema_error(
            key,
            "Metadata.Version",
            format!("expected {HARDWARE_DEFINITION_VERSION}"),
        ));
    }

    let (name, header_top_content) = match root.get("Description") {
        None => (String::new(), Vec::new()),
        Some(description) => {
            let description = get_object(key, "Description", description)?;
            reject_unknown_fields(
                key,
                "Description",
                description,
                &["Name", "MainCoreHeaderFileTopContent"],
            )?;
            let name = match description.get("Name") {
                Some(name) => get_str(key, "Description.Name", name)?.to_owned(),
                None => String::new(),
            };
            let mut lines = Vec::new();
            if let Some(content) = description.get("MainCoreHeaderFileTopContent") {
                for (index, line) in
                    get_array(key, "Description.MainCoreHeaderFileTopContent", content)?
                        .iter()
                        .enumerate()
                {
                    lines.push(
                        get_str(
                            key,
                            &format!("Description.MainCoreHeaderFileTopContent[{index}]"),
                            line,
                        )?
                        .to_owned(),
                    );
                }
            }
            (name, lines)
        }
    };

    let mut imports = Vec::new();
    if let Some(list) = root.get("Imports") {
        for (index, import) in get_array(key, "Imports", list)?.iter().enumerate() {
            let path = format!("Imports[{index}]");
            let import = get_object(key, &path, import)?;
            reject_unknown_fields(key, &path, import, &["Path"])?;
            let import_path = get_str(
                key,
                &format!("{path}.Path"),
                import.get("Path").unwrap_or(&Value::Null),
            )?;
            if import_path.is_empty()
                || import_path.contains('\0')
                || Path::new(import_path).is_absolute()
                || import_path.starts_with('/')
            {
                return Err(schema_error(
                    key,
                    &format!("{path}.Path"),
                    format!("{import_path:?} must be a non-empty relative path"),
                ));
            }
            imports.push(import_path.to_owned());
        }
    }

    let mut peripherals = Vec::new();
    if let Some(list) = root.get("Peripherals") {
        for (index, entry) in get_array(key, "Peripherals", list)?.iter().enumerate() {
            peripherals.push(parse_peripheral(
                key,
                &format!("Peripherals[{index}]"),
                entry,
            )?);
        }
    }
    Ok(ParsedFile {
        key: key.to_owned(),
        name,
        header_top_content,
        imports,
        peripherals,
    })
}

fn parse_peripheral(
    file: &str,
    path: &str,
    entry: &Value,
) -> Result<RawPeripheral, HardwareDefinitionError> {
    let object = get_object(file, path, entry)?;
    reject_unknown_fields(
        file,
        path,
        object,
        &[
            "Name",
            "Type",
            "Mapping",
            "AppManifestValue",
            "MainCoreHeaderValue",
            "Comment",
            "PinBlock",
            "Interface",
            "Subnet",
            "WatchdogPeriodMs",
        ],
    )?;
    let optional_str = |field: &str| -> Result<Option<String>, HardwareDefinitionError> {
        object
            .get(field)
            .map(|value| get_str(file, &format!("{path}.{field}"), value).map(str::to_owned))
            .transpose()
    };
    let name = get_str(
        file,
        &format!("{path}.Name"),
        object.get("Name").unwrap_or(&Value::Null),
    )?
    .to_owned();
    // Names become `#define`s and Rust constants, so they must be identifiers.
    if !is_reference_name(&name) {
        return Err(schema_error(
            file,
            &format!("{path}.Name"),
            format!("{name:?} is not a C identifier of at most 128 characters"),
        ));
    }
    let type_text = get_str(
        file,
        &format!("{path}.Type"),
        object.get("Type").unwrap_or(&Value::Null),
    )?;
    let peripheral_type = PeripheralType::parse(type_text).ok_or_else(|| {
        let known: Vec<&str> = PeripheralType::ALL
            .iter()
            .map(|kind| kind.as_str())
            .collect();
        schema_error(
            file,
            &format!("{path}.Type"),
            format!(
                "{type_text:?} is not a peripheral type (known: {})",
                known.join(", ")
            ),
        )
    })?;
    let app_manifest_value = match object.get("AppManifestValue") {
        None => None,
        Some(value) => Some(parse_app_manifest_value(
            file,
            &format!("{path}.AppManifestValue"),
            peripheral_type,
            value,
        )?),
    };
    let pin_block = optional_str("PinBlock")?;
    if let Some(block) = &pin_block
        && !is_peripheral_id(block)
    {
        return Err(schema_error(
            file,
            &format!("{path}.PinBlock"),
            format!("{block:?} is not a pin block identifier"),
        ));
    }
    let private_network = parse_private_network(
        file,
        path,
        peripheral_type,
        optional_str("Interface")?,
        optional_str("Subnet")?,
    )?;
    let watchdog_period_ms = match object.get("WatchdogPeriodMs") {
        None => None,
        Some(value) => {
            let at = format!("{path}.WatchdogPeriodMs");
            if peripheral_type != PeripheralType::RealTimeCore {
                return Err(schema_error(
                    file,
                    &at,
                    format!(
                        "WatchdogPeriodMs belongs to RealTimeCore peripherals only, not {peripheral_type}"
                    ),
                ));
            }
            let period = value
                .as_u64()
                .and_then(|ms| u32::try_from(ms).ok())
                .filter(|ms| crate::WATCHDOG_PERIOD_MS.contains(ms))
                .ok_or_else(|| {
                    schema_error(
                        file,
                        &at,
                        format!(
                            "{value} is not a watchdog period: expected whole milliseconds in {}..={}",
                            crate::WATCHDOG_PERIOD_MS.start(),
                            crate::WATCHDOG_PERIOD_MS.end()
                        ),
                    )
                })?;
            Some(period)
        }
    };
    Ok(RawPeripheral {
        name,
        peripheral_type,
        mapping: optional_str("Mapping")?,
        app_manifest_value,
        main_core_header_value: optional_str("MainCoreHeaderValue")?,
        pin_block,
        private_network,
        watchdog_period_ms,
        comment: optional_str("Comment")?,
    })
}

/// Ferrosphere's `Interface` and `Subnet` extension: only on `PrivateNetwork` peripherals, both
/// or neither (an alias has neither and inherits its target's).
fn parse_private_network(
    file: &str,
    path: &str,
    peripheral_type: PeripheralType,
    interface: Option<String>,
    subnet: Option<String>,
) -> Result<Option<PrivateNetworkLink>, HardwareDefinitionError> {
    if peripheral_type != PeripheralType::PrivateNetwork {
        if let Some(field) = [("Interface", &interface), ("Subnet", &subnet)]
            .into_iter()
            .find_map(|(field, value)| value.as_ref().map(|_| field))
        {
            return Err(schema_error(
                file,
                &format!("{path}.{field}"),
                format!(
                    "{field} belongs to PrivateNetwork peripherals only, not {peripheral_type}"
                ),
            ));
        }
        return Ok(None);
    }
    match (interface, subnet) {
        (None, None) => Ok(None),
        (Some(interface), Some(subnet)) => {
            if !is_interface_name(&interface) {
                return Err(schema_error(
                    file,
                    &format!("{path}.Interface"),
                    format!(
                        "{interface:?} is not a Linux interface name (1-15 letters, digits, `_`, \
                         `-`, `.`; not `.` or `..`)"
                    ),
                ));
            }
            let subnet = subnet.parse::<IpNet>().map_err(|_| {
                schema_error(
                    file,
                    &format!("{path}.Subnet"),
                    format!(
                        "{subnet:?} is not a subnet such as \"192.168.50.0/24\" or \"fd00:50::/64\""
                    ),
                )
            })?;
            if subnet != subnet.trunc() {
                return Err(schema_error(
                    file,
                    &format!("{path}.Subnet"),
                    format!(
                        "{subnet} has host bits set; the subnet is {}",
                        subnet.trunc()
                    ),
                ));
            }
            if subnet.prefix_len() == 0 {
                return Err(schema_error(
                    file,
                    &format!("{path}.Subnet"),
                    format!("{subnet} is every address, not a private subnet"),
                ));
            }
            Ok(Some(PrivateNetworkLink { interface, subnet }))
        }
        (interface, _) => {
            let missing = if interface.is_none() {
                "Interface"
            } else {
                "Subnet"
            };
            Err(schema_error(
                file,
                path,
                format!(
                    "a PrivateNetwork peripheral with a value needs both Interface and Subnet; {missing} is missing"
                ),
            ))
        }
    }
}

/// A Linux network interface name: 1-15 bytes (`IFNAMSIZ` - 1) of letters, digits, `_`, `-`
/// and `.`, not `.` or `..` (the kernel refuses `/`, `:` and white space; these are the safe rest).
pub fn is_interface_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
}

/// What a `PrivateNetwork` peripheral names on the device: the Linux interface the legacy side
/// is plugged into and the subnet behind it (no other route leads there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateNetworkLink {
    /// The Linux interface name (`eth1`).
    pub interface: String,
    /// The subnet on that interface (`192.168.50.0/24`), host bits clear.
    pub subnet: IpNet,
}

fn parse_app_manifest_value(
    file: &str,
    path: &str,
    peripheral_type: PeripheralType,
    value: &Value,
) -> Result<AppManifestValue, HardwareDefinitionError> {
    match (peripheral_type, value) {
        (PeripheralType::Int, _) => Err(schema_error(
            file,
            path,
            "an int is not a peripheral and has no AppManifestValue",
        )),
        (PeripheralType::Gpio, Value::Number(number)) => number
            .as_u64()
            .and_then(|wide| u32::try_from(wide).ok())
            .map(AppManifestValue::Number)
            .ok_or_else(|| schema_error(file, path, format!("{number} is not a GPIO number"))),
        (PeripheralType::Gpio, other) => Err(schema_error(
            file,
            path,
            format!(
                "a Gpio value must be a number, found {}",
                json::type_name(other)
            ),
        )),
        (_, Value::String(text)) if is_peripheral_id(text) => {
            Ok(AppManifestValue::Text(text.clone()))
        }
        (_, other) => Err(schema_error(
            file,
            path,
            format!(
                "{} is not a peripheral identifier such as \"ISU0\"",
                json::show(other)
            ),
        )),
    }
}

/// Parses an `int`'s `MainCoreHeaderValue`: `4`, `(4)`, `(-1)`, `0x48`, `(0x48)`.
pub fn parse_header_int(text: &str) -> Option<i32> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or(trimmed)
        .trim();
    let (negative, magnitude) = match inner.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, inner),
    };
    let value = match magnitude
        .strip_prefix("0x")
        .or_else(|| magnitude.strip_prefix("0X"))
    {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|byte| byte.is_ascii_hexdigit()) => {
            i64::from_str_radix(hex, 16).ok()?
        }
        Some(_) => return None,
        None if !magnitude.is_empty() && magnitude.bytes().all(|byte| byte.is_ascii_digit()) => {
            magnitude.parse::<i64>().ok()?
        }
        None => return None,
    };
    i32::try_from(if negative { -value } else { value }).ok()
}

/// Flattens the loaded files into one validated set.
fn build(files: Vec<ParsedFile>) -> Result<HardwareDefinition, HardwareDefinitionError> {
    let mut issues = Vec::new();
    let total: usize = files.iter().map(|file| file.peripherals.len()).sum();
    if total > MAX_PERIPHERALS {
        return Err(HardwareDefinitionError::TooMany {
            what: "peripherals",
            limit: MAX_PERIPHERALS,
        });
    }
    let Some(top) = files.last() else {
        return Err(HardwareDefinitionError::TooMany {
            what: "files (none loaded)",
            limit: 0,
        });
    };
    let (name, source_key, header_top_content) = (
        top.name.clone(),
        top.key.clone(),
        top.header_top_content.clone(),
    );

    // Index every raw peripheral by name; the first definition wins, later ones are errors.
    let mut raw: Vec<(&str, &RawPeripheral)> = Vec::new();
    let mut raw_index: BTreeMap<&str, usize> = BTreeMap::new();
    for file in &files {
        for peripheral in &file.peripherals {
            if let Some(first) = raw_index
                .get(peripheral.name.as_str())
                .and_then(|index| raw.get(*index))
            {
                issues.push(HardwareIssue::DuplicateName {
                    name: peripheral.name.clone(),
                    file: file.key.clone(),
                    first_file: first.0.to_owned(),
                });
                continue;
            }
            raw_index.insert(&peripheral.name, raw.len());
            raw.push((&file.key, peripheral));
        }
    }

    let mut peripherals = Vec::new();
    for (file, peripheral) in &raw {
        if let Some(resolved) = resolve_peripheral(file, peripheral, &raw, &raw_index, &mut issues)
        {
            peripherals.push(resolved);
        }
    }
    if !issues.is_empty() {
        return Err(HardwareDefinitionError::Invalid {
            file: source_key,
            issues,
        });
    }

    let by_name = peripherals
        .iter()
        .enumerate()
        .map(|(index, peripheral)| (peripheral.name.clone(), index))
        .collect();
    let mut by_value = BTreeMap::new();
    for (index, peripheral) in peripherals.iter().enumerate() {
        if let Some(value) = &peripheral.app_manifest_value {
            // Keep the first (chip-level) entry; aliases further up share its values.
            by_value
                .entry((peripheral.peripheral_type, value.clone()))
                .or_insert(index);
        }
    }
    Ok(HardwareDefinition {
        name,
        source_key,
        header_top_content,
        files: files.iter().map(|file| file.key.clone()).collect(),
        peripherals,
        by_name,
        by_value,
    })
}

fn resolve_peripheral(
    file: &str,
    peripheral: &RawPeripheral,
    raw: &[(&str, &RawPeripheral)],
    raw_index: &BTreeMap<&str, usize>,
    issues: &mut Vec<HardwareIssue>,
) -> Option<Peripheral> {
    let issue_name = || (peripheral.name.clone(), file.to_owned());
    if peripheral.mapping.is_some() {
        let conflicting = [
            ("AppManifestValue", peripheral.app_manifest_value.is_some()),
            (
                "MainCoreHeaderValue",
                peripheral.main_core_header_value.is_some()
                    && peripheral.peripheral_type != PeripheralType::Int,
            ),
            ("PinBlock", peripheral.pin_block.is_some()),
            ("Interface", peripheral.private_network.is_some()),
            ("WatchdogPeriodMs", peripheral.watchdog_period_ms.is_some()),
        ];
        if let Some((field, _)) = conflicting.into_iter().find(|(_, present)| *present) {
            let (name, file) = issue_name();
            issues.push(HardwareIssue::MappingWithValue { name, file, field });
            return None;
        }
    }
    // Follow the Mapping chain; every hop must keep the Type. The chain is bounded by the number
    // of peripherals, and a repeated name is a cycle.
    let mut current = peripheral;
    let mut chain = vec![peripheral.name.clone()];
    while let Some(target_name) = &current.mapping {
        let Some((_, target)) = raw_index
            .get(target_name.as_str())
            .and_then(|index| raw.get(*index))
        else {
            let (name, file) = issue_name();
            issues.push(HardwareIssue::UnknownMapping {
                name,
                file,
                target: target_name.clone(),
            });
            return None;
        };
        if target.peripheral_type != peripheral.peripheral_type {
            let (name, file) = issue_name();
            issues.push(HardwareIssue::TypeMismatch {
                name,
                file,
                peripheral_type: peripheral.peripheral_type.to_string(),
                target: target.name.clone(),
                target_type: target.peripheral_type.to_string(),
            });
            return None;
        }
        if chain.contains(&target.name) {
            chain.push(target.name.clone());
            // Every member of a cycle lands here; report it once, from its smallest name.
            // Peripherals that merely lead into a cycle are covered by that report.
            let is_member = chain.first() == chain.last();
            let smallest = chain.iter().min();
            if is_member && smallest == Some(&peripheral.name) {
                issues.push(HardwareIssue::MappingCycle { chain });
            }
            return None;
        }
        chain.push(target.name.clone());
        current = target;
    }
    let int_value = if peripheral.peripheral_type == PeripheralType::Int {
        let Some(text) = &current.main_core_header_value else {
            let (name, file) = issue_name();
            issues.push(HardwareIssue::MissingValue { name, file });
            return None;
        };
        let Some(number) = parse_header_int(text) else {
            let (name, file) = issue_name();
            issues.push(HardwareIssue::InvalidPeripheral { name, file, message: format!("MainCoreHeaderValue {text:?} is not an integer such as \"(4)\", \"(-1)\" or \"0x48\"") });
            return None;
        };
        Some(number)
    } else {
        if current.app_manifest_value.is_none() {
            let (name, file) = issue_name();
            issues.push(HardwareIssue::MissingValue { name, file });
            return None;
        }
        if current.peripheral_type == PeripheralType::PrivateNetwork
            && current.private_network.is_none()
        {
            let (name, file) = issue_name();
            issues.push(HardwareIssue::InvalidPeripheral {
                name,
                file,
                message: "a PrivateNetwork peripheral with an AppManifestValue needs Interface \
                          and Subnet (the Linux interface and the subnet behind it)"
                    .to_owned(),
            });
            return None;
        }
        None
    };
    Some(Peripheral {
        name: peripheral.name.clone(),
        peripheral_type: peripheral.peripheral_type,
        mapping: peripheral.mapping.clone(),
        app_manifest_value: current.app_manifest_value.clone(),
        main_core_header_value: current.main_core_header_value.clone(),
        int_value,
        pin_block: current.pin_block.clone(),
        private_network: current.private_network.clone(),
        watchdog_period_ms: current.watchdog_period_ms,
        comment: peripheral.comment.clone(),
        defined_in: file.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_ints() {
        assert_eq!(parse_header_int("(4)"), Some(4));
        assert_eq!(parse_header_int("(-1)"), Some(-1));
        assert_eq!(parse_header_int("0x48"), Some(0x48));
        assert_eq!(parse_header_int(" ( 0X7f ) "), Some(127));
        assert_eq!(parse_header_int("-2147483648"), Some(i32::MIN));
        for bad in ["", "()", "x", "0x", "(1", "4294967296", "1+1", "--1"] {
            assert_eq!(parse_header_int(bad), None, "{bad}");
        }
    }

    #[test]
    fn normalizes_memory_paths() {
        assert_eq!(normalize("a/b/../c/./d.json"), "a/c/d.json");
        assert_eq!(normalize("../../x.json"), "x.json");
    }
}
