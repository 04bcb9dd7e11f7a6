//! Claiming and the tenant's devices (`/v1/tenants/{tenantId}/devices...`): claim, list,
//! count, show, move between device groups, block.

use crate::auth::TenantCaller;
use crate::authz::{self, TenantScope};
use crate::claims;
use crate::datastore::device_groups;
use crate::datastore::devices::{self, DeviceFilter};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::device_param;
use crate::extract::{JsonBody, StrictQuery};
use crate::page::PageReq;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use base64ct::{Base64UrlUnpadded, Encoding};
use ferro_wire::{
    ClaimDevicesRequest, ClaimDevicesResponse, Device, DeviceCount, DeviceCountQuery, DeviceId,
    DeviceQuery, ErrorBody, ErrorCode, MAX_CLAIMS_PER_REQUEST, Page, Role, UpdateDeviceRequest,
};
use serde_json::json;

/// Claim registered devices for the tenant (Contributor): 1 to 1000 devices, each with its
/// claim code, all or nothing. A wrong code, an unknown device and a device that is already
/// claimed (its code was used up) get the same answer, `device_not_registered`, so the route
/// tells nothing about devices whose code the caller does not hold. A device this tenant
/// already holds is an idempotent repeat.
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/devices/claim", tag = "devices",
    request_body = ClaimDevicesRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID")),
    responses((status = 200, body = ClaimDevicesResponse),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Tenant not found, or device_not_registered: no registered, unclaimed device with this ID and claim code (details list them)", body = ErrorBody),
        (status = 409, description = "already_claimed: another request claimed one of the devices at the same moment", body = ErrorBody),
        (status = 422, description = "invalid_body: malformed device IDs or claim codes (details) or count", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn claim(
    State(state): State<AppState>,
    who: TenantCaller,
    JsonBody(req): JsonBody<ClaimDevicesRequest>,
) -> ApiResult<Json<ClaimDevicesResponse>> {
    who.authorize(Role::Contributor)?;
    if req.devices.is_empty() || req.devices.len() > MAX_CLAIMS_PER_REQUEST {
        return Err(ApiError::invalid_body(format!(
            "`devices` must hold 1 to {MAX_CLAIMS_PER_REQUEST} devices (each `deviceId` with its \
             `claimCode`); split larger claims"
        )));
    }
    let presented = claims::parse_claims(&req.devices).map_err(|bad| ApiError::Items {
        code: ErrorCode::InvalidBody,
        message: "some device IDs or claim codes are malformed and nothing was claimed (see \
                  `details`)"
            .into(),
        items: bad,
    })?;
    let mut tx = state.db.begin_write().await?;
    authz::authorize(&mut *tx, &who.caller, who.tenant, Role::Contributor).await?;
    let keys: Vec<&str> = presented.iter().map(|p| p.device.as_str()).collect();
    let known = devices::registrations(&mut tx, &keys).await?;
    let claims::Judgement {
        new,
        already_owned: owned,
        refused,
    } = claims::judge(&presented, &known, &who.tid);
    if !refused.is_empty() {
        tracing::info!(
            tenant = %who.tid,
            refused = refused.len(),
            "claim refused: unknown device or wrong claim code"
        );
        return Err(ApiError::Items {
            code: ErrorCode::DeviceNotRegistered,
            message: format!(
                "{} devices are not registered and unclaimed with the claim codes given, and \
                 nothing was claimed; check the IDs and codes (see `details`)",
                refused.len()
            ),
            items: refused,
        });
    }
    let now = db::now();
    if !new.is_empty() {
        claims::insert_devices(&mut tx, &who.tid, &new, now).await?;
    }
    db::audit(
        &mut tx,
        Some(&who.tid),
        Some(&who.caller.uid()),
        "device.claim",
        "device",
        new.first().map_or("", String::as_str),
        json!({ "claimed": new.len(), "alreadyOwned": owned, "deviceIds": new }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(ClaimDevicesResponse {
        claimed: u32::try_from(new.len()).unwrap_or(u32::MAX),
        already_owned: owned,
    }))
}

/// The tenant's devices (any role), by device ID, optionally of one device group or product.
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/devices", tag = "devices",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"), DeviceQuery),
    responses((status = 200, body = Page<Device>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_devices(
    State(state): State<AppState>,
    who: TenantCaller,
    StrictQuery(q): StrictQuery<DeviceQuery>,
) -> ApiResult<Json<Page<Device>>> {
    let scope = who.authorize(Role::Reader)?;
    let mut page = PageReq::new(q.limit, None)?;
    if let Some(tok) = q.continuation.as_deref() {
        page.after = Base64UrlUnpadded::decode_vec(tok)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|s| s.parse::<DeviceId>().is_ok_and(|id| id.to_string() == *s))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidQuery,
                    "`continuation` is not a token this API issued; pass the previous page's \
                     `continuationToken` unchanged",
                )
            })?;
    }
    let filter = DeviceFilter {
        device_group: q.device_group,
        product: q.product,
    };
    let items = devices::list(&state.db, &scope, &filter, &page.after, page.fetch()).await?;
    Ok(Json(page.finish(items, |d| d.device_id.to_string())))
}

