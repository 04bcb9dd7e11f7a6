//! Who owns a device, beyond the claim (`devices::claim`): claim codes, the manufacturer's
//! assignment of devices to a tenant, ownership transfers between tenants, and the platform
//! operator's reassignment of a disputed device (docs/service/README.md, "Claiming and
//! ownership"). Every change is audited; every tenant change goes through `datastore::ownership::change_owner`,
//! which clears what belonged to the old tenant and raises the device's ownership epoch.

use crate::auth::{Caller, TenantCaller, parse_id};
use crate::authz;
use crate::claims::{bad_device_id, insert_devices, new_claim_code};
use crate::datastore::devices::registrations;
use crate::datastore::{ownership, tenants};
use crate::db::{self, Tx};
use crate::error::item;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::extract::device_param;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use ferro_wire::{
    AssignDevicesRequest, ClaimDevicesResponse, CreateTransferRequest, DEFAULT_TRANSFER_DAYS,
    DeviceId, DeviceReassigned, DeviceTransfer, DeviceTransferId, ErrorBody, ErrorCode,
    MAX_CLAIMS_PER_REQUEST, MAX_REASON_LEN, MAX_TRANSFER_DAYS, ReassignDeviceRequest, Role,
    TransferState,
};
use serde_json::json;

/// The device's tenant (`None`: registered, unclaimed), after taking the registration row's
/// write lock (`datastore::ownership::lock_device`). `device_not_registered` if the device is
/// not registered.
async fn lock_device(tx: &mut Tx, device_id: &str) -> ApiResult<Option<String>> {
    ownership::lock_device(tx, device_id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::DeviceNotRegistered,
            "no registration record for this device ID; check it, or register the device",
        )
    })
}

async fn tenant_exists(tx: &mut Tx, tid: &str) -> ApiResult<()> {
    if tenants::exists_in(tx, tid).await? {
        Ok(())
    } else {
        Err(ApiError::not_found("tenant"))
    }
}

/// Assign registered, unclaimed devices to a tenant (platform operator, for the manufacturer):
/// 1 to 1000 device IDs, all or nothing, no claim codes needed; their claim codes are used up.
/// A device the tenant already holds is an idempotent repeat.
#[utoipa::path(post, path = "/v1/manufacturing/assignments", tag = "manufacturing",
    request_body = AssignDevicesRequest,
    responses((status = 200, body = ClaimDevicesResponse),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Tenant not found, or device_not_registered (details list the device IDs)", body = ErrorBody),
        (status = 409, description = "already_claimed: held by another tenant (details list the device IDs); reassign them one by one if that is right", body = ErrorBody),
        (status = 422, description = "invalid_body: malformed device IDs (details) or count", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<AssignDevicesRequest>,
) -> ApiResult<Json<ClaimDevicesResponse>> {
    caller.require_operator()?;
    if req.device_ids.is_empty() || req.device_ids.len() > MAX_CLAIMS_PER_REQUEST {
        return Err(ApiError::invalid_body(format!(
            "`deviceIds` must hold 1 to {MAX_CLAIMS_PER_REQUEST} device IDs; split larger \
             assignments"
        )));
    }
    let mut bad = Vec::new();
    let mut ids: Vec<(usize, String)> = Vec::new();
    let mut unique = std::collections::HashSet::new();
    for (i, raw) in req.device_ids.iter().enumerate() {
        match raw.parse::<DeviceId>().map(|id| id.to_string()) {
            Ok(id) if unique.insert(id.clone()) => ids.push((i, id)),
            Ok(_) => {}
            Err(_) => bad.push(bad_device_id(i)),
        }
    }
    if !bad.is_empty() {
        return Err(ApiError::Items {
            code: ErrorCode::InvalidBody,
            message: "some device IDs are malformed and nothing was assigned (see `details`)"
                .into(),
            items: bad,
        });
    }
    let tid = req.tenant_id.to_string();
    let mut tx = state.db.begin_write().await?;
    tenant_exists(&mut tx, &tid).await?;
    let keys: Vec<&str> = ids.iter().map(|(_, id)| id.as_str()).collect();
    let known = registrations(&mut tx, &keys).await?;
    let (mut missing, mut taken, mut new) = (Vec::new(), Vec::new(), Vec::new());
    let mut owned = 0u32;
    for (i, id) in &ids {
        match known.get(id).map(|(_, tenant)| tenant) {
            None => missing.push(item(
                *i,
                Some(id.clone()),
                "device_not_registered",
                "no registration record for this device ID; register it first",
            )),
            Some(Some(t)) if *t == tid => owned += 1,
            Some(Some(_)) => taken.push(item(
                *i,
                Some(id.clone()),
                "already_claimed",
                "held by another tenant; settle it with `ferro device reassign` if it must move",
            )),
            Some(None) => new.push(id.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::Items {
            code: ErrorCode::DeviceNotRegistered,
            message: format!(
                "{} devices are not registered and nothing was assigned (see `details`)",
                missing.len()
            ),
            items: missing.into_iter().chain(taken).collect(),
        });
    }
    if !taken.is_empty() {
        return Err(ApiError::Items {
            code: ErrorCode::AlreadyClaimed,
            message: format!(
                "{} devices are held by another tenant and nothing was assigned (see `details`)",
                taken.len()
            ),
            items: taken,
        });
    }
    if !new.is_empty() {
        insert_devices(&mut tx, &tid, &new, db::now()).await?;
    }
    let details = json!({ "assigned": new.len(), "alreadyOwned": owned, "deviceIds": new });
    let actor = caller.uid();
    db::audit(
        &mut tx,
        None,
        Some(&actor),
        "manufacturing.assign",
        "tenant",
        &tid,
        details.clone(),
    )
    .await?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&actor),
        "device.assign",
        "device",
        new.first().map_or("", String::as_str),
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(ClaimDevicesResponse {
        claimed: u32::try_from(new.len()).unwrap_or(u32::MAX),
        already_owned: owned,
    }))
}

