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
//!
//! The module is in three parts: [`schedule`] (where a rollout stands at a time, which devices
//! its waves include), [`request`] (a requested rollout, checked) and [`decide`] (counts, pauses,
//! what an operator may do, what a new deployment does to the previous rollout), all plain
//! functions over rows and `now`, unit-tested in place; this file runs them against the
//! datastore (`crate::datastore::rollouts`).

pub mod decide;
pub mod request;
pub mod schedule;

pub use decide::{Counts, NotActive, Supersession, newly_failed};
pub use request::{ValidRollout, validate, wire};
pub use schedule::{FULL, Schedule, bucket, effective_deployment, percent_of};

use ferro_wire::{DeploymentId, DeviceGroupId, ErrorCode, PauseReason, Role, RolloutStatus};
use serde_json::json;

use crate::auth::Caller;
use crate::authz::{self, TenantScope};
use crate::datastore::rollouts::{self as store, Pause, RolloutRow};
use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A deployment's rollout: 404 `not_found` for no such deployment (in the scope's tenant and
/// `group`), 404 `no_rollout` for a deployment without one.
async fn load(
    state: &AppState,
    scope: &TenantScope,
    group: DeviceGroupId,
    deployment: DeploymentId,
) -> ApiResult<RolloutRow> {
    match store::get(&state.db, scope, group, deployment).await? {
        None => Err(ApiError::not_found("deployment")),
        Some(None) => Err(ApiError::new(
            ErrorCode::NoRollout,
            "this deployment has no rollout: it went to every device of its group at once",
        )),
        Some(Some(row)) => Ok(row),
    }
}

/// The rollout's counts at `now` (one query over the group's devices).
async fn counts(state: &AppState, row: &RolloutRow, now: i64) -> ApiResult<Counts> {
    let marks = store::device_marks(&state.db, row).await?;
    Ok(decide::tally(
        row,
        marks.iter().map(|(d, m)| (d.as_str(), *m)),
        now,
    ))
}

/// A rollout an operator may pause or resume now, and now: as [`load`], and 409
/// `rollout_not_active` for a complete or superseded one.
async fn load_active(
    state: &AppState,
    scope: &TenantScope,
    group: DeviceGroupId,
    deployment: DeploymentId,
) -> ApiResult<(RolloutRow, i64)> {
    let row = load(state, scope, group, deployment).await?;
    let now = state.clock.unix();
    decide::check_active(&row, now)
        .map_err(|n| ApiError::new(ErrorCode::RolloutNotActive, n.message()))?;
    Ok((row, now))
}

/// Append the audit row of `action` on the rollout `row`, by the scope's actor.
async fn audit(
    tx: &mut Tx,
    scope: &TenantScope,
    action: &str,
    row: &RolloutRow,
    details: serde_json::Value,
) -> ApiResult<()> {
    db::audit(
        tx,
        Some(scope.tenant_str()),
        scope.audit_user(),
        action,
        "deployment",
        &row.id.to_string(),
        details,
    )
    .await?;
    Ok(())
}

