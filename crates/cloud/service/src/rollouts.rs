//! Rollouts in waves (docs/updates.md, "Rollout waves"): a deployment may reach its group's
//! devices a cumulative percentage at a time (10 %, then 50 % after a wait, then 100 %), and the
//! service pauses it by itself when more than a set fraction of the devices already included
//! report `Failed` for it.
//!
//! Decisions, each for the stateless, multi-replica service:
//!
//! - **Progress is computed at read time from timestamps.** The wave reached at `now` is
//!   `wave + (now - wave_at) / wait`, capped at the last wave, unless the rollout is paused or
//!   superseded (then it is `wave`). Nothing in any process advances waves, so every replica
//!   answers the same and nothing runs in the background. The database is written only when the
//!   rollout's course changes: a pause (by an operator, or by the service on failures), a resume,
//!   or a newer deployment of the group (which freezes the older rollout where it stands).
//! - **A device's place is a hash.** `bucket(deployment, device)` is the first 64 bits of a
//!   SHA-256 over both IDs, modulo 10,000; the device is included while its bucket is below the
//!   reached wave's cumulative basis points. Waves only grow (a pause freezes, a resume
//!   continues, nothing goes back), so a device never leaves a wave it entered, and each
//!   deployment draws its own sample of the group.
//! - **Failures are counted when they are reported.** A report that turns a device's state to
//!   `Failed` for a set of the rollout's deployment re-counts the rollout (all of the group's
//!   devices, hashed: O(group), on this rare path only) and pauses it when `failed / included`
//!   exceeds the threshold. Resuming starts the count again: failures reported before the resume
//!   are acknowledged by it.

use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;

use ferro_wire::{
    ErrorCode, MAX_ROLLOUT_WAVES, MAX_WAVE_WAIT_SECONDS, PauseReason, Role, Rollout, RolloutPause,
    RolloutRequest, RolloutState, RolloutStatus,
};

use crate::auth::{Caller, parse_id};
use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// 100 % in basis points: buckets are `0..FULL`, wave percentages `1..=FULL`.
pub const FULL: u32 = 10_000;

/// A rollout's course: the waves and where they stand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Cumulative basis points, strictly increasing, the last one [`FULL`].
    pub waves: Vec<u32>,
    /// Seconds between waves.
    pub wait: i64,
    /// The wave (index) reached at `wave_at`.
    pub wave: usize,
    /// When that wave started (creation or the last resume), Unix seconds.
    pub wave_at: i64,
    /// Paused or superseded: the rollout stays at `wave`.
    pub frozen: bool,
    /// The deployment devices outside the waves get when they hold nothing newer of the group:
    /// the group's newest deployment that had reached every device when this one was created.
    pub base: Option<String>,
}

impl Schedule {
    fn last(&self) -> usize {
        self.waves.len().saturating_sub(1)
    }

    /// The wave (index) reached at `now`.
    pub fn reached(&self, now: i64) -> usize {
        let last = self.last();
        if self.frozen {
            return self.wave.min(last);
        }
        if self.wait <= 0 {
            return last;
        }
        let steps = now.saturating_sub(self.wave_at).max(0) / self.wait;
        self.wave
            .saturating_add(usize::try_from(steps).unwrap_or(usize::MAX))
            .min(last)
    }

    /// The cumulative basis points reached at `now`.
    pub fn percent(&self, now: i64) -> u32 {
        self.waves.get(self.reached(now)).copied().unwrap_or(FULL)
    }

    /// Whether the last wave has started by `now` (every device of the group is included).
    pub fn complete(&self, now: i64) -> bool {
        self.reached(now) >= self.last()
    }

    /// When the next wave starts, if nothing pauses the rollout first.
    pub fn next_wave_at(&self, now: i64) -> Option<i64> {
        let reached = self.reached(now);
        if self.frozen || reached >= self.last() {
            return None;
        }
        let waves_ahead = i64::try_from(reached + 1 - self.wave).ok()?;
        Some(
            self.wave_at
                .saturating_add(waves_ahead.saturating_mul(self.wait)),
        )
    }

    /// Whether `device_id` is in the waves of deployment `deployment_id` reached at `now`.
    pub fn includes(&self, deployment_id: &str, device_id: &str, now: i64) -> bool {
        bucket(deployment_id, device_id) < self.percent(now)
    }
}

/// A device's place in a deployment's rollout, `0..FULL`: stable, and independent between
/// deployments.
pub fn bucket(deployment_id: &str, device_id: &str) -> u32 {
    let mut h = Sha256::new();
    h.update(b"ferrosphere rollout bucket v1\0");
    h.update(deployment_id.as_bytes());
    h.update(b"\0");
    h.update(device_id.as_bytes());
    let d = h.finalize();
    let x = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    u32::try_from(x % u64::from(FULL)).unwrap_or(0)
}

