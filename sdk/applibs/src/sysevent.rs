//! Update notifications and deferral (manifest capabilities `SystemEventNotifications` and
//! `SoftwareUpdateDeferral`).

use crate::bindings::ferrosphere::device::sysevent as raw;
use crate::error::Result;

pub use raw::{UpdateInfo, UpdateKind};

/// The pending update, if any.
pub fn pending_update() -> Result<Option<UpdateInfo>> {
    Ok(raw::pending_update()?)
}

/// Asks to defer the pending update by `minutes`.
pub fn defer_update(minutes: u32) -> Result<()> {
    Ok(raw::defer_update(minutes)?)
}

/// Withdraws a deferral.
pub fn resume_update() -> Result<()> {
    Ok(raw::resume_update()?)
}
