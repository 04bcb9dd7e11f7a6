//! Session and API tokens (`tokens`): only the SHA-256 of a secret is stored. The token check
//! (with its user and, for a tenant route, the user's role there) is one indexed read.

use crate::datastore::StoreResult;
use crate::datastore::users::UserRow;
use crate::db::{self, Arg, Db, DbRow, Tx, WriteStmt};
use ferro_wire::{ApiToken, ApiTokenId, Role, UserId};
use sqlx::Row;

/// A token as the token check reads it, with its user and the user's role in the tenant of the
/// path (`role`: `None` outside tenant routes or without a role).
#[derive(Clone, Debug)]
pub struct TokenRow {
    /// The token's ID.
    pub id: String,
    /// The stored hash (hex SHA-256 of the secret).
    pub token_hash: String,
    /// A session (from a password login) rather than an API token.
    pub session: bool,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// When it was last used (to the granularity the token check writes it).
    pub last_used_at: Option<i64>,
    /// The one tenant an API token reaches (stored form).
    pub scope_tenant: Option<String>,
    /// The strongest role an API token acts with.
    pub max_role: Option<Role>,
    /// Only `GET` and `HEAD`.
    pub read_only: bool,
    /// The token's user.
    pub user: UserRow,
    /// The user's stored role in the tenant asked about.
    pub role: Option<Role>,
}

fn role_of(stored: Option<String>) -> StoreResult<Option<Role>> {
    stored.map(|r| super::parse_name(&r, "role")).transpose()
}

impl TokenRow {
    fn from_row(row: &DbRow<'_>) -> StoreResult<TokenRow> {
        Ok(TokenRow {
            id: row.get("token_id")?,
            token_hash: row.get("token_hash")?,
            session: row.get::<String>("kind")? == "session",
            created_at: row.get("token_created_at")?,
            expires_at: row.get("expires_at")?,
            revoked_at: row.get("revoked_at")?,
            last_used_at: row.get("last_used_at")?,
            scope_tenant: row.get("scope_tenant_id")?,
            max_role: role_of(row.get("max_role")?)?,
            read_only: row.get("read_only")?,
            user: UserRow::from_row(row)?,
            role: role_of(row.get("role")?)?,
        })
    }
}

/// The token whose hash is `hash`, with its user; with `tenant` (stored form), also the
/// user's role there. One indexed read on the hot path ([`Db::read_optional`]).
pub async fn check(db: &Db, hash: &str, tenant: Option<&str>) -> StoreResult<Option<TokenRow>> {
    match tenant {
        None => {
            const SQL: &str = "SELECT t.id AS token_id, t.token_hash, t.expires_at, t.revoked_at, \
                 t.last_used_at, t.kind, t.created_at AS token_created_at, t.scope_tenant_id, \
                 t.max_role, t.read_only, u.id, u.login, u.display_name, u.password_hash, \
                 u.password_change_required, u.password_expires_at, u.platform_operator, \
                 u.created_at, NULL AS role \
                 FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1";
            db.read_optional(SQL, &[Arg::from(hash)], TokenRow::from_row)
                .await
        }
        Some(tid) => {
            const SQL: &str = "SELECT t.id AS token_id, t.token_hash, t.expires_at, t.revoked_at, \
                 t.last_used_at, t.kind, t.created_at AS token_created_at, t.scope_tenant_id, \
                 t.max_role, t.read_only, u.id, u.login, u.display_name, u.password_hash, \
                 u.password_change_required, u.password_expires_at, u.platform_operator, \
                 u.created_at, r.role \
                 FROM tokens t JOIN users u ON u.id = t.user_id \
                 LEFT JOIN tenant_roles r ON r.user_id = t.user_id AND r.tenant_id = $2 \
                 WHERE t.token_hash = $1";
            db.read_optional(SQL, &[Arg::from(hash), Arg::from(tid)], TokenRow::from_row)
                .await
        }
    }
}

/// Record that the token was used at `now`: a single small write on the hot path, through
/// the datastore's hot-path writer ([`Db::write_atomic`]).
pub async fn touch(db: &Db, token: &str, now: i64) -> StoreResult<()> {
    let args = [Arg::Int(now), Arg::Text(token)];
    db.write_atomic(&[WriteStmt {
        sql: "UPDATE tokens SET last_used_at = $1 WHERE id = $2",
        args: &args,
        must_change_one_row: false,
    }])
    .await?;
    Ok(())
}

