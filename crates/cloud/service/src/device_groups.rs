//! Device groups as products and their own routes share them: the description rule and storing
//! a new group (a name its product already uses is `conflict`).

use crate::datastore;
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use ferro_wire::DeviceGroup;

/// Most characters of a product's or device group's description.
pub const MAX_DESCRIPTION: usize = 1024;

/// Refuse a description that is too long or holds control characters (line feeds are fine).
pub fn check_description(d: &str) -> ApiResult<()> {
    if d.chars().count() > MAX_DESCRIPTION || d.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::invalid_body(
            "`description` must be at most 1024 characters, without control characters",
        ));
    }
    Ok(())
}

/// Insert a device group in `tx`; a taken name is a 409.
pub async fn insert_group(tx: &mut Tx, g: &DeviceGroup) -> ApiResult<()> {
    datastore::device_groups::insert(tx, g).await.map_err(|e| {
        e.on_unique("the product already has a device group with this name; choose another")
    })
}
