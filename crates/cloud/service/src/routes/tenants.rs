//! `/v1/tenants`: tenants, their users' roles, and their audit log.

use crate::auth::Caller;
use crate::authz;
use crate::datastore::{audit, roles, tenants};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery, path_id};
use crate::page::PageReq;
use crate::state::{AppState, TenantCreation};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferro_wire::{
    AuditEvent, CreateTenantRequest, ErrorBody, ErrorCode, Page, PageQuery, Role, RoleAssignment,
    Tenant, TenantId, UpdateRoleRequest, UpdateTenantRequest, UserId,
};
use serde_json::json;

fn name_taken() -> &'static str {
    "a tenant with this name already exists; choose another name"
}

/// Create a tenant; the caller becomes its Administrator. Who may is the operator's setting
/// (`tenant_creation` in `ferro-service.toml`): platform operators only by default; with
/// `any_user`, each user up to `max_tenants_per_user` tenants they administer.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenantRequest,
    responses((status = 201, body = Tenant), (status = 401, body = ErrorBody),
        (status = 403, description = "Only platform operators create tenants here", body = ErrorBody),
        (status = 409, description = "Name taken, or quota_exceeded", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_tenant(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateTenantRequest>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    let operator = caller.user.platform_operator;
    if state.config.tenant_creation == TenantCreation::Operators && !operator {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "on this platform only platform operators create tenants; ask one to create it and \
             invite you as its Administrator",
        ));
    }
    if caller.scope.is_narrowed() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "an API token limited to a tenant or a role cannot create tenants",
        ));
    }
    if !ferro_wire::is_valid_name(&req.name) {
        return Err(ApiError::invalid_name("name"));
    }
    let id = TenantId::new();
    let tid = id.to_string();
    let now = db::now();
    let uid = caller.uid();
    let prepared = crate::tenant_keys::prepare_tenant(&state, id, &req.name).await?;
    let mut tx = state.db.begin_write().await?;
    if !operator {
        // Inside the write transaction: concurrent creations by one user are counted in turn
        // (SQLite has one writer; on PostgreSQL the user's row is locked first).
        let n = tenants::administered_by_locked(&mut tx, &uid).await?;
        let max = i64::from(state.config.max_tenants_per_user);
        if n >= max {
            return Err(ApiError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "you administer {n} tenants, the most this platform allows ({max}); delete \
                     or hand over one, or ask a platform operator"
                ),
            ));
        }
    }
    tenants::insert(&mut tx, &tid, &req.name, now)
        .await
        .map_err(|e| e.on_unique(name_taken()))?;
    roles::insert(&mut tx, &tid, &uid, Role::Administrator, now).await?;
    crate::tenant_keys::tenant_created(&mut tx, &prepared).await?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&uid),
        "tenant.create",
        "tenant",
        &tid,
        json!({ "name": req.name }),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(Tenant {
            id,
            name: req.name,
            created_at: db::ts(now),
            role: Role::Administrator,
        }),
    ))
}

