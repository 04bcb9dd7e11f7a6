//! `ferro-update` is the device side of over-the-air updates (docs/design.md §3.5;
//! `docs/updates.md`): it decides whether a target set may be accepted ([`accept`]: ownership
//! document under the platform key list, target set under the owner's metadata key, version not
//! below the last accepted one, not expired by the service's signed time), keeps resumable,
//! size-bounded, hash-checked downloads ([`download`]), checks each downloaded package against
//! its target entry and its component's anti-rollback floor ([`package`]), keeps the installed
//! apps and switches them with one atomic rename ([`apps`]), and records the update in progress
//! so that a restart at any instant resumes or abandons it cleanly ([`transaction`]), with named
//! crash points for the crash-injection tests ([`crash`]).
//!
//! It owns the device's `update/` and `apps/` directories and nothing else: the OS slots and
//! `boot.json` belong to `ferro-device`, which drives this crate from its agent. It does no
//! network I/O (the agent feeds downloads chunk by chunk) and must not depend on the service, an
//! HTTP stack or an async runtime, so it stays in the boot-adjacent, offline part of the device.

pub mod accept;
pub mod apps;
pub mod crash;
pub mod download;
pub mod files;
pub mod package;
pub mod transaction;

mod error;

pub use accept::{AcceptedTargetSet, UpdateDir, accept_target_set};
pub use apps::{AppStore, InstalledApp, InstalledApps};
pub use download::{DownloadedPackage, PartialDownload};
pub use error::UpdateError;
pub use package::{CheckedPackage, check_package, component_floor_counter};
pub use transaction::{OsSwitch, Phase, Transaction};