/// How many devices the tenant has (any role), optionally in one device group or product.
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/devices/count", tag = "devices",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"), DeviceCountQuery),
    responses((status = 200, body = DeviceCount), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn count_devices(
    State(state): State<AppState>,
    who: TenantCaller,
    StrictQuery(q): StrictQuery<DeviceCountQuery>,
) -> ApiResult<Json<DeviceCount>> {
    let scope = who.authorize(Role::Reader)?;
    let filter = DeviceFilter {
        device_group: q.device_group,
        product: q.product,
    };
    let count = devices::count(&state.db, &scope, &filter).await?;
    Ok(Json(DeviceCount { count }))
}

/// A device of the tenant read in `tx`, or `not_found`.
async fn get_device_row(tx: &mut db::Tx, scope: &TenantScope, did: &DeviceId) -> ApiResult<Device> {
    devices::get_in(tx, scope, did)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))
}

/// One device of the tenant (any role).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/devices/{deviceId}", tag = "devices",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceId" = String, Path, description = "Device ID (128 hex characters)")),
    responses((status = 200, body = Device), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_device(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, device_id)): Path<(String, String)>,
) -> ApiResult<Json<Device>> {
    let scope = who.authorize(Role::Reader)?;
    let did = device_param(&device_id)?;
    // The hottest read, a point lookup (SQLite: on the calling thread).
    let device = devices::get(&state.db, &scope, &did)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    Ok(Json(device))
}

/// Move a device into a device group of the tenant, or out of any with `null` (Contributor);
/// block or unblock it (Administrator). A blocked device's attestations are untrusted with the
/// reason `blocked`, so it gets no new certificate (the one it holds expires within 24 hours)
/// and no access to the device routes; it still learns its target set, as any untrusted device.
#[utoipa::path(patch, path = "/v1/tenants/{tenantId}/devices/{deviceId}", tag = "devices",
    request_body = UpdateDeviceRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceId" = String, Path, description = "Device ID (128 hex characters)")),
    responses((status = 200, body = Device), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Not a Contributor, or `blocked` without Administrator", body = ErrorBody),
        (status = 404, description = "No such device or device group", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_device(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, device_id)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdateDeviceRequest>,
) -> ApiResult<Json<Device>> {
    who.authorize(Role::Contributor)?;
    if req.blocked.is_some() {
        who.authorize(Role::Administrator)?;
    }
    let did = device_param(&device_id)?;
    if req.device_group_id.is_none() && req.blocked.is_none() {
        return Err(ApiError::invalid_body(
            "give `deviceGroupId` (a device group ID of this tenant, or null to remove the device \
             from its group) and/or `blocked` (true or false)",
        ));
    }
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &who.caller, who.tenant, Role::Contributor).await?;
    if req.blocked.is_some() {
        authz::authorize(&mut *tx, &who.caller, who.tenant, Role::Administrator).await?;
    }
    // Serialises with deleting the group (which checks for devices under the same lock).
    db::lock_tenant(&mut tx, &who.tid).await?;
    let before = get_device_row(&mut tx, &scope, &did).await?;
    if let Some(group) = req.device_group_id {
        if let Some(g) = group
            && !device_groups::exists_in(&mut tx, &scope, g).await?
        {
            return Err(ApiError::not_found("device group"));
        }
        devices::set_group(&mut tx, &scope, &did, group).await?;
        let details = json!({ "from": before.device_group_id, "to": group });
        devices::audit(&mut tx, &scope, &did, "device.update", details).await?;
    }
    if let Some(blocked) = req.blocked {
        devices::set_blocked(&mut tx, &scope, &did, blocked).await?;
        let action = if blocked {
            "device.block"
        } else {
            "device.unblock"
        };
        let details = json!({ "from": before.blocked, "to": blocked });
        devices::audit(&mut tx, &scope, &did, action, details).await?;
    }
    let after = get_device_row(&mut tx, &scope, &did).await?;
    tx.commit().await?;
    Ok(Json(after))
}
