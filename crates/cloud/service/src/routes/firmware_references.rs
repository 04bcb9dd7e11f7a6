//! `/v1/tenants/{tenantId}/products/{productId}/firmware-references`: the firmware (stage 0)
//! reference values of a product, against which the appraisal compares a TPM device's quoted
//! PCRs 0-7 (docs/attestation.md, "Firmware appraisal"). Registering and deleting them is an
//! Administrator's (they decide which devices get certificates, as blocking does); reading them
//! any role's.

use crate::auth::Caller;
use crate::authz;
use crate::datastore::{firmware_references as store, products};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, path_id};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferro_wire::{
    CreateFirmwareReferenceRequest, ErrorBody, ErrorCode, FirmwareReference, FirmwareReferenceId,
    MAX_FIRMWARE_REFERENCES_PER_PRODUCT, ProductId, Role, TenantId,
};
use serde_json::json;

/// Longest description of a reference value, in characters.
const MAX_DESCRIPTION: usize = 200;

/// The eight PCR values of a request, or why they are not.
fn parse_pcrs(pcrs: &[String]) -> ApiResult<ferro_trust::FirmwarePcrs> {
    let bad = || {
        ApiError::invalid_body(
            "`pcrs` must be exactly 8 SHA-256 values (PCRs 0 to 7 in order), each 64 hex \
             characters",
        )
    };
    if pcrs.len() != 8 {
        return Err(bad());
    }
    let mut out = [[0u8; 32]; 8];
    for (slot, p) in out.iter_mut().zip(pcrs) {
        if p.len() != 64 {
            return Err(bad());
        }
        *slot = hex::decode(p)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
    }
    Ok(out)
}

fn ids(tenant_id: &str, product_id: &str) -> ApiResult<(TenantId, ProductId)> {
    Ok((
        path_id(tenant_id, "tenantId")?,
        path_id(product_id, "productId")?,
    ))
}

/// Register a firmware reference value for the product's devices (Administrator). Several may
/// be registered at once (a firmware rollout), at most 16 per product.
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/products/{productId}/firmware-references", tag = "products",
    request_body = CreateFirmwareReferenceRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("productId" = String, Path, format = Uuid, description = "Product ID")),
    responses((status = 201, body = FirmwareReference), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "conflict: the product already has this value; quota_exceeded: it holds 16", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_firmware_reference(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, product_id)): Path<(String, String)>,
    JsonBody(req): JsonBody<CreateFirmwareReferenceRequest>,
) -> ApiResult<(StatusCode, Json<FirmwareReference>)> {
    let (t, p) = ids(&tenant_id, &product_id)?;
    let pcrs = parse_pcrs(&req.pcrs)?;
    if req.description.chars().count() > MAX_DESCRIPTION
        || req.description.contains(char::is_control)
    {
        return Err(ApiError::invalid_body(format!(
            "`description` must be at most {MAX_DESCRIPTION} characters, without control characters"
        )));
    }
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &caller, t, Role::Administrator).await?;
    products::get_in(&mut tx, &scope, p)
        .await?
        .ok_or_else(|| ApiError::not_found("product"))?;
    let held = store::count_in(&mut tx, &scope, p).await?;
    if usize::try_from(held).unwrap_or(usize::MAX) >= MAX_FIRMWARE_REFERENCES_PER_PRODUCT {
        return Err(ApiError::new(
            ErrorCode::QuotaExceeded,
            format!(
                "the product holds {held} firmware reference values, the most it may; delete \
                 those no device runs any more"
            ),
        ));
    }
    let reference = FirmwareReference {
        id: FirmwareReferenceId::new(),
        product_id: p,
        pcrs: pcrs.iter().map(hex::encode).collect(),
        description: req.description,
        created_at: db::ts(db::now()),
    };
    store::insert(&mut tx, &scope, &reference, &pcrs, &caller.uid())
        .await
        .map_err(|e| e.on_unique("the product already has this firmware reference value"))?;
    db::audit(
        &mut tx,
        Some(scope.tenant_str()),
        Some(&caller.uid()),
        "firmware_reference.create",
        "product",
        &p.to_string(),
        json!({ "referenceId": reference.id, "pcrs": reference.pcrs, "description": reference.description }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(reference)))
}

/// The product's firmware reference values, oldest first (any role).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/products/{productId}/firmware-references", tag = "products",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("productId" = String, Path, format = Uuid, description = "Product ID")),
    responses((status = 200, body = Vec<FirmwareReference>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_firmware_references(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, product_id)): Path<(String, String)>,
) -> ApiResult<Json<Vec<FirmwareReference>>> {
    let (t, p) = ids(&tenant_id, &product_id)?;
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    products::get(&state.db, &scope, p)
        .await?
        .ok_or_else(|| ApiError::not_found("product"))?;
    Ok(Json(store::list(&state.db, &scope, p).await?))
}

/// Delete one firmware reference value (Administrator): devices that show only it attest
/// Untrusted from their next attestation.
#[utoipa::path(delete, path = "/v1/tenants/{tenantId}/products/{productId}/firmware-references/{referenceId}", tag = "products",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("productId" = String, Path, format = Uuid, description = "Product ID"),
        ("referenceId" = String, Path, format = Uuid, description = "Firmware reference ID")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_firmware_reference(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, product_id, reference_id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (t, p) = ids(&tenant_id, &product_id)?;
    let r: FirmwareReferenceId = path_id(&reference_id, "referenceId")?;
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &caller, t, Role::Administrator).await?;
    let deleted = store::delete(&mut tx, &scope, p, r)
        .await?
        .ok_or_else(|| ApiError::not_found("firmware reference"))?;
    db::audit(
        &mut tx,
        Some(scope.tenant_str()),
        Some(&caller.uid()),
        "firmware_reference.delete",
        "product",
        &p.to_string(),
        json!({ "referenceId": r, "pcrs": deleted.pcrs }),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
