//! Manufacturing registrations (`/v1/manufacturing/registrations`), claiming and devices
//! (`/v1/tenants/{tenantId}/devices...`), and device capability files.

use crate::auth::{Caller, TenantCaller};
use crate::authz::{self, TenantScope};
use crate::claims;
use crate::datastore::devices::{self, DeviceFilter};
use crate::datastore::{self, device_groups};
use crate::db;
use crate::error::item;
use crate::error::{ApiError, ApiResult};
use crate::extract::device_param;
use crate::extract::{JsonBody, StrictQuery};
use crate::page::PageReq;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Path, Request, State};
use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use ferro_pki::{CapabilityFile, KeyName, VerifiedRegistration};
use ferro_signing::{DeviceId, KeyId};
use ferro_wire::{
    CapabilityFileResponse, CapabilityType, ClaimDevicesRequest, ClaimDevicesResponse,
    CreateCapabilityRequest, Device, DeviceCount, DeviceCountQuery, DeviceQuery, ErrorBody,
    ErrorCode, ErrorItem, MAX_CLAIMS_PER_REQUEST, MAX_REGISTRATIONS_PER_REQUEST,
    ManufacturingState, Page, RegisterDevicesRequest, RegisterDevicesResponse, RegisteredDevice,
    RevokedCapabilities, Role, RootOfTrustKind, UpdateDeviceRequest, normalize_device_id,
};
use serde::de::DeserializeOwned;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Largest body of a registration upload: 1000 records of up to 16 KiB, base64 in JSON.
pub const MAX_REGISTRATION_BODY: usize = 24 * 1024 * 1024;

/// A JSON body of up to [`MAX_REGISTRATION_BODY`] bytes (bulk uploads), otherwise as
/// [`JsonBody`]. Handlers read it only after authentication and authorization (taking the
/// `Request` and calling `from_request` after their role check), so a caller without the role
/// cannot make the service read and parse a large body.
#[derive(Debug)]
pub struct BulkJsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for BulkJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config.body_limit.max(MAX_REGISTRATION_BODY);
        crate::extract::read_json_body(req, limit, "; split the upload")
            .await
            .map(BulkJsonBody)
    }
}

fn snake(code: &str) -> String {
    code.replace('-', "_")
}

fn rot_kind(r: ferro_pki::RootOfTrust) -> RootOfTrustKind {
    match r {
        ferro_pki::RootOfTrust::Software => RootOfTrustKind::Software,
        ferro_pki::RootOfTrust::Tpm => RootOfTrustKind::Tpm,
    }
}

fn mfg_state(s: ferro_pki::ManufacturingState) -> ManufacturingState {
    match s {
        ferro_pki::ManufacturingState::Blank => ManufacturingState::Blank,
        ferro_pki::ManufacturingState::Module1Complete => ManufacturingState::Module1Complete,
        ferro_pki::ManufacturingState::DeviceComplete => ManufacturingState::DeviceComplete,
    }
}

struct Checked {
    index: usize,
    device_id: DeviceId,
    record_b64: String,
    sha256: String,
    verified: VerifiedRegistration,
}

/// Decode and verify every record; all failures are collected.
fn verify_all(records: Vec<String>) -> (Vec<Checked>, Vec<ErrorItem>) {
    let mut ok = Vec::with_capacity(records.len());
    let mut errors = Vec::new();
    for (index, b64) in records.into_iter().enumerate() {
        let Ok(bytes) = Base64::decode_vec(b64.trim()) else {
            errors.push(item(
                index,
                None,
                "invalid_base64",
                "not standard base64 (RFC 4648 with padding)",
            ));
            continue;
        };
        match ferro_pki::verify_registration_record(&bytes) {
            // A TPM record without the attestation key (format version 1) verifies, but such a
            // device could never attest (its quotes cannot be told from anyone's): refused here
            // so that the manufacturer learns it now.
            Ok(verified)
                if verified.record().root_of_trust == ferro_pki::RootOfTrust::Tpm
                    && verified.record().tpm_attestation_key.is_none() =>
            {
                errors.push(item(
                    index,
                    Some(verified.device_id().to_string()),
                    "missing_attestation_key",
                    "a TPM registration record must carry the TPM's attestation key (record \
                     format version 2); provision the device with a current ferro-device",
                ));
            }
            Ok(verified) => ok.push(Checked {
                index,
                device_id: verified.device_id(),
                sha256: hex::encode(Sha256::digest(&bytes)),
                record_b64: Base64::encode_string(&bytes),
                verified,
            }),
            Err(e) => errors.push(item(index, None, &snake(e.code()), e.to_string())),
        }
    }
    (ok, errors)
}

