//! Device groups (`device_groups`).

use super::parse_id;
use super::{StoreError, StoreResult};
use crate::authz::TenantScope;
use crate::db::{self, Db, Tx};
use ferro_wire::{DeviceGroup, DeviceGroupId, ProductId};
use sqlx::Row;

const GROUP_COLUMNS: &str = "id, tenant_id, product_id, name, description, os_feed, \
    update_policy, allow_crash_dumps_collection, created_at";

fn group_from_row(r: &sqlx::any::AnyRow) -> StoreResult<DeviceGroup> {
    let bad = |what: &str| StoreError::Corrupt(format!("unknown {what} in database"));
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

async fn get_on<'e, E>(
    ex: E,
    scope: &TenantScope,
    group: DeviceGroupId,
) -> StoreResult<Option<DeviceGroup>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {GROUP_COLUMNS} FROM device_groups WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(scope.tenant_str())
    .bind(group.to_string())
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(group_from_row).transpose()
}

/// One device group of `tenant`.
pub async fn get(
    db: &Db,
    scope: &TenantScope,
    group: DeviceGroupId,
) -> StoreResult<Option<DeviceGroup>> {
    get_on(db.pool(), scope, group).await
}

/// One device group of `tenant`, read in the caller's write transaction.
pub async fn get_in(
    tx: &mut Tx,
    scope: &TenantScope,
    group: DeviceGroupId,
) -> StoreResult<Option<DeviceGroup>> {
    get_on(&mut **tx, scope, group).await
}

/// Whether `group` is a device group of `tenant`, read in the caller's write transaction.
pub async fn exists_in(
    tx: &mut Tx,
    scope: &TenantScope,
    group: DeviceGroupId,
) -> StoreResult<bool> {
    Ok(
        sqlx::query("SELECT id FROM device_groups WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_str())
            .bind(group.to_string())
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

/// Whether the product has a device group of this name (case-insensitively), read in the
/// caller's write transaction.
pub async fn name_taken_in(tx: &mut Tx, product: ProductId, name: &str) -> StoreResult<bool> {
    Ok(
        sqlx::query("SELECT id FROM device_groups WHERE product_id = $1 AND name_key = $2")
            .bind(product.to_string())
            .bind(name.to_lowercase())
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

/// Up to `limit` device groups of `tenant` (of one product, if given) with IDs after `after`,
/// by ID.
pub async fn list(
    db: &Db,
    scope: &TenantScope,
    product: Option<ProductId>,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<DeviceGroup>> {
    let tid = scope.tenant_str();
    let rows = match product {
        Some(p) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {GROUP_COLUMNS} FROM device_groups \
                 WHERE tenant_id = $1 AND product_id = $2 AND id > $3 ORDER BY id LIMIT $4"
            )))
            .bind(tid)
            .bind(p.to_string())
            .bind(after)
            .bind(limit)
            .fetch_all(db.pool())
            .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {GROUP_COLUMNS} FROM device_groups \
                 WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            )))
            .bind(tid)
            .bind(after)
            .bind(limit)
            .fetch_all(db.pool())
            .await?
        }
    };
    rows.iter().map(group_from_row).collect()
}

/// Every device group of the product, by ID, read in the caller's write transaction.
pub async fn of_product_in(tx: &mut Tx, product: ProductId) -> StoreResult<Vec<DeviceGroup>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {GROUP_COLUMNS} FROM device_groups WHERE product_id = $1 ORDER BY id"
    )))
    .bind(product.to_string())
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(group_from_row).collect()
}

/// Store a new device group (a name its product already uses is a unique violation).
pub async fn insert(tx: &mut Tx, g: &DeviceGroup) -> StoreResult<()> {
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
    .await?;
    Ok(())
}

/// Store a device group's settings (a name its product already uses is a unique violation).
pub async fn update(tx: &mut Tx, g: &DeviceGroup) -> StoreResult<()> {
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
    .bind(g.id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How many devices the group holds.
pub async fn device_count_in(tx: &mut Tx, group: DeviceGroupId) -> StoreResult<i64> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM devices WHERE device_group_id = $1")
            .bind(group.to_string())
            .fetch_one(&mut **tx)
            .await?
            .try_get("n")?,
    )
}

/// Delete the group.
pub async fn delete(tx: &mut Tx, group: DeviceGroupId) -> StoreResult<()> {
    sqlx::query("DELETE FROM device_groups WHERE id = $1")
        .bind(group.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
