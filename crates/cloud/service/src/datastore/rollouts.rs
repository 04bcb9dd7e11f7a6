//! Deployments' rollouts in waves: the `rollout_*` columns of `deployments`, and the marks of a
//! group's devices that the rollout's counts are made of. The decisions over these rows are
//! `crate::rollouts`'.

use crate::authz::TenantScope;
use crate::datastore::{StoreError, StoreResult};
use crate::db::{Db, Tx};
use crate::rollouts::Schedule;
use ferro_wire::{DeploymentId, DeviceGroupId, PauseReason, TenantId, UserId};
use sqlx::Row;

/// A pause of a rollout, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pause {
    /// When, Unix seconds.
    pub at: i64,
    /// Why.
    pub reason: PauseReason,
    /// What the service saw, or that an operator paused it.
    pub detail: String,
    /// The operator (`None`: the service paused it).
    pub by: Option<UserId>,
}

/// A deployment's rollout as stored.
#[derive(Clone, Debug)]
pub struct RolloutRow {
    /// The deployment.
    pub id: DeploymentId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its device group.
    pub group: DeviceGroupId,
    /// Waves and where they stand.
    pub schedule: Schedule,
    /// Basis points of included devices that may fail.
    pub max_failure: u32,
    /// Failures reported before this are not counted (creation, or the last resume).
    pub failures_since: i64,
    /// The pause, while paused.
    pub paused: Option<Pause>,
    /// When a newer deployment of the group froze it.
    pub superseded_at: Option<i64>,
}

/// What a device of the group holds of a rollout's deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceMark {
    /// Nothing of it.
    Other,
    /// A target set with its images.
    Targeted,
    /// That, and its last report is `Failed` for such a set, since the failures are counted.
    Failed,
}

/// The stored form of waves: cumulative basis points, comma-separated.
pub fn waves_text(waves: &[u32]) -> String {
    waves
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Stored waves, checked: non-empty, the last one 10,000 basis points (every device).
pub fn parse_waves(text: &str) -> StoreResult<Vec<u32>> {
    let bad = || StoreError::Corrupt("malformed rollout waves".into());
    let waves = text
        .split(',')
        .map(|w| w.parse::<u32>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad())?;
    if waves.last() != Some(&crate::rollouts::FULL) {
        return Err(bad());
    }
    Ok(waves)
}

const ROW_COLUMNS: &str = "id, tenant_id, device_group_id, rollout_waves, rollout_wait, \
     rollout_max_failure, rollout_wave, rollout_wave_at, rollout_failures_since, \
     rollout_paused_at, rollout_pause_reason, rollout_pause_detail, rollout_paused_by, \
     rollout_superseded_at, rollout_base_id";

fn id<T: std::str::FromStr>(text: &str, what: &str) -> StoreResult<T> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("malformed {what}")))
}

/// A `deployments` row's rollout (`None`: the deployment has none).
fn row_of(r: &sqlx::any::AnyRow) -> StoreResult<Option<RolloutRow>> {
    let Some(waves) = r.try_get::<Option<String>, _>("rollout_waves")? else {
        return Ok(None);
    };
    let int = |name: &str| -> StoreResult<i64> {
        r.try_get::<Option<i64>, _>(name)?
            .ok_or_else(|| StoreError::Corrupt(format!("rollout without {name}")))
    };
    let paused_at: Option<i64> = r.try_get("rollout_paused_at")?;
    let superseded_at: Option<i64> = r.try_get("rollout_superseded_at")?;
    let paused = match paused_at {
        None => None,
        Some(at) => Some(Pause {
            at,
            reason: r
                .try_get::<Option<String>, _>("rollout_pause_reason")?
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Corrupt("unknown rollout pause reason".into()))?,
            detail: r
                .try_get::<Option<String>, _>("rollout_pause_detail")?
                .unwrap_or_default(),
            by: r
                .try_get::<Option<String>, _>("rollout_paused_by")?
                .map(|u| id(&u, "user ID"))
                .transpose()?,
        }),
    };
    Ok(Some(RolloutRow {
        id: id(&r.try_get::<String, _>("id")?, "deployment ID")?,
        tenant: id(&r.try_get::<String, _>("tenant_id")?, "tenant ID")?,
        group: id(&r.try_get::<String, _>("device_group_id")?, "group ID")?,
        schedule: Schedule {
            waves: parse_waves(&waves)?,
            wait: int("rollout_wait")?,
            wave: usize::try_from(int("rollout_wave")?)
                .map_err(|_| StoreError::Corrupt("negative rollout wave".into()))?,
            wave_at: int("rollout_wave_at")?,
            frozen: paused.is_some() || superseded_at.is_some(),
            base: r.try_get("rollout_base_id")?,
        },
        max_failure: u32::try_from(int("rollout_max_failure")?)
            .map_err(|_| StoreError::Corrupt("rollout threshold out of range".into()))?,
        failures_since: int("rollout_failures_since")?,
        paused,
        superseded_at,
    }))
}