/// Basis points as the API's percentage.
pub fn percent_of(bp: u32) -> f64 {
    f64::from(bp) / 100.0
}

fn waves_text(waves: &[u32]) -> String {
    waves
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_waves(text: &str) -> ApiResult<Vec<u32>> {
    let waves = text
        .split(',')
        .map(|w| w.parse::<u32>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::Internal("malformed rollout waves in database".into()))?;
    if waves.is_empty() || waves.last() != Some(&FULL) {
        return Err(ApiError::Internal(
            "malformed rollout waves in database".into(),
        ));
    }
    Ok(waves)
}

/// The group's current deployment as the update check reads it: its ID, then, with a rollout,
/// ` <waves> <wait> <wave> <wave_at> <frozen 0|1> <base ID or ->` (one column, so that the check
/// stays one query: `targets::CHECK_SQL` builds it).
pub fn parse_current(text: &str) -> ApiResult<(String, Option<Schedule>)> {
    let bad = || ApiError::Internal("malformed current deployment".into());
    let mut parts = text.split(' ');
    let id = parts.next().ok_or_else(bad)?.to_string();
    let Some(waves) = parts.next() else {
        return Ok((id, None));
    };
    let mut int = || -> ApiResult<i64> {
        parts
            .next()
            .and_then(|p| p.parse::<i64>().ok())
            .ok_or_else(bad)
    };
    let wait = int()?;
    let wave = usize::try_from(int()?).map_err(|_| bad())?;
    let wave_at = int()?;
    let frozen = int()? != 0;
    let base = match parts.next() {
        Some("-") => None,
        Some(b) if !b.is_empty() => Some(b.to_string()),
        _ => return Err(bad()),
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((
        id,
        Some(Schedule {
            waves: parse_waves(waves)?,
            wait,
            wave,
            wave_at,
            frozen,
            base,
        }),
    ))
}

/// The deployment whose images a device is given: the group's current deployment when it has
/// no rollout or its rollout includes the device; otherwise the newer of what the device was
/// given before in this group (`kept`) and the rollout's base (the group's newest deployment that
/// had reached every device when the rollout began), so a device outside the waves keeps what it
/// has and is never told to go back.
pub fn effective_deployment(
    device_id: &str,
    current: Option<(String, Option<Schedule>)>,
    kept: Option<String>,
    now: i64,
) -> Option<String> {
    let (id, schedule) = current?;
    match schedule {
        None => Some(id),
        Some(s) if s.includes(&id, device_id, now) => Some(id),
        // Deployment IDs are UUIDv7: text order is creation order.
        Some(s) => kept.max(s.base),
    }
}

/// A rollout as the API takes it, checked: (waves in basis points, wait, threshold in basis
/// points).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidRollout {
    /// Cumulative basis points.
    pub waves: Vec<u32>,
    /// Seconds between waves.
    pub wait: i64,
    /// Basis points of the included devices that may fail without pausing the rollout.
    pub max_failure: u32,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRollout, message)
}

/// A percentage with at most two decimals as basis points.
fn basis_points(p: f64) -> Option<u32> {
    if !p.is_finite() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let bp = (p * 100.0).round();
    if (p * 100.0 - bp).abs() > 1e-6 {
        return None;
    }
    // 0..=10,000, checked above.
    Some(bp as u32)
}

/// Check a requested rollout; every refusal is `422 invalid_rollout` naming the rule.
pub fn validate(req: &RolloutRequest) -> ApiResult<ValidRollout> {
    if req.waves.is_empty() || req.waves.len() > MAX_ROLLOUT_WAVES {
        return Err(invalid(format!(
            "`rollout.waves` must list 1 to {MAX_ROLLOUT_WAVES} cumulative percentages, such as \
             [10, 50, 100]"
        )));
    }
    let mut waves = Vec::with_capacity(req.waves.len());
    for (i, p) in req.waves.iter().enumerate() {
        let bp = basis_points(*p).filter(|bp| *bp > 0).ok_or_else(|| {
            invalid(format!(
                "`rollout.waves[{i}]` must be a percentage above 0 and at most 100, with at most \
                 two decimals"
            ))
        })?;
        if let Some(prev) = waves.last()
            && bp <= *prev
        {
            return Err(invalid(format!(
                "`rollout.waves` must increase: `rollout.waves[{i}]` is not above the wave before \
                 it (the percentages are cumulative)"
            )));
        }
        waves.push(bp);
    }
    if waves.last() != Some(&FULL) {
        return Err(invalid(
            "`rollout.waves` must end at 100 (the last wave reaches every device of the group)",
        ));
    }
    if req.wave_wait_seconds < 0 {
        return Err(invalid("`rollout.waveWaitSeconds` must not be negative"));
    }
    if req.wave_wait_seconds > MAX_WAVE_WAIT_SECONDS {
        return Err(invalid(format!(
            "`rollout.waveWaitSeconds` must be at most {MAX_WAVE_WAIT_SECONDS} (30 days)"
        )));
    }
    let max_failure = basis_points(req.max_failure_percent).ok_or_else(|| {
        invalid(
            "`rollout.maxFailurePercent` must be a percentage from 0 to 100, with at most two \
             decimals",
        )
    })?;
    Ok(ValidRollout {
        waves,
        wait: req.wave_wait_seconds,
        max_failure,
    })
}

