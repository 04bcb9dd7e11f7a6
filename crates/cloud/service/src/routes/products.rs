//! `/v1/tenants/{tenantId}/products`: products, each created with the default device groups
//! (the groups themselves are `routes::device_groups`).

use crate::auth::Caller;
use crate::authz::{self, TenantScope};
use crate::datastore::{device_groups, products};
use crate::db::{self, Tx};
use crate::device_groups::{check_description, insert_group};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery, path_id};
use crate::page::PageReq;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferro_wire::{
    CreateProductRequest, DEFAULT_DEVICE_GROUPS, DeviceGroup, DeviceGroupId, ErrorBody, ErrorCode,
    Page, PageQuery, Product, ProductId, Role, TenantId, UpdateProductRequest,
};
use serde_json::json;

const NAME_TAKEN: &str = "the tenant already has a product with this name; choose another";

/// A product of the tenant read in `tx`, or `not_found`.
async fn product_in(tx: &mut Tx, scope: &TenantScope, product: ProductId) -> ApiResult<Product> {
    products::get_in(tx, scope, product)
        .await?
        .ok_or_else(|| ApiError::not_found("product"))
}

/// Create the default groups the product lacks (by name). Returns how many were created.
async fn create_default_groups(
    tx: &mut Tx,
    tenant: TenantId,
    product: ProductId,
) -> ApiResult<usize> {
    let mut created = 0;
    for (name, description, os_feed, update_policy) in DEFAULT_DEVICE_GROUPS {
        if !device_groups::name_taken_in(tx, product, name).await? {
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
    authz::authorize(&mut *tx, &caller, t, Role::Contributor).await?;
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
    products::insert(&mut tx, &p)
        .await
        .map_err(|e| e.on_unique(NAME_TAKEN))?;
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
    let (t, _) = ids(&tenant_id)?;
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    let page = PageReq::new(q.limit, q.continuation.as_deref())?;
    let items = products::list(&state.db, &scope, &page.after, page.fetch()).await?;
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
    let (t, _) = ids(&tenant_id)?;
    let p = path_id::<ProductId>(&product_id, "productId")?;
    let scope = authz::authorize(state.db.pool(), &caller, t, Role::Reader).await?;
    let product = products::get(&state.db, &scope, p)
        .await?
        .ok_or_else(|| ApiError::not_found("product"))?;
    Ok(Json(product))
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
    let (t, tid) = ids(&tenant_id)?;
    let pid = path_id::<ProductId>(&product_id, "productId")?;
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &caller, t, Role::Contributor).await?;
    let mut p = product_in(&mut tx, &scope, pid).await?;
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
    products::update(&mut tx, &p)
        .await
        .map_err(|e| e.on_unique(NAME_TAKEN))?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "product.update",
        "product",
        &pid.to_string(),
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
    let (t, tid) = ids(&tenant_id)?;
    let pid = path_id::<ProductId>(&product_id, "productId")?;
    let mut tx = state.db.begin_write().await?;
    let scope = authz::authorize(&mut *tx, &caller, t, Role::Contributor).await?;
    db::lock_tenant(&mut tx, &tid).await?;
    let p = product_in(&mut tx, &scope, pid).await?;
    let n = products::device_count_in(&mut tx, pid).await?;
    if n > 0 {
        return Err(ApiError::new(
            ErrorCode::NotEmpty,
            format!(
                "the product's device groups hold {n} devices; move them to another product first"
            ),
        ));
    }
    products::delete(&mut tx, pid).await?;
    db::audit(
        &mut tx,
        Some(&tid),
        Some(&caller.uid()),
        "product.delete",
        "product",
        &pid.to_string(),
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
    let scope = authz::authorize(&mut *tx, &caller, t, Role::Contributor).await?;
    product_in(&mut tx, &scope, p).await?;
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
    let groups = device_groups::of_product_in(&mut tx, p).await?;
    tx.commit().await?;
    Ok(Json(groups))
}
