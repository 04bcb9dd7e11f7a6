//! The sandboxed runtime of Ferrosphere high-level apps: WebAssembly components
//! (`wasm32-wasip2`) run by wasmtime, one thread and one store per app.
//!
//! This crate owns the host side of the app ABI (`wit/`, world `ferrosphere:device/app`):
//! linking only the interfaces an app's manifest grants and checking every call's resource
//! again; the WASI subset apps get (log-backed stdout/stderr, no file system, network or
//! clock-setting); per-app limits (linear memory, CPU slice by epoch interruption, storage quota,
//! log rate); peripheral and server-port ownership at install; the lifecycle (start unless
//! manual, restart with exponential backoff, stop); and the error events (exits, traps, limit
//! hits) the device uploads; the `application` interface's connections to real-time partner
//! apps, through the device's [`PartnerConnector`]. It is the only crate that links wasmtime. It depends on
//! `ferro-manifest` (typed capabilities; it never parses manifests itself) and
//! `ferro-peripherals`; it must not depend on the device, the service, HTTP or the root of trust:
//! the device integration reaches it through [`Runtime`] and provides certificates, updates and
//! power through [`DeviceServices`]. Design record: `docs/runtime.md`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ferro_manifest::{HardwareDefinition, ResolvedManifest};
//! use ferro_peripherals::{Peripherals, VirtualBoard};
//! use ferro_runtime::{InstallOptions, Runtime, RuntimeConfig};
//!
//! let board = HardwareDefinition::load("hardware/ferro_vboard/sample_appliance.json".as_ref(), &[])?;
//! let virtual_board = Arc::new(VirtualBoard::from_hardware_definition(&board));
//! let runtime = Runtime::new(RuntimeConfig::new("/var/lib/ferro/apps".into()),
//!     Peripherals::all_from(virtual_board.clone()))?;
//! let manifest = ResolvedManifest::parse(&std::fs::read("app_manifest.json")?)?;
//! let app = runtime.install(&std::fs::read("app.wasm")?, &manifest, InstallOptions::default())?;
//! println!("{:?}", runtime.status(app)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod application;
mod config;
mod connect;
mod discovery;
mod error;
mod events;
mod host;
mod imagefiles;
mod limits;
mod logs;
mod network;
mod partners;
mod private_net;
mod runtime;
mod services;
mod storage;
mod wasi;

pub use config::{Backoff, InstallOptions, Limits, RuntimeConfig, StorageArea};
pub use discovery::{DnsResolverError, parse_dns_resolver};
pub use error::{ControlError, InstallError, RuntimeError};
pub use events::{ErrorEvent, ErrorKind, EventSubscription};
pub use imagefiles::{MAX_PACKAGE_PATH_BYTES, PackageFileError, PackageFiles};
pub use logs::{LogFollower, LogLevel, LogLine, LogSource};
pub use partners::{
    MAX_MESSAGE_BYTES, NoPartners, PartnerConnector, PartnerError, PartnerLink, PartnerMessage,
};
pub use private_net::{SYS_NET, forwarding_enabled};
pub use runtime::{AppId, AppState, AppStatus, EventRecorder, MemoryStats, Runtime, StorageQuota};
pub use services::{
    BatchOrigin, DeviceServices, NoDeviceServices, PendingUpdate, PowerProfile, PowerRequest,
    ServiceError,
};
