//! The datastore: the service's SQL, one module per resource, each statement a typed function
//! over typed rows (see `docs/service/storage.md`). Routes and domain modules call it; it knows
//! nothing of HTTP.
//!
//! One way to read, one way to write: a read outside a transaction takes the [`crate::db::Db`]
//! (and runs on the engine's read path: the hot-path rusqlite reads on SQLite where the read is
//! a bounded indexed one), a write takes the caller's write transaction ([`crate::db::Tx`],
//! from `Db::begin_write`), as does a read that must see it.
//!
//! Moved so far: devices (with registrations and capabilities), images, ownership (transfers,
//! epochs, moving a device between tenants), products, device groups, tenants with their roles
//! and audit log (as the tenant routes read them), and in part developer keys. The rest of the
//! service's SQL still sits in the modules that use it and moves here resource by resource.

pub mod audit;
pub mod developer_keys;
pub mod device_groups;
pub mod devices;
pub mod images;
pub mod ownership;
pub mod products;
pub mod roles;
pub mod tenants;

use crate::error::{ApiError, ApiResult};
use sqlx::Row;

/// `major.minor.patch` of a row with `version_major`, `version_minor`, `version_patch`.
pub(crate) fn version_string(r: &sqlx::any::AnyRow) -> ApiResult<String> {
    Ok(format!(
        "{}.{}.{}",
        r.try_get::<i64, _>("version_major")?,
        r.try_get::<i64, _>("version_minor")?,
        r.try_get::<i64, _>("version_patch")?
    ))
}

/// A stored number as `u32` (out of range: the database is corrupt).
pub(crate) fn to_u32(v: i64) -> ApiResult<u32> {
    u32::try_from(v).map_err(|_| ApiError::Internal("out-of-range number in database".into()))
}

/// A stored number as `u64` (out of range: the database is corrupt).
pub(crate) fn to_u64(v: i64) -> ApiResult<u64> {
    u64::try_from(v).map_err(|_| ApiError::Internal("out-of-range number in database".into()))
}