impl ValidRollout {
    /// The API's view of it.
    pub fn wire(&self) -> Rollout {
        Rollout {
            waves: self.waves.iter().copied().map(percent_of).collect(),
            wave_wait_seconds: u64::try_from(self.wait).unwrap_or(0),
            max_failure_percent: percent_of(self.max_failure),
        }
    }
}

/// Store a new deployment's rollout (inside the transaction that inserts the deployment, after
/// [`supersede`], which gives its `base`).
pub async fn insert(
    tx: &mut Tx,
    deployment_id: &str,
    r: &ValidRollout,
    base: Option<&str>,
    now: i64,
) -> ApiResult<()> {
    sqlx::query(
        "UPDATE deployments SET rollout_waves = $1, rollout_wait = $2, rollout_max_failure = $3, \
         rollout_wave = 0, rollout_wave_at = $4, rollout_failures_since = $4, \
         rollout_base_id = $5 WHERE id = $6",
    )
    .bind(waves_text(&r.waves))
    .bind(r.wait)
    .bind(i64::from(r.max_failure))
    .bind(now)
    .bind(base)
    .bind(deployment_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The rollout configuration of a `deployments` row (`rollout_waves`, `rollout_wait`,
/// `rollout_max_failure`), if it has one.
pub fn config_of(r: &sqlx::any::AnyRow) -> ApiResult<Option<Rollout>> {
    let Some(waves) = r.try_get::<Option<String>, _>("rollout_waves")? else {
        return Ok(None);
    };
    let wait: Option<i64> = r.try_get("rollout_wait")?;
    let max_failure: Option<i64> = r.try_get("rollout_max_failure")?;
    Ok(Some(Rollout {
        waves: parse_waves(&waves)?.into_iter().map(percent_of).collect(),
        wave_wait_seconds: wait.and_then(|w| u64::try_from(w).ok()).unwrap_or(0),
        max_failure_percent: max_failure
            .and_then(|m| u32::try_from(m).ok())
            .map_or(0.0, percent_of),
    }))
}

/// A deployment's rollout as stored.
#[derive(Clone, Debug)]
pub struct RolloutRow {
    /// Deployment ID.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Device group.
    pub group_id: String,
    /// Waves and where they stand.
    pub schedule: Schedule,
    /// Basis points of included devices that may fail.
    pub max_failure: u32,
    /// Failures reported before this are not counted (creation, or the last resume).
    pub failures_since: i64,
    /// When it was paused, why, the detail and by whom (`None`: the service).
    pub paused: Option<(i64, PauseReason, String, Option<String>)>,
    /// When a newer deployment of the group froze it.
    pub superseded_at: Option<i64>,
}

const ROW_COLUMNS: &str = "id, tenant_id, device_group_id, rollout_waves, rollout_wait, \
     rollout_max_failure, rollout_wave, rollout_wave_at, rollout_failures_since, \
     rollout_paused_at, rollout_pause_reason, rollout_pause_detail, rollout_paused_by, \
     rollout_superseded_at, rollout_base_id";

fn row_of(r: &sqlx::any::AnyRow) -> ApiResult<Option<RolloutRow>> {
    let Some(waves) = r.try_get::<Option<String>, _>("rollout_waves")? else {
        return Ok(None);
    };
    let int = |name: &str| -> ApiResult<i64> {
        r.try_get::<Option<i64>, _>(name)?
            .ok_or_else(|| ApiError::Internal(format!("rollout without {name}")))
    };
    let paused_at: Option<i64> = r.try_get("rollout_paused_at")?;
    let superseded_at: Option<i64> = r.try_get("rollout_superseded_at")?;
    let paused = match paused_at {
        None => None,
        Some(at) => {
            let reason = match r
                .try_get::<Option<String>, _>("rollout_pause_reason")?
                .as_deref()
            {
                Some("FailureThreshold") => PauseReason::FailureThreshold,
                Some("Operator") => PauseReason::Operator,
                _ => return Err(ApiError::Internal("unknown rollout pause reason".into())),
            };
            Some((
                at,
                reason,
                r.try_get::<Option<String>, _>("rollout_pause_detail")?
                    .unwrap_or_default(),
                r.try_get::<Option<String>, _>("rollout_paused_by")?,
            ))
        }
    };
    Ok(Some(RolloutRow {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        group_id: r.try_get("device_group_id")?,
        schedule: Schedule {
            waves: parse_waves(&waves)?,
            wait: int("rollout_wait")?,
            wave: usize::try_from(int("rollout_wave")?)
                .map_err(|_| ApiError::Internal("negative rollout wave".into()))?,
            wave_at: int("rollout_wave_at")?,
            frozen: paused.is_some() || superseded_at.is_some(),
            base: r.try_get("rollout_base_id")?,
        },
        max_failure: u32::try_from(int("rollout_max_failure")?)
            .map_err(|_| ApiError::Internal("rollout threshold out of range".into()))?,
        failures_since: int("rollout_failures_since")?,
        paused,
        superseded_at,
    }))
}

/// A tenant's deployment's rollout: 404 `not_found` for no such deployment (in this tenant and
/// group), 404 `no_rollout` for a deployment without one.
pub async fn load<'e, E>(ex: E, tid: &str, gid: &str, did: &str) -> ApiResult<RolloutRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM deployments WHERE tenant_id = $1 AND device_group_id = $2 \
         AND id = $3"
    );
    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tid)
        .bind(gid)
        .bind(did)
        .fetch_optional(ex)
        .await?
        .ok_or_else(|| ApiError::not_found("deployment"))?;
    row_of(&r)?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NoRollout,
            "this deployment has no rollout: it went to every device of its group at once",
        )
    })
}

