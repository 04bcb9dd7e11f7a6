//! Device events (`device_events`), the upload batches that make uploads idempotent and bound
//! each device's events per day (`device_event_batches`), and the tenant's error report over
//! them. The rules (what an upload may hold, the cap, the retention) are `crate::device_events`'.

use super::{StoreResult, parse_device_id};
use crate::authz::TenantScope;
use crate::db::Db;
use crate::db::Tx;
use ferro_wire::DeviceId;
use sqlx::Row;
use uuid::Uuid;

/// Take the device's row lock for an upload (PostgreSQL; SQLite writers are serialised anyway)
/// and note when it uploaded: `false` when it is no device of the tenant.
pub async fn lock_for_upload(
    tx: &mut Tx,
    scope: &TenantScope,
    device: &DeviceId,
    now: i64,
) -> StoreResult<bool> {
    let locked =
        sqlx::query("UPDATE devices SET events_uploaded_at = $1 WHERE id = $2 AND tenant_id = $3")
            .bind(now)
            .bind(device.to_string())
            .bind(scope.tenant_str())
            .execute(&mut **tx)
            .await?;
    Ok(locked.rows_affected() == 1)
}

/// Record the batch `batch` of `count` events from the device: `false` when the device sent it
/// before (nothing written).
pub async fn insert_batch(
    tx: &mut Tx,
    scope: &TenantScope,
    device: &DeviceId,
    batch: Uuid,
    count: i64,
    now: i64,
) -> StoreResult<bool> {
    let new_batch = sqlx::query(
        "INSERT INTO device_event_batches (device_id, batch_id, tenant_id, event_count, \
         received_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id, batch_id) DO NOTHING",
    )
    .bind(device.to_string())
    .bind(batch.hyphenated().to_string())
    .bind(scope.tenant_str())
    .bind(count)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(new_batch.rows_affected() == 1)
}

/// Forget the device's batches received before `before`.
pub async fn forget_batches_before(tx: &mut Tx, device: &DeviceId, before: i64) -> StoreResult<()> {
    sqlx::query("DELETE FROM device_event_batches WHERE device_id = $1 AND received_at < $2")
        .bind(device.to_string())
        .bind(before)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The events of the device's batches received after `after`, and when the oldest of them
/// arrived.
pub async fn events_since(
    tx: &mut Tx,
    device: &DeviceId,
    after: i64,
) -> StoreResult<(i64, Option<i64>)> {
    let window = sqlx::query(
        "SELECT CAST(COALESCE(SUM(event_count), 0) AS BIGINT) AS n, MIN(received_at) AS oldest \
         FROM device_event_batches WHERE device_id = $1 AND received_at > $2",
    )
    .bind(device.to_string())
    .bind(after)
    .fetch_one(&mut **tx)
    .await?;
    Ok((window.try_get("n")?, window.try_get("oldest")?))
}

/// Whether `device` is a device of the tenant (read in the caller's transaction).
pub async fn is_tenant_device(
    tx: &mut Tx,
    scope: &TenantScope,
    device: &DeviceId,
) -> StoreResult<bool> {
    Ok(
        sqlx::query("SELECT id FROM devices WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_str())
            .bind(device.to_string())
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

/// One aggregated event a device reported. `crate::device_events::record_device_events`
/// checks it (a device of the tenant, a count of at least 1, an end not before the start) and
/// clips its text before it is stored; read back, it is as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceEvent {
    /// The device.
    pub device_id: DeviceId,
    /// Event type (e.g. `AppCrash`, `UpdateFailure`).
    pub event_type: String,
    /// Event class.
    pub event_class: String,
    /// Event category.
    pub event_category: String,
    /// How many times it happened in the period (>= 1).
    pub count: i64,
    /// Description (untrusted text from the device).
    pub description: String,
    /// Start of the period (Unix seconds).
    pub start: i64,
    /// End of the period (Unix seconds).
    pub end: i64,
}

/// Store one event of a device of the tenant, received at `now`.
pub async fn insert_event(
    tx: &mut Tx,
    scope: &TenantScope,
    e: &DeviceEvent,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO device_events (id, tenant_id, device_id, event_type, event_class, \
         event_category, event_count, description, start_time, end_time, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(scope.tenant_str())
    .bind(e.device_id.to_string())
    .bind(&e.event_type)
    .bind(&e.event_class)
    .bind(&e.event_category)
    .bind(e.count)
    .bind(&e.description)
    .bind(e.start)
    .bind(e.end)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Up to `limit` of the tenant's events whose period ended at or after `since`, by start time.
pub async fn report(
    db: &Db,
    scope: &TenantScope,
    since: i64,
    limit: i64,
) -> StoreResult<Vec<DeviceEvent>> {
    let rows = sqlx::query(
        "SELECT device_id, event_type, event_class, event_category, event_count, description, \
         start_time, end_time FROM device_events WHERE tenant_id = $1 AND end_time >= $2 \
         ORDER BY start_time, id LIMIT $3",
    )
    .bind(scope.tenant_str())
    .bind(since)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeviceEvent {
                device_id: parse_device_id(&r.try_get::<String, _>("device_id")?)?,
                event_type: r.try_get("event_type")?,
                event_class: r.try_get("event_class")?,
                event_category: r.try_get("event_category")?,
                count: r.try_get("event_count")?,
                description: r.try_get("description")?,
                start: r.try_get("start_time")?,
                end: r.try_get("end_time")?,
            })
        })
        .collect()
}
