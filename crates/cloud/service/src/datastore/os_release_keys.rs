//! The OS release build keys (`os_release_keys`): the keys whose signatures the platform accepts
//! on OS bundles it is asked to publish. Platform-wide: no tenant scope.

use crate::datastore::{StoreError, StoreResult};
use crate::db::{self, Db, Tx};
use ferro_wire::RegisteredSigningKey;
use sqlx::Row;

fn key_from_row(r: &sqlx::any::AnyRow) -> StoreResult<RegisteredSigningKey> {
    Ok(RegisteredSigningKey {
        key_id: r.try_get("key_id")?,
        tenant_id: None,
        name: r.try_get("name")?,
        public_key_pem: r.try_get("public_key_pem")?,
        created_by: r
            .try_get::<String, _>("created_by")?
            .parse()
            .map_err(|_| StoreError::Corrupt("malformed user ID".into()))?,
        created_at: db::ts(r.try_get("created_at")?),
    })
}

/// How many keys are registered, read in the caller's write transaction.
pub async fn count_in(tx: &mut Tx) -> StoreResult<i64> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM os_release_keys")
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?)
}

/// Register a key (one already registered is a unique violation).
pub async fn insert(tx: &mut Tx, key: &RegisteredSigningKey) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO os_release_keys (id, key_id, name, public_key_pem, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&key.key_id)
    .bind(&key.name)
    .bind(&key.public_key_pem)
    .bind(key.created_by.to_string())
    .bind(key.created_at.unix_timestamp())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Up to `limit` keys registered after the row `after`, in registration order, each with its
/// row ID (the page key).
pub async fn list(
    db: &Db,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<(String, RegisteredSigningKey)>> {
    let rows = sqlx::query(
        "SELECT id, key_id, name, public_key_pem, created_by, created_at FROM os_release_keys \
         WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<String, _>("id")?, key_from_row(r)?)))
        .collect()
}

/// The PEM public keys of every registered key.
pub async fn public_keys(db: &Db) -> StoreResult<Vec<String>> {
    let rows = sqlx::query("SELECT public_key_pem FROM os_release_keys")
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String, _>("public_key_pem")?))
        .collect()
}

/// Remove the key `key_id`; whether there was one.
pub async fn delete(tx: &mut Tx, key_id: &str) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM os_release_keys WHERE key_id = $1")
        .bind(key_id)
        .execute(&mut **tx)
        .await?;
    Ok(r.rows_affected() > 0)
}
