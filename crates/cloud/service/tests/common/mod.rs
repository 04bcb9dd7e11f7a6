//! Test harness: a fresh database per test on SQLite or PostgreSQL, an in-process app driven by
//! `tower::ServiceExt::oneshot`, and helpers to make users, tenants and tokens.
//!
//! PostgreSQL: `FERRO_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432`) must reach a
//! server that lets us create databases. Each test creates `ferro_test_<random>` and drops it at
//! the end. If the server is unreachable the test FAILS, it never skips.
#![allow(dead_code)]

pub mod device_https;
pub mod devices;
pub mod packages;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use ferro_service::auth::PasswordParams;
use ferro_service::db::Db;
use ferro_service::{AppState, Config, setup};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::Connection;
use std::sync::atomic::{AtomicU64, Ordering};
use tower::ServiceExt;

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Run `async fn $name(t: TestApp)` on both backends.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = $crate::common::TestApp::new($crate::common::Backend::Sqlite).await;
                super::$name(&t).await;
                t.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let t = $crate::common::TestApp::new($crate::common::Backend::Postgres).await;
                super::$name(&t).await;
                t.finish().await;
            }
        }
        )*
    };
}

pub fn pg_base_url() -> String {
    std::env::var("FERRO_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Drops the PostgreSQL test database when the test ends (also on panic).
pub struct PgGuard {
    name: String,
}

impl Drop for PgGuard {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A fresh runtime on a fresh thread: Drop may run inside (or outside) a tokio runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    sqlx::any::install_default_drivers();
                    if let Ok(mut c) =
                        sqlx::AnyConnection::connect(&format!("{}/postgres", pg_base_url())).await
                    {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut c)
                        .await;
                        let _ = c.close().await;
                    }
                });
            }
        })
        .join();
    }
}

/// A fresh database URL for `backend` (and what to keep alive until the test ends).
pub async fn fresh_database(backend: Backend) -> (String, tempfile::TempDir, Option<PgGuard>) {
    let dir = tempfile::tempdir().expect("tempdir");
    match backend {
        Backend::Sqlite => (
            ferro_service::db::sqlite_url(&dir.path().join("data")),
            dir,
            None,
        ),
        Backend::Postgres => {
            sqlx::any::install_default_drivers();
            let base = pg_base_url();
            let mut conn = sqlx::AnyConnection::connect(&format!("{base}/postgres"))
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is required for the service tests and is unreachable at {base} \
                         ({e}). Start it (e.g. `pg_ctlcluster 15 main start`) or point \
                         FERRO_TEST_PG_URL at a server where this user may CREATE DATABASE."
                    )
                });
            let name = format!("ferro_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("CREATE DATABASE");
            let _ = conn.close().await;
            (format!("{base}/{name}"), dir, Some(PgGuard { name }))
        }
    }
}

/// A test config: production defaults except Argon2 cost (explicitly lowered for speed).
pub fn test_config() -> Config {
    Config {
        password_params: PasswordParams::insecure_fast_for_tests(),
        ..Config::default()
    }
}

pub const ADMIN: &str = "admin@localhost";
pub const PASSWORD: &str = "correct horse battery staple";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique suffix for names within a test process.
pub fn uniq() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A response: status, JSON body (Null if empty or not JSON), headers.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
    pub raw: Vec<u8>,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub struct TestApp {
    pub backend: Backend,
    pub app: Router,
    pub state: AppState,
    pub db: Db,
    pub url: String,
    /// A platform operator's session token (the admin made by init).
    pub operator: String,
    pub dir: tempfile::TempDir,
    _pg: Option<PgGuard>,
}

impl TestApp {
    pub async fn new(backend: Backend) -> TestApp {
        Self::with_config(backend, test_config()).await
    }

    pub async fn with_config(backend: Backend, config: Config) -> TestApp {
        let (url, dir, pg) = fresh_database(backend).await;
        let data_dir = dir.path().join("data");
        let pg_url = (backend == Backend::Postgres).then_some(url.as_str());
        let report = setup::init(&data_dir, pg_url, ADMIN, config.password_params)
            .await
            .expect("init");
        let (db, _) = setup::open(&data_dir, pg_url).await.expect("open");
        let state = setup::state(&data_dir, db.clone(), config)
            .await
            .expect("state");
        let app = ferro_service::build_app(state.clone());
        let mut t = TestApp {
            backend,
            app,
            state,
            db,
            url,
            operator: String::new(),
            dir,
            _pg: pg,
        };
        t.operator = t.activate(ADMIN, &report.one_time_password).await;
        t
    }

    pub async fn finish(&self) {
        self.db.close().await;
    }

