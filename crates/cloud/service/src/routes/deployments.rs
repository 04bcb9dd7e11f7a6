//! `/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments`: immutable sets of images
//! (Azure Sphere's model). The newest deployment of a group is its current one; older ones are
//! history. There is no update or delete: deploying again creates a new deployment.
//!
//! A deployment may roll out in waves (`crate::rollouts`): `.../rollout` shows where it stands,
//! `.../rollout/pause` and `.../rollout/resume` stop and continue it.

use crate::auth::{Caller, parse_id};
use crate::authz;
use crate::datastore::version_string;
use crate::db;
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
    CreateDeploymentRequest, DeployedImage, Deployment, DeploymentId, DeviceGroupId, ErrorBody,
    MAX_DEPLOYMENT_IMAGES, Page, PageQuery, Role, RolloutStatus, TenantId,
};
use serde_json::json;
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};

fn ids(tenant_id: &str, group_id: &str) -> ApiResult<(TenantId, String, String)> {
    let t: TenantId = path_id(tenant_id, "tenantId")?;
    let g: DeviceGroupId = path_id(group_id, "deviceGroupId")?;
    Ok((t, t.to_string(), g.to_string()))
}

async fn require_group<'e, E>(ex: E, tid: &str, gid: &str) -> ApiResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("SELECT id FROM device_groups WHERE tenant_id = $1 AND id = $2")
        .bind(tid)
        .bind(gid)
        .fetch_optional(ex)
        .await?
        .ok_or_else(|| ApiError::not_found("device group"))?;
    Ok(())
}

fn deployed_image(r: &sqlx::any::AnyRow) -> ApiResult<DeployedImage> {
    Ok(DeployedImage {
        image_id: parse_id(&r.try_get::<String, _>("image_id")?)?,
        component_id: parse_id(&r.try_get::<String, _>("component_id")?)?,
        name: r.try_get("name")?,
        image_type: r
            .try_get::<String, _>("image_type")?
            .parse()
            .map_err(|_| ApiError::Internal("unknown image type in database".into()))?,
        version: version_string(r)?,
    })
}

