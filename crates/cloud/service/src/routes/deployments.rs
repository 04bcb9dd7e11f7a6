//! `/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments`: immutable sets of images
//! (Azure Sphere's model). The newest deployment of a group is its current one; older ones are
//! history. There is no update or delete: deploying again creates a new deployment.
//!
//! A deployment may roll out in waves (`crate::rollouts`): `.../rollout` shows where it stands,
//! `.../rollout/pause` and `.../rollout/resume` stop and continue it.

use crate::auth::Caller;
use crate::authz;
use crate::datastore::{deployments, device_groups, images, rollouts as rollout_store};
use crate::db;
use crate::deployments as rules;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery, path_id};
use crate::page::PageReq;
use crate::page::strip_row_ids;
use crate::rollouts;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferro_wire::{
    CreateDeploymentRequest, Deployment, DeploymentId, DeviceGroupId, ErrorBody, Page, PageQuery,
    Role, RolloutStatus, TenantId,
};
use serde_json::json;

/// Deploy a set of images to a device group (Contributor): a new, immutable deployment that
/// becomes the group's current one. Each image must be an image of this tenant, at most one per
/// component. With `rollout`, it reaches the group's devices in waves (docs/updates.md,
/// "Rollout waves"); a rollout of the previous deployment that is still under way or paused
/// stops where it stands (superseded).
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments",
    tag = "deployments", request_body = CreateDeploymentRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceGroupId" = String, Path, format = Uuid, description = "Device group ID")),
    responses((status = 201, body = Deployment), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "Unknown image, duplicate, two images of one component, or an invalid rollout (`invalid_rollout`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_deployment(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, group_id)): Path<(String, String)>,
    JsonBody(req): JsonBody<CreateDeploymentRequest>,
) -> ApiResult<(StatusCode, Json<Deployment>)> {
    let (t, g) = group_ids(&tenant_id, &group_id)?;
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &caller, t, Role::Contributor).await?;
    if !device_groups::exists_in(&mut tx, &scope, g).await? {
        return Err(ApiError::not_found("device group"));
    }
    let rollout = rules::check_request(&req)?;
    db::lock_tenant(&mut tx, scope.tenant_str()).await?;
    let mut chosen = Vec::with_capacity(req.image_ids.len());
    for id in &req.image_ids {
        chosen.push(images::get_row_in(&mut tx, &scope, id).await?);
    }
    let choice = rules::choose_images(&chosen)?;
    let deployment = Deployment {
        id: DeploymentId::new(),
        tenant_id: scope.tenant(),
        device_group_id: g,
        images: choice.images(),
        deployed_by: caller.user.id,
        deployed_at: db::ts(db::now()),
        rollout: rollout.as_ref().map(rollouts::ValidRollout::wire),
    };
    let now = state.clock.unix();
    let superseded = rollouts::supersede(&mut tx, &scope, g, now).await?;
    deployments::insert(&mut tx, &scope, &deployment, &choice.rows()).await?;
    if let Some(r) = &rollout {
        rollout_store::insert(
            &mut tx,
            deployment.id,
            &r.waves,
            r.wait,
            r.max_failure,
            superseded.base.as_deref(),
            now,
        )
        .await?;
    }
    db::audit(
        &mut tx,
        Some(scope.tenant_str()),
        scope.audit_user(),
        "deployment.create",
        "deployment",
        &deployment.id.to_string(),
        json!({
            "deviceGroupId": g,
            "imageIds": deployment.images.iter().map(|i| i.image_id).collect::<Vec<_>>(),
            "rollout": deployment.rollout,
            "supersededRollout": superseded.freeze.map(|(id, _)| id),
        }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(deployment)))
}

