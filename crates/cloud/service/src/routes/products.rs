//! `/v1/tenants/{tenantId}/products` and `/v1/tenants/{tenantId}/device-groups`.

use crate::auth::{self, Caller, parse_id};
use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery, path_id};
use crate::page::PageReq;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferro_wire::{
    CreateDeviceGroupRequest, CreateProductRequest, DEFAULT_DEVICE_GROUPS, DeviceGroup,
    DeviceGroupId, DeviceGroupQuery, ErrorBody, ErrorCode, OsFeed, Page, PageQuery, Product,
    ProductId, Role, TenantId, UpdateDeviceGroupRequest, UpdatePolicy, UpdateProductRequest,
};
use serde_json::json;
use sqlx::Row;

const MAX_DESCRIPTION: usize = 1024;

fn check_description(d: &str) -> ApiResult<()> {
    if d.chars().count() > MAX_DESCRIPTION || d.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::invalid_body(
            "`description` must be at most 1024 characters, without control characters",
        ));
    }
    Ok(())
}

fn product_from_row(r: &sqlx::any::AnyRow) -> ApiResult<Product> {
    Ok(Product {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        tenant_id: parse_id(&r.try_get::<String, _>("tenant_id")?)?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        created_at: db::ts(r.try_get("created_at")?),
    })
}

fn group_from_row(r: &sqlx::any::AnyRow) -> ApiResult<DeviceGroup> {
    let bad = |what: &str| ApiError::Internal(format!("unknown {what} in database"));
    Ok(DeviceGroup {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        tenant_id: parse_id(&r.try_get::<String, _>("tenant_id")?)?,
        product_id: parse_id(&r.try_get::<String, _>("product_id")?)?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        os_feed: r
            .try_get::<String, _>("os_feed")?
            .parse()
            .map_err(|_| bad("OS feed"))?,
        update_policy: r
            .try_get::<String, _>("update_policy")?
            .parse()
            .map_err(|_| bad("update policy"))?,
        allow_crash_dumps_collection: r.try_get::<i64, _>("allow_crash_dumps_collection")? != 0,
        created_at: db::ts(r.try_get("created_at")?),
    })
}

async fn get_product_row<'e, E>(ex: E, tid: &str, pid: &str) -> ApiResult<Product>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT id, tenant_id, name, description, created_at FROM products WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tid)
    .bind(pid)
    .fetch_optional(ex)
    .await?
    .ok_or_else(|| ApiError::not_found("product"))?;
    product_from_row(&row)
}

async fn get_group_row<'e, E>(ex: E, tid: &str, gid: &str) -> ApiResult<DeviceGroup>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT id, tenant_id, product_id, name, description, os_feed, update_policy, \
         allow_crash_dumps_collection, created_at FROM device_groups WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tid)
    .bind(gid)
    .fetch_optional(ex)
    .await?
    .ok_or_else(|| ApiError::not_found("device group"))?;
    group_from_row(&row)
}

/// Insert a device group in `tx`; a taken name is a 409.
async fn insert_group(tx: &mut Tx, g: &DeviceGroup) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO device_groups (id, tenant_id, product_id, name, name_key, description, os_feed, \
         update_policy, allow_crash_dumps_collection, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(g.id.to_string())
    .bind(g.tenant_id.to_string())
    .bind(g.product_id.to_string())
    .bind(&g.name)
    .bind(g.name.to_lowercase())
    .bind(&g.description)
    .bind(g.os_feed.as_str())
    .bind(g.update_policy.as_str())
    .bind(db::b2i(g.allow_crash_dumps_collection))
    .bind(g.created_at.unix_timestamp())
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        ApiError::from(e).on_unique("the product already has a device group with this name; choose another")
    })?;
    Ok(())
}

/// Create the default groups the product lacks (by name). Returns how many were created.
async fn create_default_groups(
    tx: &mut Tx,
    tenant: TenantId,
    product: ProductId,
) -> ApiResult<usize> {
    let mut created = 0;
    for (name, description, os_feed, update_policy) in DEFAULT_DEVICE_GROUPS {
        let exists =
            sqlx::query("SELECT id FROM device_groups WHERE product_id = $1 AND name_key = $2")
                .bind(product.to_string())
                .bind(name.to_lowercase())
                .fetch_optional(&mut **tx)
                .await?;
        if exists.is_none() {
            let g = DeviceGroup {
                id: DeviceGroupId::new(),
                tenant_id: tenant,
                product_id: product,
                name: name.into(),
                description: description.into(),
                os_feed,
                update_policy,
                allow_crash_dumps_collection: false,
                created_at: db::ts(db::now()),
            };
            insert_group(tx, &g).await?;
            created += 1;
        }
    }
    Ok(created)
}