/// Upload signed registration records (platform operator): 1 to 1000 per request, all or
/// nothing. Each record must verify (signed by the device key it contains, device ID = SHA-512
/// of that key); repeating a stored record is idempotent; a different record for a stored device
/// ID is refused.
#[utoipa::path(post, path = "/v1/manufacturing/registrations", tag = "manufacturing",
    request_body = RegisterDevicesRequest,
    responses((status = 200, body = RegisterDevicesResponse),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "registration_conflict: another record is stored for a device ID (details list them)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "invalid_registration_record (details list each refused record by index), or invalid_body", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    request: Request<Body>,
) -> ApiResult<Json<RegisterDevicesResponse>> {
    // Authorization before the body: up to 24 MiB of JSON is read and parsed only for a
    // platform operator, never for any other caller.
    caller.require_operator()?;
    let BulkJsonBody(req) =
        BulkJsonBody::<RegisterDevicesRequest>::from_request(request, &state).await?;
    if req.records.is_empty() || req.records.len() > MAX_REGISTRATIONS_PER_REQUEST {
        return Err(ApiError::invalid_body(format!(
            "`records` must hold 1 to {MAX_REGISTRATIONS_PER_REQUEST} registration records; split \
             larger uploads"
        )));
    }
    let (checked, errors) = tokio::task::spawn_blocking(move || verify_all(req.records))
        .await
        .map_err(|e| ApiError::Internal(format!("verify task: {e}")))?;
    if !errors.is_empty() {
        return Err(ApiError::Items {
            code: ErrorCode::InvalidRegistrationRecord,
            message: format!(
                "{} registration records were refused and nothing was stored; fix or remove them \
                 (see `details`) and upload again",
                errors.len()
            ),
            items: errors,
        });
    }
    // The same device twice in one request: identical records collapse, different ones conflict.
    let mut seen: HashMap<&DeviceId, &str> = HashMap::new();
    let mut conflicts = Vec::new();
    for c in &checked {
        match seen.get(&c.device_id) {
            Some(sha) if *sha != c.sha256 => conflicts.push(item(
                c.index,
                Some(c.device_id.to_string()),
                "registration_conflict",
                "another record for this device ID is earlier in the request",
            )),
            _ => {
                seen.insert(&c.device_id, &c.sha256);
            }
        }
    }
    let now = db::now();
    let mut tx = state.db.begin_write().await?;
    let mut registered = 0u32;
    let mut unchanged = 0u32;
    let mut devices = Vec::with_capacity(checked.len());
    let mut new_ids = Vec::new();
    for c in &checked {
        let rec = c.verified.record();
        // Shown once (in this answer, if this request stores the record); only its hash is kept.
        let code = claims::new_claim_code()?;
        let inserted = devices::insert_registration(
            &mut tx,
            &devices::NewRegistration {
                device_id: &c.device_id,
                device_key: Base64::encode_string(&rec.device_key.to_spki_der()),
                root_of_trust: rot_kind(rec.root_of_trust).as_str(),
                ek_certificate: rec.tpm_ek_certificate.as_deref().map(Base64::encode_string),
                manufacturing_state: mfg_state(rec.manufacturing_state).as_str(),
                record: &c.record_b64,
                record_sha256: &c.sha256,
                record_created_at: rec.created_at.unix_timestamp(),
                registered_at: now,
                registered_by: &caller.uid(),
                attestation_key: rec
                    .tpm_attestation_key
                    .as_ref()
                    .map(|k| Base64::encode_string(&k.to_spki_der())),
                claim_code_sha256: &code.sha256_hex,
            },
        )
        .await?;
        let (stored_sha, registered_at) = devices::registration_of(&mut tx, &c.device_id).await?;
        if stored_sha != c.sha256 {
            conflicts.push(item(
                c.index,
                Some(c.device_id.to_string()),
                "registration_conflict",
                "a different registration record is stored for this device ID",
            ));
            continue;
        }
        let mut claim_code = None;
        if inserted {
            registered += 1;
            new_ids.push(c.device_id);
            claim_code = Some(code.text);
        } else if !new_ids.contains(&c.device_id) {
            unchanged += 1;
        }
        devices.push(RegisteredDevice {
            device_id: c.device_id,
            root_of_trust: rot_kind(rec.root_of_trust),
            manufacturing_state: mfg_state(rec.manufacturing_state),
            registered_at: db::ts(registered_at),
            claim_code,
        });
    }
    if !conflicts.is_empty() {
        conflicts.sort_by_key(|i| i.index);
        return Err(ApiError::Items {
            code: ErrorCode::RegistrationConflict,
            message: format!(
                "{} device IDs already have a different registration record and nothing was \
                 stored; a device has exactly one record (see `details`)",
                conflicts.len()
            ),
            items: conflicts,
        });
    }
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "manufacturing.register",
        "device_registration",
        &uuid::Uuid::now_v7().to_string(),
        json!({ "registered": registered, "unchanged": unchanged, "deviceIds": new_ids }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(RegisterDevicesResponse {
        registered,
        unchanged,
        devices,
    }))
}

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
    let mut bad = Vec::new();
    let mut ids: Vec<(usize, String, [u8; 32])> = Vec::with_capacity(req.devices.len());
    let mut unique = std::collections::HashSet::new();
    for (i, d) in req.devices.iter().enumerate() {
        let Some(id) = normalize_device_id(&d.device_id) else {
            bad.push(claims::bad_device_id(i));
            continue;
        };
        let Some(code) = ferro_wire::parse_claim_code(&d.claim_code) else {
            bad.push(item(
                i,
                Some(id),
                "invalid_claim_code",
                "a claim code is 32 hexadecimal digits (hyphens and spaces are ignored), as the \
                 manufacturer gave it with the device",
            ));
            continue;
        };
        if unique.insert(id.clone()) {
            ids.push((i, id, Sha256::digest(code).into()));
        }
    }
    if !bad.is_empty() {
        return Err(ApiError::Items {
            code: ErrorCode::InvalidBody,
            message: "some device IDs or claim codes are malformed and nothing was claimed (see \
                      `details`)"
                .into(),
            items: bad,
        });
    }
    let mut tx = state.db.begin_write().await?;
    authz::authorize(&mut *tx, &who.caller, who.tenant, Role::Contributor).await?;
    let keys: Vec<&str> = ids.iter().map(|(_, id, _)| id.as_str()).collect();
    let known = devices::registrations(&mut tx, &keys).await?;
    let mut refused = Vec::new();
    let mut new = Vec::new();
    let mut owned = 0u32;
    for (i, id, presented) in &ids {
        let (stored, tenant) = known.get(id).cloned().unwrap_or((None, None));
        if tenant.as_deref() == Some(who.tid.as_str()) {
            owned += 1;
            continue;
        }
        // Unknown, claimed (code cleared) or wrong code: one answer, after one comparison.
        let stored = stored.and_then(|h| hex::decode(h).ok());
        if tenant.is_none() && claims::code_matches(stored.as_deref(), presented) {
            new.push(id.clone());
        } else {
            refused.push(item(
                *i,
                Some(id.clone()),
                "device_not_registered",
                "no registered, unclaimed device has this ID and claim code; check both with the \
                 seller, or ask them to have the platform operator assign the device",
            ));
        }
    }
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
async fn get_device_row(
    tx: &mut db::Tx,
    scope: &TenantScope,
    did: &DeviceId,
) -> ApiResult<Device> {
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
        audit_device(&mut tx, &who, &did, "device.update", details).await?;
    }
    if let Some(blocked) = req.blocked {
        devices::set_blocked(&mut tx, &scope, &did, blocked).await?;
        let action = if blocked {
            "device.block"
        } else {
            "device.unblock"
        };
        let details = json!({ "from": before.blocked, "to": blocked });
        audit_device(&mut tx, &who, &did, action, details).await?;
    }
    let after = get_device_row(&mut tx, &scope, &did).await?;
    tx.commit().await?;
    Ok(Json(after))
}

