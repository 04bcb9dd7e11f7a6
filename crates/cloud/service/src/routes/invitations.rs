//! Invitations: the only way an account gains a role in a tenant it does not administer
//! (docs/service/accounts.md).
//!
//! A tenant Administrator creates an invitation (a role, optionally one login name, a life of
//! at most 7 days) and receives its code once; the service keeps only the code's SHA-256. The
//! person accepts it while logged in with their own credentials. So a role is never granted to
//! whoever happens to hold a login name (login names prove nothing: anyone an operator lets in
//! may have chosen any of them), only to the account that presents the code.

use crate::auth;
use crate::auth::parse_role;
use crate::auth::{Caller, parse_id};
use crate::authz;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery, path_id};
use crate::page::PageReq;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferro_wire::{
    AcceptInvitationRequest, CreateInvitationRequest, CreatedInvitation, ErrorBody, ErrorCode,
    Invitation, InvitationId, MAX_INVITATION_DAYS, Page, PageQuery, Role, TenantId, TenantRole,
};
use serde_json::json;
use sqlx::Row;

/// Prefix of invitation codes (secret scanners can look for `fsi_` + 43 base64url).
pub const INVITATION_PREFIX: &str = "fsi_";

const COLUMNS: &str = "id, tenant_id, role, login, created_by, created_at, expires_at";

fn invitation_from_row(r: &sqlx::any::AnyRow) -> ApiResult<Invitation> {
    Ok(Invitation {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        tenant_id: parse_id(&r.try_get::<String, _>("tenant_id")?)?,
        role: parse_role(&r.try_get::<String, _>("role")?)?,
        login: r.try_get("login")?,
        created_by: r
            .try_get::<Option<String>, _>("created_by")?
            .as_deref()
            .map(parse_id)
            .transpose()?,
        created_at: db::ts(r.try_get("created_at")?),
        expires_at: db::ts(r.try_get("expires_at")?),
    })
}

/// The one answer for every code that cannot be accepted: unknown, used, revoked, expired,
/// restricted to another login (no oracle about which).
fn no_such_invitation() -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        "no open invitation has this code (it is wrong, used, revoked, expired, or for another \
         login); ask the tenant's Administrator for a new one",
    )
}

/// Invite someone to a role in the tenant (Administrator). The code is returned once: hand it
/// to the person by a channel you trust; they accept it with `POST /v1/invitations/accept`.
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/invitations", tag = "roles", request_body = CreateInvitationRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID")),
    responses((status = 201, body = CreatedInvitation), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    JsonBody(req): JsonBody<CreateInvitationRequest>,
) -> ApiResult<(StatusCode, Json<CreatedInvitation>)> {
    let tenant: TenantId = path_id(&tenant_id, "tenantId")?;
    let tid = tenant.to_string();
    if let Some(login) = &req.login
        && !ferro_wire::is_valid_login(login)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            "`login` must be email-like (local@domain), lowercase, at most 254 characters",
        ));
    }
    let days = req.expires_in_days.unwrap_or(MAX_INVITATION_DAYS);
    if !(1..=MAX_INVITATION_DAYS).contains(&days) {
        return Err(ApiError::invalid_body(format!(
            "`expiresInDays` must be 1 to {MAX_INVITATION_DAYS}"
        )));
    }
    let code = auth::new_token(INVITATION_PREFIX)?;
    let now = db::now();
    let invitation = Invitation {
        id: InvitationId::new(),
        tenant_id: tenant,
        role: req.role,
        login: req.login,
        created_by: Some(caller.user.id),
        created_at: db::ts(now),
        expires_at: db::ts(now + i64::from(days) * 86_400),
    };
    let mut tx = state.db.begin_write().await?;
    authz::authorize(&mut *tx, &caller, tenant, Role::Administrator).await?;
    db::lock_tenant(&mut tx, &tid).await?;
    sqlx::query(
        "INSERT INTO tenant_invitations (id, tenant_id, role, login, code_hash, created_by, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(invitation.id.to_string())
    .bind(&tid)
    .bind(invitation.role.as_str())
    .bind(invitation.login.as_deref())
    .bind(auth::token_hash(&code))
    .bind(caller.uid())
    .bind(now)
    .bind(now + i64::from(days) * 86_400)
    .execute(&mut *tx)
    .await?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "invitation.create",
        "invitation",
        &invitation.id.to_string(),
        json!({ "role": invitation.role, "login": invitation.login, "expiresInDays": days }),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvitation { invitation, code }),
    ))
}

