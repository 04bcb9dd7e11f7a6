//! Over-the-air updates as operators see and steer them (docs/updates.md): a device's
//! deployment status and targeted images, and update-now for a group or a device (which devices
//! waiting on `GET /v1/device/update-signal`, `routes/device_updates.rs`, hear of).

use axum::Json;
use axum::extract::{Path, State};
use ferro_wire::{
    DeviceDeploymentStatus, ErrorBody, Role, TargetedImage, TargetedImages, UpdateNowResult,
};
use serde_json::json;

use crate::auth::TenantCaller;
use crate::authz;
use crate::datastore::update_reports;
use crate::datastore::update_signals::{self, SignalTarget};
use crate::datastore::{device_groups, devices};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{device_param, path_id};
use crate::state::AppState;
use crate::targets::{self, current_target};

/// A device's update status: the target set version the service computed for it and the
/// device's last report (any role).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/devices/{deviceId}/deployment-status", tag = "updates",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceId" = String, Path, description = "Device ID (128 hex characters)")),
    responses((status = 200, body = DeviceDeploymentStatus), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn deployment_status(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, device_id)): Path<(String, String)>,
) -> ApiResult<Json<DeviceDeploymentStatus>> {
    let scope = who.authorize(Role::Reader)?;
    let did = device_param(&device_id)?;
    update_reports::status(&state.db, &scope, &did)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("device"))
}

/// The images a device's current target set names (any role). Computes the set if it is due.
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/devices/{deviceId}/targeted-images", tag = "updates",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceId" = String, Path, description = "Device ID (128 hex characters)")),
    responses((status = 200, body = TargetedImages), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn targeted_images(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, device_id)): Path<(String, String)>,
) -> ApiResult<Json<TargetedImages>> {
    let scope = who.authorize(Role::Reader)?;
    let did = device_param(&device_id)?;
    devices::get(&state.db, &scope, &did)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    let target = current_target(&state, &did.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    let set = targets::content(&target.signed)?;
    Ok(Json(TargetedImages {
        device_id: did,
        target_version: set.version,
        expires_at: set.expires_at,
        manage_apps: set.manage_apps,
        images: set
            .images
            .iter()
            .map(|i| TargetedImage {
                component_id: i.component_id,
                image_id: i.image_id,
                kind: i.kind.as_str().to_string(),
                version: i.version.clone(),
                security_version: i.security_version,
                package_sha256: hex::encode(i.package_sha256),
                package_size: i.package_size,
            })
            .collect(),
    }))
}

async fn signal(
    state: &AppState,
    who: &TenantCaller,
    target: SignalTarget<'_>,
) -> ApiResult<UpdateNowResult> {
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &who.caller, who.tenant, Role::Contributor).await?;
    let (count, object_type, object_id) = match target {
        SignalTarget::Group(g) => {
            if !device_groups::exists_in(&mut tx, &scope, g).await? {
                return Err(ApiError::not_found("device group"));
            }
            let n = device_groups::device_count_in(&mut tx, g).await?;
            (n, "device_group", g.to_string())
        }
        SignalTarget::Device(d) => {
            devices::get_in(&mut tx, &scope, d)
                .await?
                .ok_or_else(|| ApiError::not_found("device"))?;
            (1, "device", d.to_string())
        }
    };
    let id = uuid::Uuid::now_v7().to_string();
    update_signals::insert(&mut tx, &scope, &id, target, db::now()).await?;
    db::audit(
        &mut tx,
        Some(scope.tenant_str()),
        scope.audit_user(),
        "update.now",
        object_type,
        &object_id,
        json!({ "signal": id, "devices": count }),
    )
    .await?;
    tx.commit().await?;
    Ok(UpdateNowResult {
        signal: id,
        device_count: u64::try_from(count).unwrap_or(0),
    })
}

/// Make every device of a group check for updates now (Contributor). Devices waiting on
/// `GET /v1/device/update-signal` hear of it within about a second.
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/update-now", tag = "updates",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceGroupId" = String, Path, format = Uuid, description = "Device group ID")),
    responses((status = 200, body = UpdateNowResult), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn group_update_now(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, group_id)): Path<(String, String)>,
) -> ApiResult<Json<UpdateNowResult>> {
    who.authorize(Role::Contributor)?;
    let g: ferro_wire::DeviceGroupId = path_id(&group_id, "deviceGroupId")?;
    Ok(Json(signal(&state, &who, SignalTarget::Group(g)).await?))
}

/// Make one device check for updates now (Contributor).
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/devices/{deviceId}/update-now", tag = "updates",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceId" = String, Path, description = "Device ID (128 hex characters)")),
    responses((status = 200, body = UpdateNowResult), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn device_update_now(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, device_id)): Path<(String, String)>,
) -> ApiResult<Json<UpdateNowResult>> {
    who.authorize(Role::Contributor)?;
    let did = device_param(&device_id)?;
    Ok(Json(
        signal(&state, &who, SignalTarget::Device(&did)).await?,
    ))
}
