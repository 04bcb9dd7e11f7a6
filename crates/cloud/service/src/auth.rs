//! Authentication: password hashing (Argon2id), bearer tokens (random, stored as SHA-256),
//! the [`Caller`] extractor, tenant role checks and the database-backed login rate limit.

use crate::auth_cache::AuthKey;
use crate::db::{self, Arg, DbRow};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64ct::{Base64UrlUnpadded, Encoding};
use ferro_wire::{ErrorCode, Role, User, UserId};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of session tokens (from login).
pub const SESSION_PREFIX: &str = "fss_";
/// Prefix of API tokens (for automation). Secret scanners can look for `fst_` + 43 base64url.
pub const API_TOKEN_PREFIX: &str = "fst_";

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for PasswordParams {
    /// OWASP's recommendation for Argon2id: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        PasswordParams {
            m_cost_kib: Params::DEFAULT_M_COST,
            t_cost: Params::DEFAULT_T_COST,
            p_cost: Params::DEFAULT_P_COST,
        }
    }
}

impl PasswordParams {
    /// Minimal cost, for test suites ONLY: hashes made with it are trivially brute-forced. The
    /// binary never uses it; only tests construct a [`crate::Config`] with it, explicitly.
    pub fn insecure_fast_for_tests() -> Self {
        PasswordParams {
            m_cost_kib: Params::MIN_M_COST,
            t_cost: 1,
            p_cost: 1,
        }
    }

