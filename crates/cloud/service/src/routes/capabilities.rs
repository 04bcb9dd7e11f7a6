//! Device capability files (`/v1/tenants/{tenantId}/devices/{deviceId}/capabilities...`):
//! issued by the platform capability key, bound to one device, recorded so that attestation
//! knows which devices hold AppDevelopment, and revoked.

use crate::auth::TenantCaller;
use crate::authz;
use crate::datastore::{self, devices};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::extract::device_param;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use base64ct::{Base64, Encoding};
use ferro_pki::{CapabilityFile, KeyName};
use ferro_signing::KeyId;
use ferro_wire::{
    CapabilityFileResponse, CapabilityType, CreateCapabilityRequest, ErrorBody, ErrorCode,
    RevokedCapabilities, Role,
};
use serde_json::json;

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
    devices::get_in(&mut tx, &scope, &did)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    let revoked =
        devices::revoke_capabilities(&mut tx, &scope, &did, capability_type, db::now()).await?;
    let details = json!({ "type": capability_type, "revoked": revoked });
    devices::audit(&mut tx, &scope, &did, "device.capability.revoke", details).await?;
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
    devices::get_in(&mut tx, &scope, &did)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
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
    devices::audit(&mut tx, &scope, &did, "device.capability", details).await?;
    tx.commit().await?;
    Ok(Json(CapabilityFileResponse {
        device_id: did,
        capability_type: req.capability_type,
        developer_key_ids,
        issued_at: now,
        capability_file: Base64::encode_string(&bytes),
    }))
}
