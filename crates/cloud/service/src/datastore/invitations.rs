//! Invitations to tenants (`tenant_invitations`); only the SHA-256 of a code is stored.

use crate::authz::TenantScope;
use crate::datastore::StoreResult;
use crate::db::{self, Db, Tx};
use ferro_wire::{Invitation, InvitationId, UserId};
use sqlx::Row;

fn invitation_from_row(r: &sqlx::any::AnyRow) -> StoreResult<Invitation> {
    Ok(Invitation {
        id: super::parse_id(&r.try_get::<String, _>("id")?)?,
        tenant_id: super::parse_id(&r.try_get::<String, _>("tenant_id")?)?,
        role: super::parse_name(&r.try_get::<String, _>("role")?, "role")?,
        login: r.try_get("login")?,
        created_by: r
            .try_get::<Option<String>, _>("created_by")?
            .as_deref()
            .map(super::parse_id)
            .transpose()?,
        created_at: db::ts(r.try_get("created_at")?),
        expires_at: db::ts(r.try_get("expires_at")?),
    })
}

/// Store a new invitation of the scope's tenant, with the hash of its code.
pub async fn insert(
    tx: &mut Tx,
    scope: &TenantScope,
    invitation: &Invitation,
    code_hash: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tenant_invitations (id, tenant_id, role, login, code_hash, created_by, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(invitation.id.to_string())
    .bind(scope.tenant_str())
    .bind(invitation.role.as_str())
    .bind(invitation.login.as_deref())
    .bind(code_hash)
    .bind(invitation.created_by.map(|u| u.to_string()))
    .bind(invitation.created_at.unix_timestamp())
    .bind(invitation.expires_at.unix_timestamp())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Up to `limit` open invitations of the scope's tenant (not accepted, not revoked, not
/// expired at `now`) with IDs after `after`, by ID.
pub async fn list_open(
    db: &Db,
    scope: &TenantScope,
    now: i64,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<Invitation>> {
    let rows = sqlx::query(
        "SELECT id, tenant_id, role, login, created_by, created_at, expires_at \
         FROM tenant_invitations WHERE tenant_id = $1 AND accepted_at IS NULL \
         AND revoked_at IS NULL AND expires_at > $2 AND id > $3 ORDER BY id LIMIT $4",
    )
    .bind(scope.tenant_str())
    .bind(now)
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(invitation_from_row).collect()
}

/// Revoke an open invitation of the scope's tenant; false when there is none with this ID.
pub async fn revoke(
    tx: &mut Tx,
    scope: &TenantScope,
    id: InvitationId,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE tenant_invitations SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 \
         AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(id.to_string())
    .bind(scope.tenant_str())
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The open invitation (not accepted, not revoked, not expired at `now`) whose code hashes to
/// `code_hash`, of any tenant: the code is the credential.
pub async fn open_by_code_in(
    tx: &mut Tx,
    code_hash: &str,
    now: i64,
) -> StoreResult<Option<Invitation>> {
    let row = sqlx::query(
        "SELECT id, tenant_id, role, login, created_by, created_at, expires_at \
         FROM tenant_invitations WHERE code_hash = $1 AND accepted_at IS NULL \
         AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(code_hash)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(invitation_from_row).transpose()
}

/// Mark the invitation accepted by `user`, if it is still open: of two concurrent acceptances
/// exactly one gets true.
pub async fn claim(tx: &mut Tx, id: InvitationId, user: UserId, now: i64) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE tenant_invitations SET accepted_at = $1, accepted_by = $2 WHERE id = $3 \
         AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user.to_string())
    .bind(id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}
