//! Azure Sphere-compatible app manifests and hardware definitions for Ferrosphere.
//!
//! This crate owns `app_manifest.json` (parsing with every problem reported at once, typed
//! default-deny [`Capabilities`], canonical JSON), hardware definitions (loading with imports,
//! validation, lookup), `$NAME` resolution of manifest peripherals against a hardware definition
//! with board checks ([`ResolvedManifest`]), and generation of Rust constants for app authors
//! ([`generate_rust_module`]). It must stay a leaf: no crypto, no I/O beyond reading hardware
//! definition files, and no dependency on other Ferrosphere crates, so the CLI, the image packer
//! and the device can all trust the same rules. Schema and limits: `docs/manifest.md`.
//!
//! ```
//! use ferro_manifest::AppManifest;
//! let manifest = AppManifest::parse(br#"{"SchemaVersion": 1, "Name": "Hello",
//!   "ComponentId": "1689d8b2-c835-2e27-27ad-e894d6d15fa9", "EntryPoint": "/bin/app",
//!   "ApplicationType": "Default", "Capabilities": {"Gpio": [8]}}"#).unwrap();
//! let resolved = manifest.resolve(None).unwrap();
//! assert_eq!(resolved.capabilities().gpio(), &[8]);
//! ```

mod capabilities;
mod error;
mod hardware;
mod header;
mod json;
mod manifest;
mod resolve;

pub use capabilities::{
    AllowedConnection, Capabilities, CapabilityFlag, ConnectionError, MAX_CAPABILITY_ENTRIES,
    MAX_MUTABLE_STORAGE_KIB, MAX_PERIPHERAL_ID_CHARS, MAX_REFERENCE_NAME_CHARS, PeripheralForm,
    PeripheralKind, PeripheralRef, PowerControl, Resolved, ServiceType, Unresolved,
    is_peripheral_id, is_reference_name, parse_guid,
};
pub use error::{HardwareDefinitionError, HardwareIssue, IssueCode, ManifestErrors, ManifestIssue};
pub use hardware::{
    AppManifestValue, DefinitionSource, FileSystemSource, HARDWARE_DEFINITION_TYPE,
    HARDWARE_DEFINITION_VERSION, HardwareDefinition, MAX_DEFINITION_FILES,
    MAX_DEFINITION_JSON_DEPTH, MAX_HARDWARE_DEFINITION_BYTES, MAX_IMPORT_DEPTH, MAX_PERIPHERALS,
    MemorySource, Peripheral, PeripheralType, PrivateNetworkLink, SourceFile, is_interface_name,
    parse_header_int,
};
pub use header::generate_rust_module;
pub use ipnet::IpNet;
pub use manifest::{
    AppManifest, ApplicationType, MALLOC_VERSIONS, MAX_CMD_ARG_CHARS, MAX_CMD_ARGS,
    MAX_ENTRY_POINT_CHARS, MAX_JSON_DEPTH, MAX_MANIFEST_BYTES, MAX_NAME_CHARS, ResolvedManifest,
    SUPPORTED_SCHEMA_VERSION, WATCHDOG_PERIOD_MS,
};
