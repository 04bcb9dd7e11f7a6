//! Shared helpers of the runtime's integration tests: the built sample and hostile apps, the
//! virtual board of the sample appliance, and a runtime with test-friendly timings.

#![allow(dead_code)]

pub mod broker;
pub mod listener;
pub mod pki;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_manifest::{AppManifest, HardwareDefinition, ResolvedManifest};
use ferro_peripherals::{Peripherals, PinBlocks, VirtualBoard};
use ferro_runtime::{Backoff, InstallOptions, Runtime, RuntimeConfig};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// The built component of app `name`; panics, naming the command that builds the apps, when it
/// is missing or older than its sources.
pub fn wasm(name: &str) -> Vec<u8> {
    let path = ferro_e2e::artifacts::wasm_app(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

pub fn hardware() -> HardwareDefinition {
    HardwareDefinition::load(
        &repo_root().join("hardware/ferro_vboard/sample_appliance.json"),
        &[],
    )
    .expect("sample appliance hardware definition")
}

/// App `name`'s manifest, edited by `edit`, resolved against the sample appliance.
pub fn manifest_with(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> ResolvedManifest {
    let path = ferro_e2e::artifacts::app_dir(name).join("app_manifest.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("app manifest")).expect("json");
    edit(&mut json);
    let bytes = serde_json::to_vec(&json).expect("json");
    AppManifest::parse(&bytes)
        .expect("manifest parses")
        .resolve(Some(&hardware()))
        .expect("manifest resolves")
}

pub fn manifest(name: &str) -> ResolvedManifest {
    manifest_with(name, |_| {})
}

pub struct Device {
    pub board: Arc<VirtualBoard>,
    pub runtime: Runtime,
    pub storage: tempfile::TempDir,
}

pub fn test_config(storage: &Path) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(storage.to_path_buf());
    config.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(800),
        reset_after: Duration::from_secs(30),
    };
    config.server_bind_address = "127.0.0.1".parse().expect("address");
    config.pin_blocks = PinBlocks::from_hardware_definition(&hardware());
    config
}

pub fn device_with(edit: impl FnOnce(&mut RuntimeConfig)) -> Device {
    let board = Arc::new(VirtualBoard::from_hardware_definition(&hardware()));
    let storage = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(storage.path());
    edit(&mut config);
    let runtime = Runtime::new(config, Peripherals::all_from(board.clone())).expect("runtime");
    Device {
        board,
        runtime,
        storage,
    }
}

pub fn device() -> Device {
    device_with(|_| {})
}

impl Device {
    pub fn install(&self, name: &str) -> ferro_runtime::AppId {
        self.runtime
            .install(&wasm(name), &manifest(name), InstallOptions::default())
            .unwrap_or_else(|error| panic!("install {name}: {error}"))
    }

    pub fn log_texts(&self, app: ferro_runtime::AppId) -> Vec<String> {
        self.runtime
            .logs(app)
            .expect("logs")
            .into_iter()
            .map(|line| line.text)
            .collect()
    }

    /// Waits until a log line of `app` contains `needle`; returns it.
    pub fn wait_for_log(
        &self,
        app: ferro_runtime::AppId,
        needle: &str,
        timeout: Duration,
    ) -> String {
        let found = wait_until(timeout, || {
            self.log_texts(app)
                .into_iter()
                .find(|line| line.contains(needle))
        });
        found.unwrap_or_else(|| {
            panic!(
                "no log line containing {needle:?} within {timeout:?}; log: {:#?}",
                self.log_texts(app)
            )
        })
    }
}

/// Polls `probe` until it returns `Some`, or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
