//! Update-now signals (`update_signals`): an operator's "check for updates now" for a device
//! group or one device, which devices waiting on a long poll hear of.

use crate::authz::TenantScope;
use crate::datastore::StoreResult;
use crate::db::{Db, Tx};
use ferro_wire::DeviceGroupId;

/// The PostgreSQL notification channel of new signals and ownership changes (payload: the
/// row's ID), which every replica's `crate::update_signals::SignalWatch` listens on.
pub const CHANNEL: &str = "ferro_update_signals";

/// The newest signal of all and the newest ownership change (`ownership_changes`), as one
/// token: what the process-wide watch compares against, so that a new signal and a device
/// changing owner both wake the long polls (each then reads what concerns its device).
pub async fn newest(db: &Db) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar::<_, Option<String>>(
        "SELECT COALESCE((SELECT MAX(id) FROM update_signals), '') || ' ' || \
         COALESCE((SELECT MAX(id) FROM ownership_changes), '')",
    )
    .fetch_one(db.pool())
    .await?)
}

/// The newest signal for a device of the scope's tenant: given to it or to its group.
pub async fn newest_for_device(
    db: &Db,
    scope: &TenantScope,
    device_id: &str,
) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar::<_, Option<String>>(
        "SELECT MAX(s.id) FROM update_signals s WHERE s.tenant_id = $1 AND (s.device_id = $2 OR \
         s.device_group_id = (SELECT d.device_group_id FROM devices d WHERE d.id = $2))",
    )
    .bind(scope.tenant_str())
    .bind(device_id)
    .fetch_one(db.pool())
    .await?)
}

/// What a signal is for.
#[derive(Clone, Copy, Debug)]
pub enum SignalTarget<'a> {
    /// Every device of a group.
    Group(DeviceGroupId),
    /// One device.
    Device(&'a ferro_wire::DeviceId),
}

/// Store a new signal (ID `id`, UUIDv7: newer signals sort after older ones) of the scope's
/// tenant, made by the scope's user at `at`, and on PostgreSQL announce it on
/// [`CHANNEL`] at commit.
pub async fn insert(
    tx: &mut Tx,
    scope: &TenantScope,
    id: &str,
    target: SignalTarget<'_>,
    at: i64,
) -> StoreResult<()> {
    let (group, device) = match target {
        SignalTarget::Group(g) => (Some(g.to_string()), None),
        SignalTarget::Device(d) => (None, Some(d.to_string())),
    };
    sqlx::query(
        "INSERT INTO update_signals (id, tenant_id, device_group_id, device_id, created_by, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(scope.tenant_str())
    .bind(group)
    .bind(device)
    .bind(scope.audit_user())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    announce(tx, id).await
}

/// PostgreSQL: every replica's listener hears of the row `id` (a signal or an ownership
/// change) when the transaction commits (`crate::update_signals`); SQLite has one process,
/// which polls.
pub(crate) async fn announce(tx: &mut Tx, id: &str) -> StoreResult<()> {
    if tx.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
