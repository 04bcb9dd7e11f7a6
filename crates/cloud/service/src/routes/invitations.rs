//! Invitations: the only way an account gains a role in a tenant it does not administer
//! (docs/service/accounts.md).
//!
//! A tenant Administrator creates an invitation (a role, optionally one login name, a life of
//! at most 7 days) and receives its code once; the service keeps only the code's SHA-256. The
//! person accepts it while logged in with their own credentials. So a role is never granted to
//! whoever happens to hold a login name (login names prove nothing: anyone an operator lets in
//! may have chosen any of them), only to the account that presents the code. The rules are
//! `crate::invitations`'s, the rows `crate::datastore::invitations`'s.

use crate::auth::{self, Caller};
use crate::authz;
use crate::datastore::{invitations, roles, tenants};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery, path_id};
use crate::invitations::{
    Grant, INVITATION_PREFIX, expires_at, grant, life_days, may_accept, no_such_invitation,
    plausible_code,
};
use crate::page::PageReq;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferro_wire::{
    AcceptInvitationRequest, CreateInvitationRequest, CreatedInvitation, ErrorBody, ErrorCode,
    Invitation, InvitationId, Page, PageQuery, Role, TenantId, TenantRole,
};
use serde_json::json;

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
    let days = life_days(req.expires_in_days)?;
    let code = auth::new_token(INVITATION_PREFIX)?;
    let now = db::now();
    let invitation = Invitation {
        id: InvitationId::new(),
        tenant_id: tenant,
        role: req.role,
        login: req.login,
        created_by: Some(caller.user.id),
        created_at: db::ts(now),
        expires_at: db::ts(expires_at(now, days)),
    };
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &caller, tenant, Role::Administrator).await?;
    db::lock_tenant(&mut tx, &tid).await?;
    invitations::insert(&mut tx, &scope, &invitation, &auth::token_hash(&code)).await?;
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
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Administrator).await?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let items =
        invitations::list_open(&state.db, &scope, db::now(), &page.after, page.fetch()).await?;
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
    let id = path_id::<InvitationId>(&invitation_id, "invitationId")?;
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &caller, t, Role::Administrator).await?;
    if !invitations::revoke(&mut tx, &scope, id, db::now()).await? {
        return Err(ApiError::not_found("open invitation"));
    }
    db::audit(
        &mut tx,
        Some(scope.tenant_str()),
        Some(&caller.uid()),
        "invitation.revoke",
        "invitation",
        &id.to_string(),
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
    if !plausible_code(&req.code) {
        return Err(no_such_invitation());
    }
    let now = db::now();
    let uid = caller.uid();
    let mut tx = state.db.begin_write().await?;
    // Looked up by hash (an index cannot leak the code); the row is then claimed by a
    // conditional UPDATE, so of two concurrent acceptances exactly one succeeds.
    let invitation = invitations::open_by_code_in(&mut tx, &auth::token_hash(&req.code), now)
        .await?
        .ok_or_else(no_such_invitation)?;
    if !may_accept(&invitation, &caller.user.login) {
        return Err(no_such_invitation());
    }
    let tid = invitation.tenant_id.to_string();
    db::lock_tenant(&mut tx, &tid).await?;
    if !invitations::claim(&mut tx, invitation.id, caller.user.id, now).await? {
        return Err(no_such_invitation());
    }
    let current = roles::get_in(&mut tx, &tid, &uid).await?.map(|a| a.role);
    let granted = grant(current, invitation.role);
    match granted {
        Grant::Give(role) => roles::insert(&mut tx, &tid, &uid, role, now).await?,
        Grant::Raise(role) => roles::set(&mut tx, &tid, &uid, role).await?,
        Grant::Keep(_) => {}
    }
    let role = granted.role();
    let name = tenants::name_in(&mut tx, &tid)
        .await?
        .ok_or_else(|| ApiError::Internal("an invitation of a tenant that is gone".into()))?;
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
