//! The update in progress (`update/transaction.json`), written before each irreversible step so
//! a restart at any instant knows where it stands and rolls forward (or, when the new OS did
//! not come up, abandons the update and keeps the old set):
//!
//! 1. `Staged`: every package downloaded, verified and staged (apps in the store, the OS bundle
//!    in the inactive slot). Nothing the device runs has changed.
//! 2. `OsPending` (only with a new OS): written *before* `boot.json` gets the pending slot, so a
//!    restart that finds this phase knows the switch may have happened. At the first boot of
//!    the new OS, before any app is measured or started, the apps manifest is switched to the
//!    new apps; if the device instead comes up on the old OS (the new one failed), the previous
//!    apps are restored first. Apps therefore only ever run with the OS of their set.
//! 3. `Committed`: the OS (if any) booted and reported healthy and the apps manifest was
//!    rewritten; what remains is confirming health (attestation) and raising the floors.
//!
//! The transaction file is deleted once floors are raised; its absence means nothing is in
//! progress.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::files::{read_json_opt, write_json};
use crate::{InstalledApps, UpdateDir, UpdateError, crash};

/// Where an update stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Everything staged; nothing switched.
    Staged,
    /// The OS switch may have been requested (boot.json pending).
    OsPending,
    /// Switched; health confirmation and floors remain.
    Committed,
}

/// A new OS bundle in the inactive slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OsSwitch {
    /// The slot (`a` or `b`) holding it.
    pub slot: String,
    /// Its image ID.
    pub image_id: Uuid,
    /// Its version text.
    pub version: String,
}

/// `update/transaction.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Transaction {
    /// The target set version being installed.
    pub target_version: u64,
    /// Where it stands.
    pub phase: Phase,
    /// The apps to switch to (`None`: the set leaves apps alone).
    pub next_apps: Option<InstalledApps>,
    /// The apps installed when the update started (restored if the new OS falls back after the
    /// apps were switched at its first boot).
    pub previous_apps: InstalledApps,
    /// The OS switch, if the set changes the OS.
    pub os: Option<OsSwitch>,
    /// When the transaction started (Unix seconds, device clock: only compared with the
    /// device's own boot failure records).
    pub started_at: i64,
}

impl Transaction {
    /// The transaction in progress, if any.
    pub fn load(dir: &UpdateDir) -> Result<Option<Transaction>, UpdateError> {
        read_json_opt(&dir.transaction())
    }

    /// Write it (atomically), then pass the crash point of its phase.
    pub fn save(&self, dir: &UpdateDir) -> Result<(), UpdateError> {
        write_json(&dir.transaction(), self)?;
        crash::point(match self.phase {
            Phase::Staged => "transaction.staged",
            Phase::OsPending => "transaction.os-pending",
            Phase::Committed => "transaction.committed",
        });
        Ok(())
    }

    /// Remove it: the update is finished (or abandoned).
    pub fn finish(dir: &UpdateDir) -> Result<(), UpdateError> {
        let path = dir.transaction();
        match std::fs::remove_file(&path) {
            Ok(()) => {
                crate::files::sync_dir(dir.root());
                crash::point("transaction.finished");
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(UpdateError::io(path)(e)),
        }
    }
}