/// A rollout's configuration as stored on its deployment (`rollout_waves`, `rollout_wait`,
/// `rollout_max_failure`): waves in basis points, wait, threshold in basis points.
pub fn config_of(r: &sqlx::any::AnyRow) -> StoreResult<Option<(Vec<u32>, i64, u32)>> {
    let Some(waves) = r.try_get::<Option<String>, _>("rollout_waves")? else {
        return Ok(None);
    };
    let wait: Option<i64> = r.try_get("rollout_wait")?;
    let max_failure: Option<i64> = r.try_get("rollout_max_failure")?;
    Ok(Some((
        parse_waves(&waves)?,
        wait.unwrap_or(0),
        max_failure.and_then(|m| u32::try_from(m).ok()).unwrap_or(0),
    )))
}

/// Store a new deployment's rollout (inside the transaction that inserts the deployment).
pub async fn insert(
    tx: &mut Tx,
    deployment: DeploymentId,
    waves: &[u32],
    wait: i64,
    max_failure: u32,
    base: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE deployments SET rollout_waves = $1, rollout_wait = $2, rollout_max_failure = $3, \
         rollout_wave = 0, rollout_wave_at = $4, rollout_failures_since = $4, \
         rollout_base_id = $5 WHERE id = $6",
    )
    .bind(waves_text(waves))
    .bind(wait)
    .bind(i64::from(max_failure))
    .bind(now)
    .bind(base)
    .bind(deployment.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A deployment of the scope's tenant in `group`: `None` when there is no such deployment,
/// `Some(None)` when it has no rollout.
pub async fn get(
    db: &Db,
    scope: &TenantScope,
    group: DeviceGroupId,
    deployment: DeploymentId,
) -> StoreResult<Option<Option<RolloutRow>>> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM deployments WHERE tenant_id = $1 AND device_group_id = $2 \
         AND id = $3"
    );
    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope.tenant_str())
        .bind(group.to_string())
        .bind(deployment.to_string())
        .fetch_optional(db.pool())
        .await?;
    r.as_ref().map(row_of).transpose()
}

