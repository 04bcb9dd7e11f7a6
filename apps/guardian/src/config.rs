//! The register map, read from the app's own signed image package and checked again at start
//! against what the package's manifest grants (the pack-time check ran on the developer's
//! machine; this one runs on what the device verified).

use ferro_registermap::{Grants, MapErrors, RegisterMap};

/// The register map's file in the package.
pub const MAP_FILE: &str = "register_map.json";
/// The resolved manifest the packer puts in every package.
const MANIFEST_FILE: &str = "app_manifest.json";

/// Why the guardian cannot start.
#[derive(Debug)]
pub enum ConfigError {
    /// A file of the package could not be read.
    Package {
        file: &'static str,
        error: applibs::Error,
    },
    /// The package's manifest is not JSON.
    Manifest(String),
    /// The map has errors (every one of them).
    Map(MapErrors),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Package { file, error } => {
                write!(f, "cannot read {file} from the image package: {error}")
            }
            ConfigError::Manifest(error) => write!(f, "the package's manifest: {error}"),
            ConfigError::Map(errors) => write!(f, "{MAP_FILE}: {errors}"),
        }
    }
}

/// The checked register map of this package.
pub fn load() -> Result<RegisterMap, ConfigError> {
    let read = |file: &'static str| {
        applibs::imagefiles::read(file).map_err(|error| ConfigError::Package { file, error })
    };
    let grants = Grants::from_manifest_json(&read(MANIFEST_FILE)?)
        .map_err(|error| ConfigError::Manifest(error.to_string()))?;
    RegisterMap::parse(&read(MAP_FILE)?, Some(&grants)).map_err(ConfigError::Map)
}
