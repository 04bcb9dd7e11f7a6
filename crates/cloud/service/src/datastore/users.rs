//! User accounts (`users`).

use crate::datastore::StoreResult;
use crate::db::{self, Arg, Db, DbRow, Tx};
use ferro_wire::{User, UserId};

/// A user row.
#[derive(Clone, Debug)]
pub struct UserRow {
    /// ID.
    pub id: UserId,
    /// Login name.
    pub login: String,
    /// Display name.
    pub display_name: String,
    /// PHC string. Never serialised.
    pub password_hash: String,
    /// One-time password not yet changed.
    pub password_change_required: bool,
    /// When a one-time password stops logging in (Unix seconds); `None` for chosen passwords.
    pub password_expires_at: Option<i64>,
    /// Platform operator.
    pub platform_operator: bool,
    /// Creation time (Unix seconds).
    pub created_at: i64,
}

impl UserRow {
    /// Read from a row (of either engine) with the user's columns.
    pub(crate) fn from_row(row: &DbRow<'_>) -> StoreResult<UserRow> {
        Ok(UserRow {
            id: super::parse_id(&row.get::<String>("id")?)?,
            login: row.get("login")?,
            display_name: row.get("display_name")?,
            password_hash: row.get("password_hash")?,
            password_change_required: row.get("password_change_required")?,
            password_expires_at: row.get("password_expires_at")?,
            platform_operator: row.get("platform_operator")?,
            created_at: row.get("created_at")?,
        })
    }

    /// Whether the password is a one-time password past its life (it no longer logs in).
    pub fn password_expired(&self, now: i64) -> bool {
        self.password_change_required && self.password_expires_at.is_some_and(|t| t <= now)
    }

    /// The wire form.
    pub fn to_wire(&self) -> User {
        User {
            id: self.id,
            login: self.login.clone(),
            display_name: self.display_name.clone(),
            platform_operator: self.platform_operator,
            password_change_required: self.password_change_required,
            created_at: db::ts(self.created_at),
        }
    }
}

/// The user with login name `login`.
pub async fn by_login(db: &Db, login: &str) -> StoreResult<Option<UserRow>> {
    const SQL: &str = "SELECT u.id, u.login, u.display_name, u.password_hash, \
        u.password_change_required, u.password_expires_at, u.platform_operator, u.created_at \
        FROM users u WHERE u.login = $1";
    db.read_optional(SQL, &[Arg::from(login)], UserRow::from_row)
        .await
}

/// Up to `limit` users with IDs after `after`, by ID.
pub async fn list(db: &Db, after: &str, limit: i64) -> StoreResult<Vec<UserRow>> {
    const SQL: &str = "SELECT u.id, u.login, u.display_name, u.password_hash, \
        u.password_change_required, u.password_expires_at, u.platform_operator, u.created_at \
        FROM users u WHERE u.id > $1 ORDER BY u.id LIMIT $2";
    db.read_all(
        SQL,
        &[Arg::from(after), Arg::from(limit)],
        UserRow::from_row,
    )
    .await
}

/// Store a new user (a taken login is a unique violation).
pub async fn insert(tx: &mut Tx, user: &UserRow) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (id, login, display_name, password_hash, password_change_required, \
         password_expires_at, platform_operator, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(user.id.to_string())
    .bind(&user.login)
    .bind(&user.display_name)
    .bind(&user.password_hash)
    .bind(db::b2i(user.password_change_required))
    .bind(user.password_expires_at)
    .bind(db::b2i(user.platform_operator))
    .bind(user.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Give `user` a one-time password (its hash, and when it stops logging in); false without
/// such a user.
pub async fn set_one_time_password(
    tx: &mut Tx,
    user: UserId,
    hash: &str,
    expires_at: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE users SET password_hash = $1, password_change_required = 1, \
         password_expires_at = $2 WHERE id = $3",
    )
    .bind(hash)
    .bind(expires_at)
    .bind(user.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Store the password `user` chose (its hash): no change required, no expiry.
pub async fn set_chosen_password(tx: &mut Tx, user: UserId, hash: &str) -> StoreResult<()> {
    sqlx::query(
        "UPDATE users SET password_hash = $1, password_change_required = 0, \
         password_expires_at = NULL WHERE id = $2",
    )
    .bind(hash)
    .bind(user.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Delete `user` (their roles and tokens go with them); false without such a user.
pub async fn delete(tx: &mut Tx, user: UserId) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(user.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(r.rows_affected() == 1)
}
