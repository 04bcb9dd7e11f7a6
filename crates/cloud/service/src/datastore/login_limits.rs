//! Login-limit bookkeeping (`login_limit_keys`, `login_failures`): the rows behind
//! `crate::login_guard`'s reservations. A key is `login:<name>` or `ip:<address or /64>`.

use crate::datastore::StoreResult;
use crate::db::Tx;
use sqlx::Row;

/// A key's attempts inside the window, as [`lock_and_count_in`] found them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAttempts {
    /// Attempts (failures and reservations still held) inside the window.
    pub count: i64,
    /// When the oldest of them was made (Unix seconds); `None` without attempts.
    pub oldest: Option<i64>,
}

/// Take `key`'s row lock for the rest of `tx` (creating its row on first use), forget its
/// attempts made at or before `since`, and count the rest. On PostgreSQL the lock (an UPDATE of
/// the key's row) keeps this count and a following [`insert_attempt_in`] from interleaving with
/// another reservation of the same key; SQLite has one writer anyway.
pub async fn lock_and_count_in(
    tx: &mut Tx,
    key: &str,
    now: i64,
    since: i64,
) -> StoreResult<KeyAttempts> {
    sqlx::query(
        "INSERT INTO login_limit_keys (scope_key, touched_at) VALUES ($1, $2) \
         ON CONFLICT (scope_key) DO NOTHING",
    )
    .bind(key)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE login_limit_keys SET touched_at = $1 WHERE scope_key = $2")
        .bind(now)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM login_failures WHERE scope_key = $1 AND at <= $2")
        .bind(key)
        .bind(since)
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM login_failures WHERE scope_key = $1",
    )
    .bind(key)
    .fetch_one(&mut **tx)
    .await?;
    Ok(KeyAttempts {
        count: row.try_get("n")?,
        oldest: row.try_get("oldest")?,
    })
}

/// Record one attempt of `key` (its ID: a UUIDv7 the caller keeps to give it back).
pub async fn insert_attempt_in(tx: &mut Tx, id: &str, key: &str, now: i64) -> StoreResult<()> {
    sqlx::query("INSERT INTO login_failures (id, scope_key, at) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(key)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Forget every attempt of `key` (a login name whose password was proven).
pub async fn forget_key_in(tx: &mut Tx, key: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM login_failures WHERE scope_key = $1")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Give back one attempt by its ID.
pub async fn delete_attempt_in(tx: &mut Tx, id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM login_failures WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Forget every key's attempts made at or before `since`, and the lock rows of keys untouched
/// since then.
pub async fn prune_in(tx: &mut Tx, since: i64) -> StoreResult<()> {
    sqlx::query("DELETE FROM login_failures WHERE at <= $1")
        .bind(since)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM login_limit_keys WHERE touched_at <= $1")
        .bind(since)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