fn ids(tenant_id: &str) -> ApiResult<(TenantId, String)> {
    let t: TenantId = path_id(tenant_id, "tenantId")?;
    Ok((t, t.to_string()))
}

/// Create a product (Contributor), with the five default device groups unless
/// `noDefaultDeviceGroups`.
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/products", tag = "products", request_body = CreateProductRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID")),
    responses((status = 201, body = Product), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Name taken", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_product(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    JsonBody(req): JsonBody<CreateProductRequest>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    let (t, tid) = ids(&tenant_id)?;
    let mut tx = state.db.begin_write().await?;
    auth::require_role(&mut *tx, &caller, &tid, Role::Contributor).await?;
    if !ferro_wire::is_valid_name(&req.name) {
        return Err(ApiError::invalid_name("name"));
    }
    check_description(&req.description)?;
    let p = Product {
        id: ProductId::new(),
        tenant_id: t,
        name: req.name,
        description: req.description,
        created_at: db::ts(db::now()),
    };
    let pid = p.id.to_string();
    sqlx::query(
        "INSERT INTO products (id, tenant_id, name, name_key, description, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&pid)
    .bind(&tid)
    .bind(&p.name)
    .bind(p.name.to_lowercase())
    .bind(&p.description)
    .bind(p.created_at.unix_timestamp())
    .execute(&mut *tx)
    .await
    .map_err(|e| ApiError::from(e).on_unique("the tenant already has a product with this name; choose another"))?;
    let groups = if req.no_default_device_groups {
        0
    } else {
        create_default_groups(&mut tx, t, p.id).await?
    };
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "product.create",
        "product",
        &pid,
        json!({ "name": p.name, "defaultDeviceGroups": groups }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// The tenant's products (any role).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/products", tag = "products",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"), PageQuery),
    responses((status = 200, body = Page<Product>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_products(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    StrictQuery(q): StrictQuery<PageQuery>,
) -> ApiResult<Json<Page<Product>>> {
    let (_, tid) = ids(&tenant_id)?;
    auth::require_role(state.db.pool(), &caller, &tid, Role::Reader).await?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let rows = sqlx::query(
        "SELECT id, tenant_id, name, description, created_at FROM products \
         WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(&tid)
    .bind(&page.after)
    .bind(page.fetch())
    .fetch_all(state.db.pool())
    .await?;
    let items = rows
        .iter()
        .map(product_from_row)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(page.finish(items, |p| p.id.to_string())))
}

/// One product (any role).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/products/{productId}", tag = "products",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("productId" = String, Path, format = Uuid, description = "Product ID")),
    responses((status = 200, body = Product), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_product(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, product_id)): Path<(String, String)>,
) -> ApiResult<Json<Product>> {
    let (_, tid) = ids(&tenant_id)?;
    let pid = path_id::<ProductId>(&product_id, "productId")?.to_string();
    auth::require_role(state.db.pool(), &caller, &tid, Role::Reader).await?;
    Ok(Json(get_product_row(state.db.pool(), &tid, &pid).await?))
}

/// Change a product's name or description (Contributor).
#[utoipa::path(patch, path = "/v1/tenants/{tenantId}/products/{productId}", tag = "products", request_body = UpdateProductRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("productId" = String, Path, format = Uuid, description = "Product ID")),
    responses((status = 200, body = Product), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_product(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, product_id)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdateProductRequest>,
) -> ApiResult<Json<Product>> {
    let (_, tid) = ids(&tenant_id)?;
    let pid = path_id::<ProductId>(&product_id, "productId")?.to_string();
    let mut tx = state.db.begin_write().await?;
    auth::require_role(&mut *tx, &caller, &tid, Role::Contributor).await?;
    let mut p = get_product_row(&mut *tx, &tid, &pid).await?;
    if let Some(name) = req.name {
        if !ferro_wire::is_valid_name(&name) {
            return Err(ApiError::invalid_name("name"));
        }
        p.name = name;
    }
    if let Some(d) = req.description {
        check_description(&d)?;
        p.description = d;
    }
    sqlx::query("UPDATE products SET name = $1, name_key = $2, description = $3 WHERE id = $4")
        .bind(&p.name)
        .bind(p.name.to_lowercase())
        .bind(&p.description)
        .bind(&pid)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            ApiError::from(e)
                .on_unique("the tenant already has a product with this name; choose another")
        })?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "product.update",
        "product",
        &pid,
        json!({ "name": p.name }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(p))
}

/// Delete a product and its device groups (Contributor). Refused while any of its groups has
/// devices.
#[utoipa::path(delete, path = "/v1/tenants/{tenantId}/products/{productId}", tag = "products",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("productId" = String, Path, format = Uuid, description = "Product ID")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "not_empty: its groups have devices", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_product(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, product_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (_, tid) = ids(&tenant_id)?;
    let pid = path_id::<ProductId>(&product_id, "productId")?.to_string();
    let mut tx = state.db.begin_write().await?;
    auth::require_role(&mut *tx, &caller, &tid, Role::Contributor).await?;
    db::lock_tenant(&mut tx, &tid).await?;
    let p = get_product_row(&mut *tx, &tid, &pid).await?;
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM devices d JOIN device_groups g ON g.id = d.device_group_id WHERE g.product_id = $1",
    )
    .bind(&pid)
    .fetch_one(&mut *tx)
    .await?
    .try_get("n")?;
    if n > 0 {
        return Err(ApiError::new(
            ErrorCode::NotEmpty,
            format!(
                "the product's device groups hold {n} devices; move them to another product first"
            ),
        ));
    }
    sqlx::query("DELETE FROM device_groups WHERE product_id = $1")
        .bind(&pid)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM products WHERE id = $1")
        .bind(&pid)
        .execute(&mut *tx)
        .await?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "product.delete",
        "product",
        &pid,
        json!({ "name": p.name }),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create the default device groups the product lacks (Contributor); returns all its groups.
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/products/{productId}/device-groups/create-defaults", tag = "products",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("productId" = String, Path, format = Uuid, description = "Product ID")),
    responses((status = 200, body = Vec<DeviceGroup>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_defaults(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, product_id)): Path<(String, String)>,
) -> ApiResult<Json<Vec<DeviceGroup>>> {
    let (t, tid) = ids(&tenant_id)?;
    let p: ProductId = path_id(&product_id, "productId")?;
    let pid = p.to_string();
    let mut tx = state.db.begin_write().await?;
    auth::require_role(&mut *tx, &caller, &tid, Role::Contributor).await?;
    get_product_row(&mut *tx, &tid, &pid).await?;
    let n = create_default_groups(&mut tx, t, p).await?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "product.create_default_groups",
        "product",
        &pid,
        json!({ "created": n }),
    )
    .await?;
    let rows = sqlx::query(
        "SELECT id, tenant_id, product_id, name, description, os_feed, update_policy, \
         allow_crash_dumps_collection, created_at FROM device_groups WHERE product_id = $1 ORDER BY id",
    )
    .bind(&pid)
    .fetch_all(&mut *tx)
    .await?;
    let groups = rows
        .iter()
        .map(group_from_row)
        .collect::<ApiResult<Vec<_>>>()?;
    tx.commit().await?;
    Ok(Json(groups))
}