/// The tenants where the caller holds a role.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(PageQuery),
    responses((status = 200, body = Page<Tenant>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<Tenant>>> {
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let items = tenants::list_of_user(&state.db, &caller.uid(), &page.after, page.fetch())
        .await?
        .into_iter()
        // A token narrowed to a tenant or role lists what it reaches, with the role it acts with.
        .filter_map(|mut t| {
            t.role = caller
                .scope
                .effective_role(&t.id.to_string(), Some(t.role))?;
            Some(t)
        })
        .collect();
    Ok(Json(page.finish(items, |t| t.id.to_string())))
}

async fn load_tenant(state: &AppState, caller: &Caller, tid: &str) -> ApiResult<Tenant> {
    let mut tenant = tenants::get_of_user(&state.db, &caller.uid(), tid)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    // As the token's scope allows: outside its tenant, as missing; its role at most.
    tenant.role = caller
        .scope
        .effective_role(tid, Some(tenant.role))
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(tenant)
}

/// One tenant (any role).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}", tag = "tenants",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID")),
    responses((status = 200, body = Tenant), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
) -> ApiResult<Json<Tenant>> {
    let t = path_id::<TenantId>(&tenant_id, "tenantId")?;
    let tid = t.to_string();
    Ok(Json(load_tenant(&state, &caller, &tid).await?))
}

/// Rename a tenant (Administrator).
#[utoipa::path(patch, path = "/v1/tenants/{tenantId}", tag = "tenants", request_body = UpdateTenantRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID")),
    responses((status = 200, body = Tenant), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    JsonBody(req): JsonBody<UpdateTenantRequest>,
) -> ApiResult<Json<Tenant>> {
    let t = path_id::<TenantId>(&tenant_id, "tenantId")?;
    let tid = t.to_string();
    let mut tx = state.db.begin_write().await?;
    authz::authorize(&mut *tx, &caller, t, Role::Administrator).await?;
    if let Some(name) = &req.name {
        if !ferro_wire::is_valid_name(name) {
            return Err(ApiError::invalid_name("name"));
        }
        tenants::rename(&mut tx, &tid, name)
            .await
            .map_err(|e| e.on_unique(name_taken()))?;
    }
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "tenant.update",
        "tenant",
        &tid,
        json!({ "name": req.name }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(load_tenant(&state, &caller, &tid).await?))
}

/// The users holding a role in the tenant (Administrator).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/roles", tag = "roles",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"), PageQuery),
    responses((status = 200, body = Page<RoleAssignment>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    StrictQuery(q): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<RoleAssignment>>> {
    let t = path_id::<TenantId>(&tenant_id, "tenantId")?;
    let tid = t.to_string();
    authz::authorize(state.db.pool(), &caller, t, Role::Administrator).await?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let items = roles::list(&state.db, &tid, &page.after, page.fetch()).await?;
    Ok(Json(page.finish(items, |a| a.user_id.to_string())))
}

/// Change a member's role (Administrator). New members join by invitation
/// (`POST /v1/tenants/{tenantId}/invitations`), never by an Administrator naming a login.
/// Refused when it would leave the tenant without an Administrator.
#[utoipa::path(patch, path = "/v1/tenants/{tenantId}/roles/{userId}", tag = "roles", request_body = UpdateRoleRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("userId" = String, Path, format = Uuid, description = "User ID")),
    responses((status = 200, body = RoleAssignment), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "last_administrator", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, user_id)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdateRoleRequest>,
) -> ApiResult<Json<RoleAssignment>> {
    let t = path_id::<TenantId>(&tenant_id, "tenantId")?;
    let tid = t.to_string();
    let uid = path_id::<UserId>(&user_id, "userId")?.to_string();
    let mut tx = state.db.begin_write().await?;
    authz::authorize(&mut *tx, &caller, t, Role::Administrator).await?;
    db::lock_tenant(&mut tx, &tid).await?;
    let mut assignment = roles::get_in(&mut tx, &tid, &uid)
        .await?
        .ok_or_else(|| ApiError::not_found("role assignment"))?;
    let old = assignment.role;
    if old == Role::Administrator && req.role != Role::Administrator {
        require_another_administrator(&mut tx, &tid).await?;
    }
    roles::set(&mut tx, &tid, &uid, req.role).await?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "role.update",
        "user",
        &uid,
        json!({ "from": old, "role": req.role }),
    )
    .await?;
    tx.commit().await?;
    state.auth_cache.invalidate_user(&uid);
    assignment.role = req.role;
    Ok(Json(assignment))
}

/// 409 `last_administrator` unless the tenant has another Administrator (inside `tx`, after
/// the tenant's lock).
async fn require_another_administrator(tx: &mut db::Tx, tid: &str) -> ApiResult<()> {
    let n = roles::administrators_in(tx, tid).await?;
    if n <= 1 {
        return Err(ApiError::new(
            ErrorCode::LastAdministrator,
            "this is the tenant's last Administrator; make another user Administrator first",
        ));
    }
    Ok(())
}

/// One user's role in the tenant (Administrator).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/roles/{userId}", tag = "roles",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("userId" = String, Path, format = Uuid, description = "User ID")),
    responses((status = 200, body = RoleAssignment), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, user_id)): Path<(String, String)>,
) -> ApiResult<Json<RoleAssignment>> {
    let t = path_id::<TenantId>(&tenant_id, "tenantId")?;
    let tid = t.to_string();
    let uid = path_id::<UserId>(&user_id, "userId")?.to_string();
    authz::authorize(state.db.pool(), &caller, t, Role::Administrator).await?;
    let assignment = roles::get(&state.db, &tid, &uid)
        .await?
        .ok_or_else(|| ApiError::not_found("role assignment"))?;
    Ok(Json(assignment))
}

/// Remove a user's role in the tenant (Administrator). Refused for the last Administrator.
#[utoipa::path(delete, path = "/v1/tenants/{tenantId}/roles/{userId}", tag = "roles",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("userId" = String, Path, format = Uuid, description = "User ID")),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "last_administrator", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let t = path_id::<TenantId>(&tenant_id, "tenantId")?;
    let tid = t.to_string();
    let uid = path_id::<UserId>(&user_id, "userId")?.to_string();
    let mut tx = state.db.begin_write().await?;
    authz::authorize(&mut *tx, &caller, t, Role::Administrator).await?;
    db::lock_tenant(&mut tx, &tid).await?;
    let role = roles::get_in(&mut tx, &tid, &uid)
        .await?
        .ok_or_else(|| ApiError::not_found("role assignment"))?
        .role;
    if role == Role::Administrator {
        require_another_administrator(&mut tx, &tid).await?;
    }
    roles::delete(&mut tx, &tid, &uid).await?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "role.delete",
        "user",
        &uid,
        json!({ "role": role }),
    )
    .await?;
    tx.commit().await?;
    state.auth_cache.invalidate_user(&uid);
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's audit log, oldest first (Administrator).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/audit-log", tag = "tenants",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"), PageQuery),
    responses((status = 200, body = Page<AuditEvent>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    StrictQuery(q): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<AuditEvent>>> {
    let t = path_id::<TenantId>(&tenant_id, "tenantId")?;
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Administrator).await?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let items = audit::list(&state.db, &scope, &page.after, page.fetch()).await?;
    Ok(Json(page.finish(items, |e| e.id.to_string())))
}
