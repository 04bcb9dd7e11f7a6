//! `/v1/me`: the caller, their roles and their API tokens.

use crate::auth::{self, API_TOKEN_PREFIX, Caller, parse_id, parse_role};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery, path_id};
use crate::page::PageReq;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferro_wire::{
    ApiToken, ApiTokenId, CreateApiTokenRequest, CreatedApiToken, ErrorBody, Me, Page, PageQuery,
    Role, TenantRole,
};
use serde_json::json;
use sqlx::Row;

/// The caller and the tenants where they hold a role.
#[utoipa::path(get, path = "/v1/me", tag = "me",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Me>> {
    let rows = sqlx::query(
        "SELECT t.id, t.name, r.role FROM tenant_roles r JOIN tenants t ON t.id = r.tenant_id \
         WHERE r.user_id = $1 ORDER BY t.id",
    )
    .bind(caller.uid())
    .fetch_all(state.db.pool())
    .await?;
    let mut roles = Vec::with_capacity(rows.len());
    for r in &rows {
        let tid: String = r.try_get("id")?;
        // What the token reaches, with the role it acts with.
        let role = parse_role(&r.try_get::<String, _>("role")?)?;
        if let Some(role) = caller.scope.effective_role(&tid, Some(role)) {
            roles.push(TenantRole {
                tenant_id: parse_id(&tid)?,
                tenant_name: r.try_get("name")?,
                role,
            });
        }
    }
    Ok(Json(Me {
        user: caller.user.to_wire(),
        roles,
    }))
}

fn token_from_row(r: &sqlx::any::AnyRow) -> ApiResult<ApiToken> {
    Ok(ApiToken {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        name: r.try_get::<Option<String>, _>("name")?.unwrap_or_default(),
        created_at: db::ts(r.try_get("created_at")?),
        expires_at: db::ts(r.try_get("expires_at")?),
        tenant_id: r
            .try_get::<Option<String>, _>("scope_tenant_id")?
            .as_deref()
            .map(parse_id)
            .transpose()?,
        max_role: r
            .try_get::<Option<String>, _>("max_role")?
            .as_deref()
            .map(parse_role)
            .transpose()?,
        read_only: r.try_get::<i64, _>("read_only")? != 0,
    })
}

/// Create an API token for automation, optionally narrowed to one tenant, a maximum role and
/// reading. Needs a fresh password login (a session younger than 15 minutes): an API token
/// cannot make another, nor can a stolen old session. The secret is returned once.
#[utoipa::path(post, path = "/v1/me/tokens", tag = "me", request_body = CreateApiTokenRequest,
    responses((status = 201, body = CreatedApiToken), (status = 401, body = ErrorBody),
        (status = 403, description = "reauthentication_required: log in again first", body = ErrorBody),
        (status = 404, description = "No role in the tenant named by `tenantId`", body = ErrorBody),
        (status = 409, description = "A live token has this name", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateApiTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedApiToken>)> {
    let now = db::now();
    caller.require_fresh_login(now)?;
    if !ferro_wire::is_valid_name(&req.name) {
        return Err(ApiError::invalid_name("name"));
    }
    let days = req
        .expires_in_days
        .unwrap_or(ferro_wire::DEFAULT_API_TOKEN_DAYS);
    if !(1..=ferro_wire::MAX_API_TOKEN_DAYS).contains(&days) {
        return Err(ApiError::invalid_body(format!(
            "`expiresInDays` must be 1 to {}",
            ferro_wire::MAX_API_TOKEN_DAYS
        )));
    }
    let expires = now + i64::from(days) * 86_400;
    let uid = caller.uid();
    let scope_tenant = req.tenant_id.map(|t| t.to_string());
    let mut tx = state.db.begin_write().await?;
    if let Some(t) = req.tenant_id {
        // A token for a tenant where the caller holds no role would be useless; say so.
        crate::authz::authorize(&mut *tx, &caller, t, Role::Reader).await?;
    }
    let taken = sqlx::query(
        "SELECT id FROM tokens WHERE user_id = $1 AND kind = 'api' AND name = $2 \
         AND revoked_at IS NULL AND expires_at > $3",
    )
    .bind(&uid)
    .bind(&req.name)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    if taken.is_some() {
        return Err(ApiError::conflict(
            "you already have a live API token with this name; choose another name or revoke it",
        ));
    }
    let secret = auth::new_token(API_TOKEN_PREFIX)?;
    let id = ApiTokenId::new();
    sqlx::query(
        "INSERT INTO tokens (id, user_id, kind, name, token_hash, created_at, expires_at, \
         scope_tenant_id, max_role, read_only) VALUES ($1, $2, 'api', $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id.to_string())
    .bind(&uid)
    .bind(&req.name)
    .bind(auth::token_hash(&secret))
    .bind(now)
    .bind(expires)
    .bind(scope_tenant.as_deref())
    .bind(req.max_role.map(Role::as_str))
    .bind(db::b2i(req.read_only))
    .execute(&mut *tx)
    .await?;
    db::audit(
        &mut tx,
        None,
        Some(&uid),
        "token.create",
        "token",
        &id.to_string(),
        json!({ "name": req.name, "expiresAt": expires, "tenantId": scope_tenant,
            "maxRole": req.max_role, "readOnly": req.read_only }),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiToken {
            token: ApiToken {
                id,
                name: req.name,
                created_at: db::ts(now),
                expires_at: db::ts(expires),
                tenant_id: req.tenant_id,
                max_role: req.max_role,
                read_only: req.read_only,
            },
            secret,
        }),
    ))
}

/// The caller's live API tokens (without secrets).
#[utoipa::path(get, path = "/v1/me/tokens", tag = "me", params(PageQuery),
    responses((status = 200, body = Page<ApiToken>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<ApiToken>>> {
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let rows = sqlx::query(
        "SELECT id, name, created_at, expires_at, scope_tenant_id, max_role, read_only FROM tokens \
         WHERE user_id = $1 AND kind = 'api' \
         AND revoked_at IS NULL AND expires_at > $2 AND id > $3 ORDER BY id LIMIT $4",
    )
    .bind(caller.uid())
    .bind(db::now())
    .bind(&page.after)
    .bind(page.fetch())
    .fetch_all(state.db.pool())
    .await?;
    let items = rows
        .iter()
        .map(token_from_row)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(page.finish(items, |t| t.id.to_string())))
}

/// Revoke one of the caller's API tokens.
#[utoipa::path(delete, path = "/v1/me/tokens/{tokenId}", tag = "me",
    params(("tokenId" = String, Path, format = Uuid, description = "API token ID")),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(token_id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: ApiTokenId = path_id(&token_id, "tokenId")?;
    let uid = caller.uid();
    let mut tx = state.db.begin_write().await?;
    let r = sqlx::query(
        "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND kind = 'api' \
         AND revoked_at IS NULL",
    )
    .bind(db::now())
    .bind(id.to_string())
    .bind(&uid)
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() != 1 {
        return Err(ApiError::not_found("API token"));
    }
    db::audit(
        &mut tx,
        None,
        Some(&uid),
        "token.revoke",
        "token",
        &id.to_string(),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    state.auth_cache.invalidate_user(&uid);
    Ok(StatusCode::NO_CONTENT)
}
