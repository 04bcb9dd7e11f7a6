//! The platform's own settings (`platform_meta`, key to value), as `init` writes them.

use super::StoreResult;
use crate::db::Tx;

/// Whether the database was initialised (`init` ran to its commit), read in the caller's
/// write transaction.
pub async fn initialized_in(tx: &mut Tx) -> StoreResult<bool> {
    Ok(
        sqlx::query("SELECT key FROM platform_meta WHERE key = 'initialized'")
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

/// Record that the database was initialised at `now` (a second time is a unique violation).
pub async fn mark_initialized_in(tx: &mut Tx, now: i64) -> StoreResult<()> {
    sqlx::query("INSERT INTO platform_meta (key, value) VALUES ('initialized', $1)")
        .bind(now.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
