//! Products (`products`).

use super::StoreResult;
use super::parse_id;
use crate::authz::TenantScope;
use crate::db::{self, Db, Tx};
use ferro_wire::{Product, ProductId};
use sqlx::Row;

fn product_from_row(r: &sqlx::any::AnyRow) -> StoreResult<Product> {
    Ok(Product {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        tenant_id: parse_id(&r.try_get::<String, _>("tenant_id")?)?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        created_at: db::ts(r.try_get("created_at")?),
    })
}

async fn get_on<'e, E>(
    ex: E,
    scope: &TenantScope,
    product: ProductId,
) -> StoreResult<Option<Product>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT id, tenant_id, name, description, created_at FROM products WHERE tenant_id = $1 AND id = $2",
    )
    .bind(scope.tenant_str())
    .bind(product.to_string())
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(product_from_row).transpose()
}

/// One product of `tenant`.
pub async fn get(db: &Db, scope: &TenantScope, product: ProductId) -> StoreResult<Option<Product>> {
    get_on(db.pool(), scope, product).await
}

/// One product of `tenant`, read in the caller's write transaction.
pub async fn get_in(
    tx: &mut Tx,
    scope: &TenantScope,
    product: ProductId,
) -> StoreResult<Option<Product>> {
    get_on(&mut **tx, scope, product).await
}

/// Up to `limit` products of `tenant` with IDs after `after`, by ID.
pub async fn list(
    db: &Db,
    scope: &TenantScope,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<Product>> {
    let rows = sqlx::query(
        "SELECT id, tenant_id, name, description, created_at FROM products \
         WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(scope.tenant_str())
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(product_from_row).collect()
}

/// Store a new product (a name its tenant already uses is a unique violation).
pub async fn insert(tx: &mut Tx, p: &Product) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO products (id, tenant_id, name, name_key, description, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(p.id.to_string())
    .bind(p.tenant_id.to_string())
    .bind(&p.name)
    .bind(p.name.to_lowercase())
    .bind(&p.description)
    .bind(p.created_at.unix_timestamp())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Store a product's name and description (a name its tenant already uses is a unique
/// violation).
pub async fn update(tx: &mut Tx, p: &Product) -> StoreResult<()> {
    sqlx::query("UPDATE products SET name = $1, name_key = $2, description = $3 WHERE id = $4")
        .bind(&p.name)
        .bind(p.name.to_lowercase())
        .bind(&p.description)
        .bind(p.id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// How many devices the product's device groups hold.
pub async fn device_count_in(tx: &mut Tx, product: ProductId) -> StoreResult<i64> {
    Ok(sqlx::query(
        "SELECT COUNT(*) AS n FROM devices d JOIN device_groups g ON g.id = d.device_group_id WHERE g.product_id = $1",
    )
    .bind(product.to_string())
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?)
}

/// Delete the product, its device groups and its firmware reference values.
pub async fn delete(tx: &mut Tx, product: ProductId) -> StoreResult<()> {
    let pid = product.to_string();
    super::firmware_references::delete_all_of(tx, product).await?;
    sqlx::query("DELETE FROM device_groups WHERE product_id = $1")
        .bind(&pid)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM products WHERE id = $1")
        .bind(&pid)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