/// Settle a dispute (platform operator): give a registered device to another tenant, or to none
/// (unclaimed, with a new claim code shown once), with a reason that the platform's audit log
/// and both tenants' audit logs keep. Pending transfers of the device are cancelled.
#[utoipa::path(post, path = "/v1/manufacturing/devices/{deviceId}/reassign", tag = "manufacturing",
    request_body = ReassignDeviceRequest,
    params(("deviceId" = String, Path, description = "Device ID (128 hex characters)")),
    responses((status = 200, body = DeviceReassigned),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "device_not_registered, or the tenant does not exist", body = ErrorBody),
        (status = 422, description = "invalid_body: no reason, or a reason over 1000 characters", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reassign(
    State(state): State<AppState>,
    caller: Caller,
    Path(device_id): Path<String>,
    JsonBody(req): JsonBody<ReassignDeviceRequest>,
) -> ApiResult<Json<DeviceReassigned>> {
    caller.require_operator()?;
    let device = device_param(&device_id)?;
    let did = device.to_string();
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_LEN {
        return Err(ApiError::invalid_body(format!(
            "`reason` must say why, in 1 to {MAX_REASON_LEN} characters (it is kept in the \
             audit logs of the platform and of both tenants)"
        )));
    }
    let to = req.tenant_id.map(|t| t.to_string());
    let mut tx = state.db.begin_write().await?;
    if let Some(to) = &to {
        tenant_exists(&mut tx, to).await?;
    }
    let from = lock_device(&mut tx, &did).await?;
    let actor = caller.uid();
    let mut claim_code = None;
    if from != to {
        match (&from, &to) {
            (Some(_), _) => {
                ownership::change_owner(&mut tx, &did, to.as_deref(), &actor, state.clock.unix())
                    .await?;
            }
            (None, Some(to)) => {
                insert_devices(&mut tx, to, std::slice::from_ref(&did), db::now()).await?;
                // Nothing of the old owner to clear, but the epoch still grows.
                ownership::raise_epoch(&mut tx, &did).await?;
            }
            (None, None) => {}
        }
    }
    if to.is_none() {
        // Unclaimed (or left unclaimed): a new code, so that whoever held the old one cannot
        // claim the device back.
        let code = new_claim_code()?;
        ownership::set_claim_code(&mut tx, &did, &code.sha256_hex).await?;
        claim_code = Some(code.text);
    }
    let details = json!({ "from": from, "to": to, "reason": reason });
    db::audit(
        &mut tx,
        None,
        Some(&actor),
        "manufacturing.reassign",
        "device",
        &did,
        details.clone(),
    )
    .await?;
    let mut tenants: Vec<&String> = from.iter().chain(to.iter()).collect();
    tenants.dedup();
    for t in tenants {
        db::audit(
            &mut tx,
            Some(t),
            Some(&actor),
            "device.reassign",
            "device",
            &did,
            details.clone(),
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(device = %did, from = ?from, to = ?to, "device reassigned by an operator");
    Ok(Json(DeviceReassigned {
        device_id: device,
        from_tenant_id: from.as_deref().map(parse_id).transpose()?,
        to_tenant_id: to.as_deref().map(parse_id).transpose()?,
        claim_code,
    }))
}

/// A transfer in which the tenant takes part (as sender or receiver), its state as of `now`,
/// else 404.
async fn get_transfer(tx: &mut Tx, tid: &str, raw_id: &str, now: i64) -> ApiResult<DeviceTransfer> {
    let id: DeviceTransferId = raw_id.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidId,
            "`transferId` must be a transfer ID (a UUID)",
        )
    })?;
    ownership::get_transfer(tx, tid, id, now)
        .await?
        .ok_or_else(|| ApiError::not_found("device transfer"))
}

