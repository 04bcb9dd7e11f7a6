//! Authentication: password hashing (Argon2id), bearer tokens (random, stored as SHA-256),
//! the [`Caller`] extractor, tenant role checks and the database-backed login rate limit.

use crate::auth_cache::AuthKey;
use crate::datastore::tokens::{self, TokenRow};
pub use crate::datastore::users::UserRow;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64ct::{Base64UrlUnpadded, Encoding};
use ferro_wire::{ErrorCode, Role};
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

/// Whether a token last used at `last_used_at` should record a use at `now`: at most once per
/// [`LAST_USED_GRANULARITY`].
fn last_use_due(last_used_at: Option<i64>, now: i64) -> bool {
    last_used_at.is_none_or(|t| now - t >= LAST_USED_GRANULARITY)
}

/// Whether the token found by its hash acts at `now`: 401 when it is revoked or expired,
/// 403 `password_change_required` while its user's password is a one-time password.
fn admit(token: &TokenRow, now: i64) -> ApiResult<()> {
    if token.revoked_at.is_some() || token.expires_at <= now {
        return Err(ApiError::unauthenticated());
    }
    if token.user.password_change_required {
        return Err(ApiError::new(
            ErrorCode::PasswordChangeRequired,
            "change your password with POST /v1/auth/change-password, then log in again",
        ));
    }
    Ok(())
}

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
    // The token check on a cache miss: one indexed read.
    let row = tokens::check(&state.db, &hash, tenant)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    // The lookup is by hash (an index cannot leak the secret); compare again in constant time.
    if !bool::from(row.token_hash.as_bytes().ct_eq(hash.as_bytes())) {
        return Err(ApiError::unauthenticated());
    }
    admit(&row, now)?;
    let scope = TokenScope {
        session: row.session,
        created_at: row.created_at,
        tenant: row.scope_tenant,
        max_role: row.max_role,
        read_only: row.read_only,
    };
    let mut user = row.user;
    // Callers never carry the password hash (nor does the cache).
    user.password_hash = String::new();
    // A token narrowed to a tenant or a role never carries the platform's powers.
    if scope.is_narrowed() {
        user.platform_operator = false;
    }
    if last_use_due(row.last_used_at, now) {
        tokens::touch(&state.db, &row.id, now).await?;
    }
    let token_id = row.id;
    let expires_at = row.expires_at;
    let role = row.role;
    let role = tenant.and_then(|t| scope.effective_role(t, role));
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
    fn a_token_acts_with_at_most_its_scope() {
        use Role::{Administrator as A, Contributor as C, Reader as R};
        let (t, other) = (
            "00000000-0000-7000-8000-00000000000a",
            "00000000-0000-7000-8000-00000000000b",
        );
        // (token's tenant, token's maximum role, tenant asked, user's role there, acts with)
        let cases = [
            (None, None, t, Some(A), Some(A)),
            (None, None, t, None, None),
            (Some(t), None, t, Some(C), Some(C)),
            (Some(t), None, other, Some(A), None),
            (None, Some(R), t, Some(A), Some(R)),
            // A maximum role never raises the user's own.
            (None, Some(A), t, Some(R), Some(R)),
            (None, Some(A), t, None, None),
            (Some(t), Some(C), t, Some(A), Some(C)),
            (Some(t), Some(C), other, Some(A), None),
        ];
        for (tenant, max_role, asked, held, want) in cases {
            let scope = TokenScope {
                tenant: tenant.map(str::to_string),
                max_role,
                ..TokenScope::default()
            };
            assert_eq!(
                scope.effective_role(asked, held),
                want,
                "{tenant:?} {max_role:?} in {asked} holding {held:?}"
            );
            assert_eq!(scope.is_narrowed(), tenant.is_some() || max_role.is_some());
        }
    }

    #[test]
    fn a_token_acts_only_while_live() {
        let now = 1_000_000;
        let token = |revoked_at, expires_at, one_time_password| TokenRow {
            id: "t".into(),
            token_hash: "h".into(),
            session: true,
            created_at: now - 10,
            expires_at,
            revoked_at,
            last_used_at: None,
            scope_tenant: None,
            max_role: None,
            read_only: false,
            user: UserRow {
                id: ferro_wire::UserId::new(),
                login: "a@x".into(),
                display_name: "A".into(),
                password_hash: String::new(),
                password_change_required: one_time_password,
                password_expires_at: None,
                platform_operator: false,
                created_at: 0,
            },
            role: None,
        };
        // (revoked at, expires at, one-time password, Ok or the error code)
        let cases = [
            (None, now + 1, false, Ok(())),
            (None, now, false, Err(ErrorCode::Unauthenticated)),
            (None, now - 1, false, Err(ErrorCode::Unauthenticated)),
            (
                Some(now - 5),
                now + 100,
                false,
                Err(ErrorCode::Unauthenticated),
            ),
            // Revocation and expiry speak before the password's state.
            (
                Some(now - 5),
                now + 100,
                true,
                Err(ErrorCode::Unauthenticated),
            ),
            (
                None,
                now + 100,
                true,
                Err(ErrorCode::PasswordChangeRequired),
            ),
        ];
        for (revoked, expires, otp, want) in cases {
            let got = admit(&token(revoked, expires, otp), now).map_err(|e| e.code());
            assert_eq!(
                got, want,
                "revoked {revoked:?}, expires {expires}, otp {otp}"
            );
        }
        // The last use is written at most once a minute.
        for (last, due) in [
            (None, true),
            (Some(now), false),
            (Some(now - 59), false),
            (Some(now - 60), true),
        ] {
            assert_eq!(last_use_due(last, now), due, "{last:?}");
        }
    }

    #[test]
    fn policy() {
        assert!(check_password_policy("a@b", "short").is_err());
        assert!(check_password_policy("averylonglogin@x", "averylonglogin@x").is_err());
        assert!(check_password_policy("a@b", "long enough password").is_ok());
    }
}
