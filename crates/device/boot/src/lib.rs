//! `ferro-boot` is Ferrosphere's stage-0 loader, the boot trusted computing base
//! (docs/design.md §3.3; `docs/device.md`, "Boot"), as a library and the `ferro-boot` binary over it.
//! The library owns everything the loader decides and everything it reads:
//! - the device data directory's layout ([`layout`]: paths, `device.json`, `boot.json`, the two
//!   OS slots, `boot-failures.json`, atomic 0600 writes, private directories), which
//!   `ferro-device` uses too, so the loader and the OS can never disagree on it;
//! - what the device trusts ([`trust`]: the root of trust of `device.json`, its write-once
//!   anchors, the registration record checked against the root of trust's keys, the platform
//!   key list under the anchored root and its rollback counter);
//! - OS bundles ([`os`]: verification under the key list's OS release keys, type, component and
//!   anti-rollback floor; unpacking of the verified bytes only; the measurement);
//! - the A/B decisions ([`plan`]: which slot to try, attempt counting, fallback, measurement,
//!   and `mark_healthy`, which commits a pending slot and raises the floor).
//!
//! It must stay small enough to review: signature checks (`ferro-signing`), the package format
//! (`ferro-image`), the signed documents (`ferro-documents`), the root of trust (`ferro-trust`;
//! feature `tpm` links the TPM stack) and serde/tar/tempfile, and nothing else. It must not
//! depend on an async runtime, HTTP, TLS, wasmtime, a database, certificate generation or X.509
//! parsing, nor on `ferro-device`, `ferro-pki` or anything of the service; the tidy test
//! (`crates/tools/tidy`) fails when its dependency closure grows past ARCHITECTURE.md's bound.

mod error;

pub mod layout;
pub mod os;
pub mod plan;
pub mod trust;

pub use error::BootError;
pub use layout::{BootState, DataDir, DeviceConfig, PendingSlot, Slot};
pub use plan::{BootPlan, mark_healthy, plan_boot};
pub use trust::DeviceTrust;

/// Re-exported for the binary and tests.
pub use ferro_trust;