    fn argon2(self) -> ApiResult<Argon2<'static>> {
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None)
            .map_err(|e| ApiError::Internal(format!("argon2 params: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hash a password (Argon2id, random salt) to a PHC string. CPU- and memory-heavy: call it
/// through [`crate::login_guard::PasswordGate::run`] (or, outside a serving process, on a
/// blocking thread).
pub fn hash_password_blocking(params: PasswordParams, password: &str) -> ApiResult<String> {
    let hash = params
        .argon2()?
        .hash_password(password.as_bytes())
        .map_err(|e| ApiError::Internal(format!("argon2 hash: {e}")))?;
    Ok(hash.to_string())
}

/// Hash a password through the state's password gate (bounded concurrency and memory).
pub async fn hash_password(state: &AppState, password: String) -> ApiResult<String> {
    let params = state.config.password_params;
    state
        .password_gate
        .run(move || hash_password_blocking(params, &password))
        .await?
}

/// Check a password against a PHC string. Any malformed hash counts as a mismatch. Blocking;
/// see [`hash_password_blocking`].
pub fn verify_password_blocking(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Check a password through the state's password gate.
pub async fn verify_password(state: &AppState, password: String, phc: String) -> ApiResult<bool> {
    state
        .password_gate
        .run(move || verify_password_blocking(&password, &phc))
        .await
}

/// `n` random bytes from the OS.
pub fn random_bytes<const N: usize>() -> ApiResult<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| ApiError::Internal(format!("getrandom: {e}")))?;
    Ok(buf)
}

/// A new token secret: prefix + base64url of 32 random bytes.
pub fn new_token(prefix: &str) -> ApiResult<String> {
    Ok(format!(
        "{prefix}{}",
        Base64UrlUnpadded::encode_string(&random_bytes::<32>()?)
    ))
}

/// A new one-time password: 24 base64url characters (144 bits).
pub fn new_one_time_password() -> ApiResult<String> {
    Ok(Base64UrlUnpadded::encode_string(&random_bytes::<18>()?))
}

/// The stored form of a token: hex SHA-256.
pub fn token_hash(token: &str) -> String {
    hex_lower(&Sha256::digest(token.as_bytes()))
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The password policy: at least 12 characters, at most 1024 bytes, not the login name.
pub fn check_password_policy(login: &str, password: &str) -> ApiResult<()> {
    if password.chars().count() < ferro_wire::MIN_PASSWORD_LEN
        || password.len() > ferro_wire::MAX_PASSWORD_LEN
    {
        return Err(ApiError::new(
            ErrorCode::WeakPassword,
            "the new password must be 12 to 1024 characters long",
        ));
    }
    if password.eq_ignore_ascii_case(login) {
        return Err(ApiError::new(
            ErrorCode::WeakPassword,
            "the new password must differ from the login name",
        ));
    }
    Ok(())
}

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
    /// Columns to select, in [`UserRow::from_row`]'s names.
    pub const COLUMNS: &'static str = "u.id, u.login, u.display_name, u.password_hash, \
        u.password_change_required, u.password_expires_at, u.platform_operator, u.created_at";

    /// Read from a row (of either engine: `DbRow::from(&any_row)`) that has
    /// [`UserRow::COLUMNS`].
    pub fn from_row(row: &DbRow<'_>) -> ApiResult<UserRow> {
        Ok(UserRow {
            id: parse_id(&row.get::<String>("id")?)?,
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

/// Parse an ID stored in the database.
pub fn parse_id<T: From<uuid::Uuid>>(s: &str) -> ApiResult<T> {
    uuid::Uuid::parse_str(s)
        .map(T::from)
        .map_err(|_| ApiError::Internal(format!("malformed ID in database: {s:?}")))
}

/// What a token may do (docs/service/accounts.md, "API tokens"). Sessions are unscoped; an API
/// token may be limited to one tenant, to a role at most, and to reading.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenScope {
    /// A session (from a password login) rather than an API token.
    pub session: bool,
    /// When the token was made (Unix seconds): a session's age decides whether it counts as a
    /// fresh login.
    pub created_at: i64,
    /// The one tenant the token reaches (stored form); `None`: every tenant of the user.
    pub tenant: Option<String>,
    /// The strongest role the token acts with; `None`: the user's role.
    pub max_role: Option<Role>,
    /// Only `GET` and `HEAD`.
    pub read_only: bool,
}

impl TokenScope {
    /// The role the token acts with in `tenant` (stored form), given the user's `role` there:
    /// none outside its tenant, at most its maximum role.
    pub fn effective_role(&self, tenant: &str, role: Option<Role>) -> Option<Role> {
        if self.tenant.as_deref().is_some_and(|t| t != tenant) {
            return None;
        }
        match (role, self.max_role) {
            (Some(r), Some(max)) => Some(r.min(max)),
            (r, _) => r,
        }
    }

    /// Whether the token is limited to a tenant or a role (such a token never acts as a
    /// platform operator).
    pub fn is_narrowed(&self) -> bool {
        self.tenant.is_some() || self.max_role.is_some()
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The user (`platform_operator` is false when the token is narrowed to a tenant or role).
    pub user: UserRow,
    /// The token presented.
    pub token_id: String,
    /// What the token may do.
    pub scope: TokenScope,
}

/// How long after a password login a session may still create API tokens.
pub const FRESH_LOGIN_SECS: i64 = 15 * 60;

impl Caller {
    /// The user ID as stored.
    pub fn uid(&self) -> String {
        self.user.id.to_string()
    }

    /// 403 unless the caller is a platform operator.
    pub fn require_operator(&self) -> ApiResult<()> {
        if self.user.platform_operator {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                "this operation needs a platform operator",
            ))
        }
    }

    /// 403 `reauthentication_required` unless the caller presents a session made by a password
    /// login within [`FRESH_LOGIN_SECS`] (API tokens never qualify).
    pub fn require_fresh_login(&self, now: i64) -> ApiResult<()> {
        if self.scope.session && now - self.scope.created_at <= FRESH_LOGIN_SECS {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::ReauthenticationRequired,
                "this needs a fresh password login, not an API token or an older session: log in \
                 again (`ferro login`) and retry within 15 minutes",
            ))
        }
    }
}

/// Seconds between updates of a token's `last_used_at` (bounds writes on hot read paths).
const LAST_USED_GRANULARITY: i64 = 60;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(authenticate(parts, state, None).await?.0)
    }
}

/// The caller of a tenant-scoped route (`/v1/tenants/{tenantId}/...`) with their role in that
/// tenant, found by the same query that checks the token (one round trip instead of two: the
/// read path's cost). Use [`TenantCaller::authorize`] before touching the tenant's data. Writes
/// should still re-check the role inside their transaction ([`crate::authz::authorize`]).
#[derive(Clone, Debug)]
pub struct TenantCaller {
    /// The caller.
    pub caller: Caller,
    /// The tenant of the path.
    pub tenant: ferro_wire::TenantId,
    /// The tenant ID as stored.
    pub tid: String,
    role: Option<Role>,
}

impl TenantCaller {
    /// The caller's scope in the path's tenant if their role there is at least `needed`: 404
    /// without a role (indistinguishable from a missing tenant), 403 with a weaker one
    /// ([`crate::authz`]).
    pub fn authorize(&self, needed: Role) -> ApiResult<crate::authz::TenantScope> {
        let role = crate::authz::check(self.role, needed)?;
        Ok(crate::authz::TenantScope::checked_user(
            self.tenant,
            role,
            &self.caller,
        ))
    }
}

