//! Where the CLI keeps its per-user state: the developer's test-signing key for now.
//! `FERRO_CONFIG_DIR` overrides the location (tests and the demo use it to stay hermetic).

use std::path::PathBuf;

use anyhow::{Context, Result};

pub const CONFIG_DIR_ENV: &str = "FERRO_CONFIG_DIR";
const TEST_SIGNING_KEY_FILE: &str = "test-signing-key.pem";

pub fn config_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(CONFIG_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let base = dirs::config_dir().context(
        "cannot find your configuration directory (is HOME set?); set FERRO_CONFIG_DIR to choose one",
    )?;
    Ok(base.join("ferrosphere"))
}

/// The developer's test-signing key: made on first use, mode 0600.
pub fn default_test_signing_key_path() -> Result<PathBuf> {
    Ok(config_dir()?.join(TEST_SIGNING_KEY_FILE))
}
