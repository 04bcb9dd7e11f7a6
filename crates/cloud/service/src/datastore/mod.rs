//! The datastore: the service's SQL, one module per resource, each statement a typed function
//! over typed rows (see `docs/service/storage.md`). Routes and domain modules call it; it knows
//! nothing of HTTP.
//!
//! One way to read, one way to write: a read outside a transaction takes the [`crate::db::Db`]
//! (and runs on the engine's read path: the hot-path rusqlite reads on SQLite where the read is
//! a bounded indexed one), a write takes the caller's write transaction ([`crate::db::Tx`],
//! from `Db::begin_write`), as does a read that must see it.
//!
//! It holds every statement of the service (the database layer under it keeps the audit row,
//! the tenant lock and the migrations): devices (with registrations and capabilities), images, ownership (transfers,
//! epochs, moving a device between tenants), products, device groups, tenants with their roles
//! and audit log (as the tenant routes read them), developer keys, users, sessions and API
//! tokens, login limits, invitations, tenant CAs and the platform's rows, attestation (the
//! evidence route's reads and its recording write), device events (uploads, batches, the error
//! report), and updates: OS releases with their feeds' policies and build keys, deployments and
//! their rollouts, devices' target sets and update reports, update-now signals.
//! `tests/layering.rs` fails on SQL anywhere else.
//!
//! [`crate::db::Db::write_atomic`] is this layer's hot-path writer (a token's last use, an
//! attestation's verdict), not a way to write for the layers above.

pub mod attestation;
pub mod audit;
pub mod deployments;
pub mod developer_keys;
pub mod device_events;
pub mod device_groups;
pub mod devices;
pub mod firmware_references;
pub mod images;
pub mod invitations;
pub mod login_limits;
pub mod os_release_keys;
pub mod os_releases;
pub mod ownership;
pub mod platform_meta;
pub mod products;
pub mod roles;
pub mod rollouts;
pub mod target_sets;
pub mod tenant_cas;
pub mod tenants;
pub mod tokens;
pub mod update_reports;
pub mod update_signals;
pub mod users;

use crate::db::DbError;
use sqlx::Row;

/// Why a datastore function failed. It says nothing of HTTP: the routes map it at the edge
/// (`From<StoreError> for ApiError` in `crate::error`), where a unique violation may become a
/// 409 by [`StoreError::on_unique`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed: unreachable, busy, a constraint (unique violations included), a
    /// malformed statement.
    #[error("{0}")]
    Db(#[from] DbError),
    /// A stored row cannot be read back as its type (an unknown enum name, a malformed ID, a
    /// number out of range): the database holds what no version of the service writes.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A value cannot be stored (a number beyond the column's range).
    #[error("cannot store: {0}")]
    Unrepresentable(String),
}

/// Result of a datastore function.
pub type StoreResult<T> = Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(DbError::Sqlx(e))
    }
}

impl StoreError {
    /// Whether this is a unique-constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Db(DbError::Sqlx(sqlx::Error::Database(e)))
            if e.kind() == sqlx::error::ErrorKind::UniqueViolation)
    }
}

/// A stored ID parsed back, or [`StoreError::Corrupt`].
pub(crate) fn parse_id<T: From<uuid::Uuid>>(s: &str) -> StoreResult<T> {
    uuid::Uuid::parse_str(s)
        .map(T::from)
        .map_err(|_| StoreError::Corrupt(format!("malformed ID {s:?}")))
}

/// A stored device ID parsed back, or [`StoreError::Corrupt`].
pub(crate) fn parse_device_id(s: &str) -> StoreResult<ferro_wire::DeviceId> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("malformed device ID {s:?}")))
}

/// A stored enum name parsed back, or [`StoreError::Corrupt`] naming `what`.
pub(crate) fn parse_name<T: std::str::FromStr>(s: &str, what: &str) -> StoreResult<T> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown {what} {s:?}")))
}

/// A stored signing key (a row of `developer_keys` or `os_release_keys`) on the wire; `tenant`
/// is the tenant of a developer key (`None` for the platform's OS release keys).
pub(crate) fn signing_key_from_row(
    r: &sqlx::any::AnyRow,
    tenant: Option<ferro_wire::TenantId>,
) -> StoreResult<ferro_wire::RegisteredSigningKey> {
    Ok(ferro_wire::RegisteredSigningKey {
        key_id: r.try_get("key_id")?,
        tenant_id: tenant,
        name: r.try_get("name")?,
        public_key_pem: r.try_get("public_key_pem")?,
        created_by: parse_id(&r.try_get::<String, _>("created_by")?)?,
        created_at: crate::db::ts(r.try_get("created_at")?),
    })
}

/// `major.minor.patch` of a row with `version_major`, `version_minor`, `version_patch`.
pub(crate) fn version_string(r: &sqlx::any::AnyRow) -> StoreResult<String> {
    Ok(format!(
        "{}.{}.{}",
        r.try_get::<i64, _>("version_major")?,
        r.try_get::<i64, _>("version_minor")?,
        r.try_get::<i64, _>("version_patch")?
    ))
}

/// A stored number as `u32` (out of range: the database is corrupt).
pub(crate) fn to_u32(v: i64) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("out-of-range number {v}")))
}

/// A stored number as `u64` (out of range: the database is corrupt).
pub(crate) fn to_u64(v: i64) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("out-of-range number {v}")))
}
