//! Error types. Manifest problems are collected (every issue at once, each with its JSON path);
//! hardware definition problems are typed so the CLI can tell a missing file from a bad mapping.

use std::fmt;
use std::path::PathBuf;

/// What kind of problem a [`ManifestIssue`] is. The kebab-case [`IssueCode::as_str`] form is
/// stable: test vectors and tooling match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IssueCode {
    /// The input is not JSON (or has a duplicate object key).
    InvalidJson,
    /// The input exceeds [`crate::MAX_MANIFEST_BYTES`].
    TooLarge,
    /// The JSON nests deeper than [`crate::MAX_JSON_DEPTH`].
    TooDeep,
    /// A required field is absent.
    MissingField,
    /// A field Azure Sphere's schema does not have (or a misspelt one).
    UnknownField,
    /// A value of the wrong JSON type.
    WrongType,
    /// A number outside its allowed range.
    OutOfRange,
    /// A string that is not an allowed value.
    InvalidValue,
    /// The same value listed twice.
    Duplicate,
    /// A GUID that is not canonical 8-4-4-4-12 hex.
    MalformedGuid,
    /// An array that must not be empty is empty.
    EmptyArray,
    /// A capability a real-time app may not hold.
    NotForRealTime,
    /// A capability only real-time apps may hold.
    NotForHighLevel,
    /// `$NAME` is not in the hardware definition.
    UnresolvedReference,
    /// `$NAME` exists but is of another peripheral type.
    WrongPeripheralType,
    /// `$NAME` used but no hardware definition was given.
    NeedsHardwareDefinition,
    /// A peripheral value the target board does not have.
    NotOnBoard,
    /// Two peripherals of the app need the same pin block.
    PinBlockConflict,
}

impl IssueCode {
    /// Stable kebab-case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid-json",
            Self::TooLarge => "too-large",
            Self::TooDeep => "too-deep",
            Self::MissingField => "missing-field",
            Self::UnknownField => "unknown-field",
            Self::WrongType => "wrong-type",
            Self::OutOfRange => "out-of-range",
            Self::InvalidValue => "invalid-value",
            Self::Duplicate => "duplicate",
            Self::MalformedGuid => "malformed-guid",
            Self::EmptyArray => "empty-array",
            Self::NotForRealTime => "not-for-real-time",
            Self::NotForHighLevel => "not-for-high-level",
            Self::UnresolvedReference => "unresolved-reference",
            Self::WrongPeripheralType => "wrong-peripheral-type",
            Self::NeedsHardwareDefinition => "needs-hardware-definition",
            Self::NotOnBoard => "not-on-board",
            Self::PinBlockConflict => "pin-block-conflict",
        }
    }
}

impl fmt::Display for IssueCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in an app manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestIssue {
    /// JSON path such as `Capabilities.AllowedTcpServerPorts[2]`; empty for the whole document.
    pub path: String,
    /// Kind of problem.
    pub code: IssueCode,
    /// Human explanation: the offending value and what is allowed.
    pub message: String,
}

impl fmt::Display for ManifestIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            &self.path
        };
        write!(f, "{path}: {} [{}]", self.message, self.code)
    }
}

/// Every problem found in one manifest. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestErrors {
    issues: Vec<ManifestIssue>,
}

impl ManifestErrors {
    pub(crate) fn new(issues: Vec<ManifestIssue>) -> Self {
        Self { issues }
    }

    pub(crate) fn single(
        path: impl Into<String>,
        code: IssueCode,
        message: impl Into<String>,
    ) -> Self {
        Self::new(vec![ManifestIssue {
            path: path.into(),
            code,
            message: message.into(),
        }])
    }

    /// The issues, in document order.
    pub fn issues(&self) -> &[ManifestIssue] {
        &self.issues
    }
}

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.issues.len();
        writeln!(
            f,
            "app manifest is invalid ({count} problem{}):",
            if count == 1 { "" } else { "s" }
        )?;
        for (index, issue) in self.issues.iter().enumerate() {
            if index + 1 < count {
                writeln!(f, "  {issue}")?;
            } else {
                write!(f, "  {issue}")?;
            }
        }
        Ok(())
    }
}

