//! Users' roles in tenants (`tenant_roles`).

use super::{parse_id, parse_name};

use super::StoreResult;
use crate::db::{Db, Tx};
use ferro_wire::{Role, RoleAssignment};
use sqlx::Row;

const ASSIGNMENT_SELECT: &str = "SELECT u.id, u.login, u.display_name, r.role FROM tenant_roles r \
    JOIN users u ON u.id = r.user_id";

fn assignment_from_row(r: &sqlx::any::AnyRow) -> StoreResult<RoleAssignment> {
    Ok(RoleAssignment {
        user_id: parse_id(&r.try_get::<String, _>("id")?)?,
        login: r.try_get("login")?,
        display_name: r.try_get("display_name")?,
        role: parse_name(&r.try_get::<String, _>("role")?, "role")?,
    })
}

async fn get_on<'e, E>(ex: E, tid: &str, user: &str) -> StoreResult<Option<RoleAssignment>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{ASSIGNMENT_SELECT} WHERE r.tenant_id = $1 AND r.user_id = $2"
    )))
    .bind(tid)
    .bind(user)
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(assignment_from_row).transpose()
}

/// `user`'s role in the tenant `tid`.
pub async fn get(db: &Db, tid: &str, user: &str) -> StoreResult<Option<RoleAssignment>> {
    get_on(db.pool(), tid, user).await
}

/// `user`'s role in the tenant `tid`, read in the caller's write transaction.
pub async fn get_in(tx: &mut Tx, tid: &str, user: &str) -> StoreResult<Option<RoleAssignment>> {
    get_on(&mut **tx, tid, user).await
}

/// Up to `limit` role assignments of the tenant with user IDs after `after`, by user ID.
pub async fn list(db: &Db, tid: &str, after: &str, limit: i64) -> StoreResult<Vec<RoleAssignment>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{ASSIGNMENT_SELECT} WHERE r.tenant_id = $1 AND u.id > $2 ORDER BY u.id LIMIT $3"
    )))
    .bind(tid)
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(assignment_from_row).collect()
}

/// Give `user` `role` in the tenant.
pub async fn insert(tx: &mut Tx, tid: &str, user: &str, role: Role, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tenant_roles (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(tid)
    .bind(user)
    .bind(role.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Change `user`'s role in the tenant.
pub async fn set(tx: &mut Tx, tid: &str, user: &str, role: Role) -> StoreResult<()> {
    sqlx::query("UPDATE tenant_roles SET role = $1 WHERE tenant_id = $2 AND user_id = $3")
        .bind(role.as_str())
        .bind(tid)
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Remove `user`'s role in the tenant.
pub async fn delete(tx: &mut Tx, tid: &str, user: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM tenant_roles WHERE tenant_id = $1 AND user_id = $2")
        .bind(tid)
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// How many Administrators the tenant has, read in the caller's write transaction.
pub async fn administrators_in(tx: &mut Tx, tid: &str) -> StoreResult<i64> {
    Ok(sqlx::query(
        "SELECT COUNT(*) AS n FROM tenant_roles WHERE tenant_id = $1 AND role = 'Administrator'",
    )
    .bind(tid)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?)
}
