//! Configuration and the shared, immutable application state.

use crate::auth::{PasswordParams, RateLimit};
use crate::db::Db;
use std::sync::Arc;
use std::time::Duration;

/// Behaviour knobs. [`Config::default`] is what production runs; tests may lower costs only by
/// building a `Config` explicitly.
#[derive(Clone, Debug)]
pub struct Config {
    /// Argon2id cost for new password hashes.
    pub password_params: PasswordParams,
    /// Failed-login limits.
    pub rate_limit: RateLimit,
    /// Session token lifetime in seconds.
    pub session_ttl_secs: i64,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Largest image package upload in bytes (`POST .../images`, `POST /v1/os-releases`).
    pub max_upload_bytes: u64,
    /// Longest an upload request may take (instead of `request_timeout`).
    pub upload_timeout: Duration,
    /// How long a replica may act on a token check it made (the authentication cache,
    /// `crate::auth_cache`): revocations and role changes made through another replica take
    /// effect here within this time. Clamped to `auth_cache::MAX_TTL` (2 s); zero disables the
    /// cache.
    pub auth_cache_ttl: Duration,
    /// Most entries (token x tenant) the authentication cache holds.
    pub auth_cache_capacity: usize,
    /// Life of an attestation challenge (nonce); docs/attestation.md.
    pub attestation_nonce_ttl: Duration,
    /// Most events one device may store through `POST /v1/device/events` in any rolling 24
    /// hours; an upload that would go over is `rate_limited` (429, nothing stored). Values
    /// below `ferro_wire::MAX_EVENTS_PER_UPLOAD` count as that (a full batch always fits an
    /// empty window).
    pub device_events_per_day: u32,
    /// What one client address may send to the unauthenticated attestation routes (challenge
    /// and evidence together); `per_second` 0 turns the limit off (`crate::rate_limit`).
    pub attestation_rate: crate::rate_limit::AddressRate,
    /// Most bytes of image packages (as stored, signed by the service) one tenant may hold;
    /// an upload that would go over is `storage_quota_exceeded` (409, nothing stored).
    /// `ferro-service.toml` `tenant_image_quota_bytes`; default [`DEFAULT_TENANT_IMAGE_QUOTA`].
    pub tenant_image_quota_bytes: u64,
    /// Who may create tenants (`ferro-service.toml` `tenant_creation`); platform operators
    /// only by default.
    pub tenant_creation: TenantCreation,
    /// Most tenants one user may administer when users may create tenants (platform operators
    /// are not counted against it).
    pub max_tenants_per_user: u32,
    /// Life of a one-time password in seconds (`one_time_password_hours`).
    pub one_time_password_ttl_secs: i64,
    /// Argon2 computations at once, and requests that may wait for one
    /// (`crate::login_guard::PasswordGate`).
    pub password_gate: crate::login_guard::GateSize,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`trusted_proxies`); empty:
    /// the peer's address is the client's (`crate::client_addr`).
    pub trusted_proxies: crate::client_addr::TrustedProxies,
    /// Read the PROXY protocol (version 2) from `trusted_proxies` on the HTTPS listener
    /// (`proxy_protocol`; `crate::proxy_protocol`): TCP load balancers passing TLS through.
    pub proxy_protocol: bool,
    /// Refuse every device whose product has no firmware reference values, and every device in
    /// no device group (`ferro-service.toml` `require_firmware_reference_values`; default
    /// false: such devices are appraised without stage 0, recorded as `NotAppraised`).
    pub require_firmware_reference_values: bool,
    /// Where image packages are stored (`ferro-service.toml` `[object_store]`; default: the
    /// data directory).
    pub object_store: crate::object_store::ObjectStoreConfig,
}

/// Who may create tenants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantCreation {
    /// Platform operators only (the default): every tenant on the platform is one the
    /// operator made (and then handed over by invitation).
    #[default]
    Operators,
    /// Any logged-in user (a self-service platform), up to `max_tenants_per_user` each.
    AnyUser,
}

/// The default image storage quota of a tenant: 10 GiB (20 maximal uploads; thousands of
/// typical app images).
pub const DEFAULT_TENANT_IMAGE_QUOTA: u64 = 10 * 1024 * 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Config {
            password_params: PasswordParams::default(),
            rate_limit: RateLimit::default(),
            session_ttl_secs: 12 * 3600,
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_upload_bytes: 512 * 1024 * 1024,
            upload_timeout: Duration::from_secs(15 * 60),
            auth_cache_ttl: crate::auth_cache::DEFAULT_TTL,
            auth_cache_capacity: crate::auth_cache::DEFAULT_CAPACITY,
            attestation_nonce_ttl: Duration::from_secs(60),
            device_events_per_day: 2000,
            attestation_rate: crate::rate_limit::AddressRate::ATTESTATION_DEFAULT,
            tenant_image_quota_bytes: DEFAULT_TENANT_IMAGE_QUOTA,
            tenant_creation: TenantCreation::Operators,
            max_tenants_per_user: 10,
            one_time_password_ttl_secs: 72 * 3600,
            password_gate: crate::login_guard::GateSize::default(),
            trusted_proxies: crate::client_addr::TrustedProxies::default(),
            proxy_protocol: false,
            require_firmware_reference_values: false,
            object_store: crate::object_store::ObjectStoreConfig::Local,
        }
    }
}

/// What every handler sees. Holds no per-request or per-user state: everything that must be
/// shared between replicas (sessions, tokens, rate limits) lives in the database. The one
/// exceptions are derived and bounded: the authentication cache (`crate::auth_cache`), a copy of
/// token checks kept for at most `Config::auth_cache_ttl` (2 s at most), and the per-address
/// request buckets of the attestation routes (`crate::rate_limit`), a defense of this replica.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Configuration.
    pub config: Arc<Config>,
    /// A hash of a random password, verified against when a login name is unknown so that the
    /// answer takes as long as for a known one.
    pub dummy_hash: Arc<String>,
    /// The key store, platform root certificate and key list (`crate::platform`).
    pub platform: Arc<crate::platform::Platform>,
    /// The object store for image packages (`crate::object_store`).
    pub objects: Arc<dyn crate::object_store::ObjectStore>,
    /// Token checks of the last second (derived from the database; `crate::auth_cache`).
    pub auth_cache: Arc<crate::auth_cache::AuthCache>,
    /// Parsed (and self-signature checked) tenant CA certificates, keyed by tenant and
    /// validated against the database's (serial, SHA-256 thumbprint) set on every use
    /// (`crate::tenant_ca::load_cas_cached`).
    pub ca_cache: Arc<crate::tenant_ca::CaCache>,
    /// The newest update-now signal, polled from the database while long polls wait
    /// (`crate::update_signals::SignalWatch`).
    pub signals: Arc<crate::update_signals::SignalWatch>,
    /// The clock of update decisions (target set times, rollout waves): the system clock;
    /// tests move it forward (`crate::clock`).
    pub clock: Arc<crate::clock::Clock>,
    /// Per-address limits on the attestation routes (`None`: off; `crate::rate_limit`).
    pub attestation_limiter: Option<Arc<crate::rate_limit::AddressLimiter>>,
    /// Bounds the Argon2 computations of this process (`crate::login_guard`).
    pub password_gate: Arc<crate::login_guard::PasswordGate>,
}