/// Pause `row` at the wave reached at `now`, if its stored state is still the one `row` was read
/// with (another writer may have paused, resumed or superseded it). Returns whether it paused
/// it. `by`: the operator (checked again for Contributor inside the write), or `None` for the
/// service's own pause. Audited as `deployment.rollout.pause`.
async fn write_pause(
    state: &AppState,
    row: &RolloutRow,
    now: i64,
    reason: PauseReason,
    detail: &str,
    by: Option<&Caller>,
    counts: Counts,
) -> ApiResult<bool> {
    let wave = decide::pause_wave(row, now);
    let mut tx = state.db.begin_write().await?;
    let scope = match by {
        Some(caller) => authz::authorize(&mut *tx, caller, row.tenant, Role::Contributor).await?,
        None => authz::service_scope(row.tenant),
    };
    let pause = Pause {
        at: now,
        reason,
        detail: detail.to_string(),
        by: by.map(|c| c.user.id),
    };
    if !store::pause(&mut tx, &scope, row, wave, &pause).await? {
        return Ok(false);
    }
    audit(
        &mut tx,
        &scope,
        "deployment.rollout.pause",
        row,
        json!({
            "deviceGroupId": row.group,
            "reason": reason.as_str(),
            "detail": detail,
            "wave": wave + 1,
            "devicesIncluded": counts.included,
            "devicesFailed": counts.failed,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// After a device's report turned to `Failed`: if the device's target set comes from a
/// deployment whose rollout is under way, count the rollout again and pause it when its failures
/// exceed the threshold. Errors are the caller's to log; the report itself is already stored.
pub async fn after_failure(state: &AppState, device_id: &str) -> ApiResult<()> {
    let Some(row) = store::under_way_for_device(&state.db, device_id).await? else {
        return Ok(());
    };
    let now = state.clock.unix();
    if row.schedule.complete(now) {
        return Ok(());
    }
    let c = counts(state, &row, now).await?;
    if let Some(detail) = decide::failure_pause(&row, c, now)
        && write_pause(
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
        tracing::warn!(deployment = %row.id, group = %row.group, failed = c.failed,
            included = c.included, "rollout paused: {detail}");
    }
    Ok(())
}

/// The rollout's status now.
pub async fn show(
    state: &AppState,
    scope: &TenantScope,
    group: DeviceGroupId,
    deployment: DeploymentId,
) -> ApiResult<RolloutStatus> {
    let row = load(state, scope, group, deployment).await?;
    let now = state.clock.unix();
    let c = counts(state, &row, now).await?;
    Ok(decide::status(&row, c, now))
}

/// An operator's pause (the caller's Contributor role is checked by the route, and again in the
/// write). Pausing a paused rollout changes nothing (the first pause's reason stays); a complete
/// or superseded one is 409.
pub async fn pause(
    state: &AppState,
    scope: &TenantScope,
    by: &Caller,
    group: DeviceGroupId,
    deployment: DeploymentId,
) -> ApiResult<RolloutStatus> {
    let (row, now) = load_active(state, scope, group, deployment).await?;
    if row.paused.is_none() {
        let c = counts(state, &row, now).await?;
        let paused = write_pause(
            state,
            &row,
            now,
            PauseReason::Operator,
            "paused by an operator",
            Some(by),
            c,
        )
        .await?;
        if !paused {
            // Another writer changed the rollout between our read and write.
            let now_row = load(state, scope, group, deployment).await?;
            if now_row.paused.is_none() && now_row.superseded_at.is_none() {
                return Err(ApiError::conflict(
                    "the rollout changed while pausing it; check `show-rollout` and try again",
                ));
            }
        }
    }
    show(state, scope, group, deployment).await
}

/// An operator's resume: the current wave's wait starts again now, and failures reported before
/// now are no longer counted (the resume acknowledges them). Resuming a rollout that is not
/// paused changes nothing; a superseded one is 409.
pub async fn resume(
    state: &AppState,
    scope: &TenantScope,
    by: &Caller,
    group: DeviceGroupId,
    deployment: DeploymentId,
) -> ApiResult<RolloutStatus> {
    let (row, now) = load_active(state, scope, group, deployment).await?;
    if let Some(p) = &row.paused {
        let mut tx = state.db.begin_write().await?;
        let scope = authz::authorize(&mut *tx, by, row.tenant, Role::Contributor).await?;
        if store::resume(&mut tx, &scope, row.id, now).await? {
            audit(
                &mut tx,
                &scope,
                "deployment.rollout.resume",
                &row,
                json!({
                    "deviceGroupId": row.group,
                    "wave": row.schedule.wave + 1,
                    "pauseReason": p.reason.as_str(),
                }),
            )
            .await?;
            tx.commit().await?;
        }
    }
    show(state, scope, group, deployment).await
}

/// Inside the transaction creating a deployment of `group` (tenant lock held), before it is
/// inserted: freeze the group's current rollout where it stands if it is under way or paused,
/// and find the base for a new rollout ([`decide::supersede`]).
pub async fn supersede(
    tx: &mut Tx,
    scope: &TenantScope,
    group: DeviceGroupId,
    now: i64,
) -> ApiResult<Supersession> {
    let newest = store::newest_of_group_in(tx, scope, group).await?;
    let s = decide::supersede(newest.as_ref().map(|(id, row)| (*id, row.as_ref())), now);
    if let Some((deployment, wave)) = s.freeze {
        store::freeze(tx, scope, deployment, wave, now).await?;
    }
    Ok(s)
}