    /// Send a request. `body` as JSON (Content-Type set).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&b).expect("json"))),
            None => req.body(Body::empty()),
        }
        .expect("request");
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let raw = resp
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Resp {
            status,
            body,
            headers,
            raw,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn login(&self, login: &str, password: &str) -> Resp {
        self.call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"login": login, "password": password})),
        )
        .await
    }

    /// Change a one-time password to [`PASSWORD`] and log in; returns a session token.
    pub async fn activate(&self, login: &str, otp: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/v1/auth/change-password",
                None,
                Some(json!({"login": login, "currentPassword": otp, "newPassword": PASSWORD})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::NO_CONTENT,
            "change-password: {:?}",
            r.body
        );
        let r = self.login(login, PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "login: {:?}", r.body);
        r.body["token"].as_str().expect("token").to_string()
    }

    /// A tenant with a fresh Administrator, made as the default configuration allows: the
    /// platform operator creates it, invites a new account as Administrator, the account
    /// accepts, and the operator leaves. Returns (tenant ID, admin token).
    pub async fn tenant(&self) -> (String, String) {
        let r = self
            .post(
                "/v1/tenants",
                &self.operator,
                json!({"name": format!("Tenant {}", uniq())}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let tenant = r.body["id"].as_str().expect("id").to_string();
        let (_, admin, _) = self
            .user(Some((&tenant, "Administrator", &self.operator)))
            .await;
        let me = self.get("/v1/me", &self.operator).await;
        let op_id = me.body["user"]["id"]
            .as_str()
            .expect("operator id")
            .to_string();
        let r = self
            .delete(&format!("/v1/tenants/{tenant}/roles/{op_id}"), &admin)
            .await;
        assert_eq!(
            r.status,
            StatusCode::NO_CONTENT,
            "operator leaves: {:?}",
            r.body
        );
        (tenant, admin)
    }

    /// A new active account, made by the operator; with `Some((tenant, role, admin_token))`
    /// the tenant's admin invites it with that role and it accepts. Returns (user ID, session
    /// token, login).
    pub async fn user(&self, role_in: Option<(&str, &str, &str)>) -> (String, String, String) {
        let login = format!("user{}@example.com", uniq());
        let (id, otp) = self.account(&login).await;
        let session = self.activate(&login, &otp).await;
        if let Some((tenant, role, admin)) = role_in {
            let code = self.invite(tenant, role, admin).await;
            self.accept(&code, &session).await;
        }
        (id, session, login)
    }

    /// A new account made by the operator (not yet activated). Returns (user ID, one-time
    /// password).
    pub async fn account(&self, login: &str) -> (String, String) {
        let r = self
            .post(
                "/v1/users",
                &self.operator,
                json!({"login": login, "displayName": "Test User"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "create user: {:?}", r.body);
        assert!(r.body["oneTimePasswordExpiresAt"].is_string());
        let otp = r.body["oneTimePassword"].as_str().expect("otp").to_string();
        let id = r.body["user"]["id"].as_str().expect("id").to_string();
        (id, otp)
    }

    /// An invitation to `role` in `tenant` by `admin`; returns its code.
    pub async fn invite(&self, tenant: &str, role: &str, admin: &str) -> String {
        let r = self
            .post(
                &format!("/v1/tenants/{tenant}/invitations"),
                admin,
                json!({"role": role}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "invite: {:?}", r.body);
        r.body["code"].as_str().expect("code").to_string()
    }

    /// Accept an invitation as the holder of `session`.
    pub async fn accept(&self, code: &str, session: &str) {
        let r = self
            .post("/v1/invitations/accept", session, json!({"code": code}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "accept: {:?}", r.body);
    }

    /// A product (with default groups unless `no_defaults`). Returns its ID.
    pub async fn product(&self, tenant: &str, token: &str, no_defaults: bool) -> String {
        let r = self
            .post(&format!("/v1/tenants/{tenant}/products"), token,
                json!({"name": format!("Product {}", uniq()), "noDefaultDeviceGroups": no_defaults}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().expect("id").to_string()
    }

    /// Run SQL directly (test setup only).
    pub async fn exec(&self, sql: &str) {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(self.db.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub async fn count(&self, sql: &str) -> i64 {
        use sqlx::Row;
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(self.db.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .try_get::<i64, _>(0)
            .expect("count")
    }

    /// Register a fresh device through the API as the platform operator. Returns its ID.
    pub async fn register_device(&self) -> String {
        self.register_device_with_code().await.0
    }

    /// Register a fresh device through the API as the platform operator. Returns its ID and
    /// its claim code (shown once, in the registration's answer).
    pub async fn register_device_with_code(&self) -> (String, String) {
        let (id, record) = registration_record();
        let r = self
            .post(
                "/v1/manufacturing/registrations",
                &self.operator,
                json!({"records": [record]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "register: {:?}", r.body);
        let code = r.body["devices"][0]["claimCode"]
            .as_str()
            .expect("claim code of a new registration")
            .to_string();
        (id, code)
    }

    /// A fresh device registered and claimed by `tenant`. Returns its ID.
    pub async fn claimed_device(&self, tenant: &str, token: &str) -> String {
        let (id, code) = self.register_device_with_code().await;
        let r = self
            .post(
                &format!("/v1/tenants/{tenant}/devices/claim"),
                token,
                json!({"devices": [{"deviceId": id, "claimCode": code}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "claim: {:?}", r.body);
        id
    }
}

/// The claim request entries (`{deviceId, claimCode}`) of a registration answer's new devices.
pub fn claims_of(registered: &Resp) -> Vec<Value> {
    registered.body["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| json!({"deviceId": d["deviceId"], "claimCode": d["claimCode"]}))
        .collect()
}

/// A signed registration record of a fresh software device: (device ID, base64 record).
pub fn registration_record() -> (String, String) {
    registration_record_of(&ferro_signing::SoftwareSigningKey::generate())
}

/// A signed registration record of the software device with `key`: (device ID, base64 record).
pub fn registration_record_of(key: &ferro_signing::SoftwareSigningKey) -> (String, String) {
    let record = ferro_pki::RegistrationRecord {
        device_key: key.public_key().clone(),
        root_of_trust: ferro_pki::RootOfTrust::Software,
        tpm_ek_certificate: None,
        manufacturing_state: ferro_pki::ManufacturingState::DeviceComplete,
        created_at: time::OffsetDateTime::now_utc(),
        tpm_attestation_key: None,
    };
    let bytes = record.sign(key).expect("sign record");
    (record.device_id().to_string(), b64(&bytes))
}

/// Standard base64.
pub fn b64(bytes: &[u8]) -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(bytes)
}
