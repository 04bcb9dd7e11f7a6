//! The datastore: the service's SQL and the typed rows it reads and writes (see
//! `docs/service/storage.md`). Nothing here knows HTTP; routes and domain modules call it.

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