/// Create a device group (Contributor).
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/device-groups", tag = "device-groups", request_body = CreateDeviceGroupRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID")),
    responses((status = 201, body = DeviceGroup), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such tenant or product", body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    JsonBody(req): JsonBody<CreateDeviceGroupRequest>,
) -> ApiResult<(StatusCode, Json<DeviceGroup>)> {
    let (t, tid) = ids(&tenant_id)?;
    let mut tx = state.db.begin_write().await?;
    auth::require_role(&mut *tx, &caller, &tid, Role::Contributor).await?;
    if !ferro_wire::is_valid_name(&req.name) {
        return Err(ApiError::invalid_name("name"));
    }
    check_description(&req.description)?;
    get_product_row(&mut *tx, &tid, &req.product_id.to_string()).await?;
    let g = DeviceGroup {
        id: DeviceGroupId::new(),
        tenant_id: t,
        product_id: req.product_id,
        name: req.name,
        description: req.description,
        os_feed: req.os_feed.unwrap_or(OsFeed::Retail),
        update_policy: req.update_policy.unwrap_or(UpdatePolicy::UpdateAll),
        allow_crash_dumps_collection: req.allow_crash_dumps_collection,
        created_at: db::ts(db::now()),
    };
    insert_group(&mut tx, &g).await?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "device_group.create",
        "device_group",
        &g.id.to_string(),
        json!({ "name": g.name, "productId": g.product_id }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(g)))
}

