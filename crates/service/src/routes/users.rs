//! `/v1/users`: platform-level user management.
//!
//! Model: users are platform-wide identities; roles are per tenant. A platform operator manages
//! all users. A tenant Administrator may create a user only together with a role in a tenant
//! they administer (`tenantId` + `role`), and manages existing users through that tenant's roles.

use crate::auth::{self, Caller, UserRow};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery, path_id};
use crate::page::PageReq;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferro_wire::{
    CreateUserRequest, CreatedUser, ErrorBody, ErrorCode, Page, PageQuery, Role, User, UserId,
};
use serde_json::json;
use sqlx::Row;

/// Validate a display name: 1 to 100 characters, no control characters.
pub fn check_display_name(name: &str) -> ApiResult<()> {
    let n = name.chars().count();
    if n == 0 || n > 100 || name.chars().any(char::is_control) || name.trim() != name {
        return Err(ApiError::invalid_body(
            "`displayName` must be 1 to 100 characters, without control characters or surrounding spaces",
        ));
    }
    Ok(())
}

/// Insert a user with a fresh one-time password (inside `tx`). Returns the row and the password.
pub async fn insert_user(
    tx: &mut db::Tx,
    params: auth::PasswordParams,
    login: &str,
    display_name: &str,
    platform_operator: bool,
) -> ApiResult<(UserRow, String)> {
    if !ferro_wire::is_valid_login(login) {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            "`login` must be email-like (local@domain), lowercase, at most 254 characters",
        ));
    }
    check_display_name(display_name)?;
    let otp = auth::new_one_time_password()?;
    let hash = auth::hash_password(params, otp.clone()).await?;
    let user = UserRow {
        id: UserId::new(),
        login: login.to_string(),
        display_name: display_name.to_string(),
        password_hash: hash,
        password_change_required: true,
        platform_operator,
        created_at: db::now(),
    };
    sqlx::query(
        "INSERT INTO users (id, login, display_name, password_hash, password_change_required, \
         platform_operator, created_at) VALUES ($1, $2, $3, $4, 1, $5, $6)",
    )
    .bind(user.id.to_string())
    .bind(&user.login)
    .bind(&user.display_name)
    .bind(&user.password_hash)
    .bind(db::b2i(platform_operator))
    .bind(user.created_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        ApiError::from(e).on_unique(
            "a user with this login already exists; give them a role with POST /v1/tenants/{tenantId}/roles",
        )
    })?;
    Ok((user, otp))
}

/// Create a user with a one-time password (shown once in the response).
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = CreatedUser), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "Login taken", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<CreatedUser>)> {
    if req.platform_operator {
        caller.require_operator()?;
    }
    let mut tx = state.db.begin_write().await?;
    let tenant = match (req.tenant_id, req.role) {
        (Some(t), Some(role)) => {
            let t = t.to_string();
            auth::require_role(&mut *tx, &caller, &t, Role::Administrator).await?;
            db::lock_tenant(&mut tx, &t).await?;
            Some((t, role))
        }
        (None, None) => {
            caller.require_operator().map_err(|_| {
                ApiError::new(
                    ErrorCode::Forbidden,
                    "only platform operators create users without a tenant; give `tenantId` and `role`",
                )
            })?;
            None
        }
        _ => {
            return Err(ApiError::invalid_body(
                "give both `tenantId` and `role`, or neither",
            ));
        }
    };
    let (user, otp) = insert_user(
        &mut tx,
        state.config.password_params,
        &req.login,
        &req.display_name,
        req.platform_operator,
    )
    .await?;
    let uid = user.id.to_string();
    if let Some((t, role)) = &tenant {
        sqlx::query("INSERT INTO tenant_roles (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
            .bind(t)
            .bind(&uid)
            .bind(role.as_str())
            .bind(db::now())
            .execute(&mut *tx)
            .await?;
    }
    db::audit(
        &mut tx,
        tenant.as_ref().map(|t| t.0.as_str()),
        Some(&caller.uid()),
        "user.create",
        "user",
        &uid,
        json!({ "login": user.login, "role": tenant.as_ref().map(|t| t.1), "platformOperator": req.platform_operator }),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: user.to_wire(),
            one_time_password: otp,
        }),
    ))
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
    let rows = sqlx::query(
        "SELECT u.id, u.login, u.display_name, u.password_hash, u.password_change_required, \
         u.platform_operator, u.created_at FROM users u WHERE u.id > $1 ORDER BY u.id LIMIT $2",
    )
    .bind(&page.after)
    .bind(page.fetch())
    .fetch_all(state.db.pool())
    .await?;
    let items = rows
        .iter()
        .map(|r| UserRow::from_row(&r.into()).map(|u| u.to_wire()))
        .collect::<ApiResult<Vec<_>>>()?;
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
    let admin_of = sqlx::query(
        "SELECT tenant_id FROM tenant_roles WHERE user_id = $1 AND role = 'Administrator'",
    )
    .bind(&uid)
    .fetch_all(&mut *tx)
    .await?;
    for row in &admin_of {
        let t: String = row.try_get("tenant_id")?;
        db::lock_tenant(&mut tx, &t).await?;
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM tenant_roles WHERE tenant_id = $1 AND role = 'Administrator'",
        )
        .bind(&t)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if n <= 1 {
            return Err(ApiError::new(
                ErrorCode::LastAdministrator,
                format!(
                    "the user is the last Administrator of tenant {t}; add another Administrator first"
                ),
            ));
        }
    }
    let r = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(&uid)
        .execute(&mut *tx)
        .await?;
    if r.rows_affected() != 1 {
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