/// Device counts of a rollout at `now`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Devices in the group now.
    pub in_group: u64,
    /// Of those, in the waves reached.
    pub included: u64,
    /// Given a target set with this deployment's images.
    pub targeted: u64,
    /// Included devices whose last report is `Failed` for such a set, since `failures_since`.
    pub failed: u64,
}

impl Counts {
    /// Whether the failures exceed `max_failure` basis points of the included devices.
    pub fn exceeds(&self, max_failure: u32) -> bool {
        u128::from(self.failed) * u128::from(FULL)
            > u128::from(max_failure) * u128::from(self.included)
    }

    fn failure_percent(&self) -> f64 {
        if self.included == 0 {
            0.0
        } else {
            // Display only.
            (self.failed as f64) * 100.0 / (self.included as f64)
        }
    }
}

/// Count the group's devices for a rollout (one query over the group's devices; each is hashed).
pub async fn counts<'e, E>(ex: E, row: &RolloutRow, now: i64) -> ApiResult<Counts>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    // mark: 0 other, 1 given this deployment's set, 2 that and its last report is a counted
    // failure for it.
    let rows = sqlx::query(
        "SELECT id, CAST(CASE WHEN target_deployment_id = $2 THEN (CASE WHEN \
         update_state = 'Failed' AND update_target_version >= target_deployment_version AND \
         update_reported_at >= $3 THEN 2 ELSE 1 END) ELSE 0 END AS BIGINT) AS mark \
         FROM devices WHERE device_group_id = $1",
    )
    .bind(&row.group_id)
    .bind(&row.id)
    .bind(row.failures_since)
    .fetch_all(ex)
    .await?;
    let percent = row.schedule.percent(now);
    let mut c = Counts::default();
    for r in &rows {
        let id: String = r.try_get("id")?;
        let mark: i64 = r.try_get("mark")?;
        let included = bucket(&row.id, &id) < percent;
        c.in_group += 1;
        c.included += u64::from(included);
        c.targeted += u64::from(mark >= 1);
        c.failed += u64::from(included && mark == 2);
    }
    Ok(c)
}