/// The tenant's device groups, optionally of one product (any role).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/device-groups", tag = "device-groups",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"), DeviceGroupQuery),
    responses((status = 200, body = Page<DeviceGroup>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant_id): Path<String>,
    StrictQuery(q): StrictQuery<DeviceGroupQuery>,
) -> ApiResult<Json<Page<DeviceGroup>>> {
    let (_, tid) = ids(&tenant_id)?;
    auth::require_role(state.db.pool(), &caller, &tid, Role::Reader).await?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let rows = match q.product {
        Some(p) => {
            sqlx::query(
                "SELECT id, tenant_id, product_id, name, description, os_feed, update_policy, \
             allow_crash_dumps_collection, created_at FROM device_groups \
             WHERE tenant_id = $1 AND product_id = $2 AND id > $3 ORDER BY id LIMIT $4",
            )
            .bind(&tid)
            .bind(p.to_string())
            .bind(&page.after)
            .bind(page.fetch())
            .fetch_all(state.db.pool())
            .await?
        }
        None => {
            sqlx::query(
                "SELECT id, tenant_id, product_id, name, description, os_feed, update_policy, \
             allow_crash_dumps_collection, created_at FROM device_groups \
             WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            )
            .bind(&tid)
            .bind(&page.after)
            .bind(page.fetch())
            .fetch_all(state.db.pool())
            .await?
        }
    };
    let items = rows
        .iter()
        .map(group_from_row)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(page.finish(items, |g| g.id.to_string())))
}

/// One device group (any role).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}", tag = "device-groups",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceGroupId" = String, Path, format = Uuid, description = "Device group ID")),
    responses((status = 200, body = DeviceGroup), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, group_id)): Path<(String, String)>,
) -> ApiResult<Json<DeviceGroup>> {
    let (_, tid) = ids(&tenant_id)?;
    let gid = path_id::<DeviceGroupId>(&group_id, "deviceGroupId")?.to_string();
    auth::require_role(state.db.pool(), &caller, &tid, Role::Reader).await?;
    Ok(Json(get_group_row(state.db.pool(), &tid, &gid).await?))
}

/// Change a device group (Contributor).
#[utoipa::path(patch, path = "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}", tag = "device-groups",
    request_body = UpdateDeviceGroupRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceGroupId" = String, Path, format = Uuid, description = "Device group ID")),
    responses((status = 200, body = DeviceGroup), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, group_id)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdateDeviceGroupRequest>,
) -> ApiResult<Json<DeviceGroup>> {
    let (_, tid) = ids(&tenant_id)?;
    let gid = path_id::<DeviceGroupId>(&group_id, "deviceGroupId")?.to_string();
    let mut tx = state.db.begin_write().await?;
    auth::require_role(&mut *tx, &caller, &tid, Role::Contributor).await?;
    let mut g = get_group_row(&mut *tx, &tid, &gid).await?;
    if let Some(name) = req.name {
        if !ferro_wire::is_valid_name(&name) {
            return Err(ApiError::invalid_name("name"));
        }
        g.name = name;
    }
    if let Some(d) = req.description {
        check_description(&d)?;
        g.description = d;
    }
    g.os_feed = req.os_feed.unwrap_or(g.os_feed);
    g.update_policy = req.update_policy.unwrap_or(g.update_policy);
    g.allow_crash_dumps_collection = req
        .allow_crash_dumps_collection
        .unwrap_or(g.allow_crash_dumps_collection);
    sqlx::query(
        "UPDATE device_groups SET name = $1, name_key = $2, description = $3, os_feed = $4, \
         update_policy = $5, allow_crash_dumps_collection = $6 WHERE id = $7",
    )
    .bind(&g.name)
    .bind(g.name.to_lowercase())
    .bind(&g.description)
    .bind(g.os_feed.as_str())
    .bind(g.update_policy.as_str())
    .bind(db::b2i(g.allow_crash_dumps_collection))
    .bind(&gid)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        ApiError::from(e)
            .on_unique("the product already has a device group with this name; choose another")
    })?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "device_group.update",
        "device_group",
        &gid,
        json!({ "name": g.name, "osFeed": g.os_feed, "updatePolicy": g.update_policy,
                "allowCrashDumpsCollection": g.allow_crash_dumps_collection }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(g))
}

/// Delete a device group (Contributor). Refused while it has devices.
#[utoipa::path(delete, path = "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}", tag = "device-groups",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("deviceGroupId" = String, Path, format = Uuid, description = "Device group ID")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "not_empty: it has devices", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant_id, group_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (_, tid) = ids(&tenant_id)?;
    let gid = path_id::<DeviceGroupId>(&group_id, "deviceGroupId")?.to_string();
    let mut tx = state.db.begin_write().await?;
    auth::require_role(&mut *tx, &caller, &tid, Role::Contributor).await?;
    db::lock_tenant(&mut tx, &tid).await?;
    let g = get_group_row(&mut *tx, &tid, &gid).await?;
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM devices WHERE device_group_id = $1")
        .bind(&gid)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    if n > 0 {
        return Err(ApiError::new(
            ErrorCode::NotEmpty,
            format!("the device group holds {n} devices; move them to another group first"),
        ));
    }
    sqlx::query("DELETE FROM device_groups WHERE id = $1")
        .bind(&gid)
        .execute(&mut *tx)
        .await?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "device_group.delete",
        "device_group",
        &gid,
        json!({ "name": g.name }),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