impl FromRequestParts<AppState> for TenantCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Internal("tenant route without path parameters".into()))?;
        let raw = params
            .iter()
            .find(|(k, _)| *k == "tenantId")
            .map(|(_, v)| v.to_string())
            .ok_or_else(|| ApiError::Internal("tenant route without {tenantId}".into()))?;
        // An unparsable tenant ID cannot hold a role: authenticate first (401 before 400, as
        // for every route), then refuse the ID.
        let parsed = uuid::Uuid::parse_str(&raw).ok();
        let tid = parsed.map(|u| u.hyphenated().to_string());
        let (caller, role) = authenticate(parts, state, Some(tid.as_deref().unwrap_or(""))).await?;
        let tenant: ferro_wire::TenantId = crate::extract::path_id(&raw, "tenantId")?;
        Ok(TenantCaller {
            caller,
            tid: tenant.to_string(),
            tenant,
            role,
        })
    }
}

/// A token with its user and, for a tenant route, the user's role there (the token check's row).
struct TokenRow {
    token_id: String,
    token_hash: String,
    expires_at: i64,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
    scope: TokenScope,
    user: UserRow,
    role: Option<String>,
}

impl TokenRow {
    fn from_row(row: &DbRow<'_>) -> ApiResult<TokenRow> {
        let max_role: Option<String> = row.get("max_role")?;
        Ok(TokenRow {
            token_id: row.get("token_id")?,
            token_hash: row.get("token_hash")?,
            expires_at: row.get("expires_at")?,
            revoked_at: row.get("revoked_at")?,
            last_used_at: row.get("last_used_at")?,
            scope: TokenScope {
                session: row.get::<String>("kind")? == "session",
                created_at: row.get("token_created_at")?,
                tenant: row.get("scope_tenant_id")?,
                max_role: max_role
                    .map(|r| {
                        r.parse::<Role>()
                            .map_err(|_| ApiError::Internal("unknown role in database".into()))
                    })
                    .transpose()?,
                read_only: row.get("read_only")?,
            },
            user: UserRow::from_row(row)?,
            role: row.get("role")?,
        })
    }
}

/// The bearer token of a request, or 401. Exactly one `Authorization` header (a second one
/// makes the credentials ambiguous: refused, never "the first wins"), scheme `Bearer` in any
/// case (RFC 9110 section 11.1).
pub fn bearer_token(parts: &Parts) -> ApiResult<&str> {
    let mut headers = parts.headers.get_all(AUTHORIZATION).iter();
    let header = headers.next().ok_or_else(ApiError::unauthenticated)?;
    if headers.next().is_some() {
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "send exactly one Authorization header: several make the credentials ambiguous",
        ));
    }
    let header = header.to_str().map_err(|_| ApiError::unauthenticated())?;
    let (scheme, token) = header
        .trim_start()
        .split_once(' ')
        .ok_or_else(ApiError::unauthenticated)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthenticated());
    }
    Ok(token.trim())
}

/// Check the bearer token of `parts`; with `tenant`, also return the caller's role there (one
/// query, or none when [`crate::auth_cache::AuthCache`] answered within its TTL), narrowed by
/// the token's scope.
async fn authenticate(
    parts: &Parts,
    state: &AppState,
    tenant: Option<&str>,
) -> ApiResult<(Caller, Option<Role>)> {
    let token = bearer_token(parts)?;
    if !(token.starts_with(SESSION_PREFIX) || token.starts_with(API_TOKEN_PREFIX))
        || token.len() > 100
    {
        return Err(ApiError::unauthenticated());
    }
    let (caller, role) = check_token(state, token, tenant).await?;
    // Per request (also on cache hits): a read-only token only reads.
    if caller.scope.read_only
        && !matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD
        )
    {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this API token is read-only; use a token that may write",
        ));
    }
    Ok((caller, role))
}