/// The audit record of a change a tenant's user made to one of its devices.
async fn audit_device(
    tx: &mut db::Tx,
    who: &TenantCaller,
    device_id: &DeviceId,
    action: &str,
    details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let actor = who.caller.uid();
    db::audit(
        tx,
        Some(&who.tid),
        Some(&actor),
        action,
        "device",
        &device_id.to_string(),
        details,
    )
    .await
}

/// Revoke a device's capabilities of one kind (Contributor): attestation stops counting them at
/// the device's next attestation, so images test-signed by developer keys no longer pass
/// appraisal once AppDevelopment is revoked. A capability file is a signed, device-bound
/// statement the device may still hold: remove it from the device too (`ferro device
/// disable-development`); the service's appraisal no longer honours it either way.
#[utoipa::path(delete, path = "/v1/tenants/{tenantId}/devices/{deviceId}/capabilities/{capabilityType}",
    tag = "devices",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceId" = String, Path, description = "Device ID (128 hex characters)"),
        ("capabilityType" = String, Path, description = "AppDevelopment or FieldServicing")),
    responses((status = 200, body = RevokedCapabilities), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_capabilities(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, device_id, kind)): Path<(String, String, String)>,
) -> ApiResult<Json<RevokedCapabilities>> {
    who.authorize(Role::Contributor)?;
    let did = device_param(&device_id)?;
    let capability_type: CapabilityType = kind.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidId,
            "the capability type in the path must be AppDevelopment or FieldServicing",
        )
    })?;
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &who.caller, who.tenant, Role::Contributor).await?;
    get_device_row(&mut tx, &scope, &did).await?;
    let revoked =
        devices::revoke_capabilities(&mut tx, &scope, &did, capability_type, db::now()).await?;
    let details = json!({ "type": capability_type, "revoked": revoked });
    audit_device(&mut tx, &who, &did, "device.capability.revoke", details).await?;
    tx.commit().await?;
    Ok(Json(RevokedCapabilities {
        device_id: did,
        capability_type,
        revoked,
    }))
}