/// The API's view of a rollout.
pub fn status(row: &RolloutRow, counts: Counts, now: i64) -> ApiResult<RolloutStatus> {
    let s = &row.schedule;
    let reached = s.reached(now);
    let state = if row.superseded_at.is_some() {
        RolloutState::Superseded
    } else if row.paused.is_some() {
        RolloutState::Paused
    } else if s.complete(now) {
        RolloutState::Complete
    } else {
        RolloutState::Rolling
    };
    Ok(RolloutStatus {
        deployment_id: parse_id(&row.id)?,
        device_group_id: parse_id(&row.group_id)?,
        rollout: Rollout {
            waves: s.waves.iter().copied().map(percent_of).collect(),
            wave_wait_seconds: u64::try_from(s.wait).unwrap_or(0),
            max_failure_percent: percent_of(row.max_failure),
        },
        state,
        current_wave: u32::try_from(reached + 1).unwrap_or(u32::MAX),
        current_percent: percent_of(s.percent(now)),
        next_wave_at: s.next_wave_at(now).map(db::ts),
        devices_in_group: counts.in_group,
        devices_included: counts.included,
        devices_targeted: counts.targeted,
        devices_failed: counts.failed,
        failure_percent: counts.failure_percent(),
        failures_counted_since: db::ts(row.failures_since),
        pause: row
            .paused
            .as_ref()
            .map(|(at, reason, detail, by)| -> ApiResult<RolloutPause> {
                Ok(RolloutPause {
                    at: db::ts(*at),
                    reason: *reason,
                    detail: detail.clone(),
                    by: by.as_deref().map(parse_id).transpose()?,
                })
            })
            .transpose()?,
        superseded_at: row.superseded_at.map(db::ts),
    })
}

/// Why a rollout cannot be paused or resumed now: complete or superseded (409).
fn not_active(row: &RolloutRow, now: i64) -> Option<ApiError> {
    if row.superseded_at.is_some() {
        return Some(ApiError::new(
            ErrorCode::RolloutNotActive,
            "a newer deployment of the group superseded this one: its rollout is frozen where it \
             stood; deploy again to change what the group runs",
        ));
    }
    if row.paused.is_none() && row.schedule.complete(now) {
        return Some(ApiError::new(
            ErrorCode::RolloutNotActive,
            "this rollout is complete: every device of the group is included; deploy again to \
             change what the group runs",
        ));
    }
    None
}

