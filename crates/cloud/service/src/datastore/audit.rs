//! The audit log (`audit_log`), as a tenant's Administrators read it (rows are appended by
//! `db::audit` inside each write's transaction).

use super::StoreResult;
use super::parse_id;
use crate::authz::TenantScope;
use crate::db::{self, Db};
use ferro_wire::AuditEvent;
use sqlx::Row;

/// Up to `limit` audit events of the tenant with IDs after `after`, oldest first.
pub async fn list(
    db: &Db,
    scope: &TenantScope,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<AuditEvent>> {
    let rows = sqlx::query(
        "SELECT id, at, actor, action, object_type, object_id, details FROM audit_log \
         WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(scope.tenant_str())
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let actor: Option<String> = r.try_get("actor")?;
            let details: String = r.try_get("details")?;
            Ok(AuditEvent {
                id: parse_id(&r.try_get::<String, _>("id")?)?,
                at: db::ts(r.try_get("at")?),
                actor: actor.as_deref().map(parse_id).transpose()?,
                action: r.try_get("action")?,
                object_type: r.try_get("object_type")?,
                object_id: r.try_get("object_id")?,
                details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}