/// The refusal of acting on an offer that expired: `transfer_expired` (409), saying what to do.
fn transfer_expired(t: &DeviceTransfer, what: &str) -> ApiError {
    let when = t
        .expires_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    ApiError::new(
        ErrorCode::TransferExpired,
        format!(
            "this transfer offer expired at {when} and can no longer be {what}; ask an \
             Administrator of the sending tenant for a new offer"
        ),
    )
}

/// Close a pending transfer as `to_state` at `now` (`transfer_expired` if it expired, `409
/// conflict` if it is not pending any more) and audit `action` in both tenants.
async fn close_transfer(
    tx: &mut Tx,
    t: &DeviceTransfer,
    to_state: TransferState,
    actor: &str,
    action: &str,
    now: i64,
) -> ApiResult<()> {
    if !ownership::close_transfer(tx, t.id, to_state, actor, now).await? {
        return Err(ApiError::conflict(
            "this transfer is no longer pending (it was accepted, cancelled or expired)",
        ));
    }
    let details = json!({ "transferId": t.id, "deviceId": t.device_id,
        "from": t.from_tenant_id, "to": t.to_tenant_id });
    for tenant in [t.from_tenant_id.to_string(), t.to_tenant_id.to_string()] {
        db::audit(
            tx,
            Some(&tenant),
            Some(actor),
            action,
            "device_transfer",
            &t.id.to_string(),
            details.clone(),
        )
        .await?;
    }
    Ok(())
}

/// Offer a device of the tenant to another tenant (Administrator). The device stays this
/// tenant's until an Administrator of the target tenant accepts; either side may cancel. The
/// offer expires after `expiresInDays` (1 to 90, default 14). One pending offer per device (an
/// expired one no longer counts).
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/devices/{deviceId}/transfers", tag = "devices",
    request_body = CreateTransferRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceId" = String, Path, description = "Device ID (128 hex characters)")),
    responses((status = 201, body = DeviceTransfer), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such device in this tenant, or no such target tenant", body = ErrorBody),
        (status = 409, description = "conflict: the device already has a pending transfer", body = ErrorBody),
        (status = 422, description = "invalid_body: the target is this tenant, or `expiresInDays` is not 1 to 90", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_transfer(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, device_id)): Path<(String, String)>,
    JsonBody(req): JsonBody<CreateTransferRequest>,
) -> ApiResult<(axum::http::StatusCode, Json<DeviceTransfer>)> {
    who.authorize(Role::Administrator)?;
    let did = device_param(&device_id)?.to_string();
    let to = req.target_tenant_id.to_string();
    if to == who.tid {
        return Err(ApiError::invalid_body(
            "`targetTenantId` is this tenant; name the tenant that should receive the device",
        ));
    }
    let days = crate::extract::expires_in_days(
        req.expires_in_days,
        DEFAULT_TRANSFER_DAYS,
        MAX_TRANSFER_DAYS,
    )?;
    let now = state.clock.unix();
    let mut tx = state.db.begin_write().await?;
    authz::authorize(&mut *tx, &who.caller, who.tenant, Role::Administrator).await?;
    let owner = lock_device(&mut tx, &did)
        .await
        .map_err(|_| ApiError::not_found("device"))?;
    if owner.as_deref() != Some(who.tid.as_str()) {
        return Err(ApiError::not_found("device"));
    }
    tenant_exists(&mut tx, &to).await?;
    let pending = ownership::pending_transfers(&mut tx, &did, now).await?;
    if pending > 0 {
        return Err(ApiError::conflict(
            "this device already has a pending transfer; cancel it first (`ferro device transfer \
             cancel`)",
        ));
    }
    let id = DeviceTransferId::new();
    ownership::insert_transfer(
        &mut tx,
        &ownership::NewTransfer {
            id,
            device_id: &did,
            from: &who.tid,
            to: &to,
            created_by: &who.caller.uid(),
            created_at: now,
            expires_at: crate::extract::days_after(now, days),
        },
    )
    .await?;
    let details = json!({ "transferId": id, "deviceId": did, "from": who.tid, "to": to,
        "expiresInDays": days });
    let actor = who.caller.uid();
    for t in [&who.tid, &to] {
        db::audit(
            &mut tx,
            Some(t),
            Some(&actor),
            "device.transfer.create",
            "device_transfer",
            &id.to_string(),
            details.clone(),
        )
        .await?;
    }
    let transfer = get_transfer(&mut tx, &who.tid, &id.to_string(), now).await?;
    tx.commit().await?;
    Ok((axum::http::StatusCode::CREATED, Json(transfer)))
}