/// The token check behind [`authenticate`].
async fn check_token(
    state: &AppState,
    token: &str,
    tenant: Option<&str>,
) -> ApiResult<(Caller, Option<Role>)> {
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let now = db::now();
    // Cache key: the digest (never the token) and the tenant; an unparsable tenant ID is not
    // cached (the extractor refuses it after authentication anyway).
    let key = match tenant {
        None => Some(AuthKey::new(digest, None)),
        Some(t) => uuid::Uuid::parse_str(t)
            .ok()
            .map(|u| AuthKey::new(digest, Some(u))),
    };
    let cache = &state.auth_cache;
    if let Some(hit) = key.as_ref().and_then(|k| cache.get(k, now)) {
        return Ok(hit);
    }
    let generation = cache.generation();
    let hash = hex_lower(&digest);
    // The token check on a cache miss: one indexed read (`Db::read_optional`).
    let row = match tenant {
        None => {
            const SQL: &str = "SELECT t.id AS token_id, t.token_hash, t.expires_at, t.revoked_at, \
                 t.last_used_at, t.kind, t.created_at AS token_created_at, t.scope_tenant_id, \
                 t.max_role, t.read_only, u.id, u.login, u.display_name, u.password_hash, \
                 u.password_change_required, u.password_expires_at, u.platform_operator, \
                 u.created_at, NULL AS role \
                 FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1";
            let args = [Arg::from(&hash)];
            state
                .db
                .read_optional(SQL, &args, TokenRow::from_row)
                .await?
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
            let args = [Arg::from(&hash), Arg::from(tid)];
            state
                .db
                .read_optional(SQL, &args, TokenRow::from_row)
                .await?
        }
    }
    .ok_or_else(ApiError::unauthenticated)?;
    // The lookup is by hash (an index cannot leak the secret); compare again in constant time.
    if !bool::from(row.token_hash.as_bytes().ct_eq(hash.as_bytes())) {
        return Err(ApiError::unauthenticated());
    }
    let TokenRow {
        token_id,
        expires_at,
        revoked_at,
        last_used_at,
        scope,
        mut user,
        role,
        ..
    } = row;
    if revoked_at.is_some() || expires_at <= now {
        return Err(ApiError::unauthenticated());
    }
    // Callers never carry the password hash (nor does the cache).
    user.password_hash = String::new();
    if user.password_change_required {
        return Err(ApiError::new(
            ErrorCode::PasswordChangeRequired,
            "change your password with POST /v1/auth/change-password, then log in again",
        ));
    }
    // A token narrowed to a tenant or a role never carries the platform's powers.
    if scope.is_narrowed() {
        user.platform_operator = false;
    }
    if last_used_at.is_none_or(|t| now - t >= LAST_USED_GRANULARITY) {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&token_id)
            .execute(state.db.pool())
            .await?;
    }
    let role = match tenant {
        None => None,
        Some(t) => {
            let role = role
                .map(|r| {
                    r.parse::<Role>()
                        .map_err(|_| ApiError::Internal("unknown role in database".into()))
                })
                .transpose()?;
            scope.effective_role(t, role)
        }
    };
    let caller = Caller {
        user,
        token_id,
        scope,
    };
    if let Some(k) = key {
        cache.insert(k, generation, expires_at, &caller, role);
    }
    Ok((caller, role))
}

/// Which of a user's tokens [`revoke_user_tokens`] revokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoke {
    /// Sessions only (API tokens stay).
    Sessions,
    /// Sessions and API tokens.
    All,
}

/// Revoke a user's live tokens inside `tx` (callers invalidate the authentication cache after
/// the commit).
pub async fn revoke_user_tokens(
    tx: &mut db::Tx,
    uid: &str,
    which: Revoke,
    now: i64,
) -> ApiResult<()> {
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
        .bind(uid)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Limits on login attempts, enforced in the database (so every replica sees the same counts;
/// `crate::login_guard`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Window in seconds.
    pub window_secs: i64,
    /// Failed attempts per login name within the window before 429.
    pub per_login: i64,
    /// Failed attempts per client address (IPv4 address, IPv6 /64) within the window before 429.
    pub per_ip: i64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            window_secs: 15 * 60,
            per_login: 5,
            per_ip: 20,
        }
    }
}

/// Parse a role stored in the database.
pub fn parse_role(s: &str) -> ApiResult<Role> {
    s.parse()
        .map_err(|_| ApiError::Internal(format!("unknown role in database: {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_and_random() {
        let a = new_token(API_TOKEN_PREFIX).unwrap();
        let b = new_token(API_TOKEN_PREFIX).unwrap();
        assert!(a.starts_with("fst_"));
        assert_eq!(a.len(), 4 + 43);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
    }

    #[test]
    fn password_round_trip() {
        let p = PasswordParams::insecure_fast_for_tests();
        let h = hash_password_blocking(p, "correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password_blocking("correct horse battery", &h));
        assert!(!verify_password_blocking("wrong", &h));
        assert!(!verify_password_blocking("x", "garbage"));
    }

    #[test]
    fn default_params_are_owasp() {
        let d = PasswordParams::default();
        assert_eq!((d.m_cost_kib, d.t_cost, d.p_cost), (19 * 1024, 2, 1));
    }

    #[test]
    fn policy() {
        assert!(check_password_policy("a@b", "short").is_err());
        assert!(check_password_policy("averylonglogin@x", "averylonglogin@x").is_err());
        assert!(check_password_policy("a@b", "long enough password").is_ok());
    }
}
