//! `/v1/tenants`: tenants, their users' roles, and their audit log.

use crate::auth::parse_role;
use crate::auth::{self, Caller, parse_id};
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
use sqlx::Row;

fn tenant_from_row(r: &sqlx::any::AnyRow) -> ApiResult<Tenant> {
    Ok(Tenant {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        name: r.try_get("name")?,
        created_at: db::ts(r.try_get("created_at")?),
        role: parse_role(&r.try_get::<String, _>("role")?)?,
    })
}

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
    let prepared = crate::hooks::prepare_tenant(&state, id, &req.name).await?;
    let mut tx = state.db.begin_write().await?;
    if !operator {
        // Inside the write transaction: concurrent creations by one user are counted in turn
        // (SQLite has one writer; on PostgreSQL the user's row is locked first).
        sqlx::query("UPDATE users SET login = login WHERE id = $1")
            .bind(&uid)
            .execute(&mut *tx)
            .await?;
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM tenant_roles WHERE user_id = $1 AND role = 'Administrator'",
        )
        .bind(&uid)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
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
    sqlx::query(
        "INSERT INTO tenants (id, name, name_key, version, created_at) VALUES ($1, $2, $3, 0, $4)",
    )
    .bind(&tid)
    .bind(&req.name)
    .bind(req.name.to_lowercase())
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| ApiError::from(e).on_unique(name_taken()))?;
    sqlx::query("INSERT INTO tenant_roles (tenant_id, user_id, role, created_at) VALUES ($1, $2, 'Administrator', $3)")
        .bind(&tid)
        .bind(&uid)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    crate::hooks::tenant_created(&mut tx, &prepared).await?;
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
    let rows = sqlx::query(
        "SELECT t.id, t.name, t.created_at, r.role FROM tenants t \
         JOIN tenant_roles r ON r.tenant_id = t.id AND r.user_id = $1 \
         WHERE t.id > $2 ORDER BY t.id LIMIT $3",
    )
    .bind(caller.uid())
    .bind(&page.after)
    .bind(page.fetch())
    .fetch_all(state.db.pool())
    .await?;
    let items = rows
        .iter()
        .map(tenant_from_row)
        .collect::<ApiResult<Vec<_>>>()?
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
    let row = sqlx::query(
        "SELECT t.id, t.name, t.created_at, r.role FROM tenants t \
         JOIN tenant_roles r ON r.tenant_id = t.id AND r.user_id = $1 WHERE t.id = $2",
    )
    .bind(caller.uid())
    .bind(tid)
    .fetch_optional(state.db.pool())
    .await?
    .ok_or_else(|| ApiError::not_found("tenant"))?;
    let mut tenant = tenant_from_row(&row)?;
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
    let tid = path_id::<TenantId>(&tenant_id, "tenantId")?.to_string();
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
    let tid = path_id::<TenantId>(&tenant_id, "tenantId")?.to_string();
    let mut tx = state.db.begin_write().await?;
    auth::require_role(&mut *tx, &caller, &tid, Role::Administrator).await?;
    if let Some(name) = &req.name {
        if !ferro_wire::is_valid_name(name) {
            return Err(ApiError::invalid_name("name"));
        }
        sqlx::query(
            "UPDATE tenants SET name = $1, name_key = $2, version = version + 1 WHERE id = $3",
        )
        .bind(name)
        .bind(name.to_lowercase())
        .bind(&tid)
        .execute(&mut *tx)
        .await
        .map_err(|e| ApiError::from(e).on_unique(name_taken()))?;
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

fn assignment_from_row(r: &sqlx::any::AnyRow) -> ApiResult<RoleAssignment> {
    Ok(RoleAssignment {
        user_id: parse_id(&r.try_get::<String, _>("id")?)?,
        login: r.try_get("login")?,
        display_name: r.try_get("display_name")?,
        role: parse_role(&r.try_get::<String, _>("role")?)?,
    })
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
    let tid = path_id::<TenantId>(&tenant_id, "tenantId")?.to_string();
    auth::require_role(state.db.pool(), &caller, &tid, Role::Administrator).await?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let rows = sqlx::query(
        "SELECT u.id, u.login, u.display_name, r.role FROM tenant_roles r JOIN users u ON u.id = r.user_id \
         WHERE r.tenant_id = $1 AND u.id > $2 ORDER BY u.id LIMIT $3",
    )
    .bind(&tid)
    .bind(&page.after)
    .bind(page.fetch())
    .fetch_all(state.db.pool())
    .await?;
    let items = rows
        .iter()
        .map(assignment_from_row)
        .collect::<ApiResult<Vec<_>>>()?;
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
    let tid = path_id::<TenantId>(&tenant_id, "tenantId")?.to_string();
    let uid = path_id::<UserId>(&user_id, "userId")?.to_string();
    let mut tx = state.db.begin_write().await?;
    auth::require_role(&mut *tx, &caller, &tid, Role::Administrator).await?;
    db::lock_tenant(&mut tx, &tid).await?;
    let row = sqlx::query(
        "SELECT u.id, u.login, u.display_name, r.role FROM tenant_roles r JOIN users u ON u.id = r.user_id \
         WHERE r.tenant_id = $1 AND r.user_id = $2",
    )
    .bind(&tid)
    .bind(&uid)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("role assignment"))?;
    let mut assignment = assignment_from_row(&row)?;
    let old = assignment.role;
    if old == Role::Administrator && req.role != Role::Administrator {
        require_another_administrator(&mut tx, &tid).await?;
    }
    sqlx::query("UPDATE tenant_roles SET role = $1 WHERE tenant_id = $2 AND user_id = $3")
        .bind(req.role.as_str())
        .bind(&tid)
        .bind(&uid)
        .execute(&mut *tx)
        .await?;
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
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM tenant_roles WHERE tenant_id = $1 AND role = 'Administrator'",
    )
    .bind(tid)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
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
    let tid = path_id::<TenantId>(&tenant_id, "tenantId")?.to_string();
    let uid = path_id::<UserId>(&user_id, "userId")?.to_string();
    auth::require_role(state.db.pool(), &caller, &tid, Role::Administrator).await?;
    let row = sqlx::query(
        "SELECT u.id, u.login, u.display_name, r.role FROM tenant_roles r JOIN users u ON u.id = r.user_id \
         WHERE r.tenant_id = $1 AND r.user_id = $2",
    )
    .bind(&tid)
    .bind(&uid)
    .fetch_optional(state.db.pool())
    .await?
    .ok_or_else(|| ApiError::not_found("role assignment"))?;
    Ok(Json(assignment_from_row(&row)?))
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
    let tid = path_id::<TenantId>(&tenant_id, "tenantId")?.to_string();
    let uid = path_id::<UserId>(&user_id, "userId")?.to_string();
    let mut tx = state.db.begin_write().await?;
    auth::require_role(&mut *tx, &caller, &tid, Role::Administrator).await?;
    db::lock_tenant(&mut tx, &tid).await?;
    let role = sqlx::query("SELECT role FROM tenant_roles WHERE tenant_id = $1 AND user_id = $2")
        .bind(&tid)
        .bind(&uid)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found("role assignment"))?;
    let role = parse_role(&role.try_get::<String, _>("role")?)?;
    if role == Role::Administrator {
        require_another_administrator(&mut tx, &tid).await?;
    }
    sqlx::query("DELETE FROM tenant_roles WHERE tenant_id = $1 AND user_id = $2")
        .bind(&tid)
        .bind(&uid)
        .execute(&mut *tx)
        .await?;
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
    let tid = path_id::<TenantId>(&tenant_id, "tenantId")?.to_string();
    auth::require_role(state.db.pool(), &caller, &tid, Role::Administrator).await?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let rows = sqlx::query(
        "SELECT id, at, actor, action, object_type, object_id, details FROM audit_log \
         WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(&tid)
    .bind(&page.after)
    .bind(page.fetch())
    .fetch_all(state.db.pool())
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            let actor: Option<String> = r.try_get("actor")?;
            let details: String = r.try_get("details")?;
            Ok(AuditEvent {
                id: parse_id(&r.try_get::<String, _>("id")?)?,
                at: db::ts(r.try_get("at")?),
                actor: actor.as_deref().map(parse_id).transpose()?,
                action: r.try_get("action")?,
                object_type: r.try_get("object_type")?,
                object_id: r.try_get("object_id")?,
                details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(page.finish(items, |e| e.id.to_string())))
}
