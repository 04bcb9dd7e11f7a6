//! The data directory: `init` (directory, config file, database, first administrator) and
//! opening an initialised service.

use crate::auth::PasswordParams;
use crate::datastore::{StoreError, platform_meta};
use crate::db::{self, Db, DbError};
use crate::error::ApiError;
use crate::users::insert_user;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name of the config file in the data directory.
pub const CONFIG_FILE: &str = "ferro-service.toml";

/// The config file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `postgres://...`; absent means SQLite in the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Listen address; absent means 127.0.0.1:4443.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// DNS names and IP addresses of the service TLS certificate (also used when it is
    /// renewed); empty means `localhost` and `127.0.0.1`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_names: Vec<String>,
    /// Per-address limit of the attestation routes (`per_second`, `burst`); absent means
    /// [`crate::rate_limit::AddressRate::ATTESTATION_DEFAULT`], `per_second = 0` turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation_rate_limit: Option<crate::rate_limit::AddressRate>,
    /// Most bytes of image packages one tenant may store; absent means
    /// [`crate::state::DEFAULT_TENANT_IMAGE_QUOTA`] (10 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_image_quota_bytes: Option<u64>,
    /// Who may create tenants: `"operators"` (absent: the default) or `"any_user"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_creation: Option<crate::state::TenantCreation>,
    /// Most tenants a user may administer under `tenant_creation = "any_user"` (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tenants_per_user: Option<u32>,
    /// Life of one-time passwords in hours (default 72).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_password_hours: Option<u32>,
    /// Reverse proxies (CIDR ranges or addresses) whose `X-Forwarded-For` names the client for
    /// the login and attestation limits (`crate::client_addr`); empty (the default): forwarding
    /// headers are ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// `true`: connections from `trusted_proxies` begin with a PROXY protocol version 2 header
    /// naming the client (TCP load balancers passing TLS through; `crate::proxy_protocol`).
    /// Needs `trusted_proxies`. Absent or `false`: no header is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<bool>,
    /// `true`: a device attests Trusted only when its firmware PCRs are a reference value of its
    /// product (devices in no group, products without values and software roots of trust are
    /// refused). Absent or `false`: products without values are appraised without stage 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_firmware_reference_values: Option<bool>,
    /// Where image packages are stored: absent or `kind = "local"`, `DATA_DIR/objects`;
    /// `kind = "s3"`, an S3-compatible bucket (`crate::object_store::s3::S3Config`; the
    /// credentials never in this file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_store: Option<crate::object_store::ObjectStoreConfig>,
}

impl FileConfig {
    /// The service configuration this file asks for: [`crate::Config::default`] with the
    /// file's settings, checked (a setting out of range is refused by name).
    pub fn config(&self, path: &Path) -> Result<crate::Config, SetupError> {
        let defaults = crate::Config::default();
        let bad = |what: &str| SetupError::Config(path.to_path_buf(), what.to_string());
        let max_tenants_per_user = self
            .max_tenants_per_user
            .unwrap_or(defaults.max_tenants_per_user);
        if max_tenants_per_user == 0 {
            return Err(bad("max_tenants_per_user must be at least 1"));
        }
        let otp_hours = self.one_time_password_hours.unwrap_or(72);
        if !(1..=720).contains(&otp_hours) {
            return Err(bad("one_time_password_hours must be 1 to 720"));
        }
        let trusted_proxies = crate::client_addr::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| bad(&e))?;
        let proxy_protocol = self.proxy_protocol.unwrap_or(false);
        if proxy_protocol && trusted_proxies.is_empty() {
            return Err(bad(
                "proxy_protocol = true needs trusted_proxies: the load balancers' addresses, \
                 the only peers whose PROXY header is read",
            ));
        }
        let object_store = self.object_store.clone().unwrap_or_default();
        if let crate::object_store::ObjectStoreConfig::S3(s3) = &object_store {
            s3.validate().map_err(|e| bad(&e))?;
        }
        Ok(crate::Config {
            object_store,
            trusted_proxies,
            proxy_protocol,
            require_firmware_reference_values: self
                .require_firmware_reference_values
                .unwrap_or(defaults.require_firmware_reference_values),
            attestation_rate: self
                .attestation_rate_limit
                .unwrap_or(crate::rate_limit::AddressRate::ATTESTATION_DEFAULT),
            tenant_creation: self.tenant_creation.unwrap_or_default(),
            max_tenants_per_user,
            one_time_password_ttl_secs: i64::from(otp_hours) * 3600,
            tenant_image_quota_bytes: self
                .tenant_image_quota_bytes
                .unwrap_or(defaults.tenant_image_quota_bytes),
            ..defaults
        })
    }
}