/// A semantic problem inside a loaded set of hardware definition files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HardwareIssue {
    #[error("{file}: peripheral name `{name}` is already defined in {first_file}")]
    DuplicateName {
        name: String,
        file: String,
        first_file: String,
    },
    #[error("{file}: `{name}` maps to `{target}`, which no loaded definition defines")]
    UnknownMapping {
        name: String,
        file: String,
        target: String,
    },
    #[error(
        "{file}: `{name}` has Type {peripheral_type} but maps to `{target}` of Type {target_type}"
    )]
    TypeMismatch {
        name: String,
        file: String,
        peripheral_type: String,
        target: String,
        target_type: String,
    },
    #[error("{file}: `{name}` has neither Mapping nor AppManifestValue")]
    MissingValue { name: String, file: String },
    #[error(
        "{file}: `{name}` has both Mapping and {field}; a mapped peripheral takes its values from the target"
    )]
    MappingWithValue {
        name: String,
        file: String,
        field: &'static str,
    },
    #[error("mapping cycle: {}", chain.join(" -> "))]
    MappingCycle { chain: Vec<String> },
    #[error("{file}: `{name}`: {message}")]
    InvalidPeripheral {
        name: String,
        file: String,
        message: String,
    },
}

impl HardwareIssue {
    /// Stable kebab-case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::DuplicateName { .. } => "duplicate-name",
            Self::UnknownMapping { .. } => "unknown-mapping",
            Self::TypeMismatch { .. } => "type-mismatch",
            Self::MissingValue { .. } => "missing-value",
            Self::MappingWithValue { .. } => "mapping-with-value",
            Self::MappingCycle { .. } => "mapping-cycle",
            Self::InvalidPeripheral { .. } => "invalid-peripheral",
        }
    }
}

/// Why a hardware definition could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum HardwareDefinitionError {
    #[error("cannot read hardware definition {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("hardware definition {file} is {size} bytes; the limit is {limit}")]
    TooLarge { file: String, size: u64, limit: u64 },
    #[error(
        "hardware definition {file} is not valid JSON: {message} at line {line} column {column}"
    )]
    InvalidJson {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("hardware definition {file}: {path}: {message}")]
    Schema {
        file: String,
        path: String,
        message: String,
    },
    #[error(
        "{importer} imports `{import}`, which was not found (tried: {})",
        display_tried(tried)
    )]
    MissingImport {
        importer: String,
        import: String,
        tried: Vec<String>,
    },
    #[error("import cycle: {}", cycle.join(" -> "))]
    ImportCycle { cycle: Vec<String> },
    #[error("imports nest deeper than {limit}: {}", chain.join(" -> "))]
    ImportTooDeep { chain: Vec<String>, limit: usize },
    #[error("hardware definition set exceeds {limit} {what}")]
    TooMany { what: &'static str, limit: usize },
    #[error("hardware definition {file} is invalid:\n{}", display_issues(issues))]
    Invalid {
        file: String,
        issues: Vec<HardwareIssue>,
    },
}

impl HardwareDefinitionError {
    /// Stable kebab-case codes: one for most errors, one per issue for [`Self::Invalid`].
    pub fn codes(&self) -> Vec<&'static str> {
        match self {
            Self::Read { .. } => vec!["read-failed"],
            Self::TooLarge { .. } => vec!["too-large"],
            Self::InvalidJson { .. } => vec!["invalid-json"],
            Self::Schema { .. } => vec!["schema"],
            Self::MissingImport { .. } => vec!["missing-import"],
            Self::ImportCycle { .. } => vec!["import-cycle"],
            Self::ImportTooDeep { .. } => vec!["import-too-deep"],
            Self::TooMany { .. } => vec!["too-many"],
            Self::Invalid { issues, .. } => issues.iter().map(HardwareIssue::code).collect(),
        }
    }
}

fn display_tried(tried: &[String]) -> String {
    if tried.is_empty() {
        "nothing".to_owned()
    } else {
        tried.join(", ")
    }
}

fn display_issues(issues: &[HardwareIssue]) -> String {
    issues
        .iter()
        .map(|issue| format!("  {issue}"))
        .collect::<Vec<_>>()
        .join("\n")
}