/// Pause `row` at the wave reached at `now`, if its stored state is still the one `row` was
/// read with (another writer may have paused, resumed or superseded it). Returns whether it
/// paused it. Audited as `deployment.rollout.pause`.
async fn write_pause(
    state: &AppState,
    row: &RolloutRow,
    now: i64,
    reason: PauseReason,
    detail: &str,
    by: Option<&Caller>,
    counts: Counts,
) -> ApiResult<bool> {
    let reached = row.schedule.reached(now);
    let mut tx = state.db.begin_write().await?;
    if let Some(caller) = by {
        let tenant = crate::datastore::parse_id(&row.tenant_id)?;
        crate::authz::authorize(&mut *tx, caller, tenant, Role::Contributor).await?;
    }
    let by = by.map(Caller::uid);
    let n = sqlx::query(
        "UPDATE deployments SET rollout_paused_at = $1, rollout_pause_reason = $2, \
         rollout_pause_detail = $3, rollout_paused_by = $4, rollout_wave = $5 \
         WHERE id = $6 AND rollout_paused_at IS NULL AND \
         rollout_superseded_at IS NULL AND rollout_wave = $7 AND rollout_wave_at = $8 AND \
         rollout_failures_since = $9",
    )
    .bind(now)
    .bind(reason.as_str())
    .bind(detail)
    .bind(&by)
    .bind(i64::try_from(reached).unwrap_or(i64::MAX))
    .bind(&row.id)
    .bind(i64::try_from(row.schedule.wave).unwrap_or(i64::MAX))
    .bind(row.schedule.wave_at)
    .bind(row.failures_since)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    db::audit(
        &mut tx,
        Some(&row.tenant_id),
        by.as_deref(),
        "deployment.rollout.pause",
        "deployment",
        &row.id,
        json!({
            "deviceGroupId": row.group_id,
            "reason": reason.as_str(),
            "detail": detail,
            "wave": reached + 1,
            "devicesIncluded": counts.included,
            "devicesFailed": counts.failed,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

fn threshold_detail(row: &RolloutRow, c: Counts) -> String {
    format!(
        "{} of {} devices in the rollout ({:.1} %) reported Failed for this deployment; more than \
         the {} % allowed",
        c.failed,
        c.included,
        c.failure_percent(),
        percent_of(row.max_failure)
    )
}

/// After a device's report turned to `Failed`: if the device's target set comes from a
/// deployment whose rollout is under way, count the rollout again and pause it when its failures
/// exceed the threshold. Errors are the caller's to log; the report itself is already stored.
pub async fn after_failure(state: &AppState, device_id: &str) -> ApiResult<()> {
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
    let Some(r) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(device_id)
        .fetch_optional(state.db.pool())
        .await?
    else {
        return Ok(());
    };
    let Some(row) = row_of(&r)? else {
        return Ok(());
    };
    let now = state.clock.unix();
    if row.schedule.complete(now) {
        return Ok(());
    }
    let c = counts(state.db.pool(), &row, now).await?;
    if c.exceeds(row.max_failure) {
        let detail = threshold_detail(&row, c);
        if write_pause(
            state,
            &row,
            now,
            PauseReason::FailureThreshold,
            &detail,
            None,
            c,
        )
        .await?
        {
            tracing::warn!(deployment = %row.id, group = %row.group_id, failed = c.failed,
                included = c.included, "rollout paused: {detail}");
        }
    }
    Ok(())
}

/// The rollout's status now.
pub async fn show(state: &AppState, tid: &str, gid: &str, did: &str) -> ApiResult<RolloutStatus> {
    let row = load(state.db.pool(), tid, gid, did).await?;
    let now = state.clock.unix();
    let c = counts(state.db.pool(), &row, now).await?;
    status(&row, c, now)
}

/// An operator's pause (the caller's Contributor role is checked by the route). Pausing a paused
/// rollout changes nothing (the first pause's reason stays); a complete or superseded one is 409.
pub async fn pause(
    state: &AppState,
    tid: &str,
    gid: &str,
    did: &str,
    by: &Caller,
) -> ApiResult<RolloutStatus> {
    let row = load(state.db.pool(), tid, gid, did).await?;
    let now = state.clock.unix();
    if let Some(e) = not_active(&row, now) {
        return Err(e);
    }
    if row.paused.is_none() {
        let c = counts(state.db.pool(), &row, now).await?;
        if !write_pause(
            state,
            &row,
            now,
            PauseReason::Operator,
            "paused by an operator",
            Some(by),
            c,
        )
        .await?
        {
            // Another writer changed the rollout between our read and write.
            let now_row = load(state.db.pool(), tid, gid, did).await?;
            if now_row.paused.is_none() && now_row.superseded_at.is_none() {
                return Err(ApiError::conflict(
                    "the rollout changed while pausing it; check `show-rollout` and try again",
                ));
            }
        }
    }
    show(state, tid, gid, did).await
}

/// An operator's resume: the current wave's wait starts again now, and failures reported before
/// now are no longer counted (the resume acknowledges them). Resuming a rollout that is not
/// paused changes nothing; a superseded one is 409.
pub async fn resume(
    state: &AppState,
    tid: &str,
    gid: &str,
    did: &str,
    by: &Caller,
) -> ApiResult<RolloutStatus> {
    let row = load(state.db.pool(), tid, gid, did).await?;
    let now = state.clock.unix();
    if let Some(e) = not_active(&row, now) {
        return Err(e);
    }
    if let Some((_, reason, _, _)) = &row.paused {
        let mut tx = state.db.begin_write().await?;
        let tenant = crate::datastore::parse_id(tid)?;
        crate::authz::authorize(&mut *tx, by, tenant, Role::Contributor).await?;
        let n = sqlx::query(
            "UPDATE deployments SET rollout_paused_at = NULL, rollout_pause_reason = NULL, \
             rollout_pause_detail = NULL, rollout_paused_by = NULL, rollout_wave_at = $1, \
             rollout_failures_since = $1 WHERE id = $2 AND rollout_paused_at IS NOT NULL AND \
             rollout_superseded_at IS NULL",
        )
        .bind(now)
        .bind(&row.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            db::audit(
                &mut tx,
                Some(tid),
                Some(&by.uid()),
                "deployment.rollout.resume",
                "deployment",
                &row.id,
                json!({
                    "deviceGroupId": gid,
                    "wave": row.schedule.wave + 1,
                    "pauseReason": reason.as_str(),
                }),
            )
            .await?;
            tx.commit().await?;
        }
    }
    show(state, tid, gid, did).await
}

/// What creating a deployment did to the group's previous one ([`supersede`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Superseded {
    /// The previous deployment, if its rollout was under way or paused and is now frozen.
    pub frozen: Option<String>,
    /// The group's newest deployment that has reached every device: the base of a rollout that
    /// starts now.
    pub base: Option<String>,
}

/// Inside the transaction creating a deployment (tenant lock held), before it is inserted:
/// freeze the group's current deployment's rollout where it stands if it is under way or
/// paused (devices it included keep its images unless the new deployment includes them; the
/// others keep what they had), and find the base for a new rollout. The base is fixed here for
/// good: an older rollout is complete now, or frozen and never completes.
pub async fn supersede(tx: &mut Tx, gid: &str, now: i64) -> ApiResult<Superseded> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM deployments WHERE device_group_id = $1 ORDER BY id DESC LIMIT 1"
    );
    let Some(r) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(gid)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(Superseded::default());
    };
    let id: String = r.try_get("id")?;
    let Some(row) = row_of(&r)? else {
        // No rollout: it reached every device.
        return Ok(Superseded {
            frozen: None,
            base: Some(id),
        });
    };
    if row.paused.is_none() && row.superseded_at.is_none() && row.schedule.complete(now) {
        return Ok(Superseded {
            frozen: None,
            base: Some(id),
        });
    }
    sqlx::query(
        "UPDATE deployments SET rollout_superseded_at = $1, rollout_wave = $2 \
         WHERE id = $3 AND rollout_superseded_at IS NULL",
    )
    .bind(now)
    .bind(i64::try_from(row.schedule.reached(now)).unwrap_or(i64::MAX))
    .bind(&row.id)
    .execute(&mut **tx)
    .await?;
    Ok(Superseded {
        frozen: Some(row.id),
        base: row.schedule.base,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(waves: &[u32], wait: i64, wave: usize, wave_at: i64, frozen: bool) -> Schedule {
        Schedule {
            waves: waves.to_vec(),
            wait,
            wave,
            wave_at,
            frozen,
            base: None,
        }
    }

    #[test]
    fn waves_advance_with_time_unless_frozen() {
        let s = schedule(&[1000, 5000, 10000], 60, 0, 1000, false);
        assert_eq!(s.reached(1000), 0);
        assert_eq!(s.reached(1059), 0);
        assert_eq!(s.reached(1060), 1);
        assert_eq!(s.reached(1119), 1);
        assert_eq!(s.reached(1120), 2);
        assert_eq!(s.reached(999_999), 2);
        assert_eq!(
            s.reached(0),
            0,
            "a clock before the start is the first wave"
        );
        assert_eq!(s.percent(1060), 5000);
        assert_eq!(s.next_wave_at(1000), Some(1060));
        assert_eq!(s.next_wave_at(1070), Some(1120));
        assert_eq!(s.next_wave_at(1120), None);
        assert!(!s.complete(1119));
        assert!(s.complete(1120));
        let frozen = schedule(&[1000, 5000, 10000], 60, 1, 1000, true);
        assert_eq!(frozen.reached(999_999), 1);
        assert_eq!(frozen.next_wave_at(999_999), None);
        let resumed = schedule(&[1000, 5000, 10000], 60, 1, 5000, false);
        assert_eq!(resumed.reached(5059), 1);
        assert_eq!(resumed.reached(5060), 2);
        let at_once = schedule(&[1000, 10000], 0, 0, 1000, false);
        assert_eq!(at_once.reached(1000), 1);
    }

    #[test]
    fn buckets_are_stable_uniform_and_per_deployment() {
        let devices: Vec<String> = (0..20_000u32).map(|i| format!("{i:0128x}")).collect();
        let a = "0190c1a8-3c7a-7c4e-9b1e-2f4d5a6b7c8d";
        let b = "0190c1a8-3c7a-7c4e-9b1e-2f4d5a6b7c8e";
        let in_a = devices.iter().filter(|d| bucket(a, d) < 1000).count();
        assert!((1700..=2300).contains(&in_a), "{in_a} of 20,000 in 10 %");
        let both = devices
            .iter()
            .filter(|d| bucket(a, d) < 1000 && bucket(b, d) < 1000)
            .count();
        assert!(both < 400, "deployments draw independent samples: {both}");
        assert_eq!(bucket(a, &devices[7]), bucket(a, &devices[7]));
        assert!(devices.iter().all(|d| bucket(a, d) < FULL));
    }

    #[test]
    fn current_deployment_column_round_trips() {
        let (id, s) = parse_current("0190-x").unwrap();
        assert_eq!((id.as_str(), s), ("0190-x", None));
        let (id, s) = parse_current("0190-y 1000,5000,10000 3600 1 1700000000 0 -").unwrap();
        assert_eq!(id, "0190-y");
        assert_eq!(
            s,
            Some(schedule(
                &[1000, 5000, 10000],
                3600,
                1,
                1_700_000_000,
                false
            ))
        );
        let (_, s) = parse_current("0190-y 10000 0 0 1 1 0190-b").unwrap();
        assert_eq!(s.unwrap().base.as_deref(), Some("0190-b"));
        assert!(parse_current("0190-y 1000,5000 3600 1 1700000000 0 -").is_err());
        assert!(parse_current("0190-y 1000,10000 3600").is_err());
        assert!(parse_current("0190-y 1000,10000 3600 1 1700000000 0").is_err());
        assert!(parse_current("0190-y 1000,10000 3600 1 1700000000 0 - x").is_err());
    }

    #[test]
    fn devices_outside_the_waves_keep_what_they_have() {
        let cur = "0190c1a8-0000-7000-8000-000000000003".to_string();
        let old = Some("0190c1a8-0000-7000-8000-000000000001".to_string());
        let older = Some("0190c1a8-0000-7000-8000-000000000000".to_string());
        let none_yet = Schedule {
            base: older.clone(),
            ..schedule(&[1, 10000], 3600, 0, 0, false)
        };
        let device = (0..)
            .map(|i: u32| format!("{i:0128x}"))
            .find(|d| !none_yet.includes(&cur, d, 0))
            .unwrap();
        let current = Some((cur.clone(), Some(none_yet.clone())));
        assert_eq!(
            effective_deployment(&device, current.clone(), old.clone(), 0),
            old,
            "what it has, when newer than the base"
        );
        assert_eq!(
            effective_deployment(&device, current.clone(), None, 0),
            older,
            "the base, for a device with nothing of the group"
        );
        let no_base = Schedule {
            base: None,
            ..none_yet.clone()
        };
        assert_eq!(
            effective_deployment(&device, Some((cur.clone(), Some(no_base))), None, 0),
            None
        );
        assert_eq!(
            effective_deployment(&device, current, old.clone(), 3600),
            Some(cur.clone()),
            "the last wave includes everyone"
        );
        assert_eq!(
            effective_deployment(&device, Some((cur.clone(), None)), old, 0),
            Some(cur)
        );
        assert_eq!(effective_deployment(&device, None, older, 0), None);
    }

    fn req(waves: &[f64], wait: i64, fail: f64) -> RolloutRequest {
        RolloutRequest {
            waves: waves.to_vec(),
            wave_wait_seconds: wait,
            max_failure_percent: fail,
        }
    }

    #[test]
    fn rollouts_are_validated() {
        let ok = validate(&req(&[0.5, 10.0, 50.0, 100.0], 3600, 5.0)).unwrap();
        assert_eq!(ok.waves, vec![50, 1000, 5000, 10000]);
        assert_eq!(ok.max_failure, 500);
        assert!(validate(&req(&[100.0], 0, 0.0)).is_ok());
        assert!(validate(&req(&[10.0, 100.0], MAX_WAVE_WAIT_SECONDS, 100.0)).is_ok());
        for (bad, why) in [
            (req(&[], 60, 5.0), "empty"),
            (req(&[10.0, 10.0, 100.0], 60, 5.0), "not increasing"),
            (req(&[50.0, 10.0, 100.0], 60, 5.0), "decreasing"),
            (req(&[10.0, 50.0], 60, 5.0), "not ending at 100"),
            (req(&[0.0, 100.0], 60, 5.0), "zero"),
            (req(&[-5.0, 100.0], 60, 5.0), "negative"),
            (req(&[10.0, 100.5], 60, 5.0), "over 100"),
            (req(&[10.001, 100.0], 60, 5.0), "three decimals"),
            (req(&[f64::NAN, 100.0], 60, 5.0), "NaN"),
            (req(&[1.0; 11], 60, 5.0), "too many"),
            (req(&[10.0, 100.0], -1, 5.0), "negative wait"),
            (
                req(&[10.0, 100.0], MAX_WAVE_WAIT_SECONDS + 1, 5.0),
                "wait too long",
            ),
            (req(&[10.0, 100.0], 60, -1.0), "negative threshold"),
            (req(&[10.0, 100.0], 60, 100.5), "threshold over 100"),
        ] {
            let e = validate(&bad).expect_err(why);
            assert_eq!(e.code(), ErrorCode::InvalidRollout, "{why}");
        }
    }

    #[test]
    fn the_threshold_is_exceeded_strictly() {
        let c = |failed, included| Counts {
            in_group: 200,
            included,
            targeted: included,
            failed,
        };
        assert!(!c(1, 20).exceeds(500), "5 % of 20 is 1: not more");
        assert!(c(2, 20).exceeds(500));
        assert!(!c(0, 0).exceeds(0));
        assert!(c(1, 20).exceeds(0), "0 %: any failure pauses");
        assert!(!c(20, 20).exceeds(10000), "100 %: never pauses");
    }
}