/// A device group's deployments, newest (the current one) first (any role).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments",
    tag = "deployments",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceGroupId" = String, Path, format = Uuid, description = "Device group ID"), PageQuery),
    responses((status = 200, body = Page<Deployment>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_deployments(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, group_id)): Path<(String, String)>,
    StrictQuery(q): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<Deployment>>> {
    let (t, g) = group_ids(&tenant_id, &group_id)?;
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    device_groups::get(&state.db, &scope, g)
        .await?
        .ok_or_else(|| ApiError::not_found("device group"))?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let items = deployments::list(&state.db, &scope, g, &page.after, page.fetch()).await?;
    Ok(Json(strip_row_ids(page.finish(items, |x| x.0.clone()))))
}

/// One deployment (any role).
#[utoipa::path(get,
    path = "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments/{deploymentId}",
    tag = "deployments",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceGroupId" = String, Path, format = Uuid, description = "Device group ID"),
        ("deploymentId" = String, Path, format = Uuid, description = "Deployment ID")),
    responses((status = 200, body = Deployment), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_deployment(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, group_id, deployment_id)): Path<(String, String, String)>,
) -> ApiResult<Json<Deployment>> {
    let (t, g, d) = ids(&tenant_id, &group_id, &deployment_id)?;
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    deployments::get(&state.db, &scope, g, d)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("deployment"))
}

fn group_ids(tenant_id: &str, group_id: &str) -> ApiResult<(TenantId, DeviceGroupId)> {
    Ok((
        path_id(tenant_id, "tenantId")?,
        path_id(group_id, "deviceGroupId")?,
    ))
}

fn ids(
    tenant_id: &str,
    group_id: &str,
    deployment_id: &str,
) -> ApiResult<(TenantId, DeviceGroupId, DeploymentId)> {
    let (t, g) = group_ids(tenant_id, group_id)?;
    Ok((t, g, path_id(deployment_id, "deploymentId")?))
}

/// Where a deployment's rollout stands (any role): the wave reached, the devices included,
/// given its images and failed, and the pause with its reason. Counts the group's devices.
#[utoipa::path(get,
    path = "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments/{deploymentId}/rollout",
    tag = "deployments",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceGroupId" = String, Path, format = Uuid, description = "Device group ID"),
        ("deploymentId" = String, Path, format = Uuid, description = "Deployment ID")),
    responses((status = 200, body = RolloutStatus), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such deployment (`not_found`), or it has no rollout (`no_rollout`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_rollout(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, group_id, deployment_id)): Path<(String, String, String)>,
) -> ApiResult<Json<RolloutStatus>> {
    let (t, g, d) = ids(&tenant_id, &group_id, &deployment_id)?;
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    Ok(Json(rollouts::show(&state, &scope, g, d).await?))
}

/// Pause a deployment's rollout (Contributor): no further wave starts until it is resumed;
/// devices already included keep its images. Pausing a paused rollout changes nothing.
#[utoipa::path(post,
    path = "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments/{deploymentId}/rollout/pause",
    tag = "deployments",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceGroupId" = String, Path, format = Uuid, description = "Device group ID"),
        ("deploymentId" = String, Path, format = Uuid, description = "Deployment ID")),
    responses((status = 200, body = RolloutStatus), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such deployment (`not_found`), or it has no rollout (`no_rollout`)", body = ErrorBody),
        (status = 409, description = "The rollout is complete or superseded (`rollout_not_active`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn pause_rollout(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, group_id, deployment_id)): Path<(String, String, String)>,
) -> ApiResult<Json<RolloutStatus>> {
    let (t, g, d) = ids(&tenant_id, &group_id, &deployment_id)?;
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Contributor).await?;
    Ok(Json(rollouts::pause(&state, &scope, &caller, g, d).await?))
}

/// Resume a paused rollout (Contributor): the current wave's wait starts again now, and failures
/// reported before now no longer count. Resuming a rollout that is not paused changes nothing.
#[utoipa::path(post,
    path = "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments/{deploymentId}/rollout/resume",
    tag = "deployments",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceGroupId" = String, Path, format = Uuid, description = "Device group ID"),
        ("deploymentId" = String, Path, format = Uuid, description = "Deployment ID")),
    responses((status = 200, body = RolloutStatus), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such deployment (`not_found`), or it has no rollout (`no_rollout`)", body = ErrorBody),
        (status = 409, description = "The rollout is complete or superseded (`rollout_not_active`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resume_rollout(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, group_id, deployment_id)): Path<(String, String, String)>,
) -> ApiResult<Json<RolloutStatus>> {
    let (t, g, d) = ids(&tenant_id, &group_id, &deployment_id)?;
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Contributor).await?;
    Ok(Json(rollouts::resume(&state, &scope, &caller, g, d).await?))
}
