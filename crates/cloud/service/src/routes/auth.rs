//! `/v1/auth`: login, logout, change password.

use crate::auth::{self, Caller, SESSION_PREFIX, UserRow};
use crate::datastore::tokens::{self, Revoke};
use crate::datastore::users;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientAddr, JsonBody};
use crate::login_guard::{self, Reservation};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ferro_wire::{ChangePasswordRequest, ErrorBody, ErrorCode, LoginRequest, LoginResponse};
use serde_json::json;
use std::net::IpAddr;

fn invalid_credentials() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "login name or password is wrong (or a one-time password expired: ask a platform \
         operator for a new one); after 5 failures within 15 minutes logins are refused for a while",
    )
}

/// A short, stable tag of a login name for logs: never the text itself, which sometimes holds a
/// mistyped password (SHA-256, first 8 bytes, hex).
pub fn login_tag(login: &str) -> String {
    auth::token_hash(login)[..16].to_string()
}

/// Check login + password: reserve an attempt first (`crate::login_guard`: atomic per login
/// and address, so parallel guesses are counted), then run Argon2 through the password gate.
/// On success, returns the user and the reservation to release in the caller's transaction.
async fn authenticate(
    state: &AppState,
    addr: Option<IpAddr>,
    login: &str,
    password: &str,
) -> ApiResult<(UserRow, Reservation)> {
    if login.len() > ferro_wire::MAX_LOGIN_LEN || password.len() > ferro_wire::MAX_PASSWORD_LEN {
        return Err(invalid_credentials());
    }
    let reservation = login_guard::reserve(state, login, addr).await?;
    let user = users::by_login(&state.db, login).await?;
    let phc = user.as_ref().map_or_else(
        || state.dummy_hash.as_str().to_string(),
        |u| u.password_hash.clone(),
    );
    let ok = auth::verify_password(state, password.to_string(), phc).await?;
    match user {
        Some(u) if ok && !u.password_expired(db::now()) => Ok((u, reservation)),
        found => {
            // The reservation stays: it is the failure's record.
            let expired = found.is_some() && ok;
            tracing::info!(login = %login_tag(login), ip = ?addr, expired_one_time_password = expired,
                "failed login");
            Err(invalid_credentials())
        }
    }
}

/// Log in with a password; returns a session token.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Wrong login or password", body = ErrorBody),
        (status = 403, description = "password_change_required: change the one-time password first", body = ErrorBody),
        (status = 429, description = "Too many failures; see Retry-After", body = ErrorBody),
        (status = 503, description = "Too many password checks under way; see Retry-After", body = ErrorBody),
    ),
    security(()))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(req): JsonBody<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let (user, reservation) = authenticate(&state, addr, &req.login, &req.password).await?;
    let mut tx = state.db.begin_write().await?;
    reservation.release(&mut tx).await?;
    if user.password_change_required {
        tx.commit().await?;
        return Err(ApiError::new(
            ErrorCode::PasswordChangeRequired,
            "this is a one-time password: set your own with POST /v1/auth/change-password, then log in",
        ));
    }
    let token = auth::new_token(SESSION_PREFIX)?;
    let now = db::now();
    let expires = now + state.config.session_ttl_secs;
    let token_id = uuid::Uuid::now_v7().to_string();
    let uid = user.id.to_string();
    tokens::insert_session(
        &mut tx,
        &token_id,
        user.id,
        &auth::token_hash(&token),
        now,
        expires,
    )
    .await?;
    db::audit(
        &mut tx,
        None,
        Some(&uid),
        "session.create",
        "token",
        &token_id,
        json!({ "ip": addr.map(|a| a.to_string()) }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(LoginResponse {
        token,
        expires_at: db::ts(expires),
        user: user.to_wire(),
    }))
}

/// Revoke the token this request presents.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "Token revoked"), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin_write().await?;
    tokens::revoke(&mut tx, &caller.token_id, db::now()).await?;
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "token.revoke",
        "token",
        &caller.token_id,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    // Effective at once on this replica (other replicas: within the auth cache's TTL).
    state.auth_cache.invalidate_user(&caller.uid());
    Ok(StatusCode::NO_CONTENT)
}

/// Change a password, authenticated by the current (or one-time) password. Ends every session
/// of the user and, unless `keepApiTokens`, revokes every API token of the user.
#[utoipa::path(post, path = "/v1/auth/change-password", tag = "auth", request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Password changed; log in with the new one"),
        (status = 401, description = "Wrong login or password", body = ErrorBody),
        (status = 422, description = "weak_password", body = ErrorBody),
        (status = 429, description = "Too many failures", body = ErrorBody),
        (status = 503, description = "Too many password checks under way; see Retry-After", body = ErrorBody),
    ),
    security(()))]
pub async fn change_password(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(req): JsonBody<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    let (user, reservation) = authenticate(&state, addr, &req.login, &req.current_password).await?;
    auth::check_password_policy(&user.login, &req.new_password)?;
    if req.new_password == req.current_password {
        return Err(ApiError::new(
            ErrorCode::WeakPassword,
            "the new password must differ from the current one",
        ));
    }
    let hash = auth::hash_password(&state, req.new_password).await?;
    let uid = user.id.to_string();
    let now = db::now();
    let mut tx = state.db.begin_write().await?;
    reservation.release(&mut tx).await?;
    users::set_chosen_password(&mut tx, user.id, &hash).await?;
    let which = if req.keep_api_tokens {
        Revoke::Sessions
    } else {
        Revoke::All
    };
    tokens::revoke_of_user(&mut tx, user.id, which, now).await?;
    db::audit(
        &mut tx,
        None,
        Some(&uid),
        "user.change_password",
        "user",
        &uid,
        json!({ "apiTokensRevoked": !req.keep_api_tokens }),
    )
    .await?;
    tx.commit().await?;
    state.auth_cache.invalidate_user(&uid);
    Ok(StatusCode::NO_CONTENT)
}