/// Issue a capability file for a device of the tenant (Contributor), signed by the platform
/// capability key and bound to this device ID.
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/devices/{deviceId}/capabilities", tag = "devices",
    request_body = CreateCapabilityRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceId" = String, Path, description = "Device ID (128 hex characters)")),
    responses((status = 200, body = CapabilityFileResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "developerKeyIds missing, malformed or given for FieldServicing", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_capability(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, device_id)): Path<(String, String)>,
    JsonBody(req): JsonBody<CreateCapabilityRequest>,
) -> ApiResult<Json<CapabilityFileResponse>> {
    let scope = who.authorize(Role::Contributor)?;
    let did = device_param(&device_id)?;
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let file = match req.capability_type {
        CapabilityType::AppDevelopment => {
            let ids = match req.developer_key_ids {
                Some(ids) => ids,
                // Default: the tenant's registered developer keys (migration 0003).
                None => datastore::developer_keys::key_ids(&state.db, &scope, 33).await?,
            };
            if ids.is_empty() || ids.len() > ferro_pki::MAX_DEVELOPER_KEYS {
                return Err(ApiError::invalid_body(
                    "AppDevelopment needs 1 to 32 developer keys: register them with the tenant \
                     (`developer-keys`) or pass `developerKeyIds` (64 hex characters each)",
                ));
            }
            let keys = ids
                .iter()
                .map(|k| {
                    k.to_ascii_lowercase().parse::<KeyId>().map_err(|_| {
                        ApiError::invalid_body(
                            "each of `developerKeyIds` must be a key ID: 64 hex characters",
                        )
                    })
                })
                .collect::<ApiResult<Vec<_>>>()?;
            CapabilityFile::app_development(did, keys, now)
        }
        CapabilityType::FieldServicing => {
            if req.developer_key_ids.is_some() {
                return Err(ApiError::invalid_body(
                    "`developerKeyIds` applies to AppDevelopment only; remove it",
                ));
            }
            CapabilityFile {
                device_id: did,
                capability: ferro_pki::Capability::FieldServicing,
                issued_at: now,
            }
        }
    };
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &who.caller, who.tenant, Role::Contributor).await?;
    get_device_row(&mut tx, &scope, &did).await?;
    let signer = state
        .platform
        .keys
        .signer(&KeyName::platform_capability())
        .map_err(|e| ApiError::Internal(format!("capability key: {e}")))?;
    let bytes = file
        .sign(signer.as_ref())
        .map_err(|e| ApiError::Internal(format!("signing the capability file: {e}")))?;
    let developer_key_ids: Vec<String> = match &file.capability {
        ferro_pki::Capability::AppDevelopment { developer_keys } => {
            developer_keys.iter().map(|k| k.to_string()).collect()
        }
        ferro_pki::Capability::FieldServicing => Vec::new(),
    };
    // Recorded so that attestation knows which devices hold AppDevelopment (docs/attestation.md).
    devices::insert_capability(
        &mut tx,
        &scope,
        &devices::NewCapability {
            device: &did,
            kind: req.capability_type,
            developer_key_ids: &developer_key_ids,
            issued_at: now.unix_timestamp(),
            issued_by: &who.caller.uid(),
        },
    )
    .await?;
    let details = json!({ "type": req.capability_type, "developerKeyIds": developer_key_ids });
    audit_device(&mut tx, &who, &did, "device.capability", details).await?;
    tx.commit().await?;
    Ok(Json(CapabilityFileResponse {
        device_id: did,
        capability_type: req.capability_type,
        developer_key_ids,
        issued_at: now,
        capability_file: Base64::encode_string(&bytes),
    }))
}