/// The transfers the tenant sends or receives (Administrator), newest first, at most 500; a
/// pending offer past its `expiresAt` is listed as Expired.
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/device-transfers", tag = "devices",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID")),
    responses((status = 200, body = Vec<DeviceTransfer>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_transfers(
    State(state): State<AppState>,
    who: TenantCaller,
) -> ApiResult<Json<Vec<DeviceTransfer>>> {
    let scope = who.authorize(Role::Administrator)?;
    let now = state.clock.unix();
    Ok(Json(
        ownership::list_transfers(&state.db, &scope, now).await?,
    ))
}

/// A write transaction with the caller's Administrator role re-checked in it, and the transfer
/// (of the caller's tenant) that `accept` or `cancel` acts on, its state as of `now`.
async fn open_transfer(
    state: &AppState,
    who: &TenantCaller,
    transfer_id: &str,
    now: i64,
) -> ApiResult<(Tx, DeviceTransfer)> {
    who.authorize(Role::Administrator)?;
    let mut tx = state.db.begin_write().await?;
    authz::authorize(&mut *tx, &who.caller, who.tenant, Role::Administrator).await?;
    let t = get_transfer(&mut tx, &who.tid, transfer_id, now).await?;
    Ok((tx, t))
}

/// Accept a transfer offered to the tenant (Administrator of the receiving tenant): the device
/// becomes this tenant's, without a device group, capabilities or block; the sender loses it at
/// once (its device routes refuse the certificate the device holds) and the device gets this
/// tenant's ownership document, target set and certificate at its next attestation.
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/device-transfers/{transferId}/accept", tag = "devices",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("transferId" = String, Path, format = Uuid, description = "Transfer ID")),
    responses((status = 200, body = DeviceTransfer), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No transfer to this tenant with this ID", body = ErrorBody),
        (status = 409, description = "conflict: the transfer is not pending; transfer_expired: the offer expired (ask the sender for a new one)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn accept_transfer(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, transfer_id)): Path<(String, String)>,
) -> ApiResult<Json<DeviceTransfer>> {
    let now = state.clock.unix();
    let (mut tx, t) = open_transfer(&state, &who, &transfer_id, now).await?;
    // Only the receiving tenant accepts; to the sender its own offer is not acceptable.
    if t.to_tenant_id != who.tenant {
        return Err(ApiError::not_found("device transfer"));
    }
    if t.state == TransferState::Expired {
        return Err(transfer_expired(&t, "accepted"));
    }
    if t.state != TransferState::Pending {
        return Err(ApiError::conflict(format!(
            "this transfer is {}, not pending",
            t.state.as_str()
        )));
    }
    let device = t.device_id.to_string();
    let owner = lock_device(&mut tx, &device).await?;
    let from = t.from_tenant_id.to_string();
    if owner.as_deref() != Some(from.as_str()) {
        return Err(ApiError::conflict(
            "the device no longer belongs to the tenant that offered it; ask for a new offer",
        ));
    }
    let actor = who.caller.uid();
    // Closed first: moving the device cancels the pending offers it still has.
    close_transfer(
        &mut tx,
        &t,
        TransferState::Accepted,
        &actor,
        "device.transfer.accept",
        now,
    )
    .await?;
    ownership::change_owner(&mut tx, &device, Some(&who.tid), &actor, now).await?;
    let done = get_transfer(&mut tx, &who.tid, &transfer_id, now).await?;
    tx.commit().await?;
    tracing::info!(device = %t.device_id, from = %from, to = %who.tid, "device transferred");
    Ok(Json(done))
}

/// Cancel a pending transfer (Administrator of the sending or the receiving tenant, which
/// declines it). An expired offer is not cancelled (`transfer_expired`): it already can no
/// longer be accepted, and it stays listed as Expired.
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/device-transfers/{transferId}/cancel", tag = "devices",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("transferId" = String, Path, format = Uuid, description = "Transfer ID")),
    responses((status = 200, body = DeviceTransfer), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No transfer of this tenant with this ID", body = ErrorBody),
        (status = 409, description = "conflict: the transfer is not pending; transfer_expired: the offer expired", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel_transfer(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, transfer_id)): Path<(String, String)>,
) -> ApiResult<Json<DeviceTransfer>> {
    let now = state.clock.unix();
    let (mut tx, t) = open_transfer(&state, &who, &transfer_id, now).await?;
    if t.state == TransferState::Expired {
        return Err(transfer_expired(&t, "cancelled"));
    }
    close_transfer(
        &mut tx,
        &t,
        TransferState::Cancelled,
        &who.caller.uid(),
        "device.transfer.cancel",
        now,
    )
    .await?;
    let done = get_transfer(&mut tx, &who.tid, &transfer_id, now).await?;
    tx.commit().await?;
    Ok(Json(done))
}