/// Store a new session of `user`.
pub async fn insert_session(
    tx: &mut Tx,
    id: &str,
    user: UserId,
    hash: &str,
    now: i64,
    expires_at: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tokens (id, user_id, kind, name, token_hash, created_at, expires_at) \
         VALUES ($1, $2, 'session', NULL, $3, $4, $5)",
    )
    .bind(id)
    .bind(user.to_string())
    .bind(hash)
    .bind(now)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A new API token of `user` (the wire form, and the hash of its secret).
pub async fn insert_api(
    tx: &mut Tx,
    user: UserId,
    token: &ApiToken,
    hash: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tokens (id, user_id, kind, name, token_hash, created_at, expires_at, \
         scope_tenant_id, max_role, read_only) VALUES ($1, $2, 'api', $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(token.id.to_string())
    .bind(user.to_string())
    .bind(&token.name)
    .bind(hash)
    .bind(token.created_at.unix_timestamp())
    .bind(token.expires_at.unix_timestamp())
    .bind(token.tenant_id.map(|t| t.to_string()))
    .bind(token.max_role.map(Role::as_str))
    .bind(db::b2i(token.read_only))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether `user` has a live API token named `name`.
pub async fn live_api_named_in(
    tx: &mut Tx,
    user: UserId,
    name: &str,
    now: i64,
) -> StoreResult<bool> {
    Ok(sqlx::query(
        "SELECT id FROM tokens WHERE user_id = $1 AND kind = 'api' AND name = $2 \
         AND revoked_at IS NULL AND expires_at > $3",
    )
    .bind(user.to_string())
    .bind(name)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?
    .is_some())
}

fn api_token_from_row(r: &sqlx::any::AnyRow) -> StoreResult<ApiToken> {
    Ok(ApiToken {
        id: super::parse_id(&r.try_get::<String, _>("id")?)?,
        name: r.try_get::<Option<String>, _>("name")?.unwrap_or_default(),
        created_at: db::ts(r.try_get("created_at")?),
        expires_at: db::ts(r.try_get("expires_at")?),
        tenant_id: r
            .try_get::<Option<String>, _>("scope_tenant_id")?
            .as_deref()
            .map(super::parse_id)
            .transpose()?,
        max_role: role_of(r.try_get("max_role")?)?,
        read_only: r.try_get::<i64, _>("read_only")? != 0,
    })
}

/// Up to `limit` of `user`'s live API tokens (not revoked, not expired at `now`) with IDs
/// after `after`, by ID.
pub async fn list_api(
    db: &Db,
    user: UserId,
    now: i64,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<ApiToken>> {
    let rows = sqlx::query(
        "SELECT id, name, created_at, expires_at, scope_tenant_id, max_role, read_only FROM tokens \
         WHERE user_id = $1 AND kind = 'api' \
         AND revoked_at IS NULL AND expires_at > $2 AND id > $3 ORDER BY id LIMIT $4",
    )
    .bind(user.to_string())
    .bind(now)
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(api_token_from_row).collect()
}

/// Revoke the token `id` (a session or an API token), if it is live.
pub async fn revoke(tx: &mut Tx, id: &str, now: i64) -> StoreResult<()> {
    sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Revoke `user`'s live API token `id`; false when the user has no such live API token.
pub async fn revoke_api(tx: &mut Tx, user: UserId, id: ApiTokenId, now: i64) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND kind = 'api' \
         AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(id.to_string())
    .bind(user.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Which of a user's tokens [`revoke_of_user`] revokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoke {
    /// Sessions only (API tokens stay).
    Sessions,
    /// Sessions and API tokens.
    All,
}

/// Revoke `user`'s live tokens of the kinds `which` names (callers invalidate the
/// authentication cache after the commit).
pub async fn revoke_of_user(tx: &mut Tx, user: UserId, which: Revoke, now: i64) -> StoreResult<()> {
    let sql = match which {
        Revoke::Sessions => {
            "UPDATE tokens SET revoked_at = $1 WHERE user_id = $2 AND kind = 'session' \
             AND revoked_at IS NULL"
        }
        Revoke::All => {
            "UPDATE tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL"
        }
    };
    sqlx::query(sql)
        .bind(now)
        .bind(user.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
