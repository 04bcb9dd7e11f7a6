//! User accounts: the rules a new account's login and display name meet, and storing one with
//! its one-time password (operators create accounts through `POST /v1/users`, the first
//! operator is created by `setup`).

use crate::datastore::users::UserRow;
use crate::db;
use crate::error::{ApiError, ApiResult};
use ferro_wire::{ErrorCode, UserId};

/// Validate a display name: 1 to 100 characters, no control characters.
pub fn check_display_name(name: &str) -> ApiResult<()> {
    let n = name.chars().count();
    if n == 0 || n > 100 || name.chars().any(char::is_control) || name.trim() != name {
        return Err(ApiError::invalid_body(
            "`displayName` must be 1 to 100 characters, without control characters or surrounding spaces",
        ));
    }
    Ok(())
}

/// Insert a user whose password is the one-time password hashed as `otp_hash`, expiring at
/// `otp_expires_at` (inside `tx`).
pub async fn insert_user(
    tx: &mut db::Tx,
    login: &str,
    display_name: &str,
    platform_operator: bool,
    otp_hash: &str,
    otp_expires_at: i64,
) -> ApiResult<UserRow> {
    if !ferro_wire::is_valid_login(login) {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            "`login` must be email-like (local@domain), lowercase, at most 254 characters",
        ));
    }
    check_display_name(display_name)?;
    let user = UserRow {
        id: UserId::new(),
        login: login.to_string(),
        display_name: display_name.to_string(),
        password_hash: otp_hash.to_string(),
        password_change_required: true,
        password_expires_at: Some(otp_expires_at),
        platform_operator,
        created_at: db::now(),
    };
    crate::datastore::users::insert(tx, &user)
        .await
        .map_err(|e| {
            ApiError::from(e).on_unique(
                "a user with this login already exists; invite them to a tenant with \
                 POST /v1/tenants/{tenantId}/invitations",
            )
        })?;
    Ok(user)
}