/// The rollout under way (neither paused nor superseded) of the deployment whose images the
/// device's target set names, if that deployment is one of the device's group.
pub async fn under_way_for_device(db: &Db, device_id: &str) -> StoreResult<Option<RolloutRow>> {
    let sql = format!(
        "SELECT {} FROM devices d JOIN deployments dep ON dep.id = d.target_deployment_id \
         WHERE d.id = $1 AND dep.device_group_id = d.device_group_id AND \
         dep.rollout_waves IS NOT NULL AND dep.rollout_paused_at IS NULL AND \
         dep.rollout_superseded_at IS NULL",
        ROW_COLUMNS
            .split(", ")
            .map(|c| format!("dep.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(device_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(r.as_ref().map(row_of).transpose()?.flatten())
}

/// Each device of the rollout's group with what it holds of the rollout's deployment (one
/// query over the group's devices).
pub async fn device_marks(db: &Db, row: &RolloutRow) -> StoreResult<Vec<(String, DeviceMark)>> {
    // mark: 0 other, 1 given this deployment's set, 2 that and its last report is a counted
    // failure for it.
    let rows = sqlx::query(
        "SELECT id, CAST(CASE WHEN target_deployment_id = $2 THEN (CASE WHEN \
         update_state = 'Failed' AND update_target_version >= target_deployment_version AND \
         update_reported_at >= $3 THEN 2 ELSE 1 END) ELSE 0 END AS BIGINT) AS mark \
         FROM devices WHERE device_group_id = $1",
    )
    .bind(row.group.to_string())
    .bind(row.id.to_string())
    .bind(row.failures_since)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let mark = match r.try_get::<i64, _>("mark")? {
                0 => DeviceMark::Other,
                1 => DeviceMark::Targeted,
                _ => DeviceMark::Failed,
            };
            Ok((r.try_get::<String, _>("id")?, mark))
        })
        .collect()
}

/// Pause the scope's rollout `row` at wave `wave`, if its stored state is still the one `row`
/// was read with (another writer may have paused, resumed or superseded it). Returns whether it
/// paused it.
pub async fn pause(
    tx: &mut Tx,
    scope: &TenantScope,
    row: &RolloutRow,
    wave: usize,
    pause: &Pause,
) -> StoreResult<bool> {
    let n = sqlx::query(
        "UPDATE deployments SET rollout_paused_at = $1, rollout_pause_reason = $2, \
         rollout_pause_detail = $3, rollout_paused_by = $4, rollout_wave = $5 \
         WHERE id = $6 AND tenant_id = $10 AND rollout_paused_at IS NULL AND \
         rollout_superseded_at IS NULL AND rollout_wave = $7 AND rollout_wave_at = $8 AND \
         rollout_failures_since = $9",
    )
    .bind(pause.at)
    .bind(pause.reason.as_str())
    .bind(&pause.detail)
    .bind(pause.by.map(|u| u.to_string()))
    .bind(i64::try_from(wave).unwrap_or(i64::MAX))
    .bind(row.id.to_string())
    .bind(i64::try_from(row.schedule.wave).unwrap_or(i64::MAX))
    .bind(row.schedule.wave_at)
    .bind(row.failures_since)
    .bind(scope.tenant_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Resume the scope's paused rollout of `deployment` at `now` (the current wave's wait and the
/// failure count start again). Returns whether it was paused (and not superseded) and is now
/// resumed.
pub async fn resume(
    tx: &mut Tx,
    scope: &TenantScope,
    deployment: DeploymentId,
    now: i64,
) -> StoreResult<bool> {
    let n = sqlx::query(
        "UPDATE deployments SET rollout_paused_at = NULL, rollout_pause_reason = NULL, \
         rollout_pause_detail = NULL, rollout_paused_by = NULL, rollout_wave_at = $1, \
         rollout_failures_since = $1 WHERE id = $2 AND tenant_id = $3 AND \
         rollout_paused_at IS NOT NULL AND rollout_superseded_at IS NULL",
    )
    .bind(now)
    .bind(deployment.to_string())
    .bind(scope.tenant_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The group's newest deployment with its rollout, if it has one, read in the caller's write
/// transaction.
pub async fn newest_of_group_in(
    tx: &mut Tx,
    scope: &TenantScope,
    group: DeviceGroupId,
) -> StoreResult<Option<(DeploymentId, Option<RolloutRow>)>> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM deployments WHERE device_group_id = $1 AND tenant_id = $2 \
         ORDER BY id DESC LIMIT 1"
    );
    let Some(r) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(group.to_string())
        .bind(scope.tenant_str())
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(None);
    };
    let deployment = id(&r.try_get::<String, _>("id")?, "deployment ID")?;
    Ok(Some((deployment, row_of(&r)?)))
}

/// Freeze the scope's rollout of `deployment` at wave `wave`: a newer deployment of its group
/// superseded it at `now`.
pub async fn freeze(
    tx: &mut Tx,
    scope: &TenantScope,
    deployment: DeploymentId,
    wave: usize,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE deployments SET rollout_superseded_at = $1, rollout_wave = $2 \
         WHERE id = $3 AND tenant_id = $4 AND rollout_superseded_at IS NULL",
    )
    .bind(now)
    .bind(i64::try_from(wave).unwrap_or(i64::MAX))
    .bind(deployment.to_string())
    .bind(scope.tenant_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_round_trip_and_malformed_ones_are_refused() {
        for waves in [vec![10000], vec![50, 1000, 5000, 10000]] {
            assert_eq!(parse_waves(&waves_text(&waves)).unwrap(), waves);
        }
        for bad in ["", "1000,5000", "10,x,10000", "-1,10000", "10000,"] {
            assert!(parse_waves(bad).is_err(), "{bad:?}");
        }
    }
}