/// Load deployments' rows plus their images (one query for all images).
async fn load(
    state: &AppState,
    t: TenantId,
    rows: &[sqlx::any::AnyRow],
) -> ApiResult<Vec<(String, Deployment)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=rows.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT di.deployment_id, i.image_id, i.component_id, i.name, i.image_type, \
         i.version_major, i.version_minor, i.version_patch \
         FROM deployment_images di JOIN images i ON i.id = di.image_row_id \
         WHERE di.deployment_id IN ({}) ORDER BY di.component_id",
        placeholders.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for r in rows {
        q = q.bind(r.try_get::<String, _>("id")?);
    }
    let mut images: HashMap<String, Vec<DeployedImage>> = HashMap::new();
    for r in q.fetch_all(state.db.pool()).await? {
        images
            .entry(r.try_get("deployment_id")?)
            .or_default()
            .push(deployed_image(&r)?);
    }
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            let d = Deployment {
                id: parse_id(&id)?,
                tenant_id: t,
                device_group_id: parse_id(&r.try_get::<String, _>("device_group_id")?)?,
                images: images.remove(&id).unwrap_or_default(),
                deployed_by: parse_id(&r.try_get::<String, _>("deployed_by")?)?,
                deployed_at: db::ts(r.try_get("deployed_at")?),
                rollout: rollouts::config_of(r)?,
            };
            Ok((id, d))
        })
        .collect()
}

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
    let (t, tid, gid) = ids(&tenant_id, &group_id)?;
    let mut tx = state.db.begin_write().await?;
    authz::authorize(&mut *tx, &caller, t, Role::Contributor).await?;
    require_group(&mut *tx, &tid, &gid).await?;
    if req.image_ids.len() > MAX_DEPLOYMENT_IMAGES {
        return Err(ApiError::invalid_body(format!(
            "`imageIds` may list at most {MAX_DEPLOYMENT_IMAGES} images"
        )));
    }
    let rollout = req.rollout.as_ref().map(rollouts::validate).transpose()?;
    let mut seen = HashMap::new();
    for (i, id) in req.image_ids.iter().enumerate() {
        if let Some(j) = seen.insert(*id, i) {
            return Err(ApiError::invalid_body(format!(
                "`imageIds[{j}]` and `imageIds[{i}]` are the same image; list each image once"
            )));
        }
    }
    db::lock_tenant(&mut tx, &tid).await?;
    // component ID -> (index, image row ID, image)
    let mut by_component: BTreeMap<String, (usize, String, DeployedImage)> = BTreeMap::new();
    for (i, id) in req.image_ids.iter().enumerate() {
        let row = sqlx::query(
            "SELECT id, image_id, component_id, name, image_type, version_major, version_minor, \
             version_patch FROM images WHERE tenant_id = $1 AND image_id = $2",
        )
        .bind(&tid)
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            ApiError::invalid_body(format!(
                "`imageIds[{i}]`: no such image in this tenant; upload it first (`ferro image \
                 add`), and check the ID"
            ))
        })?;
        let image = deployed_image(&row)?;
        if image.image_type == ferro_wire::ImageType::Os {
            // Never stored as a tenant image; kept as a guard.
            return Err(ApiError::invalid_body(format!(
                "`imageIds[{i}]` is an OS image; device groups get the OS from their OS feed"
            )));
        }
        let component: String = row.try_get("component_id")?;
        let row_id: String = row.try_get("id")?;
        if let Some((j, _, _)) = by_component.get(&component) {
            return Err(ApiError::invalid_body(format!(
                "`imageIds[{j}]` and `imageIds[{i}]` are both images of component {component}; a \
                 deployment holds one image per component"
            )));
        }
        by_component.insert(component, (i, row_id, image));
    }
    let deployment = Deployment {
        id: DeploymentId::new(),
        tenant_id: t,
        device_group_id: parse_id(&gid)?,
        images: by_component
            .values()
            .map(|(_, _, img)| img.clone())
            .collect(),
        deployed_by: caller.user.id,
        deployed_at: db::ts(db::now()),
        rollout: rollout.as_ref().map(rollouts::ValidRollout::wire),
    };
    let did = deployment.id.to_string();
    let now = state.clock.unix();
    let superseded = rollouts::supersede(&mut tx, &gid, now).await?;
    sqlx::query(
        "INSERT INTO deployments (id, tenant_id, device_group_id, deployed_by, deployed_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&did)
    .bind(&tid)
    .bind(&gid)
    .bind(caller.uid())
    .bind(deployment.deployed_at.unix_timestamp())
    .execute(&mut *tx)
    .await?;
    for (component, (_, row_id, _)) in &by_component {
        sqlx::query(
            "INSERT INTO deployment_images (deployment_id, image_row_id, component_id) \
             VALUES ($1, $2, $3)",
        )
        .bind(&did)
        .bind(row_id)
        .bind(component)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(r) = &rollout {
        rollouts::insert(&mut tx, &did, r, superseded.base.as_deref(), now).await?;
    }
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "deployment.create",
        "deployment",
        &did,
        json!({
            "deviceGroupId": gid,
            "imageIds": deployment.images.iter().map(|i| i.image_id).collect::<Vec<_>>(),
            "rollout": deployment.rollout,
            "supersededRollout": superseded.frozen,
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
    let (t, tid, gid) = ids(&tenant_id, &group_id)?;
    authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    require_group(state.db.pool(), &tid, &gid).await?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let rows = sqlx::query(
        "SELECT id, device_group_id, deployed_by, deployed_at, rollout_waves, rollout_wait, \
         rollout_max_failure FROM deployments \
         WHERE tenant_id = $1 AND device_group_id = $2 AND ($3 = '' OR id < $3) \
         ORDER BY id DESC LIMIT $4",
    )
    .bind(&tid)
    .bind(&gid)
    .bind(&page.after)
    .bind(page.fetch())
    .fetch_all(state.db.pool())
    .await?;
    let items = load(&state, t, &rows).await?;
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
    let (t, tid, gid) = ids(&tenant_id, &group_id)?;
    let did = path_id::<DeploymentId>(&deployment_id, "deploymentId")?.to_string();
    authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    let rows = sqlx::query(
        "SELECT id, device_group_id, deployed_by, deployed_at, rollout_waves, rollout_wait, \
         rollout_max_failure FROM deployments \
         WHERE tenant_id = $1 AND device_group_id = $2 AND id = $3",
    )
    .bind(&tid)
    .bind(&gid)
    .bind(&did)
    .fetch_all(state.db.pool())
    .await?;
    load(&state, t, &rows)
        .await?
        .pop()
        .map(|(_, d)| Json(d))
        .ok_or_else(|| ApiError::not_found("deployment"))
}

fn rollout_ids(
    tenant_id: &str,
    group_id: &str,
    deployment_id: &str,
) -> ApiResult<(TenantId, String, String, String)> {
    let (t, tid, gid) = ids(tenant_id, group_id)?;
    let did = path_id::<DeploymentId>(deployment_id, "deploymentId")?.to_string();
    Ok((t, tid, gid, did))
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
    let (t, tid, gid, did) = rollout_ids(&tenant_id, &group_id, &deployment_id)?;
    authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    Ok(Json(rollouts::show(&state, &tid, &gid, &did).await?))
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
    let (t, tid, gid, did) = rollout_ids(&tenant_id, &group_id, &deployment_id)?;
    authz::authorize(state.db.pool(), &caller, t, Role::Contributor).await?;
    Ok(Json(
        rollouts::pause(&state, &tid, &gid, &did, &caller).await?,
    ))
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
    let (t, tid, gid, did) = rollout_ids(&tenant_id, &group_id, &deployment_id)?;
    authz::authorize(state.db.pool(), &caller, t, Role::Contributor).await?;
    Ok(Json(
        rollouts::resume(&state, &tid, &gid, &did, &caller).await?,
    ))
}
