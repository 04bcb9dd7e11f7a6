//! `/v1/me`: the caller, their roles and their API tokens.

use crate::auth::{self, API_TOKEN_PREFIX, Caller};
use crate::datastore::{tenants, tokens};
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

/// The caller and the tenants where they hold a role.
#[utoipa::path(get, path = "/v1/me", tag = "me",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Me>> {
    // Every tenant of the user (no page: the `Me` document lists them all).
    let tenants = tenants::list_of_user(&state.db, &caller.uid(), "", i64::MAX).await?;
    // What the token reaches, with the role it acts with.
    let roles = tenants
        .into_iter()
        .filter_map(|t| {
            let role = caller
                .scope
                .effective_role(&t.id.to_string(), Some(t.role))?;
            Some(TenantRole {
                tenant_id: t.id,
                tenant_name: t.name,
                role,
            })
        })
        .collect();
    Ok(Json(Me {
        user: caller.user.to_wire(),
        roles,
    }))
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
    let days = crate::extract::expires_in_days(
        req.expires_in_days,
        ferro_wire::DEFAULT_API_TOKEN_DAYS,
        ferro_wire::MAX_API_TOKEN_DAYS,
    )?;
    let expires = crate::extract::days_after(now, days);
    let uid = caller.uid();
    let scope_tenant = req.tenant_id.map(|t| t.to_string());
    let mut tx = state.db.begin_write().await?;
    if let Some(t) = req.tenant_id {
        // A token for a tenant where the caller holds no role would be useless; say so.
        crate::authz::authorize(&mut *tx, &caller, t, Role::Reader).await?;
    }
    if tokens::live_api_named_in(&mut tx, caller.user.id, &req.name, now).await? {
        return Err(ApiError::conflict(
            "you already have a live API token with this name; choose another name or revoke it",
        ));
    }
    let secret = auth::new_token(API_TOKEN_PREFIX)?;
    let token = ApiToken {
        id: ApiTokenId::new(),
        name: req.name,
        created_at: db::ts(now),
        expires_at: db::ts(expires),
        tenant_id: req.tenant_id,
        max_role: req.max_role,
        read_only: req.read_only,
    };
    tokens::insert_api(&mut tx, caller.user.id, &token, &auth::token_hash(&secret)).await?;
    db::audit(
        &mut tx,
        None,
        Some(&uid),
        "token.create",
        "token",
        &token.id.to_string(),
        json!({ "name": token.name, "expiresAt": expires, "tenantId": scope_tenant,
            "maxRole": token.max_role, "readOnly": token.read_only }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(CreatedApiToken { token, secret })))
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
    let items = tokens::list_api(
        &state.db,
        caller.user.id,
        db::now(),
        &page.after,
        page.fetch(),
    )
    .await?;
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
    if !tokens::revoke_api(&mut tx, caller.user.id, id, db::now()).await? {
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
