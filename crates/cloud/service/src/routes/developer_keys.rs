//! `/v1/tenants/{tenantId}/developer-keys`: the public keys whose signatures a tenant accepts on
//! uploaded images (developers' test keys). An upload signed by any other key is refused with
//! `untrusted_signing_key`; an accepted upload is re-signed with the tenant image key, so removing
//! a developer key later does not touch images already uploaded.
//!
//! What OS release keys share with these lives in `crate::signing_keys`.

use crate::auth::Caller;
use crate::authz;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery, path_id};
use crate::page::PageReq;
use crate::page::strip_row_ids;
use crate::signing_keys::{key_from_row, parse_key_request, path_key_id};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferro_wire::{
    ErrorBody, MAX_SIGNING_KEYS, Page, PageQuery, RegisterSigningKeyRequest, RegisteredSigningKey,
    Role, TenantId,
};
use serde_json::json;
use sqlx::Row;

fn tenant_ids(raw: &str) -> ApiResult<(TenantId, String)> {
    let t: TenantId = path_id(raw, "tenantId")?;
    Ok((t, t.to_string()))
}

/// Register a developer key (Contributor): the tenant then accepts images it signed.
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/developer-keys", tag = "developer-keys",
    request_body = RegisterSigningKeyRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID")),
    responses((status = 201, body = RegisteredSigningKey), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Key already registered, or 100 keys registered", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_developer_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    JsonBody(req): JsonBody<RegisterSigningKeyRequest>,
) -> ApiResult<(StatusCode, Json<RegisteredSigningKey>)> {
    let (t, tid) = tenant_ids(&tenant_id)?;
    let mut tx = state.db.begin_write().await?;
    authz::authorize(&mut *tx, &caller, t, Role::Contributor).await?;
    let key = parse_key_request(&req)?;
    db::lock_tenant(&mut tx, &tid).await?;
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM developer_keys WHERE tenant_id = $1")
        .bind(&tid)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    if n >= MAX_SIGNING_KEYS as i64 {
        return Err(ApiError::conflict(format!(
            "the tenant already has {MAX_SIGNING_KEYS} developer keys; remove unused ones first"
        )));
    }
    let out = RegisteredSigningKey {
        key_id: key.key_id().to_string(),
        tenant_id: Some(t),
        name: req.name,
        public_key_pem: key.to_pem(),
        created_by: caller.user.id,
        created_at: db::ts(db::now()),
    };
    sqlx::query(
        "INSERT INTO developer_keys (id, tenant_id, key_id, name, public_key_pem, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&tid)
    .bind(&out.key_id)
    .bind(&out.name)
    .bind(&out.public_key_pem)
    .bind(caller.uid())
    .bind(out.created_at.unix_timestamp())
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        ApiError::from(e).on_unique("this key is already registered in the tenant (same key ID)")
    })?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "developer_key.create",
        "developer_key",
        &out.key_id,
        json!({ "name": out.name }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// The tenant's developer keys (any role), in registration order.
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/developer-keys", tag = "developer-keys",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"), PageQuery),
    responses((status = 200, body = Page<RegisteredSigningKey>), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_developer_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    StrictQuery(q): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<RegisteredSigningKey>>> {
    let (t, tid) = tenant_ids(&tenant_id)?;
    authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let rows = sqlx::query(
        "SELECT id, key_id, name, public_key_pem, created_by, created_at FROM developer_keys \
         WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(&tid)
    .bind(&page.after)
    .bind(page.fetch())
    .fetch_all(state.db.pool())
    .await?;
    let items = rows
        .iter()
        .map(|r| Ok((r.try_get::<String, _>("id")?, key_from_row(r, Some(t))?)))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(strip_row_ids(page.finish(items, |x| x.0.clone()))))
}

/// Remove a developer key (Contributor). Images it signed stay (they carry the tenant image
/// key's signature); new uploads signed by it are refused.
#[utoipa::path(delete, path = "/v1/tenants/{tenantId}/developer-keys/{keyId}", tag = "developer-keys",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("keyId" = String, Path, description = "Key ID (64 hex)")),
    responses((status = 204, description = "Removed"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_developer_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (t, tid) = tenant_ids(&tenant_id)?;
    let kid = path_key_id(&key_id)?;
    let mut tx = state.db.begin_write().await?;
    authz::authorize(&mut *tx, &caller, t, Role::Contributor).await?;
    let r = sqlx::query("DELETE FROM developer_keys WHERE tenant_id = $1 AND key_id = $2")
        .bind(&tid)
        .bind(&kid)
        .execute(&mut *tx)
        .await?;
    if r.rows_affected() == 0 {
        return Err(ApiError::not_found("developer key"));
    }
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "developer_key.delete",
        "developer_key",
        &kid,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
