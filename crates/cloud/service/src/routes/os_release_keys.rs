//! `/v1/os-release-keys`: the build keys whose signatures the platform accepts on the OS bundles
//! it is asked to publish (platform operator). The service verifies an upload against these keys
//! only, then re-signs it with the platform OS release key (`routes/os_releases.rs`); build keys
//! never reach devices, so one can be removed without touching a device.

use crate::auth::Caller;
use crate::datastore::{os_release_keys, os_releases};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery};
use crate::page::PageReq;
use crate::page::strip_row_ids;
use crate::signing_keys::{parse_key_request, path_key_id};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferro_wire::{
    ErrorBody, MAX_SIGNING_KEYS, Page, PageQuery, RegisterSigningKeyRequest, RegisteredSigningKey,
};
use serde_json::json;

/// Register an OS release build key (platform operator).
#[utoipa::path(post, path = "/v1/os-release-keys", tag = "os-releases",
    request_body = RegisterSigningKeyRequest,
    responses((status = 201, body = RegisteredSigningKey), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_os_release_key(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<RegisterSigningKeyRequest>,
) -> ApiResult<(StatusCode, Json<RegisteredSigningKey>)> {
    caller.require_operator()?;
    let key = parse_key_request(&req)?;
    let mut tx = state.db.begin_write().await?;
    os_releases::lock(&mut tx).await?;
    if os_release_keys::count_in(&mut tx).await? >= MAX_SIGNING_KEYS as i64 {
        return Err(ApiError::conflict(format!(
            "{MAX_SIGNING_KEYS} OS release keys are registered; remove unused ones first"
        )));
    }
    let out = RegisteredSigningKey {
        key_id: key.key_id().to_string(),
        tenant_id: None,
        name: req.name,
        public_key_pem: key.to_pem(),
        created_by: caller.user.id,
        created_at: db::ts(db::now()),
    };
    os_release_keys::insert(&mut tx, &out)
        .await
        .map_err(|e| ApiError::from(e).on_unique("this OS release key is already registered"))?;
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "os_release_key.create",
        "os_release_key",
        &out.key_id,
        json!({ "name": out.name }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// The registered OS release build keys (platform operator).
#[utoipa::path(get, path = "/v1/os-release-keys", tag = "os-releases", params(PageQuery),
    responses((status = 200, body = Page<RegisteredSigningKey>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_os_release_keys(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<RegisteredSigningKey>>> {
    caller.require_operator()?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let items = os_release_keys::list(&state.db, &page.after, page.fetch()).await?;
    Ok(Json(strip_row_ids(page.finish(items, |x| x.0.clone()))))
}

/// Remove an OS release build key (platform operator). Published releases stay (they carry the
/// platform OS release key's signature).
#[utoipa::path(delete, path = "/v1/os-release-keys/{keyId}", tag = "os-releases",
    params(("keyId" = String, Path, description = "Key ID (64 hex)")),
    responses((status = 204, description = "Removed"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_os_release_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_operator()?;
    let kid = path_key_id(&key_id)?;
    let mut tx = state.db.begin_write().await?;
    if !os_release_keys::delete(&mut tx, &kid).await? {
        return Err(ApiError::not_found("OS release key"));
    }
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "os_release_key.delete",
        "os_release_key",
        &kid,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
