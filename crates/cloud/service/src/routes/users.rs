//! `/v1/users`: platform-level user management.
//!
//! Model: users are platform-wide identities; roles are per tenant. Only platform operators
//! create accounts (docs/service/accounts.md: an account a tenant Administrator could create
//! under any login name is an account that another tenant might later trust). Tenants gain
//! members through invitations (`routes::invitations`) that the account holder accepts.

use crate::auth::{self, Caller};
use crate::datastore::tokens::{self, Revoke};
use crate::datastore::{roles, users};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery, path_id};
use crate::page::PageReq;
use crate::state::AppState;
use crate::users::insert_user;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferro_wire::{
    CreateUserRequest, CreatedUser, ErrorBody, ErrorCode, OneTimePassword, Page, PageQuery, User,
    UserId,
};
use serde_json::json;

/// A fresh one-time password, its hash (through the password gate) and its expiry.
async fn one_time_password(state: &AppState) -> ApiResult<(String, String, i64)> {
    let otp = auth::new_one_time_password()?;
    let hash = auth::hash_password(state, otp.clone()).await?;
    Ok((
        otp,
        hash,
        db::now() + state.config.one_time_password_ttl_secs,
    ))
}

/// Create an account with a one-time password that expires (shown once in the response).
/// Platform operators only: accounts are platform-wide, so no tenant Administrator may mint
/// one; tenants gain members through invitations.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = CreatedUser), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "Login taken", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<CreatedUser>)> {
    caller.require_operator().map_err(|_| {
        ApiError::new(
            ErrorCode::Forbidden,
            "only platform operators create accounts; to give someone a role in your tenant, \
             invite them (POST /v1/tenants/{tenantId}/invitations, `ferro role add`)",
        )
    })?;
    let (otp, hash, expires) = one_time_password(&state).await?;
    let mut tx = state.db.begin_write().await?;
    let user = insert_user(
        &mut tx,
        &req.login,
        &req.display_name,
        req.platform_operator,
        &hash,
        expires,
    )
    .await?;
    let uid = user.id.to_string();
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "user.create",
        "user",
        &uid,
        json!({ "login": user.login, "platformOperator": req.platform_operator }),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: user.to_wire(),
            one_time_password: otp,
            one_time_password_expires_at: db::ts(expires),
        }),
    ))
}

/// Issue a new one-time password for an account (platform operators only), for a user who
/// forgot theirs or whose one-time password expired. The old password stops working at once and
/// every session and API token of the user is revoked.
#[utoipa::path(post, path = "/v1/users/{userId}/one-time-password", tag = "users",
    params(("userId" = String, Path, format = Uuid, description = "User ID")),
    responses((status = 200, body = OneTimePassword), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> ApiResult<Json<OneTimePassword>> {
    caller.require_operator()?;
    let id: UserId = path_id(&user_id, "userId")?;
    let uid = id.to_string();
    let (otp, hash, expires) = one_time_password(&state).await?;
    let now = db::now();
    let mut tx = state.db.begin_write().await?;
    if !users::set_one_time_password(&mut tx, id, &hash, expires).await? {
        return Err(ApiError::not_found("user"));
    }
    tokens::revoke_of_user(&mut tx, id, Revoke::All, now).await?;
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "user.reset_password",
        "user",
        &uid,
        json!({ "expiresAt": expires }),
    )
    .await?;
    tx.commit().await?;
    state.auth_cache.invalidate_user(&uid);
    Ok(Json(OneTimePassword {
        one_time_password: otp,
        expires_at: db::ts(expires),
    }))
}

/// All users (platform operators only).
#[utoipa::path(get, path = "/v1/users", tag = "users", params(PageQuery),
    responses((status = 200, body = Page<User>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<User>>> {
    caller.require_operator()?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let items = users::list(&state.db, &page.after, page.fetch())
        .await?
        .iter()
        .map(users::UserRow::to_wire)
        .collect();
    Ok(Json(page.finish(items, |u| u.id.to_string())))
}

/// Delete a user (platform operators only): their roles and tokens go with them. Refused for
/// yourself and for the last Administrator of a tenant.
#[utoipa::path(delete, path = "/v1/users/{userId}", tag = "users",
    params(("userId" = String, Path, format = Uuid, description = "User ID")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Yourself, or the last Administrator of a tenant", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_operator()?;
    let id: UserId = path_id(&user_id, "userId")?;
    if id == caller.user.id {
        return Err(ApiError::conflict(
            "you cannot delete yourself; ask another platform operator",
        ));
    }
    let uid = id.to_string();
    let mut tx = state.db.begin_write().await?;
    for t in roles::administered_by_in(&mut tx, &uid).await? {
        db::lock_tenant(&mut tx, &t).await?;
        if roles::administrators_in(&mut tx, &t).await? <= 1 {
            return Err(ApiError::new(
                ErrorCode::LastAdministrator,
                format!(
                    "the user is the last Administrator of tenant {t}; add another Administrator first"
                ),
            ));
        }
    }
    if !users::delete(&mut tx, id).await? {
        return Err(ApiError::not_found("user"));
    }
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "user.delete",
        "user",
        &uid,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    state.auth_cache.invalidate_user(&uid);
    Ok(StatusCode::NO_CONTENT)
}
