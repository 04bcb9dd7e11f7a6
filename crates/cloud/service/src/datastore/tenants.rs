//! Tenants (`tenants`), as their users see them.

use super::{parse_id, parse_name};

use super::StoreResult;
use crate::db::{self, Db, Tx};
use ferro_wire::Tenant;
use sqlx::Row;

/// Whether the tenant `tid` exists, read in the caller's write transaction.
pub async fn exists_in(tx: &mut Tx, tid: &str) -> StoreResult<bool> {
    Ok(sqlx::query("SELECT id FROM tenants WHERE id = $1")
        .bind(tid)
        .fetch_optional(&mut **tx)
        .await?
        .is_some())
}

fn tenant_from_row(r: &sqlx::any::AnyRow) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        name: r.try_get("name")?,
        created_at: db::ts(r.try_get("created_at")?),
        role: parse_name(&r.try_get::<String, _>("role")?, "role")?,
    })
}

/// Up to `limit` tenants in which `user` holds a role, with IDs after `after`, by ID; each
/// with the user's stored role.
pub async fn list_of_user(
    db: &Db,
    user: &str,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<Tenant>> {
    let rows = sqlx::query(
        "SELECT t.id, t.name, t.created_at, r.role FROM tenants t \
         JOIN tenant_roles r ON r.tenant_id = t.id AND r.user_id = $1 \
         WHERE t.id > $2 ORDER BY t.id LIMIT $3",
    )
    .bind(user)
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(tenant_from_row).collect()
}

/// The tenant `tid` with `user`'s stored role in it (`None`: no such tenant, or no role).
pub async fn get_of_user(db: &Db, user: &str, tid: &str) -> StoreResult<Option<Tenant>> {
    let row = sqlx::query(
        "SELECT t.id, t.name, t.created_at, r.role FROM tenants t \
         JOIN tenant_roles r ON r.tenant_id = t.id AND r.user_id = $1 WHERE t.id = $2",
    )
    .bind(user)
    .bind(tid)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(tenant_from_row).transpose()
}

/// Store a new tenant (a taken name is a unique violation).
pub async fn insert(tx: &mut Tx, tid: &str, name: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tenants (id, name, name_key, version, created_at) VALUES ($1, $2, $3, 0, $4)",
    )
    .bind(tid)
    .bind(name)
    .bind(name.to_lowercase())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Rename the tenant (a taken name is a unique violation).
pub async fn rename(tx: &mut Tx, tid: &str, name: &str) -> StoreResult<()> {
    sqlx::query("UPDATE tenants SET name = $1, name_key = $2, version = version + 1 WHERE id = $3")
        .bind(name)
        .bind(name.to_lowercase())
        .bind(tid)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// How many tenants `user` administers, after taking the user row's write lock (so that
/// concurrent creations by one user are counted in turn).
pub async fn administered_by_locked(tx: &mut Tx, user: &str) -> StoreResult<i64> {
    sqlx::query("UPDATE users SET login = login WHERE id = $1")
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(sqlx::query(
        "SELECT COUNT(*) AS n FROM tenant_roles WHERE user_id = $1 AND role = 'Administrator'",
    )
    .bind(user)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?)
}