/// Errors of `init` and `open`.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Already initialised.
    #[error("{0} is already initialised (found {1}); refusing to initialise twice")]
    AlreadyInitialised(PathBuf, String),
    /// Not initialised.
    #[error("{0} is not initialised; run `ferro-service init --data-dir {0}` first")]
    NotInitialised(PathBuf),
    /// File system.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Config file syntax.
    #[error("config file {0}: {1}")]
    Config(PathBuf, String),
    /// Database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Reading or writing the platform's rows.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The object store cannot be opened or reached.
    #[error("object store: {0}")]
    ObjectStore(crate::object_store::ObjectStoreError),
    /// Creating the administrator.
    #[error("creating the first administrator: {0}")]
    Admin(#[from] ApiError),
    /// The platform's keys and certificates.
    #[error("platform keys and certificates: {0}")]
    Platform(#[from] crate::platform::PlatformError),
}

/// What `init` made.
#[derive(Debug)]
pub struct InitReport {
    /// The administrator's login name.
    pub admin_login: String,
    /// Their one-time password (print it once; it is not stored in clear anywhere).
    pub one_time_password: String,
    /// The database URL used (password redacted).
    pub database: String,
    /// SHA-256 fingerprint of the platform root certificate (`AB:CD:...`, as `openssl x509
    /// -fingerprint -sha256` prints it): users compare it at `ferro login`.
    pub root_fingerprint: String,
    /// The names in the service TLS certificate.
    pub service_names: Vec<String>,
}

/// Resolve the database URL: explicit flag, then config file, then SQLite in the data directory.
pub fn database_url(data_dir: &Path, flag: Option<&str>, file: &FileConfig) -> String {
    flag.map(str::to_string)
        .or_else(|| file.database_url.clone())
        .unwrap_or_else(|| db::sqlite_url(data_dir))
}

/// Read the config file of an initialised data directory.
pub fn read_config(data_dir: &Path) -> Result<FileConfig, SetupError> {
    let path = data_dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            SetupError::NotInitialised(data_dir.to_path_buf())
        } else {
            SetupError::Io(path.clone(), e)
        }
    })?;
    toml::from_str(&text).map_err(|e| SetupError::Config(path, e.to_string()))
}

