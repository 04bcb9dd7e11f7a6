//! Devices' update reports as stored on their rows (`devices.update_*`): the state a device
//! last reported, and the update status the API shows.

use crate::authz::TenantScope;
use crate::datastore::{StoreError, StoreResult};
use crate::db::{self, Db, Tx};
use ferro_wire::{DeviceDeploymentStatus, DeviceId, InstalledImage, UpdateStatusReport};
use sqlx::Row;

/// What a device last reported: its update state and the target set version it was about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LastReport {
    /// The state (`None`: it never reported).
    pub state: Option<String>,
    /// The target set version of that report.
    pub target_version: Option<i64>,
}

/// The device's last report (`None`: no such device of the scope's tenant), read in the
/// caller's write transaction.
pub async fn last_in(
    tx: &mut Tx,
    scope: &TenantScope,
    device_id: &str,
) -> StoreResult<Option<LastReport>> {
    let row = sqlx::query(
        "SELECT update_state, update_target_version FROM devices WHERE id = $1 AND tenant_id = $2",
    )
    .bind(device_id)
    .bind(scope.tenant_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| {
        Ok(LastReport {
            state: r.try_get("update_state")?,
            target_version: r.try_get("update_target_version")?,
        })
    })
    .transpose()
}

/// A stored form of a report's target version.
pub fn version_of(report: &UpdateStatusReport) -> Option<i64> {
    report
        .target_version
        .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// Store the device's report, received at `at`.
pub async fn store(
    tx: &mut Tx,
    scope: &TenantScope,
    device_id: &str,
    report: &UpdateStatusReport,
    at: i64,
) -> StoreResult<()> {
    let installed = serde_json::to_string(&report.installed)
        .map_err(|e| StoreError::Corrupt(format!("installed: {e}")))?;
    sqlx::query(
        "UPDATE devices SET update_state = $1, update_target_version = $2, update_detail = $3, \
         update_deferred_until = $4, update_reported_at = $5, update_installed = $6 \
         WHERE id = $7 AND tenant_id = $8",
    )
    .bind(report.state.as_str())
    .bind(version_of(report))
    .bind(&report.detail)
    .bind(report.deferred_until.map(|t| t.unix_timestamp()))
    .bind(at)
    .bind(&installed)
    .bind(device_id)
    .bind(scope.tenant_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A device's update status: the target set version the service computed for it and its last
/// report (`None`: no such device of the scope's tenant).
pub async fn status(
    db: &Db,
    scope: &TenantScope,
    device_id: &DeviceId,
) -> StoreResult<Option<DeviceDeploymentStatus>> {
    let Some(r) = sqlx::query(
        "SELECT target_version, update_state, update_target_version, update_detail, \
         update_deferred_until, update_reported_at, update_installed FROM devices \
         WHERE id = $1 AND tenant_id = $2",
    )
    .bind(device_id.to_string())
    .bind(scope.tenant_str())
    .fetch_optional(db.pool())
    .await?
    else {
        return Ok(None);
    };
    let version: i64 = r.try_get("target_version")?;
    let installed: Vec<InstalledImage> = r
        .try_get::<Option<String>, _>("update_installed")?
        .map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|_| StoreError::Corrupt("malformed installed list".into()))?
        .unwrap_or_default();
    Ok(Some(DeviceDeploymentStatus {
        device_id: *device_id,
        target_version: u64::try_from(version).ok().filter(|v| *v > 0),
        state: r
            .try_get::<Option<String>, _>("update_state")?
            .and_then(|s| s.parse().ok()),
        reported_target_version: r
            .try_get::<Option<i64>, _>("update_target_version")?
            .and_then(|v| u64::try_from(v).ok()),
        detail: r.try_get("update_detail")?,
        deferred_until: r
            .try_get::<Option<i64>, _>("update_deferred_until")?
            .map(db::ts),
        reported_at: r
            .try_get::<Option<i64>, _>("update_reported_at")?
            .map(db::ts),
        installed,
    }))
}
