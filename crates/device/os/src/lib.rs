//! `ferro-device` is the device OS layer (docs/design.md §1 to §3; `docs/device.md`): provisioning
//! (device key in the root of trust, write-once trust anchors, the platform key list, the factory
//! OS bundle, the registration record), the manufacturing state, [`DeviceContext`] (what device
//! services such as attestation run on), and the agent: HTTPS to the service ([`net`]), the
//! `run` loop ([`run`]), the update agent, the app manager, the local device API and the event
//! reporter, used by the `ferro-device` binary.
//!
//! The data directory's layout, the trust loading, OS bundle verification and the A/B boot
//! decisions belong to the boot TCB, `ferro-boot`'s library: this crate builds on it
//! ([`layout`] and [`os`] are its modules, re-exported) and never re-implements them, so the
//! loader and the OS agree on every path and rule.
//!
//! Rules: nothing here depends on the service; only `ferro-trust` links the TPM stack (feature
//! `tpm` forwards to it and to `ferro-boot`); only `VerifiedImage`s are unpacked, and only after
//! verification succeeded; apps are reached only through `ferro-runtime`.

mod error;

pub mod app_services;
pub mod apps;
pub mod deferral;
pub mod events;
pub mod identity;
pub mod local_api;
pub mod net;
pub mod platform;
pub mod provision;
pub mod rt_apps;
pub mod run;
pub mod update_agent;

/// The data directory's layout and OS bundles, owned by the boot TCB.
pub use ferro_boot::{layout, os};

pub use error::DeviceError;
pub use ferro_boot::{BootError, BootState, DataDir, DeviceConfig, PendingSlot, Slot};
pub use identity::{DeviceContext, PlatformRoot};

/// Re-exported for tests.
pub use ferro_pki::ManufacturingState;
pub use ferro_trust;
