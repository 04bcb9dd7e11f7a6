//! `ferro-device` is the device OS layer (docs/design.md §1 to §3; `docs/device.md`). Today it
//! owns provisioning (device key in the root of trust, write-once trust anchors, the platform
//! key list, the factory OS bundle, the registration record), the manufacturing state, the data
//! directory with its two OS slots and `boot.json`, the stage-0 decisions `ferro-boot` makes
//! ([`boot::plan_boot`]) and the agent's `run` loop.
//!
//! The library has two layers:
//! - the **offline core** (always built): data directory, identity ([`DeviceContext`]), OS
//!   bundle verification and unpacking, measurements, boot decisions, provisioning. `ferro-boot`
//!   links only this (`default-features = false`), so the boot TCB has no network stack and no
//!   async runtime in its code paths.
//! - the **agent** (feature `agent`, default): HTTPS to the service ([`net`]) and the `run` loop
//!   ([`run`]), used by the `ferro-device` binary.
//!
//! Rules: nothing here depends on the service; only `ferro-trust` links the TPM stack (feature
//! `tpm` forwards to it); only `VerifiedImage`s are unpacked, and only after verification
//! succeeded.

mod error;

pub mod boot;
pub mod identity;
pub mod layout;
pub mod os;
pub mod provision;

#[cfg(feature = "agent")]
pub mod app_services;
#[cfg(feature = "agent")]
pub mod apps;
#[cfg(feature = "agent")]
pub mod deferral;
#[cfg(feature = "agent")]
pub mod events;
#[cfg(feature = "agent")]
pub mod local_api;
#[cfg(feature = "agent")]
pub mod net;
#[cfg(feature = "agent")]
pub mod run;
#[cfg(feature = "agent")]
pub mod update_agent;

pub use error::DeviceError;
pub use identity::{DeviceContext, PlatformRoot};
pub use layout::{BootState, DataDir, DeviceConfig, PendingSlot, Slot};

/// Re-exported for ferro-boot and tests.
pub use ferro_pki::ManufacturingState;
pub use ferro_trust;