fn create_private_dir(dir: &Path) -> Result<(), SetupError> {
    let io = |e| SetupError::Io(dir.to_path_buf(), e);
    std::fs::create_dir_all(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

fn write_private_file(path: &Path, contents: &str) -> Result<(), SetupError> {
    write_new_private(path, contents.as_bytes()).map_err(|e| SetupError::Io(path.to_path_buf(), e))
}

/// Create `path` holding `bytes`, mode 0600, failing (`AlreadyExists`) if it exists: a temp file
/// in the same directory, fsynced, then a no-clobber rename, so a crash never leaves a partial
/// file and of two concurrent creators exactly one wins (the config file, the nonce key).
pub(crate) fn write_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    ferro_files::create_new(path, bytes, ferro_files::Mode::SECRET)
}

/// Initialise a data directory: create it (mode 0700), write the config file, create and
/// migrate the database, create the first administrator (a platform operator) with a one-time
/// password, and the platform keys and certificates (`crate::platform`), with a service TLS
/// certificate for `localhost` and `127.0.0.1`. Refuses a directory or database that is already
/// initialised.
pub async fn init(
    data_dir: &Path,
    database_url_flag: Option<&str>,
    admin_login: &str,
    params: PasswordParams,
) -> Result<InitReport, SetupError> {
    init_with_names(data_dir, database_url_flag, admin_login, params, &[]).await
}

/// [`init`] with the service TLS certificate's names (DNS names or IP addresses; empty means
/// `localhost` and `127.0.0.1`).
pub async fn init_with_names(
    data_dir: &Path,
    database_url_flag: Option<&str>,
    admin_login: &str,
    params: PasswordParams,
    service_names: &[String],
) -> Result<InitReport, SetupError> {
    let config_path = data_dir.join(CONFIG_FILE);
    if config_path.exists() {
        return Err(SetupError::AlreadyInitialised(
            data_dir.to_path_buf(),
            CONFIG_FILE.into(),
        ));
    }
    create_private_dir(data_dir)?;
    let file = FileConfig {
        database_url: database_url_flag.map(str::to_string),
        listen: None,
        service_names: service_names.to_vec(),
        ..FileConfig::default()
    };
    let url = database_url(data_dir, database_url_flag, &file);
    let db = Db::connect(&url, 2).await?;
    db.migrate().await?;
    let mut tx = db.begin_write().await.map_err(DbError::from)?;
    if platform_meta::initialized_in(&mut tx).await? {
        return Err(SetupError::AlreadyInitialised(
            data_dir.to_path_buf(),
            format!("an initialised database at {}", db::redact_url(&url)),
        ));
    }
    let otp = crate::auth::new_one_time_password()?;
    let secret = otp.clone();
    let hash =
        tokio::task::spawn_blocking(move || crate::auth::hash_password_blocking(params, &secret))
            .await
            .map_err(|e| ApiError::Internal(format!("hash task: {e}")))??;
    let otp_expires = db::now() + crate::Config::default().one_time_password_ttl_secs;
    let user = insert_user(
        &mut tx,
        admin_login,
        "Administrator",
        true,
        &hash,
        otp_expires,
    )
    .await?;
    platform_meta::mark_initialized_in(&mut tx, db::now()).await?;
    db::audit(
        &mut tx,
        None,
        None,
        "platform.init",
        "user",
        &user.id.to_string(),
        json!({ "login": user.login }),
    )
    .await
    .map_err(DbError::from)?;
    // Platform keys and certificates, after the database checks (so a second init never
    // touches them) and before the commit (so a failure rolls the database back).
    let names = service_names.to_vec();
    let dir = data_dir.to_path_buf();
    let pki = tokio::task::spawn_blocking(move || crate::platform::init(&dir, &names))
        .await
        .map_err(|e| ApiError::Internal(format!("platform init task: {e}")))??;
    // The config file is written last, inside the transaction's lifetime: if it cannot be
    // written, the database changes roll back and init can be retried.
    let text = toml::to_string(&file)
        .map_err(|e| SetupError::Config(config_path.clone(), e.to_string()))?;
    write_private_file(
        &config_path,
        &format!("# Ferrosphere service configuration\n{text}"),
    )?;
    tx.commit().await.map_err(DbError::from)?;
    db.close().await;
    Ok(InitReport {
        admin_login: user.login,
        one_time_password: otp,
        database: db::redact_url(&url),
        root_fingerprint: crate::platform::fingerprint(pki.root.der()),
        service_names: if service_names.is_empty() {
            crate::platform::DEFAULT_SERVICE_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            service_names.to_vec()
        },
    })
}

/// Open an initialised data directory's database, applying pending migrations.
pub async fn open(
    data_dir: &Path,
    database_url_flag: Option<&str>,
) -> Result<(Db, FileConfig), SetupError> {
    let file = read_config(data_dir)?;
    let url = database_url(data_dir, database_url_flag, &file);
    let db = Db::connect(&url, 16).await?;
    db.migrate().await?;
    Ok((db, file))
}

/// Build the application state for `db` and the platform keys of `data_dir`.
pub async fn state(
    data_dir: &Path,
    db: Db,
    config: crate::Config,
) -> Result<crate::AppState, SetupError> {
    let dir = data_dir.to_path_buf();
    let platform = tokio::task::spawn_blocking(move || crate::platform::load(&dir))
        .await
        .map_err(|e| ApiError::Internal(format!("platform load task: {e}")))??;
    let objects = crate::object_store::open(&config.object_store, data_dir)
        .await
        .map_err(SetupError::ObjectStore)?;
    let dummy = crate::auth::new_one_time_password()?;
    let params = config.password_params;
    let dummy_hash =
        tokio::task::spawn_blocking(move || crate::auth::hash_password_blocking(params, &dummy))
            .await
            .map_err(|e| ApiError::Internal(format!("hash task: {e}")))??;
    let auth_cache =
        crate::auth_cache::AuthCache::new(config.auth_cache_ttl, config.auth_cache_capacity);
    let attestation_limiter = config
        .attestation_rate
        .limiter()
        .map_err(|e| {
            SetupError::Config(
                data_dir.join(CONFIG_FILE),
                format!("attestation_rate_limit: {e}"),
            )
        })?
        .map(std::sync::Arc::new);
    let state = crate::AppState {
        attestation_limiter,
        password_gate: std::sync::Arc::new(crate::login_guard::PasswordGate::new(
            config.password_gate,
        )),
        db,
        auth_cache: std::sync::Arc::new(auth_cache),
        ca_cache: std::sync::Arc::default(),
        signals: std::sync::Arc::default(),
        clock: std::sync::Arc::default(),
        config: std::sync::Arc::new(config),
        dummy_hash: std::sync::Arc::new(dummy_hash),
        platform: std::sync::Arc::new(platform),
        objects,
    };
    // Object deletions a previous process committed but did not finish (it died in between).
    match crate::packages::finish_object_deletions(&state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(objects = n, "finished pending object deletions"),
        Err(e) => tracing::warn!(error = %e, "pending object deletions stay pending"),
    }
    Ok(state)
}

/// Grace period the binary gives in-flight requests at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::{FileConfig, SetupError};
    use std::path::Path;

    fn config_of(text: &str) -> Result<crate::Config, SetupError> {
        let file: FileConfig = toml::from_str(text).unwrap();
        file.config(Path::new("ferro-service.toml"))
    }

    #[test]
    fn the_image_quota_is_read_from_the_file() {
        let config = config_of("tenant_image_quota_bytes = 1000\n").unwrap();
        assert_eq!(config.tenant_image_quota_bytes, 1000);
        assert_eq!(
            config_of("").unwrap().tenant_image_quota_bytes,
            crate::state::DEFAULT_TENANT_IMAGE_QUOTA
        );
        // A negative or misspelled value is refused, not ignored.
        assert!(toml::from_str::<FileConfig>("tenant_image_quota_bytes = -1\n").is_err());
        assert!(toml::from_str::<FileConfig>("tenant_image_quota = 1\n").is_err());
    }

    #[test]
    fn firmware_reference_values_are_required_only_when_set() {
        assert!(!config_of("").unwrap().require_firmware_reference_values);
        assert!(
            config_of("require_firmware_reference_values = true\n")
                .unwrap()
                .require_firmware_reference_values
        );
        assert!(
            toml::from_str::<FileConfig>("require_firmware_reference_values = \"yes\"\n").is_err()
        );
    }

    #[test]
    fn account_settings_are_read_and_checked() {
        use crate::state::TenantCreation;
        let defaults = config_of("").unwrap();
        assert_eq!(
            defaults.tenant_creation,
            TenantCreation::Operators,
            "safe by default"
        );
        assert_eq!(defaults.max_tenants_per_user, 10);
        assert_eq!(defaults.one_time_password_ttl_secs, 72 * 3600);
        let c = config_of(
            "tenant_creation = \"any_user\"\nmax_tenants_per_user = 3\none_time_password_hours = 24\n",
        )
        .unwrap();
        assert_eq!(
            (
                c.tenant_creation,
                c.max_tenants_per_user,
                c.one_time_password_ttl_secs
            ),
            (TenantCreation::AnyUser, 3, 24 * 3600)
        );
        for (text, name) in [
            ("max_tenants_per_user = 0\n", "max_tenants_per_user"),
            ("one_time_password_hours = 0\n", "one_time_password_hours"),
            ("one_time_password_hours = 721\n", "one_time_password_hours"),
        ] {
            let e = config_of(text).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
        assert!(toml::from_str::<FileConfig>("tenant_creation = \"everyone\"\n").is_err());
    }

    #[test]
    fn proxy_protocol_is_off_by_default_and_needs_trusted_proxies() {
        assert!(!config_of("").unwrap().proxy_protocol);
        let c = config_of("trusted_proxies = [\"10.0.0.2\"]\nproxy_protocol = true\n").unwrap();
        assert!(c.proxy_protocol);
        let e = config_of("proxy_protocol = true\n").unwrap_err();
        assert!(matches!(e, SetupError::Config(..)), "{e}");
        assert!(e.to_string().contains("trusted_proxies"), "{e}");
        assert!(toml::from_str::<FileConfig>("proxy_protocol = \"yes\"\n").is_err());
    }

    #[test]
    fn trusted_proxies_are_read_and_a_bad_entry_stops_the_start() {
        assert!(
            config_of("").unwrap().trusted_proxies.is_empty(),
            "none by default"
        );
        let c =
            config_of("trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1/32\", \"::1\"]\n").unwrap();
        for (addr, trusted) in [
            ("10.2.3.4", true),
            ("127.0.0.1", true),
            ("::1", true),
            ("192.0.2.1", false),
        ] {
            assert_eq!(
                c.trusted_proxies.contains(addr.parse().unwrap()),
                trusted,
                "{addr}"
            );
        }
        for (text, named) in [
            ("trusted_proxies = [\"10.0.0.0/33\"]\n", "\"10.0.0.0/33\""),
            (
                "trusted_proxies = [\"127.0.0.1\", \"haproxy.internal\"]\n",
                "\"haproxy.internal\"",
            ),
            ("trusted_proxies = [\"10.0.0/8\"]\n", "\"10.0.0/8\""),
            ("trusted_proxies = [\"\"]\n", "\"\""),
        ] {
            let e = config_of(text).unwrap_err();
            assert!(matches!(e, SetupError::Config(..)), "{e}");
            let e = e.to_string();
            assert!(
                e.contains("ferro-service.toml")
                    && e.contains("trusted_proxies")
                    && e.contains(named),
                "{e}"
            );
        }
        // Not a list of strings: refused by the file's syntax.
        assert!(toml::from_str::<FileConfig>("trusted_proxies = \"10.0.0.0/8\"\n").is_err());
        assert!(toml::from_str::<FileConfig>("trusted_proxies = [10]\n").is_err());
    }
}