/// The tenant's open invitations (Administrator): not accepted, not revoked, not expired.
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/invitations", tag = "roles",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"), PageQuery),
    responses((status = 200, body = Page<Invitation>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_invitations(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    StrictQuery(q): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<Invitation>>> {
    let t = path_id::<TenantId>(&tenant_id, "tenantId")?;
    let tid = t.to_string();
    authz::authorize(state.db.pool(), &caller, t, Role::Administrator).await?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tenant_invitations WHERE tenant_id = $1 AND accepted_at IS NULL \
         AND revoked_at IS NULL AND expires_at > $2 AND id > $3 ORDER BY id LIMIT $4"
    )))
    .bind(&tid)
    .bind(db::now())
    .bind(&page.after)
    .bind(page.fetch())
    .fetch_all(state.db.pool())
    .await?;
    let items = rows
        .iter()
        .map(invitation_from_row)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(page.finish(items, |i| i.id.to_string())))
}

/// Revoke an open invitation (Administrator); its code stops working at once.
#[utoipa::path(delete, path = "/v1/tenants/{tenantId}/invitations/{invitationId}", tag = "roles",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("invitationId" = String, Path, format = Uuid, description = "Invitation ID")),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, invitation_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let t = path_id::<TenantId>(&tenant_id, "tenantId")?;
    let tid = t.to_string();
    let id = path_id::<InvitationId>(&invitation_id, "invitationId")?.to_string();
    let mut tx = state.db.begin_write().await?;
    authz::authorize(&mut *tx, &caller, t, Role::Administrator).await?;
    let r = sqlx::query(
        "UPDATE tenant_invitations SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 \
         AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(db::now())
    .bind(&id)
    .bind(&tid)
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() != 1 {
        return Err(ApiError::not_found("open invitation"));
    }
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "invitation.revoke",
        "invitation",
        &id,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accept an invitation as the logged-in caller: the caller receives its role in its tenant
/// (one use; an account that already holds a role there keeps the stronger of the two). Needs
/// a session or an unscoped API token of the account itself.
#[utoipa::path(post, path = "/v1/invitations/accept", tag = "roles", request_body = AcceptInvitationRequest,
    responses((status = 200, description = "The role now held", body = TenantRole), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No open invitation has this code", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<AcceptInvitationRequest>,
) -> ApiResult<Json<TenantRole>> {
    if caller.scope.is_narrowed() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "an API token limited to a tenant or a role cannot accept invitations; log in",
        ));
    }
    if !req.code.starts_with(INVITATION_PREFIX) || req.code.len() > 100 {
        return Err(no_such_invitation());
    }
    let now = db::now();
    let uid = caller.uid();
    let mut tx = state.db.begin_write().await?;
    // Looked up by hash (an index cannot leak the code); the row is then claimed by a
    // conditional UPDATE, so of two concurrent acceptances exactly one succeeds.
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tenant_invitations WHERE code_hash = $1 AND accepted_at IS NULL \
         AND revoked_at IS NULL AND expires_at > $2"
    )))
    .bind(auth::token_hash(&req.code))
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(no_such_invitation)?;
    let invitation = invitation_from_row(&row)?;
    if invitation
        .login
        .as_deref()
        .is_some_and(|l| l != caller.user.login)
    {
        return Err(no_such_invitation());
    }
    let tid = invitation.tenant_id.to_string();
    db::lock_tenant(&mut tx, &tid).await?;
    let claimed = sqlx::query(
        "UPDATE tenant_invitations SET accepted_at = $1, accepted_by = $2 WHERE id = $3 \
         AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(&uid)
    .bind(invitation.id.to_string())
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() != 1 {
        return Err(no_such_invitation());
    }
    let current =
        sqlx::query("SELECT role FROM tenant_roles WHERE tenant_id = $1 AND user_id = $2")
            .bind(&tid)
            .bind(&uid)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| parse_role(&r.try_get::<String, _>("role")?))
            .transpose()?;
    let role = current.map_or(invitation.role, |c| c.max(invitation.role));
    match current {
        None => {
            sqlx::query(
                "INSERT INTO tenant_roles (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&tid)
            .bind(&uid)
            .bind(role.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        Some(c) if c != role => {
            sqlx::query("UPDATE tenant_roles SET role = $1 WHERE tenant_id = $2 AND user_id = $3")
                .bind(role.as_str())
                .bind(&tid)
                .bind(&uid)
                .execute(&mut *tx)
                .await?;
        }
        Some(_) => {}
    }
    let name: String = sqlx::query("SELECT name FROM tenants WHERE id = $1")
        .bind(&tid)
        .fetch_one(&mut *tx)
        .await?
        .try_get("name")?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&uid),
        "invitation.accept",
        "invitation",
        &invitation.id.to_string(),
        json!({ "role": role, "login": caller.user.login }),
    )
    .await?;
    tx.commit().await?;
    state.auth_cache.invalidate_user(&uid);
    Ok(Json(TenantRole {
        tenant_id: invitation.tenant_id,
        tenant_name: name,
        role,
    }))
}
