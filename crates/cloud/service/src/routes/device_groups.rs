//! `/v1/tenants/{tenantId}/device-groups`: the device groups of a tenant's products.

use crate::auth::Caller;
use crate::authz::{self, TenantScope};
use crate::datastore::{device_groups, products};
use crate::db::{self, Tx};
use crate::device_groups::{check_description, insert_group};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery, path_id};
use crate::page::PageReq;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferro_wire::{
    CreateDeviceGroupRequest, DeviceGroup, DeviceGroupId, DeviceGroupQuery, ErrorBody, ErrorCode,
    OsFeed, Page, ProductId, Role, TenantId, UpdateDeviceGroupRequest, UpdatePolicy,
};
use serde_json::json;

fn ids(tenant_id: &str) -> ApiResult<(TenantId, String)> {
    let t: TenantId = path_id(tenant_id, "tenantId")?;
    Ok((t, t.to_string()))
}

/// A product of the tenant read in `tx`, or `not_found`.
async fn product_in(tx: &mut Tx, scope: &TenantScope, product: ProductId) -> ApiResult<()> {
    products::get_in(tx, scope, product)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("product"))
}

/// A device group of the tenant read in `tx`, or `not_found`.
async fn group_in(
    tx: &mut Tx,
    scope: &TenantScope,
    group: DeviceGroupId,
) -> ApiResult<DeviceGroup> {
    device_groups::get_in(tx, scope, group)
        .await?
        .ok_or_else(|| ApiError::not_found("device group"))
}

/// Create a device group (Contributor).
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/device-groups", tag = "device-groups", request_body = CreateDeviceGroupRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID")),
    responses((status = 201, body = DeviceGroup), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such tenant or product", body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    JsonBody(req): JsonBody<CreateDeviceGroupRequest>,
) -> ApiResult<(StatusCode, Json<DeviceGroup>)> {
    let (t, tid) = ids(&tenant_id)?;
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &caller, t, Role::Contributor).await?;
    if !ferro_wire::is_valid_name(&req.name) {
        return Err(ApiError::invalid_name("name"));
    }
    check_description(&req.description)?;
    product_in(&mut tx, &scope, req.product_id).await?;
    let g = DeviceGroup {
        id: DeviceGroupId::new(),
        tenant_id: t,
        product_id: req.product_id,
        name: req.name,
        description: req.description,
        os_feed: req.os_feed.unwrap_or(OsFeed::Retail),
        update_policy: req.update_policy.unwrap_or(UpdatePolicy::UpdateAll),
        allow_crash_dumps_collection: req.allow_crash_dumps_collection,
        created_at: db::ts(db::now()),
    };
    insert_group(&mut tx, &g).await?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "device_group.create",
        "device_group",
        &g.id.to_string(),
        json!({ "name": g.name, "productId": g.product_id }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(g)))
}

/// The tenant's device groups, optionally of one product (any role).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/device-groups", tag = "device-groups",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"), DeviceGroupQuery),
    responses((status = 200, body = Page<DeviceGroup>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    StrictQuery(q): StrictQuery<DeviceGroupQuery>,
) -> ApiResult<Json<Page<DeviceGroup>>> {
    let (t, _) = ids(&tenant_id)?;
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let items =
        device_groups::list(&state.db, &scope, q.product, &page.after, page.fetch()).await?;
    Ok(Json(page.finish(items, |g| g.id.to_string())))
}

/// One device group (any role).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}", tag = "device-groups",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceGroupId" = String, Path, format = Uuid, description = "Device group ID")),
    responses((status = 200, body = DeviceGroup), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, group_id)): Path<(String, String)>,
) -> ApiResult<Json<DeviceGroup>> {
    let (t, _) = ids(&tenant_id)?;
    let gid = path_id::<DeviceGroupId>(&group_id, "deviceGroupId")?;
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    let group = device_groups::get(&state.db, &scope, gid)
        .await?
        .ok_or_else(|| ApiError::not_found("device group"))?;
    Ok(Json(group))
}

/// Change a device group (Contributor).
#[utoipa::path(patch, path = "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}", tag = "device-groups",
    request_body = UpdateDeviceGroupRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceGroupId" = String, Path, format = Uuid, description = "Device group ID")),
    responses((status = 200, body = DeviceGroup), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, group_id)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdateDeviceGroupRequest>,
) -> ApiResult<Json<DeviceGroup>> {
    let (t, tid) = ids(&tenant_id)?;
    let gid = path_id::<DeviceGroupId>(&group_id, "deviceGroupId")?;
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &caller, t, Role::Contributor).await?;
    let mut g = group_in(&mut tx, &scope, gid).await?;
    if let Some(name) = req.name {
        if !ferro_wire::is_valid_name(&name) {
            return Err(ApiError::invalid_name("name"));
        }
        g.name = name;
    }
    if let Some(d) = req.description {
        check_description(&d)?;
        g.description = d;
    }
    g.os_feed = req.os_feed.unwrap_or(g.os_feed);
    g.update_policy = req.update_policy.unwrap_or(g.update_policy);
    g.allow_crash_dumps_collection = req
        .allow_crash_dumps_collection
        .unwrap_or(g.allow_crash_dumps_collection);
    device_groups::update(&mut tx, &g).await.map_err(|e| {
        e.on_unique("the product already has a device group with this name; choose another")
    })?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "device_group.update",
        "device_group",
        &gid.to_string(),
        json!({ "name": g.name, "osFeed": g.os_feed, "updatePolicy": g.update_policy,
                "allowCrashDumpsCollection": g.allow_crash_dumps_collection }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(g))
}

/// Delete a device group (Contributor). Refused while it has devices.
#[utoipa::path(delete, path = "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}", tag = "device-groups",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceGroupId" = String, Path, format = Uuid, description = "Device group ID")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "not_empty: it has devices", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, group_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (t, tid) = ids(&tenant_id)?;
    let gid = path_id::<DeviceGroupId>(&group_id, "deviceGroupId")?;
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &caller, t, Role::Contributor).await?;
    db::lock_tenant(&mut tx, &tid).await?;
    let g = group_in(&mut tx, &scope, gid).await?;
    let n = device_groups::device_count_in(&mut tx, gid).await?;
    if n > 0 {
        return Err(ApiError::new(
            ErrorCode::NotEmpty,
            format!("the device group holds {n} devices; move them to another group first"),
        ));
    }
    device_groups::delete(&mut tx, gid).await?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "device_group.delete",
        "device_group",
        &gid.to_string(),
        json!({ "name": g.name }),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
